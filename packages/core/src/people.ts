import type { Request, Response, Router } from "express";
import * as z from "zod";
import type { Authentication } from "./authentication.js";
import type { Database, Queryable } from "./db/types.js";
import { AuthError } from "./errors.js";
import { bearerToken } from "./http.js";
import type { VerifiedIdentity } from "./identities.js";
import type { Logger } from "./logger.js";
import { describeRoute, personSchema, userReferenceSchema } from "./openapi.js";
import type { ResolvedOptions } from "./options.js";
import type { RequestAuth, SignInResult } from "./provider.js";
import type { RateLimitFactory } from "./rate-limit.js";
import type { SessionCache } from "./session-cache.js";
import { hashToken, type SessionStore } from "./sessions.js";
import type { SessionTransport } from "./session-transport.js";
import type { UpsertIdentity, UserReference } from "./users.js";
import type { LinkIntent } from "./verifications.js";

/** One identity of a person, as the API shows it (no secrets, no provider data). */
export interface PersonIdentity {
  id: string;
  network: string;
  source_identifier: string;
  type: string;
  email: string | null;
  is_active: boolean | null;
  created_at: Date;
}

export interface Person {
  id: string;
  identities: PersonIdentity[];
}

/** What a proof made under a link intent did. */
export type LinkOutcome = "linked" | "merged" | "reauthenticated";

export interface PeopleDeps {
  db: Database;
  options: ResolvedOptions;
  sessions: SessionStore;
  sessionCache: SessionCache;
  transport: SessionTransport;
  authentication: Authentication;
  rateLimit: RateLimitFactory;
  logger: Logger;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * People (DESIGN.md): identities linked to one person only by a proof made in a fresh session that
 * asked for it (a link intent), never by matching emails; merge only when asked; unlink never the
 * last identity nor the one the session signed in with.
 */
export function createPeople(deps: PeopleDeps) {
  const { db, options, sessions, transport, authentication } = deps;
  const { freshAge, maxIdentities, linksPerHour, onMerge } = options.people;
  const perSession = deps.rateLimit({ name: "core:link-session", points: linksPerHour, duration: 3600 });
  const perClient = deps.rateLimit({ name: "core:link-client", points: linksPerHour * 2, duration: 3600 });

  /** The person's sign-in identities (API keys' own rows are the person's keys, not identities). */
  async function person(personId: string, q: Queryable = db): Promise<Person> {
    const { rows } = await q.query<UserReference>(
      "SELECT * FROM user_references WHERE person_id = $1 AND user_type <> 'api' ORDER BY created_at, id",
      [personId],
    );
    return {
      id: personId,
      identities: rows.map((row) => ({
        id: row.id,
        network: row.network,
        source_identifier: row.source_identifier,
        type: row.source_type.type,
        email: row.email,
        is_active: row.is_active,
        created_at: row.created_at,
      })),
    };
  }

  /** A signed-in session (not an API key), however long ago it proved a credential, or 401/403. */
  async function requireSession(req: Request, res: Response): Promise<RequestAuth & { session: NonNullable<RequestAuth["session"]> }> {
    const auth = await authentication.requireAuth(req, res);
    if (auth.via !== "session" || !auth.session) throw AuthError.of("ERR_REAUTH_REQUIRED", { detail: "needs a signed-in session, not an API key" });
    return auth as RequestAuth & { session: NonNullable<RequestAuth["session"]> };
  }

  /** A signed-in session that proved a credential within `maxAge` seconds, or 401/403. */
  async function requireFreshSession(req: Request, res: Response, maxAge = freshAge): Promise<RequestAuth & { session: NonNullable<RequestAuth["session"]> }> {
    const auth = await requireSession(req, res);
    const age = (options.clock().getTime() - auth.session.authenticatedAt.getTime()) / 1000;
    if (age > maxAge) {
      throw AuthError.of("ERR_REAUTH_REQUIRED", { detail: `the session last proved a credential ${Math.floor(age)} s ago; sign in again (at most ${maxAge} s)`, extensions: { maxAge } });
    }
    return auth;
  }

  /** Serialises changes to one person (link, merge, unlink) across instances. */
  const lockPerson = (tx: Queryable, personId: string) => tx.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`erebus_person:${personId}`]);

  /**
   * Takes the lock of the person the session's identity belongs to, then reads again: what was read
   * before the lock may have changed while this waited for it (this identity unlinked or merged
   * away, this session ended), and acting on it would change a person this session is no longer in.
   */
  async function lockSessionPerson(tx: Queryable, sessionId: string, personId: string, ended: () => AuthError): Promise<void> {
    await lockPerson(tx, personId);
    const { rows } = await tx.query<{ person_id: string }>(
      "SELECT u.person_id FROM erebus_sessions s JOIN user_references u ON u.id = s.user_id WHERE s.id = $1 AND s.revoked_at IS NULL",
      [sessionId],
    );
    if (!rows[0]) throw ended();
    if (rows[0].person_id !== personId) throw AuthError.of("ERR_LINK_CONFLICT");
  }

  return {
    person,
    requireFreshSession,

    /**
     * For a provider route that takes away one of a person's ways to sign in (deleting a passkey):
     * core's lock of the session's person until `tx` ends (link, merge and unlink take the same one),
     * then the session and its person read again under it. 401 `ERR_SESSION_INVALID` when the session
     * ended meanwhile (another session of the person removed its identity), 409 `ERR_LINK_CONFLICT`
     * when its identity was moved to another person, 403 `ERR_REAUTH_REQUIRED` for an API key. Returns
     * the person's identities as they are now (not its API keys' rows).
     */
    async lockPerson(tx: Queryable, auth: RequestAuth): Promise<{ personId: string; identities: UserReference[] }> {
      if (auth.via !== "session" || !auth.session) throw AuthError.of("ERR_REAUTH_REQUIRED", { detail: "needs a signed-in session, not an API key" });
      await lockSessionPerson(tx, auth.session.id, auth.personId, () => AuthError.of("ERR_SESSION_INVALID", { detail: "this session ended meanwhile" }));
      // The person's identities as core counts them (its API keys' rows are not ways for a person to sign in).
      const { rows } = await tx.query<UserReference>("SELECT * FROM user_references WHERE person_id = $1 AND user_type <> 'api' ORDER BY created_at, id", [auth.personId]);
      return { personId: auth.personId, identities: rows };
    },

    /**
     * For a provider's start route: `undefined` for a plain sign-in; for `intent: "link"`, checks the
     * session is signed in and fresh, counts the attempt, and returns the intent to store with the
     * single-use secret (`ctx.verifications.issue({ link })`).
     */
    async linkIntent(req: Request, res: Response, input: { intent?: unknown; merge?: unknown } = {}): Promise<LinkIntent | undefined> {
      const intent = input.intent ?? "sign-in";
      if (intent === "sign-in") return undefined;
      if (intent !== "link" && intent !== "reauthenticate") {
        throw AuthError.of("ERR_BODY_INVALID", { detail: 'intent: must be "sign-in", "link" or "reauthenticate"', extensions: { field: "intent" } });
      }
      if (input.merge !== undefined && typeof input.merge !== "boolean") throw AuthError.of("ERR_BODY_INVALID", { detail: "merge: must be a boolean", extensions: { field: "merge" } });
      const reauthenticate = intent === "reauthenticate";
      if (reauthenticate && input.merge === true) throw AuthError.of("ERR_BODY_INVALID", { detail: "merge: only with intent link", extensions: { field: "merge" } });
      // Step-up: a stale session may re-prove an identity it already has (that is how it gets fresh);
      // attaching anything new needs a fresh one.
      const auth = reauthenticate ? await requireSession(req, res) : await requireFreshSession(req, res);
      // A start reached by a top-level GET (an OAuth start) passes the router's origin check as a
      // safe method, and the session cookie rides along: a cross-site page must not make this
      // browser start a link (or a merge). A Bearer token is no ambient credential.
      if (typeof bearerToken(req) !== "string" && String(req.headers["sec-fetch-site"] ?? "").trim().toLowerCase() === "cross-site") {
        throw AuthError.of("ERR_ORIGIN_FORBIDDEN", { detail: "a link can only be started from the app's own pages" });
      }
      await perClient.consume(req.ip ?? "unknown");
      await perSession.consume(auth.session.id);
      const token = transport.requestToken(req)!;
      return {
        sessionHash: hashToken(token),
        sessionId: auth.session.id,
        personId: auth.personId,
        merge: input.merge === true,
        ...(reauthenticate ? { reauthenticate: true } : {}),
      };
    },

    /**
     * Attaches a proven identity to the person whose session asked (inside the sign-in's
     * transaction): a new identity joins; one of the same person refreshes the session's proof
     * (step-up); one of another person is refused unless a merge was asked for, and then that whole
     * person moves here. Any failure rolls the whole attempt back.
     */
    async attach(
      tx: Queryable,
      req: Request,
      identity: VerifiedIdentity,
      link: LinkIntent,
      resolve: UpsertIdentity,
    ): Promise<SignInResult> {
      try {
        return await attachOn(tx, req, identity, link, resolve);
      } catch (error) {
        // Two merges of the same two people in opposite directions: PostgreSQL breaks the deadlock
        // by failing one; that one is told to try again rather than seeing a 500.
        if ((error as { code?: unknown })?.code === "40P01") throw AuthError.of("ERR_LINK_CONFLICT", { cause: error });
        throw error;
      }
    },

    /** Core's people routes: the person's identities, and unlink. */
    routes(router: Router) {
      router.get(
        "/identities",
        describeRoute({
          summary: "The signed-in person's identities",
          auth: ["session", "apiKey"],
          responses: { 200: { description: "the person", schema: z.object({ person: personSchema }) } },
        }),
        authentication.requireUser(),
        async function erebusIdentities(req, res) {
          res.setHeader("Cache-Control", "no-store");
          res.json({ person: await person(req.auth!.personId) });
        },
      );

      router.delete(
        "/identities/:id",
        describeRoute({
          summary: "Unlink an identity from the signed-in person",
          description:
            "Needs a fresh session. Never the person's last identity, nor the one this session signed in with. The identity becomes a person of its own and its sessions end.",
          auth: ["session"],
          responses: { 200: { description: "unlinked; the person as it is now", schema: z.object({ person: personSchema, unlinked: userReferenceSchema }) } },
          errors: ["ERR_REAUTH_REQUIRED", "ERR_IDENTITY_NOT_FOUND", "ERR_IDENTITY_LAST", "ERR_IDENTITY_IN_USE", "ERR_LINK_CONFLICT"],
        }),
        async function erebusUnlink(req, res) {
          const auth = await requireFreshSession(req, res);
          const id = req.params.id;
          if (typeof id !== "string" || !UUID.test(id)) throw AuthError.of("ERR_IDENTITY_NOT_FOUND");
          if (id === auth.user.id) throw AuthError.of("ERR_IDENTITY_IN_USE", { detail: "sign in with another identity of this person to unlink this one" });
          const now = options.clock();
          const result = await db.transaction(async (tx) => {
            const { rows: current } = await tx.query<{ person_id: string }>("SELECT person_id FROM user_references WHERE id = $1", [auth.user.id]);
            const personId = current[0]?.person_id;
            if (!personId) throw AuthError.of("ERR_IDENTITY_NOT_FOUND");
            await lockSessionPerson(tx, auth.session.id, personId, () => AuthError.of("ERR_LINK_CONFLICT", { detail: "this session ended meanwhile" }));
            const { rows } = await tx.query<UserReference>("SELECT * FROM user_references WHERE id = $1 AND person_id = $2 AND user_type <> 'api' FOR UPDATE", [id, personId]);
            const target = rows[0];
            if (!target) throw AuthError.of("ERR_IDENTITY_NOT_FOUND");
            const { rows: counted } = await tx.query<{ n: number }>("SELECT count(*)::int AS n FROM user_references WHERE person_id = $1 AND user_type <> 'api'", [personId]);
            if (counted[0]!.n <= 1) throw AuthError.of("ERR_IDENTITY_LAST");
            // The person keeps its id (apps key their data by it): the unlinked identity gets its own
            // id as person, or a new one when its id is still some person's id (this one's, or one it
            // was unlinked from earlier): taking that id back would join that person without proof.
            const { rows: taken } = await tx.query("SELECT 1 FROM user_references WHERE person_id = $1 AND id <> $1 LIMIT 1", [target.id]);
            const newPerson = target.id === personId || taken.length > 0 ? randomUuid(options.random) : target.id;
            const { rows: moved } = await tx.query<UserReference>("UPDATE user_references SET person_id = $2 WHERE id = $1 RETURNING *", [id, newPerson]);
            await tx.query("UPDATE erebus_sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL", [id, now]);
            return { unlinked: moved[0]!, person: await person(personId, tx) };
          }).catch((error: unknown) => {
            // Lock then row here, row then lock in a merge of the target's person: PostgreSQL breaks
            // the cycle by failing one; this one is told to try again rather than seeing a 500.
            if ((error as { code?: unknown })?.code === "40P01") throw AuthError.of("ERR_LINK_CONFLICT", { cause: error });
            throw error;
          });
          deps.sessionCache.dropUser(id);
          res.setHeader("Cache-Control", "no-store");
          res.json(result);
        },
      );
    },
  };

  async function attachOn(
    tx: Queryable,
    req: Request,
    identity: VerifiedIdentity,
    link: LinkIntent,
    resolve: UpsertIdentity,
  ): Promise<SignInResult> {
    const token = transport.requestToken(req);
    // The proof must come from the very session that asked: a link-intent secret carried to
    // another session or browser (CSRF, a stolen nonce) attaches nothing.
    if (token === undefined || hashToken(token) !== link.sessionHash) throw AuthError.of("ERR_LINK_SESSION_MISMATCH");
    const now = options.clock();
    const { rows: found } = await tx.query<UserReference & { __expires_at: Date }>(
      `SELECT u.*, s.expires_at AS __expires_at FROM erebus_sessions s JOIN user_references u ON u.id = s.user_id
       WHERE s.id = $1 AND s.token_hash = $2 AND s.revoked_at IS NULL AND s.expires_at > $3`,
      [link.sessionId, link.sessionHash, now],
    );
    if (!found[0]) throw AuthError.of("ERR_LINK_SESSION_MISMATCH", { detail: "the session that asked has ended" });
    const { __expires_at: expiresAt, ...session } = found[0];
    if (session.is_active === false) throw AuthError.of("ERR_USER_DEACTIVATED");
    // The person as it is now (a merge since the intent may have moved the session's identity).
    const into = session.person_id;
    await lockSessionPerson(tx, link.sessionId, into, () => AuthError.of("ERR_LINK_SESSION_MISMATCH", { detail: "the session that asked has ended" }));
    const { user: proven, inserted } = await resolve(identity, { db: tx, personId: into });
    // Step-up proves an identity the person already has; anything else rolls back (nothing attached).
    if (link.reauthenticate && (inserted || proven.person_id !== into)) {
      throw AuthError.of("ERR_REAUTH_IDENTITY_FOREIGN", { detail: "prove one of the signed-in person's own identities (or link it first)" });
    }
    let outcome: LinkOutcome = inserted ? "linked" : "reauthenticated";
    if (proven.person_id !== into) {
      const from = proven.person_id;
      const { rows: counted } = await tx.query<{ n: number }>("SELECT count(*)::int AS n FROM user_references WHERE person_id = $1 AND user_type <> 'api'", [from]);
      if (!link.merge) {
        throw AuthError.of("ERR_IDENTITY_LINKED_ELSEWHERE", {
          detail: `this identity belongs to another person with ${counted[0]!.n} identit${counted[0]!.n === 1 ? "y" : "ies"}; link again with merge to take that person in`,
          extensions: { identities: counted[0]!.n },
        });
      }
      await lockPerson(tx, from);
      // Every identity and API key of that person moves, in this one transaction (N outbox events).
      await tx.query("UPDATE user_references SET person_id = $1 WHERE person_id = $2", [into, from]);
      if (onMerge) await onMerge(from, into, { db: tx });
      deps.logger.info("people: merged", { from, into });
      outcome = "merged";
    }
    const { rows: total } = await tx.query<{ n: number }>("SELECT count(*)::int AS n FROM user_references WHERE person_id = $1 AND user_type <> 'api'", [into]);
    if (total[0]!.n > maxIdentities) throw AuthError.of("ERR_IDENTITY_LIMIT", { detail: `a person may have at most ${maxIdentities} identities`, extensions: { max: maxIdentities } });
    // The person just proved a credential in this session: it counts as fresh.
    await sessions.reauthenticated(link.sessionId, tx);
    return {
      user: session,
      session: { id: link.sessionId, expiresAt: expiresAt.toISOString() },
      person: await person(into, tx),
      linked: { ...proven, person_id: into },
      outcome,
    };
  }
}

export type People = ReturnType<typeof createPeople>;

function randomUuid(random: (bytes: number) => Buffer): string {
  const b = Buffer.from(random(16));
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const hex = b.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
