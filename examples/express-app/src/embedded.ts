import { randomBytes } from "node:crypto";
import { mkdirSync, openAsBlob, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { connectDatabase, pgliteDatabase, type Database } from "@erebus/core";

/**
 * Opens one of the app's databases. A new in-memory embedded database (`pglite://memory`) starts
 * from a snapshot of a freshly initialised, empty PGlite cluster instead of running PGlite's initdb:
 * ~1 s of CPU instead of ~4 s on a small machine, per database (with two of them, the example took
 * ~10 s to its first answer). Every other URL goes to core's `connectDatabase` as is.
 *
 * The snapshot holds no Erebus table: migrations run as usual, so it can never be out of date with
 * them (a snapshot with them in place saved only ~0.1 s more, too little for the risk). It is keyed
 * by the PGlite version and written by the first start, under `node_modules/.cache/erebus-example/`:
 * a place only whoever installs the app's code can write to, which matters because a planted
 * snapshot would be the app's database.
 */
export async function openDatabase(url: string, options: { snapshotDirectory?: string } = {}): Promise<Database> {
  if (url !== "pglite://memory") return connectDatabase(url);
  const { PGlite } = await import("@electric-sql/pglite");
  const snapshot = snapshotPath(options.snapshotDirectory);
  if (snapshot !== undefined) {
    let data: Blob | undefined;
    try {
      data = await openAsBlob(snapshot);
    } catch {
      // None yet: made below.
    }
    if (data !== undefined) {
      try {
        return pgliteDatabase(await PGlite.create({ loadDataDir: data }), { ownsConnection: true });
      } catch {
        // A damaged snapshot (a disk error, another PGlite build): start fresh and write it again.
        rmSync(snapshot, { force: true });
      }
    }
  }
  const instance = await PGlite.create();
  if (snapshot !== undefined) {
    try {
      const dump = Buffer.from(await (await instance.dumpDataDir("none")).arrayBuffer());
      mkdirSync(dirname(snapshot), { recursive: true });
      // Written aside and renamed: another process starting now reads a whole snapshot or none.
      const partial = `${snapshot}.${process.pid}.${randomBytes(4).toString("hex")}`;
      writeFileSync(partial, dump);
      renameSync(partial, snapshot);
    } catch {
      // A read-only install: every start runs initdb, as it would without the snapshot.
    }
  }
  return pgliteDatabase(instance, { ownsConnection: true });
}

/**
 * `…/node_modules/.cache/erebus-example/pglite-<version>-empty.tar` (or in `directory`), or
 * undefined outside a node_modules layout.
 */
function snapshotPath(directory?: string): string | undefined {
  const entry = fileURLToPath(import.meta.resolve("@electric-sql/pglite"));
  const marker = `${sep}node_modules${sep}`;
  const at = entry.lastIndexOf(marker);
  if (at < 0) return undefined;
  const modules = entry.slice(0, at + marker.length - 1);
  let version: string;
  try {
    version = (JSON.parse(readFileSync(join(modules, "@electric-sql", "pglite", "package.json"), "utf8")) as { version: string }).version;
  } catch {
    return undefined;
  }
  if (!/^[0-9A-Za-z.+-]+$/.test(version)) return undefined;
  return join(directory ?? join(modules, ".cache", "erebus-example"), `pglite-${version}-empty.tar`);
}
