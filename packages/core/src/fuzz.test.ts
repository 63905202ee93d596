import { request } from "node:http";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { engines, rowCounts } from "../../../test/engines.js";
import { startAuthServer, type Running } from "../../../test/http.js";
import { silentLogger, type Database } from "./index.js";
import { testProvider } from "./testing/index.js";

function send(url: string, method: string, path: string, headers: Record<string, string>, body: Buffer | undefined) {
  return new Promise<{ status: number; type: string }>((resolve, reject) => {
    const target = new URL(path, url);
    const req = request(target, { method, headers: body ? { ...headers, "content-length": String(body.length) } : headers }, (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode ?? 0, type: String(res.headers["content-type"] ?? "") }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

const ascii = (max: number) => fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: max });

/** Strings with what PostgreSQL refuses mixed in: U+0000 and lone surrogates (finding 9). */
const PG_HOSTILE = ["\u0000", "\ud800", "\udfff", "\udbff", "\udc00", "\ud83d"];
const hostile = (max: number) =>
  fc.array(fc.oneof(fc.constantFrom(...PG_HOSTILE), fc.constantFrom("a", "_", "ü", "\ud83d\ude00", "1")), { maxLength: max }).map((parts) => parts.join(""));
const text = (max: number) => fc.oneof(ascii(max), hostile(max));

const requestArb = fc.record({
  method: fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH"),
  path: fc.oneof(
    fc.constantFrom("/auth/session", "/auth/sign-out", "/auth/test/sign-in", "/auth/test/sign-in?x=1", "/api/me", "/auth/%ff", "/auth/test/sign-in/../../api/me", "/auth/session?x=%00", "/auth/test/sign-in?x=%ED%A0%80", "/auth/%00"),
    hostile(10).map((p) => `/auth/test/sign-in?handle=${encodeURIComponent(p.replace(/[\ud800-\udfff]/g, "\u0000"))}`),
    ascii(40).map((p) => `/auth/${encodeURIComponent(p)}`),
  ),
  contentType: fc.oneof(fc.constantFrom("application/json", "application/json; charset=utf-16", "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin1", "multipart/form-data; boundary=x"), ascii(30)),
  body: fc.oneof(
    fc.jsonValue({ maxDepth: 4 }).map((v) => Buffer.from(JSON.stringify(v) ?? "null")),
    fc.record({ handle: fc.oneof(text(40), fc.integer(), fc.constant(null)), level: fc.oneof(fc.integer(), fc.double(), text(5)) }, { requiredKeys: [] }).map((v) => Buffer.from(JSON.stringify(v))),
    // JSON.stringify writes lone surrogates as \udXXX escapes: the parsed body holds them as they are.
    fc.dictionary(text(8), fc.oneof(text(20), fc.array(text(10), { maxLength: 3 }))).map((v) => Buffer.from(JSON.stringify(v))),
    ascii(200).map((s) => Buffer.from(s)),
    fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
    fc.constant(undefined),
  ),
  authorization: fc.option(fc.oneof(ascii(80), ascii(60).map((t) => `Bearer ${t}`)), { nil: undefined }),
  cookie: fc.option(
    fc.oneof(ascii(80), ascii(50).map((t) => `erebus_session=${t}`), fc.constantFrom("erebus_session=%00", "erebus_session=a%00b", "erebus_session=%ED%A0%80", "erebus_session=%ED%BF%BF%00")),
    { nil: undefined },
  ),
  testKey: fc.option(ascii(40), { nil: undefined }),
  origin: fc.option(fc.oneof(fc.constant("http://app.test"), ascii(30)), { nil: undefined }),
});

for (const engine of engines()) {
  describe(`fuzzing the auth router on ${engine.name}`, () => {
    let db: Database;
    let server: Running;
    const counts = () => rowCounts(db);

    beforeAll(async () => {
      db = await engine.create();
      ({ server } = await startAuthServer({ database: db, baseURL: "http://app.test", providers: [testProvider()], logger: silentLogger, rateLimit: { enabled: false } }, (app, auth) => {
        app.get("/api/me", auth.requireUser(), (req, res) => res.json(req.auth));
        app.use(auth.errorHandler);
      }));
    });
    afterAll(async () => {
      await server?.close();
      await db?.close();
    });

    it("answers 300 fuzzed requests with no 5xx and writes no row (finding 9: NUL and lone surrogates in body, query and cookie strings)", async () => {
      const before = await counts();
      const seen = new Map<number, number>();
      await fc.assert(
        fc.asyncProperty(requestArb, async (r) => {
          const headers: Record<string, string> = { "content-type": r.contentType };
          if (r.authorization !== undefined) headers.authorization = r.authorization;
          if (r.cookie !== undefined) headers.cookie = r.cookie;
          if (r.testKey !== undefined) headers["x-test-key"] = r.testKey;
          if (r.origin !== undefined) headers.origin = r.origin;
          const res = await send(server.url, r.method, r.path, headers, r.method === "GET" ? undefined : r.body);
          seen.set(res.status, (seen.get(res.status) ?? 0) + 1);
          expect(res.status).toBeLessThan(500);
          // Everything the auth router answers with an error is problem+json (the app owns its own 404s).
          if (res.status >= 400 && r.path.startsWith("/auth")) expect(res.type).toMatch(/^application\/problem\+json/);
        }),
        { numRuns: 300, seed: 20261127 },
      );
      expect(await counts()).toEqual(before);
      // The run reached the validators, not only the router's front door.
      expect([...seen.keys()].filter((s) => s >= 400).length).toBeGreaterThanOrEqual(4);
    });
  });
}
