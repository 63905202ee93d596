import { describe, expect, it } from "vitest";
import * as z from "zod";
import { defineErrors, describeRoute, defineSourceType, type ErebusProvider } from "../index.js";
import { engines } from "./engines.js";
import { testProviderConformance, type ConformanceTestApi } from "./conformance.js";

/** A test API that records what the kit registers, so this test can run it and see which checks fail. */
function recorder() {
  const befores: (() => Promise<void>)[] = [];
  const afters: (() => Promise<void>)[] = [];
  const tests: { name: string; fn: () => Promise<void> }[] = [];
  const api: ConformanceTestApi = {
    describe: (_name, fn) => fn(),
    it: (name, fn) => tests.push({ name, fn }),
    beforeAll: (fn) => befores.push(fn),
    afterAll: (fn) => afters.push(fn),
  };
  async function run(): Promise<Record<string, string | "passed">> {
    const out: Record<string, string> = {};
    try {
      for (const fn of befores) await fn();
      for (const test of tests) {
        try {
          await test.fn();
          out[test.name] = "passed";
        } catch (error) {
          out[test.name] = (error as Error).message;
        }
      }
    } finally {
      for (const fn of afters) await fn();
    }
    return out;
  }
  return { api, run };
}

const brokenSourceType = defineSourceType("broken_account", { handle: z.string().min(3) });
const errors = defineErrors({ ERR_BROKEN_DECLARED: { status: 400, title: "declared" } });
const body = z.strictObject({ handle: z.string().regex(/^[a-z]{1,8}$/) });

/** A provider that breaks every rule the kit checks. */
function brokenProvider() {
  return {
    id: "broken",
    emits: ["broken_account"],
    sourceTypes: [brokenSourceType],
    errors: errors.codes,
    migrations: [{ id: "0001_broken", sql: "CREATE TABLE erebus_broken_log (id BIGSERIAL PRIMARY KEY, note TEXT)" }],
    routes(router, ctx) {
      // Writes before it validates: malformed input leaves a row behind.
      router.post("/broken/write-first", describeRoute({ summary: "writes first", body, responses: { 200: { description: "ok" } } }), async (req, res) => {
        await ctx.db.query("INSERT INTO erebus_broken_log (note) VALUES ('junk')");
        ctx.parse(body, req.body);
        res.json({});
      });
      // Documents a schema and never checks it: malformed input is a 200.
      router.post("/broken/lax", describeRoute({ summary: "lax", body, responses: { 200: { description: "ok" } } }), (_req, res) => {
        res.json({ ok: true });
      });
      // Answers a code that is in no table, and a declared code with another status.
      router.post("/broken/codes", describeRoute({ summary: "codes", body, responses: { 200: { description: "ok" } }, errors: ["ERR_BROKEN_DECLARED"] }), (req, res) => {
        const parsed = body.safeParse(req.body);
        if (!parsed.success && typeof req.body?.handle === "number") {
          res.status(418).type("application/problem+json").json({ type: "about:blank", title: "x", status: 418, code: "ERR_BROKEN_DECLARED" });
          return;
        }
        res.status(400).type("application/problem+json").json({ type: "about:blank", title: "x", status: 400, code: "ERR_BROKEN_UNDECLARED" });
      });
      // Signs in a new user on every call, whatever the handle: one identity is many rows.
      router.post("/broken/sign-in", describeRoute({ summary: "sign in", body, responses: { 200: { description: "ok" } } }), async (req, res) => {
        const { handle } = ctx.parse(body, req.body);
        const unique = `${handle}${ctx.random(6).toString("hex")}`;
        const user = await ctx.resolveIdentity({ network: "test", sourceIdentifier: unique, sourceType: { type: "broken_account", handle: unique } });
        res.json(await ctx.signIn(req, res, user));
      });
    },
  } satisfies ErebusProvider;
}

describe("the conformance kit", () => {
  it("fails each check a broken provider breaks, naming what broke", async () => {
    const { api, run } = recorder();
    testProviderConformance({
      test: api,
      engines: engines({ postgresUrl: null }),
      provider: brokenProvider,
      // Only zod refuses a 1-character handle; the trigger checks kinds: the verdicts differ.
      sourceTypes: { broken_account: { valid: [{ type: "broken_account", handle: "abcd" }], invalid: [{ type: "broken_account", handle: "a" }] } },
      signIn: {
        identity: () => "same",
        signIn: (h, handle) => h.request("/broken/sign-in", { json: { handle } }),
        // A "replay" the provider accepts.
        replay: async (h, handle) => {
          await h.request("/broken/sign-in", { json: { handle } });
          return () => h.request("/broken/sign-in", { json: { handle } });
        },
      },
    });
    const results = await run();
    const result = (start: string) => Object.entries(results).find(([name]) => name.startsWith(start))?.[1];
    expect(result("applies its migrations")).toBe("passed");
    expect(result("refuses cross-site POSTs")).toBe("passed");
    expect(result("gives the same verdict")).toMatch(/"handle":"a"}: expected invalid, zod says false, the trigger says true/);
    const malformed = result("answers generated malformed input");
    expect(malformed).toMatch(/POST \/broken\/write-first: malformed input wrote \d+ row\(s\) in erebus_broken_log/);
    expect(malformed).toMatch(/POST \/broken\/lax \(missing handle\): 200/);
    expect(result("resolves one identity signed in twice")).toMatch(/both sign-ins resolve to the same user/);
    expect(result("resolves 5 concurrent first sign-ins")).toMatch(/resolved to 5 users/);
    expect(result("refuses a credential replayed")).toMatch(/the replay answered 200/);
    const codes = result("answered only error codes");
    expect(codes).toMatch(/ERR_BROKEN_UNDECLARED \(400, from post \/broken\/codes\) is in no errors table/);
    expect(codes).toMatch(/ERR_BROKEN_DECLARED was answered with 418, declared 400/);
  }, 60_000);

  it("refuses to start without a test runner's functions", () => {
    expect(() => testProviderConformance({ test: undefined as never, provider: brokenProvider })).toThrow(TypeError);
  });
});
