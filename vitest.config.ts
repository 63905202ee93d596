import { defineConfig } from "vitest/config";

export default defineConfig({
  resolve: { conditions: ["erebus-source"] },
  ssr: { resolve: { conditions: ["erebus-source"], externalConditions: ["erebus-source"] } },
  test: {
    // Under CI a JSON report too, from which .ci/run prints the plain "N passed, N failed" line.
    reporters: process.env.CI === "true" ? ["default", ["json", { outputFile: ".ci/test-results.json" }]] : ["default"],
    include: ["packages/*/src/**/*.test.ts", "examples/*/src/**/*.test.ts", "test/**/*.test.ts"],
    globalSetup: ["test/global-setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // expect.poll waits for something to happen, not for it to happen fast: its 1 s default fails
    // browser and mail tests on a busy 2-core CI machine. A poll that passes returns at once anyway.
    expect: { poll: { timeout: 10_000 } },
    // 2 cores: one worker per core; each test file starts its own embedded database.
    maxWorkers: 2,
  },
});
