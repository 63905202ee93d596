import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { connectDatabase } from "@erebus/core";

describe("example server start-up (issue 14: the agents database opens after listening)", () => {
  it("an agents database that cannot be opened still stops the server with one line saying why, not a stack", async () => {
    const dir = mkdtempSync(join(tmpdir(), "erebus-example-agents-lock-"));
    const holder = await connectDatabase(`pglite://${dir}`); // another process's agents database
    try {
      const server = fileURLToPath(new URL("./server.ts", import.meta.url));
      const env = { PATH: process.env.PATH, NODE_ENV: "development", HOST: "127.0.0.1", PORT: "0", DATABASE_URL: "pglite://memory", AGENTS_DATABASE_URL: `pglite://${dir}` };
      const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        execFile(process.execPath, ["--conditions=erebus-source", "--import", "tsx", server], { env, timeout: 90_000 }, (error, stdout, stderr) =>
          resolve({ code: error ? ((error as { code?: number }).code ?? null) : 0, stdout, stderr }),
        );
      });
      expect(result.code).toBe(1);
      // It listened first (the main database was ready), then stopped on the agents database.
      expect(result.stdout).toMatch(/listening on .*started in \d+ ms/);
      expect(result.stderr).toMatch(/^Erebus example app: ERR_DATABASE_UNAVAILABLE: the embedded database .* is in use by process \d+/m);
      expect(result.stderr).not.toMatch(/\n\s+at /);
    } finally {
      await holder.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
