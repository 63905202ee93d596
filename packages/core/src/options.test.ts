import { afterEach, describe, expect, it, vi } from "vitest";
import { createAuth, defineSourceType, parseOptions, silentLogger } from "./index.js";
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
    ["a provider that can do nothing", { ...base, providers: [{ id: "x", emits: [] }] }, /providers\[0\] \("x"\) has no setup, routes, authenticate, migrations or commands/],
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

describe("finding 15: option errors a newcomer can act on", () => {
  const messageOf = (fn: () => unknown) => {
    try {
      fn();
    } catch (error) {
      expect(error).toBeInstanceOf(TypeError);
      return (error as Error).message;
    }
    throw new Error("did not throw");
  };
  // The shape of walletProvider's `ethereum` option: false, or an object (a union).
  const walletLike = z.strictObject({
    ethereum: z.union([z.literal(false), z.strictObject({ chains: z.array(z.number().int().positive()).min(1).default([1]), rpcTimeoutMs: z.number().default(5000) })]).default({ chains: [1], rpcTimeoutMs: 5000 }),
    nonceTtl: z.number().default(600),
  });

  it("finding 15: option errors name the nested path, also inside a union (ethereum.chains.0, not ethereum)", () => {
    expect(messageOf(() => parseOptions(walletLike, { ethereum: { chains: [0] } }, "walletProvider"))).toMatch(/^walletProvider: option "ethereum\.chains\.0" .*>0/);
    expect(messageOf(() => parseOptions(walletLike, { ethereum: { chains: [] } }, "walletProvider"))).toMatch(/^walletProvider: option "ethereum\.chains" /);
    expect(messageOf(() => parseOptions(walletLike, { ethereum: { rpcTimeoutMs: "5" } }, "walletProvider"))).toMatch(/option "ethereum\.rpcTimeoutMs" .*expected number/);
    // Neither branch fits at all: the message says what each would have taken.
    expect(messageOf(() => parseOptions(walletLike, { ethereum: "yes" }, "walletProvider"))).toMatch(/option "ethereum" .*false.*object|option "ethereum" .*object.*false/);
    expect(messageOf(() => createAuth({ ...base, session: { maxAge: 0 } }))).toMatch(/option "session\.maxAge"/);
  });

  it("finding 15: a misspelt option names the closest valid one", () => {
    const { baseURL: _omit, ...withoutBaseURL } = base;
    expect(messageOf(() => createAuth({ ...withoutBaseURL, baseUrl: "http://localhost:3000" } as never))).toMatch(/option "baseUrl" is not an option; did you mean "baseURL"\?/);
    expect(messageOf(() => createAuth({ ...base, sesion: {} } as never))).toMatch(/option "sesion" is not an option; did you mean "session"\?/);
    expect(messageOf(() => createAuth({ ...base, trustedOrigin: [] } as never))).toMatch(/did you mean "trustedOrigins"\?/);
    expect(messageOf(() => createAuth({ ...base, session: { maxage: 60 } } as never))).toMatch(/option "session\.maxage" is not an option; did you mean "session\.maxAge"\?/);
    expect(messageOf(() => parseOptions(walletLike, { ethereum: { chain: [1] } }, "walletProvider"))).toMatch(/option "ethereum\.chain" is not an option; did you mean "ethereum\.chains"\?/);
    // Nothing close: no guess, but the valid options are listed.
    expect(messageOf(() => createAuth({ ...base, zzzzzzzz: 1 } as never))).toMatch(/option "zzzzzzzz" is not an option \(options: database, baseURL, /);
  });

  it("finding 15: baseURL with a path, a query, a fragment, credentials or no scheme is refused with an example of a valid value", () => {
    for (const baseURL of ["localhost:3000", "app.example.com", "http://localhost:3000/app", "https://app.example.com/auth/", "https://app.example.com?x=1", "https://app.example.com/#top", "https://user:pw@app.example.com", "ftp://app.example.com"]) {
      expect(messageOf(() => createAuth({ ...base, baseURL })), baseURL).toMatch(/^createAuth: option "baseURL" .*"https:\/\/app\.example\.com"/);
    }
    for (const baseURL of ["http://localhost:3000", "http://localhost:3000/", "https://app.example.com", "http://127.0.0.1:8080"]) {
      expect(() => createAuth({ ...base, baseURL }), baseURL).not.toThrow();
    }
  });
});
