import { describe, expect, it } from "vitest";
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
