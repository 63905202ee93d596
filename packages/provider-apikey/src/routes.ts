import { describeRoute, pgText, type ProviderContext, type RequestAuth, type RouteDoc } from "@erebus/core/provider";
import type { Request, Response, Router } from "express";
import * as z from "zod";
import { apiKeyErrors } from "./errors.js";
import { ID_LENGTH } from "./key.js";
import type { ResolvedApiKeyOptions } from "./options.js";
import { scopeSchema } from "./source-type.js";
import { MAX_GRACE_SECONDS, type ApiKeyInfo, type KeyStore } from "./store.js";
import type { createVerifier } from "./verify.js";

const keyId = z.string().regex(new RegExp(`^[0-9A-Za-z]{${ID_LENGTH}}$`));

const keyInfo = z.looseObject({
  id: z.string(),
  name: z.string(),
  prefix: z.string(),
  last4: z.string(),
  scopes: z.array(z.string()),
  userId: z.string(),
  ownerId: z.string().nullable(),
  createdBy: z.string(),
  createdAt: z.string(),
  expiresAt: z.string().nullable(),
  lastUsedAt: z.string().nullable(),
  revokedAt: z.string().nullable(),
  rotatedAt: z.string().nullable(),
  previousValidUntil: z.string().nullable().describe("until when the secret replaced by the last rotation keeps working (null: never rotated)"),
});
const newKey = keyInfo.extend({ key: z.string().describe("the secret, shown this once") });
/** A key presented on a management route is checked (and refused: a session is needed) like anywhere else. */
const keyErrors = ["ERR_APIKEY_MALFORMED", "ERR_APIKEY_CHECKSUM_INVALID", "ERR_APIKEY_INVALID", "ERR_APIKEY_REVOKED", "ERR_APIKEY_EXPIRED", "ERR_APIKEY_ROTATED", "ERR_APIKEY_PEPPER_MISMATCH", "ERR_APIKEY_SESSION_REQUIRED"];
const docs = (createBody: z.ZodType, rotateBody: z.ZodType) =>
  ({
    create: {
      summary: "Create an API key",
      description: "For a signed-in session (never another key). The secret is in the answer this once.",
      auth: ["session"],
      body: createBody,
      responses: { 201: { description: "created", schema: newKey } },
      errors: [...keyErrors, "ERR_APIKEY_LIMIT", "ERR_REAUTH_REQUIRED"],
    },
    list: { summary: "Your API keys (no secrets)", auth: ["session"], responses: { 200: { description: "the keys", schema: z.object({ keys: z.array(keyInfo) }) } }, errors: keyErrors },
    revoke: { summary: "Revoke an API key", auth: ["session"], responses: { 204: { description: "revoked, on every instance at once" } }, errors: [...keyErrors, "ERR_APIKEY_NOT_FOUND"] },
    rotate: {
      summary: "Rotate an API key",
      description: "A new secret. gracePeriodSeconds: 0 stops the old one at once; left out, the provider's rotationGracePeriod.",
      auth: ["session"],
      body: rotateBody,
      responses: { 200: { description: "the new secret", schema: newKey } },
      errors: [...keyErrors, "ERR_APIKEY_NOT_FOUND", "ERR_REAUTH_REQUIRED"],
    },
  }) satisfies Record<string, RouteDoc>;

/**
 * A key as a web user sees it: without the pepper fingerprint, which is an offline oracle for
 * guesses of the pepper and of no use to the key's owner (operators see it in the CLI's listing).
 */
const forWeb = ({ pepperFingerprint: _fingerprint, ...info }: ApiKeyInfo) => info;

export function apiKeyRoutes(router: Router, ctx: ProviderContext, store: KeyStore, verifier: ReturnType<typeof createVerifier>, options: ResolvedApiKeyOptions): void {
  const scopes = z
    .array(options.allowedScopes ? z.enum(options.allowedScopes as [string, ...string[]]) : scopeSchema)
    .max(32)
    .refine((list) => new Set(list).size === list.length, "scopes must not repeat");
  const createBody = z.strictObject({
    name: pgText().trim().min(1).max(64),
    scopes: scopes.default([]),
    expiresInDays: z.number().int().min(1).max(options.maxExpiresInDays).optional(),
  });
  /** `gracePeriodSeconds: 0` is "rotate now" (the old secret stops at once, on every instance); left out, the provider's `rotationGracePeriod`. */
  const rotateBody = z.strictObject({ gracePeriodSeconds: z.number().int().min(0).max(MAX_GRACE_SECONDS).optional() }).default({});
  // Stored as `apikey:create` (core namespaces rate-limit names by provider id).
  const createLimit = ctx.rateLimit({ name: "create", points: options.createPerMinute, duration: 60 });
  const doc = docs(createBody, rotateBody);

  /** Key management is for a person in a browser session: a leaked key must not mint more keys. */
  async function owner(req: Request, res: Response): Promise<RequestAuth> {
    const auth = await ctx.requireUser(req, res);
    if (auth.via !== "session") throw apiKeyErrors.create("ERR_APIKEY_SESSION_REQUIRED");
    return auth;
  }
  /** Minting a secret that acts as the person: a recently proven session, unless the app turned that off. */
  async function freshOwner(req: Request, res: Response): Promise<RequestAuth> {
    const auth = await owner(req, res);
    if (options.freshSession) await ctx.requireFresh(req, res);
    return auth;
  }
  const idParam = (req: Request) => {
    const parsed = keyId.safeParse(req.params.id);
    if (!parsed.success) throw apiKeyErrors.create("ERR_APIKEY_NOT_FOUND");
    return parsed.data;
  };

  router.post("/api-keys", describeRoute(doc.create), createLimit.middleware(), async (req, res) => {
    const auth = await freshOwner(req, res);
    const body = ctx.parse(createBody, req.body);
    const { key, info } = await store.create({ ...body, ownerId: auth.user.id, createdBy: `user:${auth.user.id}` });
    verifier.forgetMiss(info.id); // a remembered miss of this id, here at once (NOTIFY tells the other instances)
    res.setHeader("Cache-Control", "no-store");
    res.status(201).json({ key, ...forWeb(info) });
  });

  router.get("/api-keys", describeRoute(doc.list), async (req, res) => {
    const auth = await owner(req, res);
    res.setHeader("Cache-Control", "no-store");
    res.json({ keys: (await store.list({ personId: auth.personId })).map(forWeb) });
  });

  router.delete("/api-keys/:id", describeRoute(doc.revoke), async (req, res) => {
    const auth = await owner(req, res);
    const id = idParam(req);
    await store.revoke(id, auth.personId);
    verifier.forget(id);
    res.status(204).end();
  });

  router.post("/api-keys/:id/rotate", describeRoute(doc.rotate), async (req, res) => {
    const auth = await freshOwner(req, res);
    const id = idParam(req);
    const body = ctx.parse(rotateBody, req.body ?? {});
    const { key, info } = await store.rotate(id, auth.personId, body.gracePeriodSeconds ?? options.rotationGracePeriod);
    verifier.forget(id);
    res.setHeader("Cache-Control", "no-store");
    res.json({ key, ...forWeb(info) });
  });
}
