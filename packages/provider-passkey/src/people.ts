import { AuthError, type LinkIntent, type ProviderContext, type RequestAuth } from "@erebus/core/provider";
import type { Request, Response } from "express";
import { fail } from "./errors.js";

/**
 * What this provider needs of core's people model (issue 13), in one place. Core has `personId`
 * and `session.authenticatedAt`; until it has `ctx.linkIntent` (stage 2), adding a passkey to a
 * signed-in person is refused (`ERR_PASSKEY_LINK_UNAVAILABLE`) rather than silently made a new
 * person. When it lands, the switch is this file.
 */
export interface Person {
  id: string;
  /** Ids of every active identity (`user_references` row) of the person. */
  userIds: string[];
}

/** The signed-in person, from a session (a program's API key does not manage passkeys). */
export async function signedInPerson(ctx: ProviderContext, req: Request, res: Response): Promise<{ auth: RequestAuth; person: Person }> {
  const auth = await ctx.requireUser(req, res);
  if (auth.via !== "session") throw AuthError.of("ERR_UNAUTHENTICATED", { detail: "passkeys are managed from a signed-in browser session" });
  // Read only: core owns the table; a person is the identities sharing its person_id.
  const { rows } = await ctx.db.query<{ id: string }>("SELECT id FROM user_references WHERE person_id = $1 AND is_active ORDER BY created_at, id", [auth.personId]);
  return { auth, person: { id: auth.personId, userIds: rows.map((r) => r.id) } };
}

/** Step-up: the session must have proven a credential within `maxAge` seconds. */
export function requireFresh(ctx: ProviderContext, auth: RequestAuth, maxAge: number): void {
  const provedAt = auth.session?.authenticatedAt ?? auth.session?.createdAt;
  if (!provedAt || ctx.clock().getTime() - new Date(provedAt).getTime() > maxAge * 1000) {
    throw fail("ERR_PASSKEY_REAUTH_REQUIRED", `sign in again: the last proof is older than ${maxAge} s`);
  }
}

/** Who is signed in on this request with a session, if anyone (a bad cookie is nobody; a bad Bearer token fails). */
export async function currentAuth(ctx: ProviderContext, req: Request, res: Response): Promise<RequestAuth | null> {
  const auth = await ctx.authenticate(req, res);
  return auth?.via === "session" ? auth : null;
}

type LinkIntentFn = (req: Request, input: { intent?: unknown; merge?: unknown }, res?: Response) => Promise<LinkIntent | undefined>;

/** Core's link intent for "add a passkey to the signed-in person" (core requires a fresh session), once core has them. */
export async function linkIntent(ctx: ProviderContext, req: Request, res: Response, merge: boolean): Promise<LinkIntent> {
  const create = (ctx as { linkIntent?: LinkIntentFn }).linkIntent;
  if (typeof create !== "function") throw fail("ERR_PASSKEY_LINK_UNAVAILABLE");
  const intent = await create.call(ctx, req, { intent: "link", merge }, res);
  if (!intent) throw fail("ERR_PASSKEY_LINK_UNAVAILABLE");
  return intent;
}
