import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cliRunner } from "../../../test/cli.js";
import { pepperFingerprint } from "./store.js";

const cli = cliRunner(
  `import { apiKeyProvider } from "@erebus/provider-apikey";\nexport default { providers: [apiKeyProvider({ pepper: "cli-test-pepper-0123456789abcdefghij" })] };\n`,
  { PUBLIC_URL: "http://app.test" },
);
const run = cli.run;
afterAll(() => cli.cleanup());

/** A CLI whose erebus.config has this pepper (or none), on the database at `url`. */
const cliWithPepper = (pepper: string | undefined, url: string) =>
  cliRunner(
    `import { apiKeyProvider } from "@erebus/provider-apikey";\nexport default { providers: [apiKeyProvider(${pepper ? JSON.stringify({ pepper }) : ""})] };\n`,
    { PUBLIC_URL: "http://app.test", DATABASE_URL: url },
  );

describe("npx erebus api-keys / agents", () => {
  it("creates an agent, a key bound to it, lists, rotates and revokes, from the command line", async () => {
    const migrated = await run(["migrate"]);
    expect(migrated.err).toBe("");
    expect(migrated.code).toBe(0);
    const agent = await run(["agents", "create", "--type", "task_runner", "--capabilities", "execute_tasks", "--id", "runner-7"]);
    expect(agent.code).toBe(0);
    const agentRow = JSON.parse(agent.out);

    const created = await run(["api-keys", "create", "--name", "runner key", "--scopes", "read,trade", "--agent", "runner-7", "--expires-in-days", "90"]);
    expect(created.code).toBe(0);
    const info = JSON.parse(created.out.split("\nStore the key now")[0]!);
    expect(info).toMatchObject({ key: expect.stringMatching(/^erb_/), name: "runner key", scopes: ["read", "trade"], userId: agentRow.id, ownerId: null, createdBy: "cli" });

    const standalone = await run(["api-keys", "create", "--name", "exporter", "--scopes", "read"]);
    expect(standalone.code).toBe(0);

    const list = await run(["api-keys", "list"]);
    const listed = JSON.parse(list.out);
    expect(listed.map((k: { name: string }) => k.name).sort()).toEqual(["exporter", "runner key"]);
    expect(list.out).not.toContain(info.key.slice(17, 39)); // no secret in the listing

    const rotated = await run(["api-keys", "rotate", info.id, "--grace-seconds", "0"]);
    expect(rotated.code).toBe(0);
    expect(JSON.parse(rotated.out.split("\nStore the new key now")[0]!).key).not.toBe(info.key);

    const revoked = await run(["api-keys", "revoke", info.id]);
    expect(JSON.parse(revoked.out).revokedAt).not.toBeNull();

    expect((await run(["api-keys", "revoke", "000000000000"])).code).toBe(1);
    expect((await run(["api-keys", "create"])).code).toBe(2);
    expect((await run(["api-keys", "create", "--name", "x", "--scopes", "BAD SCOPE"])).code).toBe(2);
    expect((await run(["api-keys", "frobnicate"])).code).toBe(2);
  });

  it("finding 14: api-keys create and rotate refuse a pepper that differs from the one the live keys were made with", async () => {
    const dir = mkdtempSync(join(tmpdir(), "erebus-pepper-"));
    const url = `pglite://${join(dir, "db")}`;
    const appPepper = "the-apps-pepper-0123456789abcdefghijk";
    const app = cliWithPepper(appPepper, url);
    const stray = cliWithPepper("a-stray-pepper-0123456789abcdefghijk", url);
    const none = cliWithPepper(undefined, url);
    try {
      expect((await app.run(["migrate"])).code).toBe(0);
      const made = await app.run(["api-keys", "create", "--name", "first"]);
      expect(made.code).toBe(0);
      const first = JSON.parse(made.out.split("\nStore the key now")[0]!);
      expect(first.pepperFingerprint).toBe(pepperFingerprint(appPepper));

      for (const cli of [stray, none]) {
        const refused = await cli.run(["api-keys", "create", "--name", "second"]);
        expect(refused.code).toBe(1);
        expect(refused.err).toMatch(/pepper/i);
        expect(refused.err).toContain(pepperFingerprint(appPepper));
        expect(refused.out).toBe("");
        const rotate = await cli.run(["api-keys", "rotate", first.id]);
        expect(rotate.code).toBe(1);
        expect(rotate.err).toMatch(/pepper/i);
      }
      // Nothing was created or rotated by the refused runs.
      const listed = JSON.parse((await app.run(["api-keys", "list"])).out);
      expect(listed.map((k: { name: string }) => k.name)).toEqual(["first"]);
      expect(listed[0].rotatedAt).toBeNull();

      // On purpose (changing the pepper): allowed, with a warning.
      const forced = await stray.run(["api-keys", "create", "--name", "new pepper", "--allow-pepper-mismatch"]);
      expect(forced.code).toBe(0);
      expect(forced.err).toMatch(/WARNING.*pepper/);
      // From then on the new pepper is the reference; the keys left under the old one are pointed out.
      const next = await stray.run(["api-keys", "create", "--name", "third"]);
      expect(next.code).toBe(0);
      expect(next.err).toMatch(/1 live key\(s\) were made under another pepper/);
      expect((await app.run(["api-keys", "create", "--name", "old pepper"])).code).toBe(1);
    } finally {
      for (const cli of [app, stray, none]) cli.cleanup();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
