import { AuthError, type LinkIntent, type ProviderContext, type Queryable, type RequestAuth } from "@erebus/core/provider";
import { PASSKEY_NETWORK } from "./source-type.js";
import type { Request, Response } from "express";

/**
 * What this provider needs of core's people model (issue 13), in one place: the signed-in person,
 * their identities that can still sign in, and core's link intent for adding a passkey. (Step-up,
 * `intent: "reauthenticate"`, goes through core's `ctx.linkIntent` in routes.ts.) The person's
 * identities are read with SQL because the provider context offers no look-up of a person.
 */
export interface Person {
  id: string;
  /** Ids of the person's active identities that can still sign in (a passkey identity whose passkey was deleted cannot). */
  userIds: string[];
}

/** The signed-in person, from a session (a program's API key does not manage passkeys). */
export async function signedInPerson(ctx: ProviderContext, req: Request, res: Response): Promise<{ auth: RequestAuth; person: Person }> {
  const auth = await ctx.requireUser(req, res);
  if (auth.via !== "session") throw AuthError.of("ERR_UNAUTHENTICATED", { detail: "passkeys are managed from a signed-in browser session" });
  // Read only: core owns the table; a person is the identities sharing its person_id (its API keys'
  // rows are not ways for it to sign in), as ctx.lockPerson reads them under the lock.
  const { rows } = await ctx.db.query<{ id: string; network: string; is_active: boolean | null }>(
    "SELECT id, network, is_active FROM user_references WHERE person_id = $1 AND user_type <> 'api' ORDER BY created_at, id",
    [auth.personId],
  );
  return { auth, person: { id: auth.personId, userIds: await signableIds(rows, ctx.db) } };
}

/**
 * Of a person's identities (as `ctx.lockPerson` hands them), the ids of those that can still sign
 * in: active, and for a passkey identity, with its passkey not deleted. On `q` (the caller's transaction).
 */
export async function signableIds(identities: readonly { id: string; network: string; is_active: boolean | null }[], q: Queryable): Promise<string[]> {
  const passkeys = identities.filter((u) => u.network === PASSKEY_NETWORK).map((u) => u.id);
  const { rows } = passkeys.length
    ? await q.query<{ user_id: string }>("SELECT DISTINCT user_id FROM erebus_passkey_credentials WHERE user_id = ANY($1::uuid[])", [passkeys])
    : { rows: [] };
  const withPasskey = new Set(rows.map((r) => r.user_id));
  return identities.filter((u) => u.is_active !== false && (u.network !== PASSKEY_NETWORK || withPasskey.has(u.id))).map((u) => u.id);
}

/** Core's link intent for "add a passkey to the signed-in person": 401 without a session, 403 `ERR_REAUTH_REQUIRED` when it is stale. */
export async function linkIntent(ctx: ProviderContext, req: Request, res: Response): Promise<LinkIntent> {
  const intent = await ctx.linkIntent(req, { intent: "link" }, res);
  if (!intent) throw AuthError.of("ERR_UNAUTHENTICATED");
  return intent;
}

