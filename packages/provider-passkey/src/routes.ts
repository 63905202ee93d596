import { AuthError, describeRoute, pgText, signInResultSchema, type ProviderContext, type RouteDoc } from "@erebus/core/provider";
import { generateAuthenticationOptions, generateRegistrationOptions } from "@simplewebauthn/server";
import type { Request, Router } from "express";
import * as z from "zod";
import { KNOWN_AUTHENTICATORS } from "./authenticator-names.js";
import { createChallenges } from "./challenges.js";
import { credentialStore, toInfo, type CredentialRow } from "./credentials.js";
import { fail, type PasskeyErrorCode } from "./errors.js";
import { relyingParty, type ResolvedPasskeyOptions } from "./options.js";
import { linkIntent, signableIds, signedInPerson } from "./people.js";
import { PASSKEY_NETWORK, type PasskeySourceType } from "./source-type.js";
import {
  authenticationResponseSchema,
  checkClientData,
  MAX_CREDENTIAL_ID,
  precheckAssertion,
  registrationResponseSchema,
  verifyAssertion,
  verifyRegistration,
  type VerifiedRegistration,
} from "./verify.js";

const label = pgText().trim().min(1).max(64);
const registerOptionsBody = z
  .strictObject({
    /** `sign-up`: a new person whose first identity is this passkey. `link`: add it to the signed-in person. Default: `link` when signed in, else `sign-up`. */
    intent: z.enum(["sign-up", "link"]).optional(),
    /** The account name the authenticator shows in its picker (an email address, a handle). */
    userName: label.optional(),
    userDisplayName: label.optional(),
  })
  .optional();
const registerVerifyBody = z.strictObject({ response: registrationResponseSchema, name: label.optional() });
const authenticateOptionsBody = z
  .strictObject({
    /** `link`: prove an existing passkey to attach its identity to the signed-in person (core's link intent, fresh session). */
    intent: z.enum(["sign-in", "link", "reauthenticate"]).optional(),
    /** With `link`: take in the other person when the passkey belongs to one (core's merge). */
    merge: z.boolean().optional(),
  })
  .optional();
const verifyBody = z.strictObject({ response: authenticationResponseSchema });
const renameBody = z.strictObject({ name: label });
const credentialIdParam = z.string().min(1).max(MAX_CREDENTIAL_ID).regex(/^[A-Za-z0-9_-]+$/);

const passkeySchema = z.object({
  id: z.string(),
  name: z.string(),
  userId: z.string(),
  deviceType: z.enum(["singleDevice", "multiDevice"]),
  backedUp: z.boolean(),
  transports: z.array(z.string()),
  aaguid: z.string().nullable(),
  authenticatorName: z.string().nullable(),
  createdAt: z.string(),
  lastUsedAt: z.string().nullable(),
});
const optionsAnswer = z.object({
  options: z.record(z.string(), z.unknown()).describe("PublicKeyCredentialCreationOptionsJSON / RequestOptionsJSON: pass to startRegistration / startAuthentication of @simplewebauthn/browser as optionsJSON"),
  expiresAt: z.string(),
});

const challengeErrors: PasskeyErrorCode[] = ["ERR_PASSKEY_CHALLENGE_UNKNOWN", "ERR_PASSKEY_CHALLENGE_USED", "ERR_PASSKEY_CHALLENGE_EXPIRED", "ERR_PASSKEY_CHALLENGE_BROWSER"];
const responseErrors: PasskeyErrorCode[] = [
  "ERR_PASSKEY_RESPONSE_MALFORMED",
  "ERR_PASSKEY_CREDENTIAL_ID_MISMATCH",
  "ERR_PASSKEY_CEREMONY_MISMATCH",
  "ERR_PASSKEY_ORIGIN_MISMATCH",
  "ERR_PASSKEY_RP_ID_MISMATCH",
  "ERR_PASSKEY_USER_PRESENCE_MISSING",
  "ERR_PASSKEY_USER_VERIFICATION_REQUIRED",
  ...challengeErrors,
];
const docs = {
  registerOptions: {
    summary: "Passkey registration: options for navigator.credentials.create()",
    description:
      "Without a session: sign up with a passkey (a new person). Signed in: add a passkey to the person (needs core's link intents). The challenge is single-use, server-stored, expires in challengeTtl seconds and is bound to this browser (an HttpOnly cookie).",
    body: registerOptionsBody,
    responses: { 200: { description: "creation options", schema: optionsAnswer } },
    errors: ["ERR_PASSKEY_LIMIT_REACHED", "ERR_SESSION_INVALID", "ERR_UNAUTHENTICATED", "ERR_REAUTH_REQUIRED", "ERR_USER_DEACTIVATED"],
  },
  registerVerify: {
    summary: "Passkey registration: verify the attestation, store the passkey and start a session",
    body: registerVerifyBody,
    responses: { 200: { description: "registered and signed in", schema: signInResultSchema.extend({ passkey: passkeySchema }) } },
    errors: [...responseErrors, "ERR_PASSKEY_ATTESTATION_INVALID", "ERR_PASSKEY_ALGORITHM_UNSUPPORTED", "ERR_PASSKEY_CREDENTIAL_EXISTS", "ERR_PASSKEY_LIMIT_REACHED", "ERR_USER_DEACTIVATED", "ERR_IDENTITY_INVALID", "ERR_LINK_SESSION_MISMATCH", "ERR_IDENTITY_LIMIT", "ERR_REAUTH_REQUIRED"],
  },
  options: {
    summary: "Passkey sign-in: options for navigator.credentials.get() (discoverable: allowCredentials is empty; also for conditional UI)",
    description: "With { intent: \"link\" } (signed in, fresh session): the assertion then attaches the passkey's identity to the person instead of signing in (merge: true takes in the person it belongs to).",
    body: authenticateOptionsBody,
    responses: { 200: { description: "request options", schema: optionsAnswer } },
    errors: ["ERR_REAUTH_REQUIRED", "ERR_IDENTITY_LIMIT"],
  },
  verify: {
    summary: "Passkey sign-in: verify the assertion and start a session",
    body: verifyBody,
    responses: { 200: { description: "signed in", schema: signInResultSchema } },
    errors: [...responseErrors, "ERR_PASSKEY_SIGNATURE_INVALID", "ERR_PASSKEY_COUNTER_ROLLBACK", "ERR_PASSKEY_CREDENTIAL_UNKNOWN", "ERR_PASSKEY_USER_HANDLE_MISMATCH", "ERR_USER_DEACTIVATED", "ERR_IDENTITY_INVALID", "ERR_IDENTITY_LINKED_ELSEWHERE", "ERR_LINK_SESSION_MISMATCH", "ERR_REAUTH_IDENTITY_FOREIGN", "ERR_LINK_CONFLICT", "ERR_IDENTITY_LIMIT", "ERR_REAUTH_REQUIRED"],
  },
  list: {
    summary: "The signed-in person's passkeys (no key material)",
    auth: ["session"],
    responses: { 200: { description: "passkeys", schema: z.object({ passkeys: z.array(passkeySchema) }) } },
    errors: ["ERR_UNAUTHENTICATED", "ERR_SESSION_INVALID", "ERR_USER_DEACTIVATED"],
  },
  rename: {
    summary: "Rename one of the signed-in person's passkeys",
    auth: ["session"],
    body: renameBody,
    responses: { 200: { description: "renamed", schema: z.object({ passkey: passkeySchema }) } },
    errors: ["ERR_UNAUTHENTICATED", "ERR_SESSION_INVALID", "ERR_USER_DEACTIVATED", "ERR_PASSKEY_NOT_FOUND"],
  },
  remove: {
    summary: "Delete one of the signed-in person's passkeys (fresh session; never the person's last identity nor the one this session signed in with); its sessions end",
    auth: ["session"],
    responses: { 204: { description: "deleted" } },
    errors: ["ERR_UNAUTHENTICATED", "ERR_SESSION_INVALID", "ERR_USER_DEACTIVATED", "ERR_PASSKEY_NOT_FOUND", "ERR_REAUTH_REQUIRED", "ERR_IDENTITY_LAST", "ERR_IDENTITY_IN_USE", "ERR_LINK_CONFLICT"],
  },
} satisfies Record<string, RouteDoc>;

const isEmpty = (body: unknown) => body === undefined || (typeof body === "object" && body !== null && !Array.isArray(body) && Object.keys(body).length === 0);

export function passkeyRoutes(router: Router, ctx: ProviderContext, options: ResolvedPasskeyOptions): void {
  const rp = relyingParty(options, ctx.baseURL);
  const requireUv = options.userVerification === "required";
  const names: Record<string, string> = { ...KNOWN_AUTHENTICATORS, ...options.authenticatorNames };
  const challenges = createChallenges(ctx, options.challengeTtl);
  const credentials = credentialStore(ctx.db);
  const optionsLimit = ctx.rateLimit({ name: "options", points: options.rateLimit.options, duration: 60 });
  const verifyLimit = ctx.rateLimit({ name: "verify", points: options.rateLimit.verify, duration: 60 });
  const client = (req: Request) => req.ip ?? "unknown";

  const info = (row: CredentialRow) => ({ ...toInfo(row), authenticatorName: row.aaguid ? (names[row.aaguid] ?? null) : null });
  const sourceTypeOf = (c: { credentialId: string; deviceType: string; backedUp: boolean; transports: string[]; aaguid: string | null }): PasskeySourceType => ({
    type: "passkey",
    credential_id: c.credentialId,
    device_type: c.deviceType,
    backed_up: c.backedUp,
    ...(c.transports.length ? { transports: c.transports } : {}),
    ...(c.aaguid ? { aaguid: c.aaguid, ...(names[c.aaguid] ? { authenticator_name: names[c.aaguid] } : {}) } : {}),
  });

  router.post("/passkey/register/options", describeRoute(docs.registerOptions), async (req, res) => {
    optionsLimit.consumeLocal(client(req));
    const body = ctx.parse(registerOptionsBody, isEmpty(req.body) ? undefined : req.body) ?? {};
    const auth = await ctx.authenticate(req, res);
    const intent = body.intent ?? (auth?.via === "session" ? "link" : "sign-up");
    let link: Awaited<ReturnType<typeof linkIntent>> | undefined;
    let existing: CredentialRow[] = [];
    if (intent === "link") {
      link = await linkIntent(ctx, req, res);
      existing = await credentials.ofUsers((await signedInPerson(ctx, req, res)).person.userIds);
      if (existing.length >= options.maxPasskeys) throw fail("ERR_PASSKEY_LIMIT_REACHED", `at most ${options.maxPasskeys}`);
    }
    // One user handle per person (an authenticator keeps one passkey per RP id and handle, so a second
    // one of the same person replaces rather than duplicates), random for a new person (WebAuthn §14.6.1: no personal data in it).
    const userHandle = existing[0]?.user_handle ?? ctx.randomToken({ bytes: 32 });
    const userName = body.userName ?? `${rp.rpName} passkey`;
    await optionsLimit.consume(client(req));
    const { challenge, expiresAt } = await challenges.issue("register", { req, res }, { userHandle }, ctx.db, link);
    const creation = await generateRegistrationOptions({
      rpName: rp.rpName,
      rpID: rp.rpId,
      userName,
      userDisplayName: body.userDisplayName ?? userName,
      userID: Buffer.from(userHandle, "base64url"),
      challenge: Buffer.from(challenge, "base64url"),
      timeout: options.challengeTtl * 1000,
      attestationType: options.attestation,
      // The person's passkeys: an authenticator that holds one of them refuses to make another.
      excludeCredentials: existing.map((c) => ({ id: c.credential_id, transports: c.transports })),
      // Discoverable (resident) credentials: sign-in needs no user name (allowCredentials stays empty).
      authenticatorSelection: { residentKey: "required", requireResidentKey: true, userVerification: options.userVerification },
      supportedAlgorithmIDs: options.algorithms,
    });
    res.setHeader("Cache-Control", "no-store");
    res.json({ options: creation, expiresAt: expiresAt.toISOString() });
  });

  router.post("/passkey/register/verify", describeRoute(docs.registerVerify), async (req, res) => {
    verifyLimit.consumeLocal(client(req));
    const body = ctx.parse(registerVerifyBody, req.body);
    // Decoded and checked before the challenge is looked at: a response for another origin or ceremony is not ours to use up.
    const { challenge } = checkClientData(body.response.response.clientDataJSON, "webauthn.create", rp);
    let verified: VerifiedRegistration | undefined;
    let userHandle = "";
    const result = await ctx.signInOnce(req, res, {
      limit: { limiter: verifyLimit, key: client(req) },
      async verify() {
        verified = await verifyRegistration(body.response, rp, { requireUv, algorithms: options.algorithms });
        if (await credentials.find(verified.credentialId)) throw fail("ERR_PASSKEY_CREDENTIAL_EXISTS");
        // A deleted passkey's identity stays in user_references (its person's): a new key under its
        // credential id (any software authenticator picks its id) would sign in as that identity.
        if (await ctx.findUser(PASSKEY_NETWORK, verified.credentialId)) throw fail("ERR_PASSKEY_CREDENTIAL_EXISTS");
        return { network: PASSKEY_NETWORK, sourceIdentifier: verified.credentialId, sourceType: sourceTypeOf(verified) };
      },
      async consume(q) {
        const used = await challenges.consume("register", challenge, req, q);
        userHandle = String(used.data.userHandle);
        return used;
      },
      async bind(q, user) {
        const v = verified!;
        // Checked at the options too, but several registrations started before any finished would each pass there.
        if ((await credentials.countOfPerson(user.id, q)) >= options.maxPasskeys) throw fail("ERR_PASSKEY_LIMIT_REACHED", `at most ${options.maxPasskeys}`);
        const inserted = await credentials.insert(
          {
            credential_id: v.credentialId,
            user_id: user.id,
            user_handle: userHandle,
            public_key: v.publicKey,
            algorithm: v.algorithm,
            counter: v.counter,
            transports: v.transports,
            aaguid: v.aaguid,
            device_type: v.deviceType,
            backed_up: v.backedUp,
            attestation_format: v.attestationFormat,
            name: body.name ?? (v.aaguid ? names[v.aaguid] : undefined) ?? "Passkey",
            created_at: ctx.clock(),
          },
          q,
        );
        // Registered by a concurrent request between the check above and this commit.
        if (!inserted) throw fail("ERR_PASSKEY_CREDENTIAL_EXISTS");
      },
    });
    const row = await credentials.find(verified!.credentialId);
    res.json({ ...result, passkey: row ? info(row) : null });
  });

  router.post("/passkey/options", describeRoute(docs.options), async (req, res) => {
    optionsLimit.consumeLocal(client(req));
    const body = ctx.parse(authenticateOptionsBody, isEmpty(req.body) ? undefined : req.body) ?? {};
    // A plain sign-in has no intent; `link` asks core for one (fresh session), and the proof then
    // attaches (or, with merge, takes in the other person, or re-proves the person's own passkey).
    const link = await ctx.linkIntent(req, { intent: body.intent, merge: body.merge }, res);
    await optionsLimit.consume(client(req));
    const { challenge, expiresAt } = await challenges.issue("authenticate", { req, res }, {}, ctx.db, link);
    const request = await generateAuthenticationOptions({
      rpID: rp.rpId,
      // Discoverable credentials: the authenticator offers the passkeys it holds for this RP id.
      allowCredentials: [],
      userVerification: options.userVerification,
      challenge: Buffer.from(challenge, "base64url"),
      timeout: options.challengeTtl * 1000,
    });
    res.setHeader("Cache-Control", "no-store");
    res.json({ options: request, expiresAt: expiresAt.toISOString() });
  });

  router.post("/passkey/verify", describeRoute(docs.verify), async (req, res) => {
    verifyLimit.consumeLocal(client(req));
    const body = ctx.parse(verifyBody, req.body);
    const { challenge } = checkClientData(body.response.response.clientDataJSON, "webauthn.get", rp);
    let stored: CredentialRow | undefined;
    let counter = 0;
    let backedUp = false;
    const result = await ctx.signInOnce(req, res, {
      limit: { limiter: verifyLimit, key: client(req) },
      async verify() {
        precheckAssertion(body.response, rp, requireUv);
        const row = await credentials.find(body.response.id);
        if (!row) throw fail("ERR_PASSKEY_CREDENTIAL_UNKNOWN");
        stored = row;
        const assertion = await verifyAssertion(body.response, { credentialId: row.credential_id, publicKey: row.public_key, userHandle: row.user_handle, algorithm: row.algorithm }, rp, requireUv, challenge);
        counter = assertion.counter;
        backedUp = assertion.backedUp;
        return {
          network: PASSKEY_NETWORK,
          sourceIdentifier: row.credential_id,
          sourceType: sourceTypeOf({ credentialId: row.credential_id, deviceType: assertion.deviceType, backedUp, transports: row.transports, aaguid: row.aaguid }),
        };
      },
      consume: (q) => challenges.consume("authenticate", challenge, req, q),
      async bind(q, user) {
        const row = stored!;
        // The counter moves forward in the same commit; a concurrent sign-in that moved it past this one makes this a rollback.
        if (await credentials.recordUse(row.credential_id, user.id, counter, backedUp, ctx.clock(), q)) return;
        // Only a holder of the private key gets here (the signature verified) with a live challenge.
        const current = await credentials.find(row.credential_id, q);
        ctx.logger.warn("passkey: the signature counter went backwards; the authenticator may have been cloned (WebAuthn §6.1.1)", {
          credentialId: row.credential_id,
          userId: user.id,
          counter,
          stored: current?.counter ?? row.counter,
        });
        throw fail("ERR_PASSKEY_COUNTER_ROLLBACK");
      },
    });
    res.json(result);
  });

  router.get("/passkey/credentials", describeRoute(docs.list), async (req, res) => {
    const { person } = await signedInPerson(ctx, req, res);
    res.setHeader("Cache-Control", "no-store");
    res.json({ passkeys: (await credentials.ofUsers(person.userIds)).map(info) });
  });

  const credentialId = (req: Request) => {
    const parsed = credentialIdParam.safeParse(req.params.id);
    if (!parsed.success) throw fail("ERR_PASSKEY_NOT_FOUND");
    return parsed.data;
  };

  router.patch("/passkey/credentials/:id", describeRoute(docs.rename), async (req, res) => {
    const { person } = await signedInPerson(ctx, req, res);
    const id = credentialId(req);
    const { name } = ctx.parse(renameBody, req.body);
    const row = await credentials.rename(id, person.userIds, name);
    if (!row) throw fail("ERR_PASSKEY_NOT_FOUND");
    res.json({ passkey: info(row) });
  });

  router.delete("/passkey/credentials/:id", describeRoute(docs.remove), async (req, res) => {
    const { auth, person } = await signedInPerson(ctx, req, res);
    const id = credentialId(req);
    const row = await credentials.find(id);
    if (!row || !person.userIds.includes(row.user_id)) throw fail("ERR_PASSKEY_NOT_FOUND");
    // Step-up: a stolen but stale session cannot remove the person's ways to sign in.
    await ctx.requireFresh(req, res, options.freshAge === undefined ? {} : { maxAge: options.freshAge });
    if (row.user_id === auth.user.id) throw AuthError.of("ERR_IDENTITY_IN_USE", { detail: "this session signed in with this passkey; sign in another way to delete it" });
    const last = () => AuthError.of("ERR_IDENTITY_LAST", { detail: "this passkey is the last way to sign in; add another first" });
    if (person.userIds.length <= 1) throw last();
    await ctx.db.transaction(async (tx) => {
      // Two sessions of the person each removing the other's way to sign in at once (this delete, or
      // core's unlink of a wallet) would both pass the checks above and leave none: core's lock of the
      // person, which its link, merge and unlink take too, then the checks again on the person as it
      // is now. A session that the other removal ended meanwhile removes nothing (401).
      const now = await signableIds((await ctx.lockPerson(tx, auth)).identities, tx);
      if (!now.includes(row.user_id)) throw fail("ERR_PASSKEY_NOT_FOUND");
      if (now.length <= 1) throw last();
      if (!(await credentials.remove(id, now, tx))) throw fail("ERR_PASSKEY_NOT_FOUND");
      // A passkey deleted because its device was lost must not leave that device signed in.
      await ctx.revokeSessions(row.user_id, { db: tx });
    });
    res.status(204).end();
  });
}
