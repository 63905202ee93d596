import { AuthError, type ProviderContext, type RequestAuth } from "@erebus/core";
import type { Request, Response } from "express";
import { fail } from "./errors.js";

/**
 * What this provider needs of core's people model (issue 13), in one place. Core's stage 2
 * (`req.auth.personId`, `ctx.linkIntent`, `session.authenticatedAt`, `auth.requireFresh`) is not in
 * `@erebus/core` yet; until it is, a person is the one identity that signed in, a session's last
 * proof is its sign-in (sessions rotate at every sign-in), and adding a passkey to a signed-in
 * person is refused (`ERR_PASSKEY_LINK_UNAVAILABLE`) rather than silently made a new person.
 * When stage 2 lands, the switch is this file.
 */
export interface Person {
  /** The person's id (today: the signed-in identity's id). */
  id: string;
  /** Ids of every identity (`user_references` row) of the person. */
  userIds: string[];
}

type WithPeople = RequestAuth & { personId?: string; session?: { authenticatedAt?: Date } };

/** The signed-in person, from a session (a program's API key does not manage passkeys). */
export async function signedInPerson(ctx: ProviderContext, req: Request, res: Response): Promise<{ auth: RequestAuth; person: Person }> {
  const auth = (await ctx.requireUser(req, res)) as WithPeople;
  if (auth.via !== "session") throw AuthError.of("ERR_UNAUTHENTICATED", { detail: "passkeys are managed from a signed-in browser session" });
  if (typeof auth.personId === "string") {
    // People (stage 2): every identity sharing the person id. Read only; core owns the table.
    const { rows } = await ctx.db.query<{ id: string }>("SELECT id FROM user_references WHERE person_id = $1 AND is_active", [auth.personId]);
    return { auth, person: { id: auth.personId, userIds: rows.map((r) => r.id) } };
  }
  return { auth, person: { id: auth.user.id, userIds: [auth.user.id] } };
}

/** Step-up: the session must have proven a credential within `maxAge` seconds (core's `requireFresh`, once it has one). */
export function requireFresh(ctx: ProviderContext, auth: RequestAuth, maxAge: number): void {
  const session = (auth as WithPeople).session;
  const provedAt = session?.authenticatedAt ?? session?.createdAt;
  if (!provedAt || ctx.clock().getTime() - new Date(provedAt).getTime() > maxAge * 1000) {
    throw fail("ERR_PASSKEY_REAUTH_REQUIRED", `sign in again: the last proof is older than ${maxAge} s`);
  }
}

/** Who is signed in on this request, if anyone (a bad cookie is nobody; a bad Bearer token fails). */
export async function currentAuth(ctx: ProviderContext, req: Request, res: Response): Promise<RequestAuth | null> {
  const auth = await ctx.authenticate(req, res);
  return auth?.via === "session" ? auth : null;
}

/** A link intent for "add a passkey to the signed-in person": core's, once it has them. */
export function linkIntent(ctx: ProviderContext, req: Request): never {
  void ctx;
  void req;
  throw fail("ERR_PASSKEY_LINK_UNAVAILABLE");
}
