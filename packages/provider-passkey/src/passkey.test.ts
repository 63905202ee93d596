import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { Database, ErebusAuth, Logger } from "@erebus/core";
import { engines, rowCounts, startAuthServer, type Running } from "@erebus/core/testing";
import { Browser, SoftAuthenticator, type Algorithm, type Overrides } from "../test/soft-authenticator.js";
import { passkeyProvider, type PasskeyApi } from "./index.js";

const ORIGIN = "http://app.test";
const RP = { rpId: "app.test", origin: ORIGIN };

for (const engine of engines({ postgresUrl: inject("postgresUrl") })) {
  describe(`passkeys over HTTP on ${engine.name}`, () => {
    let db: Database;
    let server: Running;
    let strict: Running;
    let secure: Running;
    let auth: ErebusAuth;
    let now = new Date("2026-11-27T10:00:00Z");
    const warnings: { message: string; fields?: Record<string, unknown> }[] = [];
    const logger: Logger = { debug() {}, info() {}, error() {}, warn: (message, fields) => void warnings.push({ message, fields }) };

    const browser = (url = server.url) => new Browser(url, ORIGIN);
    const counts = async () => {
      const { rows } = await db.query<{ credentials: number; challenges_used: number }>(
        "SELECT (SELECT count(*)::int FROM erebus_passkey_credentials) AS credentials, (SELECT count(*)::int FROM erebus_verifications WHERE provider = 'passkey' AND consumed_at IS NOT NULL) AS challenges_used",
      );
      return { ...(await rowCounts(db)), ...rows[0] };
    };

    /** register/options → the authenticator → register/verify, in one browser. */
    async function signUp(b: Browser, authenticator: SoftAuthenticator, o: Overrides = {}, body: Record<string, unknown> = {}) {
      const options = await b.post("/passkey/register/options", body);
      expect(options.status, JSON.stringify(options.body)).toBe(200);
      return b.post("/passkey/register/verify", { response: authenticator.register(options.body.options, o) });
    }
    async function signIn(b: Browser, authenticator: SoftAuthenticator, o: Overrides = {}) {
      const options = await b.post("/passkey/options");
      expect(options.status, JSON.stringify(options.body)).toBe(200);
      return b.post("/passkey/verify", { response: authenticator.assert(options.body.options, o) });
    }
    /** A refusal: 4xx problem+json with this code, and nothing but the challenge's use written. */
    async function expectRefused(answer: Promise<{ status: number; body: any; headers: Headers }>, status: number, code: string) {
      const result = await answer;
      expect(result.status, JSON.stringify(result.body)).toBe(status);
      expect(result.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(result.body.code).toBe(code);
      expect(result.headers.getSetCookie().filter((c) => c.startsWith("erebus_session="))).toEqual([]);
      return result;
    }
    async function registered(alg: Algorithm = "ES256", options: ConstructorParameters<typeof SoftAuthenticator>[2] = {}) {
      const authenticator = new SoftAuthenticator(alg, RP, options);
      const answer = await signUp(browser(), authenticator);
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      return { authenticator, user: answer.body.user };
    }

    beforeAll(async () => {
      db = await engine.create();
      ({ auth, server } = await startAuthServer({ database: db, baseURL: ORIGIN, providers: [passkeyProvider({ rpName: "Example App" })], logger, clock: () => now, rateLimit: { enabled: false } }));
      // The same database, a second app that requires user verification.
      ({ server: strict } = await startAuthServer({ database: db, baseURL: ORIGIN, providers: [passkeyProvider({ userVerification: "required", attestation: "direct", algorithms: [-7], maxPasskeys: 1 })], logger, clock: () => now, rateLimit: { enabled: false } }));
      // And one whose public origin is https (behind a TLS-terminating proxy, as in production).
      ({ server: secure } = await startAuthServer({ database: db, baseURL: "https://app.test", providers: [passkeyProvider()], logger, clock: () => now, rateLimit: { enabled: false } }));
    });
    afterAll(async () => {
      await server?.close();
      await strict?.close();
      await secure?.close();
      await db?.close();
    });

    for (const alg of ["ES256", "EdDSA"] as const) {
      it(`signs up with a new ${alg} passkey: passkey:<credential id>, a passkey source type, the public key and counter stored, a session`, async () => {
        const b = browser();
        const options = await b.post("/passkey/register/options", { userName: "ada@example.com" });
        expect(options.status).toBe(200);
        const creation = options.body.options;
        expect(creation.rp).toEqual({ name: "Example App", id: "app.test" });
        expect(creation.user.name).toBe("ada@example.com");
        expect(creation.attestation).toBe("none");
        expect(creation.authenticatorSelection).toMatchObject({ residentKey: "required", requireResidentKey: true, userVerification: "preferred" });
        expect(creation.pubKeyCredParams.map((p: { alg: number }) => p.alg)).toEqual([-8, -7, -257]);
        expect(Buffer.from(creation.challenge, "base64url").length).toBe(32);
        expect(Buffer.from(creation.user.id, "base64url").length).toBe(32);
        expect(new Date(options.body.expiresAt).getTime() - now.getTime()).toBe(300_000);
        expect(options.headers.get("cache-control")).toBe("no-store");
        // The challenge is bound to this browser by core's HttpOnly binding cookie.
        expect(options.headers.getSetCookie().find((c) => c.startsWith("erebus_bind="))).toMatch(/HttpOnly/);

        const authenticator = new SoftAuthenticator(alg, RP, { aaguid: "fbfc3007-154e-4ecc-8c0b-6e020557d7bd" });
        const answer = await b.post("/passkey/register/verify", { response: authenticator.register(creation), name: "My laptop" });
        expect(answer.status, JSON.stringify(answer.body)).toBe(200);
        expect(b.cookies.get("erebus_session")).toBeDefined();
        expect(answer.body.user).toMatchObject({
          network: "passkey",
          source_identifier: authenticator.id,
          user_type: "external",
          source_type: { type: "passkey", credential_id: authenticator.id, device_type: "multiDevice", backed_up: true, transports: ["internal", "hybrid"], aaguid: "fbfc3007-154e-4ecc-8c0b-6e020557d7bd", authenticator_name: "iCloud Keychain" },
        });
        expect(answer.body.passkey).toMatchObject({ id: authenticator.id, name: "My laptop", authenticatorName: "iCloud Keychain", backedUp: true });
        const { rows } = await db.query<Record<string, unknown>>("SELECT * FROM erebus_passkey_credentials WHERE credential_id = $1", [authenticator.id]);
        expect(rows[0]).toMatchObject({ user_id: answer.body.user.id, user_handle: creation.user.id, algorithm: alg === "ES256" ? -7 : -8, attestation_format: "none" });
        expect(Number(rows[0]!.counter)).toBe(0);
        // A public key only: no column holds anything but public data.
        expect(Object.keys(rows[0]!).sort()).toEqual(["aaguid", "algorithm", "attestation_format", "backed_up", "counter", "created_at", "credential_id", "device_type", "last_used_at", "name", "public_key", "transports", "user_handle", "user_id"]);
        const session = await b.get("/session");
        expect(session.body.user.id).toBe(answer.body.user.id);
      });

      it(`signs in with a discoverable ${alg} passkey (allowCredentials empty, userVerification preferred) as the same user, counter moving forward`, async () => {
        const { authenticator, user } = await registered(alg, { counter: 7 });
        const b = browser();
        const options = await b.post("/passkey/options", {});
        expect(options.body.options).toMatchObject({ rpId: "app.test", allowCredentials: [], userVerification: "preferred" });
        const answer = await b.post("/passkey/verify", { response: authenticator.assert(options.body.options) });
        expect(answer.status, JSON.stringify(answer.body)).toBe(200);
        expect(answer.body.user.id).toBe(user.id);
        expect(b.cookies.get("erebus_session")).toBeDefined();
        const { rows } = await db.query<{ counter: string; last_used_at: Date }>("SELECT counter, last_used_at FROM erebus_passkey_credentials WHERE credential_id = $1", [authenticator.id]);
        expect(Number(rows[0]!.counter)).toBe(8);
        expect(rows[0]!.last_used_at).not.toBeNull();
      });
    }

    it("rate limits: options and verify requests per client IP per minute (429), shared through the database", async () => {
      const { server: limited } = await startAuthServer({ database: db, baseURL: ORIGIN, providers: [passkeyProvider({ rateLimit: { options: 2, verify: 2 } })], logger, clock: () => now });
      try {
        const { authenticator } = await registered();
        const b = browser(limited.url);
        const first = await b.post("/passkey/options");
        const second = await b.post("/passkey/options");
        expect([first.status, second.status]).toEqual([200, 200]);
        await expectRefused(b.post("/passkey/options"), 429, "ERR_RATE_LIMITED");
        // Two verifies (a good one and a bad one), then the third is refused before any work.
        expect((await b.post("/passkey/verify", { response: authenticator.assert(second.body.options) })).status).toBe(200);
        expect((await b.post("/passkey/verify", { response: authenticator.assert(second.body.options) })).status).toBe(401);
        await expectRefused(b.post("/passkey/verify", { response: authenticator.assert(first.body.options) }), 429, "ERR_RATE_LIMITED");
      } finally {
        await limited.close();
      }
    });

    it("an options request with no body at all works too (the page's plain fetch)", async () => {
      const b = browser();
      const res = await fetch(`${server.url}/auth/passkey/options`, { method: "POST", headers: { origin: ORIGIN } });
      expect(res.status).toBe(200);
      expect((await b.post("/passkey/register/options")).status).toBe(200);
    });

    it("wrong origin: a response made on another origin is refused at registration and at sign-in, writing nothing", async () => {
      const { authenticator } = await registered();
      const before = await counts();
      await expectRefused(signUp(browser(), new SoftAuthenticator("ES256", RP), { origin: "https://evil.example" }), 401, "ERR_PASSKEY_ORIGIN_MISMATCH");
      await expectRefused(signIn(browser(), authenticator, { origin: "http://app.test:8080" }), 401, "ERR_PASSKEY_ORIGIN_MISMATCH");
      // Inside a cross-origin frame of another site.
      await expectRefused(signIn(browser(), authenticator, { crossOrigin: true, topOrigin: "https://evil.example" }), 401, "ERR_PASSKEY_ORIGIN_MISMATCH");
      expect(await counts()).toEqual(before);
    });

    it("the origin is baseURL's, never the request's Host or Origin header", async () => {
      const { authenticator } = await registered();
      const b = browser();
      const options = await b.post("/passkey/options", {}, { headers: { host: "evil.example" } });
      expect(options.body.options.rpId).toBe("app.test");
      await expectRefused(b.post("/passkey/verify", { response: authenticator.assert(options.body.options, { origin: "http://evil.example", rpId: "evil.example" }) }, { headers: { host: "evil.example" } }), 401, "ERR_PASSKEY_ORIGIN_MISMATCH");
    });

    it("wrong RP ID: an authenticator that signed for another relying party is refused (and the challenge is used up)", async () => {
      const { authenticator } = await registered();
      const before = await counts();
      await expectRefused(signUp(browser(), new SoftAuthenticator("EdDSA", RP), { rpId: "evil.example" }), 401, "ERR_PASSKEY_RP_ID_MISMATCH");
      await expectRefused(signIn(browser(), authenticator, { rpId: "test" }), 401, "ERR_PASSKEY_RP_ID_MISMATCH");
      expect(await counts()).toEqual({ ...before, challenges_used: before.challenges_used + 2 });
    });

    it("replayed challenge: the same assertion twice, or a new assertion on a used challenge, is refused", async () => {
      const { authenticator } = await registered("ES256", { counter: 1 });
      const b = browser();
      const options = await b.post("/passkey/options");
      const assertion = authenticator.assert(options.body.options);
      expect((await b.post("/passkey/verify", { response: assertion })).status).toBe(200);
      const before = await counts();
      await expectRefused(b.post("/passkey/verify", { response: assertion }), 401, "ERR_PASSKEY_CHALLENGE_USED");
      await expectRefused(b.post("/passkey/verify", { response: authenticator.assert(options.body.options) }), 401, "ERR_PASSKEY_CHALLENGE_USED");
      expect(await counts()).toEqual(before);
      // No "possible clone" report for a replay: the challenge is refused before the counter is looked at.
      expect(warnings.filter((w) => w.fields?.credentialId === authenticator.id)).toEqual([]);
    });

    it("a registration challenge cannot sign in, nor a sign-in challenge register (challenges are per ceremony)", async () => {
      const { authenticator } = await registered();
      const b = browser();
      const creation = await b.post("/passkey/register/options");
      await expectRefused(b.post("/passkey/verify", { response: authenticator.assert(creation.body.options) }), 401, "ERR_PASSKEY_CHALLENGE_UNKNOWN");
      const request = await b.post("/passkey/options");
      const fresh = new SoftAuthenticator("ES256", RP);
      await expectRefused(b.post("/passkey/register/verify", { response: fresh.register({ challenge: request.body.options.challenge, user: { id: "AAAA" } }) }), 401, "ERR_PASSKEY_CHALLENGE_UNKNOWN");
      // A client data of the other ceremony type.
      await expectRefused(signIn(browser(), authenticator, { type: "webauthn.create" }), 401, "ERR_PASSKEY_CEREMONY_MISMATCH");
    });

    it("a challenge the server never issued is refused", async () => {
      const { authenticator } = await registered();
      await expectRefused(browser().post("/passkey/verify", { response: authenticator.assert({ challenge: Buffer.alloc(32, 7).toString("base64url") }) }), 401, "ERR_PASSKEY_CHALLENGE_UNKNOWN");
    });

    it("expired challenge: one used after 5 minutes is refused, at sign-in and at registration", async () => {
      const { authenticator } = await registered();
      const b = browser();
      const c = browser();
      const options = await b.post("/passkey/options");
      const creation = await c.post("/passkey/register/options");
      now = new Date(now.getTime() + 300_001);
      try {
        await expectRefused(b.post("/passkey/verify", { response: authenticator.assert(options.body.options) }), 401, "ERR_PASSKEY_CHALLENGE_EXPIRED");
        await expectRefused(c.post("/passkey/register/verify", { response: new SoftAuthenticator("ES256", RP).register(creation.body.options) }), 401, "ERR_PASSKEY_CHALLENGE_EXPIRED");
      } finally {
        now = new Date(now.getTime() + 1000);
      }
    });

    it("challenge from another browser: refused without using it up; the browser that asked still signs in with it", async () => {
      const { authenticator, user } = await registered();
      const victim = browser();
      const options = await victim.post("/passkey/options");
      const assertion = authenticator.assert(options.body.options);
      const before = await counts();
      // The same response from a browser without (or with another) binding cookie.
      await expectRefused(browser().post("/passkey/verify", { response: assertion }), 401, "ERR_PASSKEY_CHALLENGE_BROWSER");
      const other = browser();
      await other.post("/passkey/options");
      await expectRefused(other.post("/passkey/verify", { response: assertion }), 401, "ERR_PASSKEY_CHALLENGE_BROWSER");
      expect(await counts()).toEqual(before);
      const answer = await victim.post("/passkey/verify", { response: assertion });
      expect(answer.status).toBe(200);
      expect(answer.body.user.id).toBe(user.id);
    });

    it("two ceremonies in one browser (a waiting conditional-UI request and a button): on https both stay valid, on http only the newest", async () => {
      const { authenticator } = await registered();
      const b = browser();
      const waiting = await b.post("/passkey/options");
      const clicked = await b.post("/passkey/options");
      expect((await b.post("/passkey/verify", { response: authenticator.assert(clicked.body.options) })).status).toBe(200);
      // Core's binding cookie keeps one value on plain http (no __Host- prefix to protect several).
      await expectRefused(b.post("/passkey/verify", { response: authenticator.assert(waiting.body.options) }), 401, "ERR_PASSKEY_CHALLENGE_BROWSER");
      const tls = new SoftAuthenticator("ES256", { rpId: "app.test", origin: "https://app.test" });
      const s = new Browser(secure.url, "https://app.test");
      const creation = await s.post("/passkey/register/options");
      expect((await s.post("/passkey/register/verify", { response: tls.register(creation.body.options) })).status).toBe(200);
      const first = await s.post("/passkey/options");
      const second = await s.post("/passkey/options");
      expect((await s.post("/passkey/verify", { response: tls.assert(second.body.options) })).status).toBe(200);
      expect((await s.post("/passkey/verify", { response: tls.assert(first.body.options) })).status).toBe(200);
    });

    it("counter rollback: a valid signature with a counter that went backwards (or stayed) is refused and logged as a possible clone", async () => {
      const { authenticator, user } = await registered("ES256", { counter: 10 });
      expect((await signIn(browser(), authenticator)).status).toBe(200); // counter 11 stored
      const before = await counts();
      for (const counter of [11, 5]) {
        await expectRefused(signIn(browser(), authenticator, { counter }), 401, "ERR_PASSKEY_COUNTER_ROLLBACK");
        expect(warnings.at(-1)).toMatchObject({ message: expect.stringMatching(/cloned/), fields: { credentialId: authenticator.id, userId: user.id, counter, stored: 11 } });
      }
      // Only the two challenges were used up; no session, the stored counter unchanged.
      expect(await counts()).toEqual({ ...before, challenges_used: before.challenges_used + 2 });
      const { rows } = await db.query<{ counter: string }>("SELECT counter FROM erebus_passkey_credentials WHERE credential_id = $1", [authenticator.id]);
      expect(Number(rows[0]!.counter)).toBe(11);
      expect((await signIn(browser(), authenticator, { counter: 12 })).status).toBe(200);
    });

    it("a passkey whose authenticator keeps no counter (always 0, as synced passkeys do) signs in every time", async () => {
      const { authenticator } = await registered("EdDSA");
      for (let i = 0; i < 3; i++) expect((await signIn(browser(), authenticator)).status).toBe(200);
    });

    it("user verification missing when required: refused at registration and at sign-in; the options ask for it (and for direct attestation when configured)", async () => {
      const noUv = new SoftAuthenticator("ES256", RP, { uv: false });
      const b = browser(strict.url);
      const creation = await b.post("/passkey/register/options");
      expect(creation.body.options.authenticatorSelection.userVerification).toBe("required");
      expect(creation.body.options.attestation).toBe("direct");
      await expectRefused(b.post("/passkey/register/verify", { response: noUv.register(creation.body.options) }), 401, "ERR_PASSKEY_USER_VERIFICATION_REQUIRED");
      // Registered where it is only preferred, then used where it is required.
      const { authenticator } = await registered("ES256", { uv: false });
      const options = await b.post("/passkey/options");
      expect(options.body.options.userVerification).toBe("required");
      await expectRefused(b.post("/passkey/verify", { response: authenticator.assert(options.body.options) }), 401, "ERR_PASSKEY_USER_VERIFICATION_REQUIRED");
      authenticator.uv = true;
      expect((await signIn(browser(strict.url), authenticator)).status).toBe(200);
      // User presence is never optional.
      await expectRefused(signIn(browser(), authenticator, { up: false }), 401, "ERR_PASSKEY_USER_PRESENCE_MISSING");
    });

    it("direct attestation: a packed self attestation verifies and its format is kept; a broken one is refused", async () => {
      const b = browser(strict.url);
      const creation = await b.post("/passkey/register/options");
      const good = new SoftAuthenticator("ES256", RP);
      const answer = await b.post("/passkey/register/verify", { response: good.register(creation.body.options, { attestation: "packed" }) });
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      const { rows } = await db.query<{ attestation_format: string }>("SELECT attestation_format FROM erebus_passkey_credentials WHERE credential_id = $1", [good.id]);
      expect(rows[0]!.attestation_format).toBe("packed");
      const c = browser(strict.url);
      const again = await c.post("/passkey/register/options");
      const before = await counts();
      await expectRefused(c.post("/passkey/register/verify", { response: new SoftAuthenticator("ES256", RP).register(again.body.options, { attestation: "packed-bad" }) }), 401, "ERR_PASSKEY_ATTESTATION_INVALID");
      expect(await counts()).toEqual({ ...before, challenges_used: before.challenges_used + 1 });
    });

    it("algorithms: a passkey whose algorithm the app does not accept is refused (EdDSA where only ES256 is)", async () => {
      const b = browser(strict.url);
      const creation = await b.post("/passkey/register/options");
      expect(creation.body.options.pubKeyCredParams).toEqual([{ alg: -7, type: "public-key" }]);
      await expectRefused(b.post("/passkey/register/verify", { response: new SoftAuthenticator("EdDSA", RP).register(creation.body.options) }), 400, "ERR_PASSKEY_ALGORITHM_UNSUPPORTED");
    });

    it("maxPasskeys: a person with as many passkeys as allowed cannot add another", async () => {
      const b = browser(strict.url);
      const creation = await b.post("/passkey/register/options");
      expect((await b.post("/passkey/register/verify", { response: new SoftAuthenticator("ES256", RP).register(creation.body.options) })).status).toBe(200);
      await expectRefused(b.post("/passkey/register/options", { intent: "link" }), 409, "ERR_PASSKEY_LIMIT_REACHED");
    });

    it("review: maxPasskeys holds when several registrations were started before any finished (checked again in the commit)", async () => {
      // On https core's binding cookie keeps several challenges live in one browser.
      const TLS = { rpId: "app.test", origin: "https://app.test" };
      const { server: capped } = await startAuthServer({ database: db, baseURL: "https://app.test", providers: [passkeyProvider({ maxPasskeys: 2 })], logger, clock: () => now, rateLimit: { enabled: false } });
      try {
        const b = new Browser(capped.url, "https://app.test");
        const creation = await b.post("/passkey/register/options");
        expect((await b.post("/passkey/register/verify", { response: new SoftAuthenticator("ES256", TLS).register(creation.body.options) })).status).toBe(200);
        const starts = [await b.post("/passkey/register/options"), await b.post("/passkey/register/options"), await b.post("/passkey/register/options")];
        expect(starts.map((s) => s.status)).toEqual([200, 200, 200]);
        expect((await b.post("/passkey/register/verify", { response: new SoftAuthenticator("ES256", TLS).register(starts[0]!.body.options) })).status).toBe(200);
        for (const start of starts.slice(1)) {
          await expectRefused(b.post("/passkey/register/verify", { response: new SoftAuthenticator("ES256", TLS).register(start.body.options) }), 409, "ERR_PASSKEY_LIMIT_REACHED");
        }
        expect((await b.get("/passkey/credentials")).body.passkeys).toHaveLength(2);
      } finally {
        await capped.close();
      }
    });

    it("tampered client data: a changed clientDataJSON no longer matches the signature, and the challenge is used up", async () => {
      const { authenticator } = await registered("EdDSA");
      const b = browser();
      const options = await b.post("/passkey/options");
      const before = await counts();
      const tampered = authenticator.assert(options.body.options, { tamperClientData: (data) => ({ ...data, extra: "injected" }) });
      await expectRefused(b.post("/passkey/verify", { response: tampered }), 401, "ERR_PASSKEY_SIGNATURE_INVALID");
      expect(await counts()).toEqual({ ...before, challenges_used: before.challenges_used + 1 });
      await expectRefused(b.post("/passkey/verify", { response: authenticator.assert(options.body.options) }), 401, "ERR_PASSKEY_CHALLENGE_USED");
      // A signature made by another key for this credential id.
      const impostor = new SoftAuthenticator("EdDSA", RP);
      Object.defineProperty(impostor, "credentialId", { value: authenticator.credentialId });
      impostor.userHandle = authenticator.userHandle;
      await expectRefused(signIn(browser(), impostor), 401, "ERR_PASSKEY_SIGNATURE_INVALID");
    });

    it("a valid ES256 signature in another encoding of the same value (outer tag 0xa0 for 0x30) is refused: one encoding per signature", async () => {
      const { authenticator } = await registered("ES256");
      const b = browser();
      const options = await b.post("/passkey/options");
      const assertion = authenticator.assert(options.body.options);
      const der = Buffer.from(assertion.response.signature, "base64url");
      der[0] = 0xa0;
      await expectRefused(b.post("/passkey/verify", { response: { ...assertion, response: { ...assertion.response, signature: der.toString("base64url") } } }), 401, "ERR_PASSKEY_SIGNATURE_INVALID");
    });

    it("credential registered twice: the second registration of one credential id is refused (409), the first owner keeps it", async () => {
      const { authenticator, user } = await registered();
      const before = await counts();
      await expectRefused(signUp(browser(), authenticator), 409, "ERR_PASSKEY_CREDENTIAL_EXISTS");
      expect(await counts()).toEqual({ ...before, challenges_used: before.challenges_used + 1 });
      const { rows } = await db.query<{ user_id: string }>("SELECT user_id FROM erebus_passkey_credentials WHERE credential_id = $1", [authenticator.id]);
      expect(rows).toEqual([{ user_id: user.id }]);
    });

    it("five concurrent registrations of one credential: one wins, the rest get 409, one row", async () => {
      const authenticator = new SoftAuthenticator("ES256", RP);
      const answers = await Promise.all(Array.from({ length: 5 }, () => signUp(browser(), authenticator)));
      expect(answers.map((a) => a.status).sort()).toEqual([200, 409, 409, 409, 409]);
      const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM user_references WHERE network = 'passkey' AND source_identifier = $1", [authenticator.id]);
      expect(rows[0]!.n).toBe(1);
    });

    it("unknown credential: an assertion from a passkey never registered here is refused", async () => {
      const stranger = new SoftAuthenticator("ES256", RP);
      stranger.userHandle = Buffer.alloc(32, 1).toString("base64url");
      const before = await counts();
      await expectRefused(signIn(browser(), stranger), 401, "ERR_PASSKEY_CREDENTIAL_UNKNOWN");
      expect(await counts()).toEqual({ ...before, challenges_used: before.challenges_used + 1 });
    });

    it("a user handle that is not the credential's is refused", async () => {
      const { authenticator } = await registered();
      await expectRefused(signIn(browser(), authenticator, { userHandle: Buffer.alloc(32, 2).toString("base64url") }), 401, "ERR_PASSKEY_USER_HANDLE_MISMATCH");
    });

    it("id and rawId that disagree, or an id that is not the authenticator's credential, are refused", async () => {
      const { authenticator } = await registered();
      const b = browser();
      const options = await b.post("/passkey/options");
      const assertion = authenticator.assert(options.body.options);
      await expectRefused(b.post("/passkey/verify", { response: { ...assertion, rawId: "AAAA" } }), 400, "ERR_PASSKEY_CREDENTIAL_ID_MISMATCH");
      const creation = await b.post("/passkey/register/options");
      const reg = new SoftAuthenticator("ES256", RP).register(creation.body.options);
      await expectRefused(b.post("/passkey/register/verify", { response: { ...reg, id: "AAAA", rawId: "AAAA" } }), 400, "ERR_PASSKEY_CREDENTIAL_ID_MISMATCH");
    });

    it("concurrent uses of one assertion: exactly one signs in", async () => {
      const { authenticator } = await registered();
      const b = browser();
      const options = await b.post("/passkey/options");
      const assertion = authenticator.assert(options.body.options);
      const answers = await Promise.all(Array.from({ length: 5 }, () => b.post("/passkey/verify", { response: assertion })));
      expect(answers.filter((a) => a.status === 200)).toHaveLength(1);
      expect(answers.every((a) => a.status === 200 || a.status === 401)).toBe(true);
    });

    it("a deactivated user cannot sign in with their passkey (403), and the challenge is used up", async () => {
      const { authenticator, user } = await registered();
      await auth.api.deactivateUser(user.id);
      await expectRefused(signIn(browser(), authenticator), 403, "ERR_USER_DEACTIVATED");
      await auth.api.reactivateUser(user.id);
      expect((await signIn(browser(), authenticator)).status).toBe(200);
    });

    it("signed in, \"Add a passkey\" links a second passkey to the same person (core's link intent); both sign in as that person", async () => {
      const { authenticator, user } = await registered();
      const b = browser();
      expect((await signIn(b, authenticator)).status).toBe(200);
      const creation = await b.post("/passkey/register/options", { userName: "ada" });
      expect(creation.status, JSON.stringify(creation.body)).toBe(200);
      // The person's passkeys are excluded (an authenticator holding one refuses a second), and the user handle is the person's.
      expect(creation.body.options.excludeCredentials).toEqual([{ id: authenticator.id, type: "public-key", transports: ["internal", "hybrid"] }]);
      expect(creation.body.options.user.id).toBe(authenticator.userHandle);
      const second = new SoftAuthenticator("EdDSA", RP);
      const linked = await b.post("/passkey/register/verify", { response: second.register(creation.body.options), name: "Phone" });
      expect(linked.status, JSON.stringify(linked.body)).toBe(200);
      const session = await b.get("/session");
      expect(session.body.user.id).toBe(user.id);
      expect(session.body.person.identities.map((i: { source_identifier: string }) => i.source_identifier).sort()).toEqual([authenticator.id, second.id].sort());
      const list = await b.get("/passkey/credentials");
      expect(list.body.passkeys.map((p: { id: string }) => p.id).sort()).toEqual([authenticator.id, second.id].sort());
      // The new passkey signs in as an identity of the same person.
      const other = browser();
      const signedIn = await signIn(other, second);
      expect(signedIn.status).toBe(200);
      expect((await other.get("/session")).body.person.id).toBe(session.body.person.id);
    });

    it("\"Add a passkey\" needs a signed-in, fresh session; intent sign-up while signed in makes a new person", async () => {
      const { authenticator } = await registered();
      const b = browser();
      expect((await signIn(b, authenticator)).status).toBe(200);
      const before = await counts();
      await expectRefused(browser().post("/passkey/register/options", { intent: "link" }), 401, "ERR_UNAUTHENTICATED");
      now = new Date(now.getTime() + 3_600_000);
      try {
        await expectRefused(b.post("/passkey/register/options"), 403, "ERR_REAUTH_REQUIRED");
      } finally {
        now = new Date(now.getTime() - 3_600_000);
      }
      expect(await counts()).toEqual(before);
      const other = await signUp(b, new SoftAuthenticator("EdDSA", RP), {}, { intent: "sign-up" });
      expect(other.status).toBe(200);
      expect((await b.get("/session")).body.user.id).toBe(other.body.user.id);
    });

    it("a link-intent challenge used from another browser or session is refused", async () => {
      const { authenticator } = await registered();
      const b = browser();
      expect((await signIn(b, authenticator)).status).toBe(200);
      const creation = await b.post("/passkey/register/options");
      const response = new SoftAuthenticator("ES256", RP).register(creation.body.options);
      const before = await counts();
      await expectRefused(browser().post("/passkey/register/verify", { response }), 401, "ERR_PASSKEY_CHALLENGE_BROWSER");
      expect(await counts()).toEqual(before);
    });

    it("a link started by one session and finished by another session in the same browser attaches nothing", async () => {
      // On https (core's binding cookie keeps several values), so the browser binding alone does not refuse it.
      const TLS = { rpId: "app.test", origin: "https://app.test" };
      const s = () => new Browser(secure.url, "https://app.test");
      const [mine, other] = [new SoftAuthenticator("ES256", TLS), new SoftAuthenticator("EdDSA", TLS)];
      for (const a of [mine, other]) {
        const x = s();
        const creation = await x.post("/passkey/register/options");
        expect((await x.post("/passkey/register/verify", { response: a.register(creation.body.options) })).status).toBe(200);
      }
      const b = s();
      const first = await b.post("/passkey/options");
      expect((await b.post("/passkey/verify", { response: mine.assert(first.body.options) })).status).toBe(200);
      const creation = await b.post("/passkey/register/options");
      const response = new SoftAuthenticator("ES256", TLS).register(creation.body.options);
      // Someone else signs in in this browser (a new session), then the link ceremony completes.
      const options = await b.post("/passkey/options");
      expect((await b.post("/passkey/verify", { response: other.assert(options.body.options) })).status).toBe(200);
      const before = await counts();
      await expectRefused(b.post("/passkey/register/verify", { response }), 403, "ERR_LINK_SESSION_MISMATCH");
      expect({ ...(await counts()), challenges_used: before.challenges_used }).toEqual(before);
    });

    it("proving an existing passkey with intent link: refused when it is another person's (409), merged with merge: true, re-proved when it is the person's own (no new session)", async () => {
      const { authenticator: mine, user: me } = await registered();
      const { authenticator: theirs } = await registered("EdDSA");
      const b = browser();
      expect((await signIn(b, mine)).status).toBe(200);
      const session = b.cookies.get("erebus_session");
      const before = await counts();
      const linkOptions = await b.post("/passkey/options", { intent: "link" });
      expect(linkOptions.status).toBe(200);
      await expectRefused(b.post("/passkey/verify", { response: theirs.assert(linkOptions.body.options) }), 409, "ERR_IDENTITY_LINKED_ELSEWHERE");
      expect({ ...(await counts()), challenges_used: before.challenges_used }).toEqual(before);
      const mergeOptions = await b.post("/passkey/options", { intent: "link", merge: true });
      const merged = await b.post("/passkey/verify", { response: theirs.assert(mergeOptions.body.options) });
      expect(merged.status, JSON.stringify(merged.body)).toBe(200);
      expect(merged.body.outcome).toBe("merged");
      expect(b.cookies.get("erebus_session")).toBe(session);
      const now2 = await b.get("/session");
      expect(now2.body.user.id).toBe(me.id);
      expect(now2.body.person.identities.map((i: { source_identifier: string }) => i.source_identifier).sort()).toEqual([mine.id, theirs.id].sort());
      expect((await b.get("/passkey/credentials")).body.passkeys).toHaveLength(2);
      // The person's own passkey proved again under a link intent: re-authenticated, the same session.
      const again = await b.post("/passkey/options", { intent: "link" });
      const reproved = await b.post("/passkey/verify", { response: mine.assert(again.body.options) });
      expect(reproved.status, JSON.stringify(reproved.body)).toBe(200);
      expect(reproved.body.outcome).toBe("reauthenticated");
      expect(b.cookies.get("erebus_session")).toBe(session);
      // A link intent needs a session.
      await expectRefused(browser().post("/passkey/options", { intent: "link" }), 401, "ERR_UNAUTHENTICATED");
    });

    it("step-up: re-proving the person's own passkey (intent link) refreshes the session's proof, so a fresh-only action passes later without a new session", async () => {
      const { authenticator } = await registered();
      const b = browser();
      expect((await signIn(b, authenticator)).status).toBe(200);
      const creation = await b.post("/passkey/register/options");
      const second = new SoftAuthenticator("ES256", RP);
      expect((await b.post("/passkey/register/verify", { response: second.register(creation.body.options) })).status).toBe(200);
      const session = b.cookies.get("erebus_session");
      const start = now;
      try {
        now = new Date(start.getTime() + 540_000); // 9 minutes: still fresh (core's 10)
        const again = await b.post("/passkey/options", { intent: "link" });
        expect((await b.post("/passkey/verify", { response: authenticator.assert(again.body.options) })).body.outcome).toBe("reauthenticated");
        now = new Date(start.getTime() + 1_080_000); // 18 minutes after sign-in, 9 after the re-proof
        const deleted = await b.post(`/passkey/credentials/${second.id}`, undefined, { method: "DELETE" });
        expect(deleted.status, JSON.stringify(deleted.body)).toBe(204);
        expect(b.cookies.get("erebus_session")).toBe(session);
      } finally {
        now = new Date(start.getTime() + 1_081_000);
      }
    });

    it("management: lists the person's passkeys (no key material), renames one, and refuses others' and strangers", async () => {
      const { authenticator, user } = await registered();
      const b = browser();
      expect((await signIn(b, authenticator)).status).toBe(200);
      const list = await b.get("/passkey/credentials");
      expect(list.status).toBe(200);
      expect(list.body.passkeys).toEqual([expect.objectContaining({ id: authenticator.id, userId: user.id, name: "Passkey", deviceType: "multiDevice" })]);
      expect(JSON.stringify(list.body)).not.toMatch(/public_?key|user_?handle|counter/i);
      // The same list for the app, as auth.providers.passkey.
      const api = auth.providers.passkey as PasskeyApi;
      expect((await api.listPasskeys([user.id])).map((p) => p.id)).toEqual([authenticator.id]);
      const renamed = await b.post(`/passkey/credentials/${authenticator.id}`, { name: "  Work phone " }, { method: "PATCH" });
      expect(renamed.status, JSON.stringify(renamed.body)).toBe(200);
      expect(renamed.body.passkey.name).toBe("Work phone");
      // Someone else's passkey is not found, and cannot be renamed or deleted.
      const { authenticator: theirs } = await registered();
      await expectRefused(b.post(`/passkey/credentials/${theirs.id}`, { name: "mine now" }, { method: "PATCH" }), 404, "ERR_PASSKEY_NOT_FOUND");
      await expectRefused(b.post(`/passkey/credentials/${theirs.id}`, undefined, { method: "DELETE" }), 404, "ERR_PASSKEY_NOT_FOUND");
      await expectRefused(b.post(`/passkey/credentials/%00`, undefined, { method: "DELETE" }), 404, "ERR_PASSKEY_NOT_FOUND");
      // Nobody signed in.
      await expectRefused(browser().get("/passkey/credentials"), 401, "ERR_UNAUTHENTICATED");
    });

    it("delete: another passkey of the person with a fresh session; never the one this session signed in with, nor the last identity", async () => {
      const { authenticator } = await registered();
      const b = browser();
      expect((await signIn(b, authenticator)).status).toBe(200);
      const creation = await b.post("/passkey/register/options");
      const second = new SoftAuthenticator("ES256", RP);
      expect((await b.post("/passkey/register/verify", { response: second.register(creation.body.options) })).status).toBe(200);
      const before = await counts();
      await expectRefused(b.post(`/passkey/credentials/${authenticator.id}`, undefined, { method: "DELETE" }), 409, "ERR_IDENTITY_IN_USE");
      now = new Date(now.getTime() + 601_000);
      try {
        await expectRefused(b.post(`/passkey/credentials/${second.id}`, undefined, { method: "DELETE" }), 403, "ERR_REAUTH_REQUIRED");
      } finally {
        now = new Date(now.getTime() - 601_000);
      }
      expect(await counts()).toEqual(before);
      // A browser that signed in with the second passkey (the lost device, say).
      const lost = browser();
      expect((await signIn(lost, second)).status).toBe(200);
      expect((await lost.get("/session")).status).toBe(200);
      const deleted = await b.post(`/passkey/credentials/${second.id}`, undefined, { method: "DELETE" });
      expect(deleted.status, JSON.stringify(deleted.body)).toBe(204);
      expect((await b.get("/passkey/credentials")).body.passkeys.map((p: { id: string }) => p.id)).toEqual([authenticator.id]);
      // Its credential is gone: it no longer signs in, and the sessions it made have ended.
      await expectRefused(signIn(browser(), second), 401, "ERR_PASSKEY_CREDENTIAL_UNKNOWN");
      // Core's session cache hears the revocation through the database's NOTIFY (milliseconds).
      await expect.poll(async () => (await lost.get("/session")).status).toBe(401);
      expect((await b.get("/session")).status).toBe(200);
      // The first is the session's own passkey, and now the person's last way to sign in.
      await expectRefused(b.post(`/passkey/credentials/${authenticator.id}`, undefined, { method: "DELETE" }), 409, "ERR_IDENTITY_IN_USE");
    });

    it("delete from the other passkey's session: the deleted one's sessions end; the person keeps the one signed in with", async () => {
      const { authenticator } = await registered();
      const b = browser();
      expect((await signIn(b, authenticator)).status).toBe(200);
      const creation = await b.post("/passkey/register/options");
      const second = new SoftAuthenticator("EdDSA", RP);
      expect((await b.post("/passkey/register/verify", { response: second.register(creation.body.options) })).status).toBe(200);
      // Signed in with the second: deleting the first leaves the second, which is fine.
      const c = browser();
      expect((await signIn(c, second)).status).toBe(200);
      expect((await c.post(`/passkey/credentials/${authenticator.id}`, undefined, { method: "DELETE" })).status).toBe(204);
      // b's session (the first passkey's identity) ended with it.
      await expect.poll(async () => (await b.get("/session")).status).toBe(401);
      // Now the person has one identity that can sign in, c's own (the deleted passkey's identity no longer counts).
      await expectRefused(c.post(`/passkey/credentials/${second.id}`, undefined, { method: "DELETE" }), 409, "ERR_IDENTITY_IN_USE");
      const list = await c.get("/passkey/credentials");
      expect(list.body.passkeys.map((p: { id: string }) => p.id)).toEqual([second.id]);
    });

    it("review: a deleted passkey's credential id cannot be registered again with another key (a thief of the lost device would sign back in as its identity)", async () => {
      const { authenticator } = await registered();
      const b = browser();
      expect((await signIn(b, authenticator)).status).toBe(200);
      const creation = await b.post("/passkey/register/options");
      const lost = new SoftAuthenticator("ES256", RP);
      expect((await b.post("/passkey/register/verify", { response: lost.register(creation.body.options) })).status).toBe(200);
      expect((await b.post(`/passkey/credentials/${lost.id}`, undefined, { method: "DELETE" })).status).toBe(204);
      // The thief learnt the credential id from an assertion of the lost device; a software authenticator chooses any id.
      const thief = new SoftAuthenticator("ES256", RP);
      lost.credentialId.copy(thief.credentialId);
      const t = browser();
      await expectRefused(signUp(t, thief), 409, "ERR_PASSKEY_CREDENTIAL_EXISTS");
      expect((await t.get("/session")).status).toBe(401);
      const { rows } = await db.query("SELECT 1 FROM erebus_passkey_credentials WHERE credential_id = $1", [lost.id]);
      expect(rows).toEqual([]);
    });

    it("review: two sessions of one person deleting each other's passkey at once leave the person a way to sign in", async () => {
      // Rounds: on PostgreSQL the two requests interleave only now and then.
      for (let round = 0; round < 8; round++) {
        const { authenticator: first } = await registered();
        const b1 = browser();
        expect((await signIn(b1, first)).status).toBe(200);
        const creation = await b1.post("/passkey/register/options");
        const second = new SoftAuthenticator("EdDSA", RP);
        expect((await b1.post("/passkey/register/verify", { response: second.register(creation.body.options) })).status).toBe(200);
        const b2 = browser();
        expect((await signIn(b2, second)).status).toBe(200);
        const answers = await Promise.all([
          b1.post(`/passkey/credentials/${second.id}`, undefined, { method: "DELETE" }),
          b2.post(`/passkey/credentials/${first.id}`, undefined, { method: "DELETE" }),
        ]);
        // One wins. The other finds its own session ended (401), or, when it got past the session
        // check before the winner committed, the person down to its last passkey (409): never both deleted.
        const [won, lost] = answers.map((a) => a.status).sort();
        expect(won).toBe(204);
        expect([401, 409]).toContain(lost);
        const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM erebus_passkey_credentials WHERE credential_id = ANY($1)", [[first.id, second.id]]);
        expect(rows[0]!.n, `round ${round}`).toBe(1);
      }
    });

    it("review: a passkey delete and core's unlink, by two sessions of one person at once, leave the person a way to sign in (they take one lock)", async () => {
      for (let round = 0; round < 8; round++) {
        const { authenticator: first } = await registered();
        const b1 = browser();
        const firstIn = await signIn(b1, first);
        expect(firstIn.status).toBe(200);
        const creation = await b1.post("/passkey/register/options");
        const second = new SoftAuthenticator("EdDSA", RP);
        expect((await b1.post("/passkey/register/verify", { response: second.register(creation.body.options) })).status).toBe(200);
        const b2 = browser();
        expect((await signIn(b2, second)).status).toBe(200);
        const personId = firstIn.body.user.person_id as string;
        // b1 deletes the second passkey while b2 unlinks the first passkey's identity from the person.
        const answers = await Promise.all([
          b1.post(`/passkey/credentials/${second.id}`, undefined, { method: "DELETE" }),
          b2.post(`/identities/${firstIn.body.user.id}`, undefined, { method: "DELETE" }),
        ]);
        const statuses = answers.map((a) => a.status);
        expect(statuses.filter((s) => s < 300), `round ${round}: ${JSON.stringify(answers.map((a) => a.body))}`).toHaveLength(1);
        for (const s of statuses.filter((s) => s >= 300)) expect([401, 409]).toContain(s);
        // The person still has an identity with a passkey to sign in with.
        const { rows } = await db.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM user_references u JOIN erebus_passkey_credentials c ON c.user_id = u.id WHERE u.person_id = $1",
          [personId],
        );
        expect(rows[0]!.n, `round ${round}`).toBeGreaterThanOrEqual(1);
      }
    });
  });
}
