import { afterAll, describe, expect, it } from "vitest";
import { cliRunner } from "../../../test/cli.js";

const cli = cliRunner(
  `import { apiKeyProvider } from "@erebus/provider-apikey";\nexport default { providers: [apiKeyProvider({ pepper: "cli-test-pepper-0123456789abcdefghij" })] };\n`,
  { PUBLIC_URL: "http://app.test" },
);
const run = cli.run;
afterAll(() => cli.cleanup());

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
});
