import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";

// Delegates to the real PGlite; lets the test see whether a database started from the snapshot.
vi.mock("@electric-sql/pglite", async (importOriginal) => {
  const actual = await importOriginal<typeof import("@electric-sql/pglite")>();
  const create = vi.fn((...args: Parameters<typeof actual.PGlite.create>) => actual.PGlite.create(...args));
  return { ...actual, PGlite: Object.assign(Object.create(actual.PGlite) as typeof actual.PGlite, { create }) };
});
const { PGlite } = await import("@electric-sql/pglite");
const { openDatabase } = await import("./embedded.js");

const fromSnapshot = () => vi.mocked(PGlite.create).mock.calls.map((args) => typeof args[0] === "object" && args[0] !== null && "loadDataDir" in args[0]);

describe("the example's embedded databases (cold start, issue 14)", () => {
  const dir = mkdtempSync(join(tmpdir(), "erebus-snapshot-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const tables = async (db: Awaited<ReturnType<typeof openDatabase>>) =>
    (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'")).rows[0]!.n;

  it("a new in-memory database runs initdb once, writes the snapshot, and the next ones start from it: empty, and each its own", async () => {
    vi.mocked(PGlite.create).mockClear();
    const first = await openDatabase("pglite://memory", { snapshotDirectory: dir });
    const [file] = readdirSync(dir);
    expect(file).toMatch(/^pglite-[0-9A-Za-z.+-]+-empty\.tar$/);
    expect(statSync(join(dir, file!)).size).toBeGreaterThan(1_000_000);
    await first.exec("CREATE TABLE only_in_first (x int)");
    const [second, third] = [await openDatabase("pglite://memory", { snapshotDirectory: dir }), await openDatabase("pglite://memory", { snapshotDirectory: dir })];
    expect(fromSnapshot()).toEqual([false, true, true]);
    expect([await tables(second), await tables(third)]).toEqual([0, 0]); // nothing of the first one's
    await second.exec("CREATE TABLE only_in_second (x int)");
    expect(await tables(third)).toBe(0);
    expect(readdirSync(dir)).toEqual([file]); // no partial file left behind
    await Promise.all([first.close(), second.close(), third.close()]);
  }, 120_000);

  it("a damaged snapshot is replaced: the database still opens (fresh), and the next one starts from the new snapshot", async () => {
    const [file] = readdirSync(dir);
    writeFileSync(join(dir, file!), "not a tar file");
    vi.mocked(PGlite.create).mockClear();
    const db = await openDatabase("pglite://memory", { snapshotDirectory: dir });
    expect(await tables(db)).toBe(0);
    expect(statSync(join(dir, file!)).size).toBeGreaterThan(1_000_000);
    const next = await openDatabase("pglite://memory", { snapshotDirectory: dir });
    expect(fromSnapshot()).toEqual([true, false, true]);
    expect(await tables(next)).toBe(0);
    await Promise.all([db.close(), next.close()]);
  }, 120_000);

  it("a pglite:// directory or a server URL is core's connectDatabase, no snapshot involved", async () => {
    const data = join(dir, "data");
    vi.mocked(PGlite.create).mockClear();
    const db = await openDatabase(`pglite://${data}`, { snapshotDirectory: join(dir, "unused") });
    expect(existsSync(join(dir, "unused"))).toBe(false);
    expect(fromSnapshot()).toEqual([false]);
    await db.close();
  }, 120_000);
});
