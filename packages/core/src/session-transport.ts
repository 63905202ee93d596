import type { Request, Response } from "express";
import { parse as parseCookies, serialize as serializeCookie } from "cookie";
import type { Queryable } from "./db/types.js";
import { AuthError } from "./errors.js";
import { bearerToken } from "./http.js";
import type { ResolvedOptions } from "./options.js";
import type { SignInResult } from "./provider.js";
import type { Session, SessionStore } from "./sessions.js";
import type { UserReference } from "./users.js";

/** For a check made without a response at hand: its cookie writes (a refresh, clearing a bad cookie) are dropped, the answer is the same. */
export const noResponse = { append: () => undefined, setHeader: () => undefined } as unknown as Response;

/** Header a non-browser client sends to receive the session token in the body instead of a cookie. */
export const SESSION_TRANSPORT_HEADER = "erebus-session-transport";

/** How a session travels: the cookie (browsers) or the body and `Authorization: Bearer` (programs). */
export function createSessionTransport(options: ResolvedOptions, sessions: SessionStore) {
  const secure = options.baseURL.protocol === "https:";
  const cookieName = options.session.cookieName ?? (secure ? "__Host-erebus_session" : "erebus_session");
  const cookieSecure = secure || options.production;

  function sessionCookie(token: string, expiresAt: Date): string {
    return serializeCookie(cookieName, token, { httpOnly: true, sameSite: "lax", secure: cookieSecure, path: "/", expires: expiresAt });
  }
  function clearCookie(res: Response): void {
    res.append("Set-Cookie", serializeCookie(cookieName, "", { httpOnly: true, sameSite: "lax", secure: cookieSecure, path: "/", maxAge: 0 }));
  }
  function cookieToken(req: Request): string | undefined {
    const header = req.headers.cookie;
    if (!header) return undefined;
    try {
      return parseCookies(header)[cookieName] || undefined;
    } catch {
      return undefined;
    }
  }
  const wantsBearer = (req: Request) => String(req.headers[SESSION_TRANSPORT_HEADER] ?? "").toLowerCase() === "bearer";

  /** The session token the request presents (Bearer first, then the cookie), if any. */
  function requestToken(req: Request): string | undefined {
    const bearer = bearerToken(req);
    return typeof bearer === "string" ? bearer : cookieToken(req);
  }

  /** Ends the request's own session(s) and starts a new one, on `q`; the response is written by the caller after commit. */
  async function issueSession(q: Queryable, req: Request, user: UserReference): Promise<{ token: string; session: Session; previous: string[] }> {
    if (user.is_active === false) throw AuthError.of("ERR_USER_DEACTIVATED");
    // Rotate: whatever session the request came with ends here (session fixation, OWASP ASVS 3.2.1).
    const previous = [cookieToken(req), bearerToken(req)].filter((t): t is string => typeof t === "string");
    for (const token of previous) await sessions.revoke(token, q);
    const { token, session } = await sessions.create(user.id, { userAgent: req.headers["user-agent"], ip: req.ip }, q);
    return { token, session, previous };
  }

  function signInResponse(req: Request, res: Response, user: UserReference, token: string, session: Session): SignInResult {
    const body: SignInResult = { user, session: { id: session.id, expiresAt: session.expiresAt.toISOString() } };
    if (wantsBearer(req)) {
      body.session.token = token;
    } else {
      res.append("Set-Cookie", sessionCookie(token, session.expiresAt));
    }
    res.setHeader("Cache-Control", "no-store");
    return body;
  }

  return { secure, cookieName, sessionCookie, clearCookie, cookieToken, requestToken, wantsBearer, issueSession, signInResponse };
}

export type SessionTransport = ReturnType<typeof createSessionTransport>;
