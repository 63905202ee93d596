import { afterEach, describe, expect, it, vi } from "vitest";
import { createAuth, defineSourceType, silentLogger } from "./index.js";
import { testProvider } from "./testing/index.js";
import * as z from "zod";

const base = { database: "pglite://memory", baseURL: "http://localhost:3000", logger: silentLogger };

describe("createAuth options", () => {
  const cases: [string, unknown, RegExp][] = [
    ["no options", undefined, /option "\(options\)"/],
    ["missing database", { baseURL: "http://localhost:3000" }, /option "database"/],
    ["a mysql URL", { ...base, database: "mysql://x" }, /option "database"/],
    ["missing baseURL", { database: "pglite://memory" }, /option "baseURL"/],
    ["a non-http baseURL", { ...base, baseURL: "ftp://x" }, /option "baseURL"/],
    ["a bad basePath", { ...base, basePath: "auth" }, /option "basePath"/],
    ["an unknown option", { ...base, sesion: {} }, /sesion/],
    ["a negative maxAge", { ...base, session: { maxAge: -1 } }, /option "session.maxAge"/],
    ["updateAge > maxAge", { ...base, session: { maxAge: 60, updateAge: 120 } }, /option "session.updateAge"/],
    ["a non-function clock", { ...base, clock: "now" }, /option "clock"/],
    ["a bad trusted origin", { ...base, trustedOrigins: ["not a url"] }, /option "trustedOrigins.0"/],
    ["a provider without an id", { ...base, providers: [{ emits: [], routes() {} }] }, /providers\[0\]\.id/],
    ["two providers with one id", { ...base, providers: [testProvider(), testProvider()] }, /providers\[1\] \("test"\)\.id "test" is used by two providers/],
    ["a provider emitting an unregistered type", { ...base, providers: [{ id: "x", emits: ["carrier_pigeon"], routes() {} }] }, /providers\[0\] \("x"\) emits unknown source type "carrier_pigeon"/],
    ["a provider that can do nothing", { ...base, providers: [{ id: "x", emits: [] }] }, /providers\[0\] \("x"\) has no routes, authenticate, migrations or commands/],
    ["a malformed migration id", { ...base, providers: [{ id: "x", emits: [], routes() {}, migrations: [{ id: "first", sql: "SELECT 1" }] }] }, /providers\[0\] \("x"\)\.migrations\[0\]\.id/],
    ["a provider re-registering a core type", { ...base, providers: [{ id: "x", emits: [], routes() {}, sourceTypes: [defineSourceType("oauth", { a: z.string() })] }] }, /source type "oauth" \(from x\) is already registered/],
  ];
  for (const [why, options, message] of cases) {
    it(`throws a TypeError naming the option for ${why}`, () => {
      let thrown: unknown;
      try {
        createAuth(options as never);
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(TypeError);
      expect((thrown as Error).message).toMatch(message);
    });
  }

  it("refuses a source type shape with more than one JSON kind for a key", () => {
    expect(() => defineSourceType("mixed", { a: z.union([z.string(), z.number()]) })).toThrow(TypeError);
    expect(() => defineSourceType("Bad-Name", { a: z.string() })).toThrow(TypeError);
  });

  it("validates guard arguments at construction", () => {
    const auth = createAuth(base);
    expect(() => auth.requireUserType("robot" as never)).toThrow(TypeError);
    expect(() => auth.requireScope()).toThrow(TypeError);
    expect(() => auth.api.rateLimit({ name: "x", points: 0, duration: 1 })).toThrow(TypeError);
  });
});

describe("finding 2: development helpers only when asked for", () => {
  const probe = { id: "probe", emits: [], routes() {} };
  const productionOf = (env: Record<string, string | undefined>) => {
    for (const [key, value] of Object.entries(env)) vi.stubEnv(key, value);
    const auth = createAuth({ ...base, providers: [probe] });
    return auth.providerContext("probe").production;
  };
  afterEach(() => vi.unstubAllEnvs());

  it("finding 2: testProvider() throws at createAuth when production is true", () => {
    expect(() => createAuth({ ...base, production: true, providers: [testProvider()] })).toThrow(/testProvider|development only/);
    expect(() => createAuth({ ...base, production: false, providers: [testProvider()] })).not.toThrow();
  });

  it("finding 2: the production default is read when createAuth is called, and is on unless NODE_ENV is development or test (or EREBUS_DEV=1)", () => {
    // Each call sees the environment as it is now, not as it was when core was imported.
    expect(productionOf({ NODE_ENV: "production", EREBUS_DEV: undefined })).toBe(true);
    expect(productionOf({ NODE_ENV: "development", EREBUS_DEV: undefined })).toBe(false);
    expect(productionOf({ NODE_ENV: "test", EREBUS_DEV: undefined })).toBe(false);
    for (const value of [undefined, "", "prod", "staging", "Production", "dev"]) {
      expect(productionOf({ NODE_ENV: value, EREBUS_DEV: undefined }), String(value)).toBe(true);
    }
    expect(productionOf({ NODE_ENV: undefined, EREBUS_DEV: "1" })).toBe(false);
    expect(productionOf({ NODE_ENV: "staging", EREBUS_DEV: "0" })).toBe(true);
    // An explicit production environment wins over EREBUS_DEV.
    expect(productionOf({ NODE_ENV: "production", EREBUS_DEV: "1" })).toBe(true);
    // With the default on, the test provider refuses to start.
    vi.stubEnv("NODE_ENV", "staging");
    vi.stubEnv("EREBUS_DEV", undefined);
    expect(() => createAuth({ ...base, providers: [testProvider()] })).toThrow(/development only/);
  });
});
