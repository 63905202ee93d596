import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { silentLogger, type Database } from "@erebus/core";
import { engines, startAuthServer, tableRowCounts, type Running } from "@erebus/core/testing";
import { Browser, SoftAuthenticator } from "../test/soft-authenticator.js";
import { passkeyProvider } from "./index.js";

const ORIGIN = "http://app.test";
const RP = { rpId: "app.test", origin: ORIGIN };
/** What PostgreSQL refuses in text (NUL, unpaired surrogates), and other things a broken client sends. */
const HOSTILE: unknown[] = ["\u0000", "a\u0000b", "\ud800", "\udfff", "x\udc00y", "", " ", "A".repeat(5000), "%00", "../../x", "<script>", 1, -1, 1e308, true, null, [], {}, ["\u0000"], { "\ud800": 1 }];

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Every path to a leaf of a JSON value. */
function leaves(value: Json, path: (string | number)[] = []): (string | number)[][] {
  if (Array.isArray(value)) return value.flatMap((v, i) => leaves(v, [...path, i]));
  if (value !== null && typeof value === "object") return Object.entries(value).flatMap(([k, v]) => leaves(v, [...path, k]));
  return [path];
}
function setAt(value: Json, path: (string | number)[], leaf: unknown): Json {
  const copy = structuredClone(value) as any;
  let node = copy;
  for (const key of path.slice(0, -1)) node = node[key];
  node[path.at(-1)!] = leaf;
  return copy;
}
const b64 = (s: string) => Buffer.from(s).toString("base64url");

for (const engine of engines({ postgresUrl: inject("postgresUrl") })) {
  describe(`passkey routes fuzzed on ${engine.name}`, () => {
    let db: Database;
    let server: Running;
    const answers: number[] = [];
    const counts = () => tableRowCounts(db, { ignore: ["erebus_rate_limits"] });

    /** Sends, and checks the answer is a 4xx problem+json. */
    async function refused(send: () => Promise<{ status: number; headers: Headers; body: any }>, what: string) {
      const answer = await send();
      answers.push(answer.status);
      expect(answer.status, `${what}: ${JSON.stringify(answer.body)}`).toBeGreaterThanOrEqual(400);
      expect(answer.status, `${what}: ${JSON.stringify(answer.body)}`).toBeLessThan(500);
      expect(answer.headers.get("content-type"), what).toMatch(/^application\/problem\+json/);
      expect(answer.body.code, what).toMatch(/^ERR_/);
    }

    beforeAll(async () => {
      db = await engine.create();
      ({ server } = await startAuthServer({ database: db, baseURL: ORIGIN, providers: [passkeyProvider()], logger: silentLogger, rateLimit: { enabled: false } }));
    });
    afterAll(async () => {
      await server?.close();
      await db?.close();
      // The whole file: not one 5xx.
      expect(answers.filter((s) => s >= 500)).toEqual([]);
    });

    it("every string field of every body, replaced by NUL, lone surrogates and wrong kinds: 4xx, no row written", async () => {
      const b = new Browser(server.url, ORIGIN);
      const registered = new SoftAuthenticator("ES256", RP);
      const creation = await b.post("/passkey/register/options", {});
      expect((await b.post("/passkey/register/verify", { response: registered.register(creation.body.options) })).status).toBe(200);
      const templates: [string, string, Json][] = [];
      const regOptions = await b.post("/passkey/register/options", { intent: "sign-up" });
      templates.push(["POST", "/passkey/register/options", { intent: "sign-up", userName: "ada", userDisplayName: "Ada" }]);
      templates.push(["POST", "/passkey/register/verify", { response: new SoftAuthenticator("EdDSA", RP).register(regOptions.body.options) as unknown as Json, name: "laptop" }]);
      templates.push(["POST", "/passkey/options", { intent: "sign-in", merge: false }]);
      const options = await b.post("/passkey/options", {});
      templates.push(["POST", "/passkey/verify", { response: registered.assert(options.body.options) as unknown as Json }]);
      templates.push(["PATCH", `/passkey/credentials/${registered.id}`, { name: "renamed" }]);
      const before = await counts();
      let sent = 0;
      for (const [method, path, body] of templates) {
        const variants: [string, unknown][] = [];
        for (const leaf of leaves(body)) for (const hostile of HOSTILE) variants.push([`${leaf.join(".")} = ${JSON.stringify(hostile).slice(0, 30)}`, setAt(body, leaf, hostile)]);
        for (const key of ["\u0000", "\ud800", "__proto__", "constructor", "extra"]) variants.push([`extra key ${JSON.stringify(key)}`, { ...(body as object), [key]: "x" }]);
        variants.push(["an array", [body]], ["a string", "x"], ["null", null], ["a number", 1]);
        for (const [name, variant] of variants) {
          // A rename with a valid name is a change, not a refusal: skip the variants that are valid.
          if (method === "PATCH" && typeof (variant as { name?: unknown })?.name === "string" && /^\s*\S.{0,63}$/u.test((variant as { name: string }).name) && !/[\u0000\ud800-\udfff]/.test((variant as { name: string }).name) && Object.keys(variant as object).length === 1) continue;
          if (path === "/passkey/register/options" && isValidRegisterOptions(variant)) continue;
          if (path === "/passkey/options" && isValidSignInOptions(variant)) continue;
          await refused(() => b.post(path, variant, { method }), `${method} ${path} ${name}`);
          sent++;
        }
      }
      expect(sent).toBeGreaterThan(300);
      expect(await counts()).toEqual(before);
    });

    it("hostile values inside the signed client data (type, challenge, origin): 4xx, no row written", async () => {
      const b = new Browser(server.url, ORIGIN);
      const authenticator = new SoftAuthenticator("EdDSA", RP);
      const creation = await b.post("/passkey/register/options", {});
      expect((await b.post("/passkey/register/verify", { response: authenticator.register(creation.body.options) })).status).toBe(200);
      const before = await counts();
      for (const field of ["type", "challenge", "origin"]) {
        for (const hostile of HOSTILE) {
          const options = await b.post("/passkey/options", {});
          const after = await counts();
          const assertion = authenticator.assert(options.body.options, { tamperClientData: (data) => ({ ...data, [field]: hostile }) });
          await refused(() => b.post("/passkey/verify", { response: assertion }), `clientData.${field} = ${JSON.stringify(hostile).slice(0, 30)}`);
          expect(await counts()).toEqual(after);
        }
      }
      for (const raw of ["", "not json", "[]", "null", '"x"', "{", "\u0000", '{"type":"webauthn.get"}']) {
        const options = await b.post("/passkey/options", {});
        const assertion = authenticator.assert(options.body.options);
        await refused(() => b.post("/passkey/verify", { response: { ...assertion, response: { ...assertion.response, clientDataJSON: b64(raw) || "AA" } } }), `clientDataJSON ${JSON.stringify(raw)}`);
      }
      expect((await counts()).user_references).toBe(before.user_references);
      expect((await counts()).erebus_sessions).toBe(before.erebus_sessions);
    });

    it("random byte edits of every binary field of assertions (never a 5xx, never a sign-in) and of registrations (never a 5xx)", async () => {
      const b = new Browser(server.url, ORIGIN);
      const authenticator = new SoftAuthenticator("ES256", RP);
      const creation = await b.post("/passkey/register/options", {});
      expect((await b.post("/passkey/register/verify", { response: authenticator.register(creation.body.options) })).status).toBe(200);
      const before = await counts();
      const edit = fc.record({ field: fc.nat(), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }), cut: fc.boolean() });
      const mutateField = (value: string, e: { at: number; byte: number; cut: boolean }) => {
        const bytes = Buffer.from(value, "base64url");
        if (bytes.length === 0) return value;
        const at = e.at % bytes.length;
        if (e.cut) return bytes.subarray(0, at).toString("base64url") || "AA";
        const copy = Buffer.from(bytes);
        copy[at] = copy[at] === e.byte ? e.byte ^ 0xff : e.byte;
        return copy.toString("base64url");
      };
      await fc.assert(
        fc.asyncProperty(edit, async (e) => {
          const options = await b.post("/passkey/options", {});
          const assertion = authenticator.assert(options.body.options);
          const fields = ["clientDataJSON", "authenticatorData", "signature", "userHandle"] as const;
          const field = fields[e.field % fields.length]!;
          const response = { ...assertion, response: { ...assertion.response, [field]: mutateField((assertion.response as Record<string, string>)[field]!, e) } };
          await refused(() => b.post("/passkey/verify", { response }), `assertion ${field} edited`);
        }),
        { numRuns: 60 },
      );
      const signedIn = await counts();
      expect(signedIn.user_references).toBe(before.user_references);
      expect(signedIn.erebus_sessions).toBe(before.erebus_sessions);
      await fc.assert(
        fc.asyncProperty(edit, async (e) => {
          const options = await b.post("/passkey/register/options", { intent: "sign-up" });
          const registration = new SoftAuthenticator(e.at % 2 ? "ES256" : "EdDSA", RP).register(options.body.options);
          const fields = ["clientDataJSON", "attestationObject"] as const;
          const field = fields[e.field % fields.length]!;
          const response = { ...registration, response: { ...registration.response, [field]: mutateField(registration.response[field], e) } };
          // "none" attestation signs nothing: an edit the decoder still accepts (a flag, the AAGUID, a
          // key byte) is a different but well-formed registration, so it may succeed. Never a 5xx.
          const answer = await b.post("/passkey/register/verify", { response });
          answers.push(answer.status);
          expect(answer.status, `registration ${field} edited: ${JSON.stringify(answer.body)}`).toBeLessThan(500);
          if (answer.status !== 200) expect(answer.headers.get("content-type")).toMatch(/^application\/problem\+json/);
        }),
        { numRuns: 60 },
      );
      const after = await counts();
      expect(after.user_references - before.user_references).toBe(after.erebus_passkey_credentials - before.erebus_passkey_credentials);
    });

    it("hostile credential ids in the management paths: 4xx, nothing changed", async () => {
      const b = new Browser(server.url, ORIGIN);
      const authenticator = new SoftAuthenticator("ES256", RP);
      const creation = await b.post("/passkey/register/options", {});
      expect((await b.post("/passkey/register/verify", { response: authenticator.register(creation.body.options) })).status).toBe(200);
      const before = await counts();
      for (const id of ["%00", "%ED%A0%80", "%FF", "a%00b", "A".repeat(600), "..%2F..", "%2F", "x y"]) {
        for (const method of ["PATCH", "DELETE"]) {
          await refused(() => b.post(`/passkey/credentials/${id}`, method === "PATCH" ? { name: "x" } : undefined, { method }), `${method} ${id.slice(0, 20)}`);
        }
      }
      expect(await counts()).toEqual(before);
    });
  });
}

function isValidRegisterOptions(value: unknown): boolean {
  if (value === undefined || value === null || typeof value !== "object" || Array.isArray(value)) return false;
  const v = value as Record<string, unknown>;
  if (Object.keys(v).some((k) => !["intent", "userName", "userDisplayName"].includes(k))) return false;
  if (v.intent !== undefined && v.intent !== "sign-up" && v.intent !== "link") return false;
  for (const key of ["userName", "userDisplayName"]) {
    const s = v[key];
    if (s === undefined) continue;
    if (typeof s !== "string" || /[\u0000\ud800-\udfff]/.test(s) || s.trim().length < 1 || s.trim().length > 64) return false;
  }
  return true;
}

function isValidSignInOptions(value: unknown): boolean {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return false;
  const v = value as Record<string, unknown>;
  if (Object.keys(v).some((k) => !["intent", "merge"].includes(k))) return false;
  return (v.intent === undefined || v.intent === "sign-in" || v.intent === "link") && (v.merge === undefined || typeof v.merge === "boolean");
}
