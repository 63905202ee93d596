import { afterAll, describe, expect, it } from "vitest";
import { cliRunner } from "../../../test/cli.js";

const cli = cliRunner(`import { syncProvider } from "@erebus/sync";\nexport default { providers: [syncProvider()] };\n`);
afterAll(() => cli.cleanup());

describe("npx erebus sync", () => {
  it("reports pending events and lag with `sync status`", async () => {
    expect((await cli.run(["migrate"])).code).toBe(0);
    expect((await cli.run(["agents", "create", "--type", "monitor", "--id", "m-1"])).code).toBe(0);
    const status = await cli.run(["sync", "status"]);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.out)).toMatchObject({ pending: 1, lastError: null });
    expect((await cli.run(["sync", "frobnicate"])).code).toBe(2);
  });
});
