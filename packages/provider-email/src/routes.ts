import { AuthError, describeRoute, sendPage, signInResultSchema, type LinkIntent, type ProviderContext, type RouteDoc, type SignInResult, type UserReference, type VerifiedIdentity } from "@erebus/core/provider";
import type { Request, Response, Router } from "express";
import * as z from "zod";
import { emailErrors } from "./errors.js";
import type { ResolvedEmailOptions } from "./options.js";
import { emailSchema, mailboxProvider, type EmailSourceType } from "./source-type.js";
import { codeMail, escapeHtml, linkMail } from "./templates.js";
import { createTokenStore, LINK_TOKEN } from "./tokens.js";
import type { OutgoingMail } from "./transport.js";

const startBody = z.strictObject({
  email: z.string().max(320),
  mode: z.enum(["link", "code"]).default("link"),
  /** `link`: add the address to the signed-in person (a fresh session) instead of signing in with it. */
  intent: z.enum(["sign-in", "link", "reauthenticate"]).optional(),
  /** With `intent: "link"`: when the address already belongs to another person, take that person in. */
  merge: z.boolean().optional(),
});
/** The explicit choice to leave the account this browser is signed in with: `switch=1` (form) or `true`. */
const switchFlag = z.union([z.literal("1"), z.literal(true)]).optional();
const verifyBody = z.union([
  z.strictObject({ token: z.string().max(128), email: z.string().max(320).optional(), switch: switchFlag }),
  z.strictObject({ email: z.string().max(320), code: z.string().regex(/^\d{6}$/, "must be 6 digits"), switch: switchFlag }),
]);

const tokenErrors = ["ERR_EMAIL_TOKEN_INVALID", "ERR_EMAIL_TOKEN_USED", "ERR_EMAIL_TOKEN_EXPIRED", "ERR_EMAIL_TOKEN_SUPERSEDED"];
const docs = {
  start: {
    summary: "Email sign-in: send a magic link or a one-time code",
    description:
      "Always the same 202, whether or not the address is known; sends per address are capped silently. intent: link (a fresh session) mails a link or code that adds the address to the signed-in person.",
    body: startBody,
    responses: { 202: { description: "accepted", schema: z.object({ ok: z.literal(true), mode: z.enum(["link", "code"]) }) } },
    errors: ["ERR_EMAIL_INVALID", "ERR_UNAUTHENTICATED", "ERR_REAUTH_REQUIRED"],
  },
  confirmPage: {
    summary: "Email sign-in: the page a magic link opens",
    description: "Names the address the link signs into and asks to press a button; never uses the token up (mail scanners follow links).",
    query: z.object({ token: z.string() }),
    responses: { 200: { description: "the confirm page", contentType: "text/html" }, 400: { description: "a malformed link", contentType: "text/html" } },
  },
  verify: {
    summary: "Email sign-in: use a link's token or a code, and start a session",
    description: "JSON or an HTML form (the confirm page). switch: the explicit choice to leave the account this browser is signed in as.",
    body: verifyBody,
    form: true,
    responses: { 200: { description: "signed in", schema: signInResultSchema }, 303: { description: "signed in from the confirm page's form" } },
    errors: [...tokenErrors, "ERR_EMAIL_INVALID", "ERR_EMAIL_CODE_INVALID", "ERR_EMAIL_CODE_EXPIRED", "ERR_EMAIL_CODE_ATTEMPTS", "ERR_EMAIL_CODE_LOCKED", "ERR_EMAIL_SWITCH_REQUIRED", "ERR_USER_DEACTIVATED", "ERR_LINK_SESSION_MISMATCH", "ERR_REAUTH_IDENTITY_FOREIGN", "ERR_IDENTITY_LINKED_ELSEWHERE", "ERR_IDENTITY_LIMIT", "ERR_LINK_CONFLICT"],
  },
} satisfies Record<string, RouteDoc>;

/** The confirm and failure pages: core's self-contained page (no scripts, never framed, no Referer: the URL carries the token). */
const page = (res: Response, status: number, title: string, body: string) => sendPage(res, status, title, body);

/** How a signed-in identity is named on the confirm page. */
const describeUser = (user: UserReference) => user.email ?? `${user.network} ${user.source_identifier}`;

export function emailRoutes(router: Router, ctx: ProviderContext, options: ResolvedEmailOptions): void {
  const tokens = createTokenStore(ctx, options);
  // Stored as `email:<name>` (core prefixes the provider id).
  const perClient = ctx.rateLimit({ name: "start-client", points: options.rateLimit.perClient, duration: 60 });
  const perAddress = ctx.rateLimit({ name: "start-address", points: options.rateLimit.perAddress, duration: 15 * 60 });
  const verifyLimit = ctx.rateLimit({ name: "verify-client", points: options.rateLimit.verifyPerClient, duration: 60 });
  const verifyUrl = ctx.url("/email/verify");
  const verifyPath = new URL(verifyUrl).pathname;
  /** Addresses in logs and limiter keys: a hash, never the address in the clear. */
  const hashed = (email: string) => ctx.hash(email).slice(0, 32);

  const parseEmail = (value: string) => {
    const parsed = emailSchema.safeParse(value);
    if (!parsed.success) throw emailErrors.create("ERR_EMAIL_INVALID", { extensions: { field: "email" } });
    return parsed.data;
  };

  /**
   * Issues a link or code when a mail of this kind may go to the address now, counting the send on
   * the address's limit in the same commit; `undefined` past the limit. Never a 429: the caller is
   * usually not the address's owner, and a 429 would let anyone deny the owner sign-in. Counted per
   * kind, so a flood of code requests does not stop links.
   */
  async function issueIfAllowed(email: string, mode: "link" | "code", link: LinkIntent | undefined) {
    try {
      // Keyed by a hash: the limiter's table need not hold addresses. Past the limit the count and
      // the issue roll back together: nothing is issued, and the counter is already full.
      return await tokens.issue(email, mode, link, (tx) => perAddress.consumeIn(tx, `${mode}:${hashed(email)}`));
    } catch (error) {
      if (error instanceof AuthError && error.code === "ERR_RATE_LIMITED") return undefined;
      throw error;
    }
  }

  /**
   * The identity this browser is signed in with, when it is not `email`'s: signing in with a link
   * would replace it, which is what a login-CSRF with a forwarded link relies on.
   */
  async function otherAccount(req: Request, res: Response, email: string): Promise<UserReference | null> {
    const auth = await ctx.authenticate(req, res);
    if (!auth || auth.via !== "session") return null;
    if (auth.user.network === "email" && auth.user.source_identifier === email) return null;
    return auth.user;
  }

  function confirmPage(res: Response, status: number, token: string, email: string, current: UserReference | null, code?: string): void {
    const form = (fields: string, label: string) =>
      `<form method="post" action="${escapeHtml(verifyPath)}"><input type="hidden" name="token" value="${escapeHtml(token)}">${fields}<button type="submit">${label}</button></form>`;
    const address = `<strong>${escapeHtml(email)}</strong>`;
    if (!current) {
      return page(
        res,
        status,
        `Sign in to ${options.appName}`,
        `<h1>Sign in to ${escapeHtml(options.appName)}</h1><p>This link signs you in as ${address}.</p><p>Press the button to finish signing in on this device.</p>
${form("", "Sign in")}`,
      );
    }
    const who = `<strong>${escapeHtml(describeUser(current))}</strong>`;
    page(
      res,
      status,
      `Sign in to ${options.appName}`,
      `<h1>Sign in to ${escapeHtml(options.appName)}</h1><p>This link signs you in as ${address}.</p>
<p>This browser is signed in as ${who}. Continuing signs you out of it. If you did not ask for this link yourself, stop here: someone may be trying to sign you into their account.</p>
${form(`<input type="hidden" name="switch" value="1">`, `Sign out and sign in as ${escapeHtml(email)}`)}${code ? `<p><code>${escapeHtml(code)}</code></p>` : ""}
<p><a href="${escapeHtml(options.successRedirect)}">Stay signed in as ${escapeHtml(describeUser(current))}</a></p>`,
    );
  }

  /** The confirm page of a link that adds its address to the person who asked (no switch: the session stays). */
  function linkPage(res: Response, token: string, email: string): void {
    page(
      res,
      200,
      `Add an address to your ${options.appName} account`,
      `<h1>Add ${escapeHtml(email)}</h1><p>This link adds <strong>${escapeHtml(email)}</strong> as a way to sign in to the ${escapeHtml(options.appName)} account that asked for it. It works only in the browser where you asked, while you are signed in there.</p>
<form method="post" action="${escapeHtml(verifyPath)}"><input type="hidden" name="token" value="${escapeHtml(token)}"><button type="submit">Add this address</button></form>`,
    );
  }

  router.post("/email/start", describeRoute(docs.start), perClient.middleware(), async (req, res) => {
    const body = ctx.parse(startBody, req.body);
    const email = parseEmail(body.email);
    // Adding the address to the signed-in person: a fresh session only (401 / 403 otherwise); the
    // link or code then attaches the address, and only when used from this same session.
    const link = await ctx.linkIntent(req, { intent: body.intent, merge: body.merge }, res);
    // The same answer whether or not anything is sent: nothing is looked up about the user, and a
    // capped address gets the same 202.
    let mail: OutgoingMail | undefined;
    const issued = await issueIfAllowed(email, body.mode, link);
    if (issued) {
      const { secret } = issued;
      mail =
        body.mode === "link"
          ? linkMail(options.appName, email, `${verifyUrl}?token=${secret}`, options.linkTtl)
          : codeMail(options.appName, email, secret, options.codeTtl);
    }
    res.status(202).json({ ok: true, mode: body.mode });
    if (!mail) {
      ctx.logger.debug("email not sent: address over its send limit", { to: hashed(email), mode: body.mode });
      return;
    }
    // Sent after answering, not awaited: SMTP latency and failures are not visible to the caller either.
    options.transport.send(mail).catch((error: Error) =>
      ctx.logger.error("email not sent", { to: hashed(email), mode: body.mode, error: error.message }),
    );
  });
  // The link in the mail lands here. GET never uses the token up: mail scanners and link previews
  // follow links. The page names the address the link signs into; the person presses the button,
  // which POSTs the token.
  router.get("/email/verify", describeRoute(docs.confirmPage), verifyLimit.middleware(), async (req, res) => {
    const token = typeof req.query.token === "string" ? req.query.token : "";
    if (!LINK_TOKEN.test(token)) {
      return page(res, 400, "Invalid link", `<h1>This link is not valid</h1><p>Ask for a new sign-in link.</p>`);
    }
    let target: Awaited<ReturnType<typeof tokens.peekLink>>;
    try {
      target = await tokens.peekLink(token);
    } catch (error) {
      if (!(error instanceof AuthError) || error.status >= 500) throw error;
      return failurePage(res, error);
    }
    if (target.link) return linkPage(res, token, target.email);
    confirmPage(res, 200, token, target.email, await otherAccount(req, res, target.email));
  });

  /** The identity a used link or code proves (the address is verified by the use itself). */
  const identityOf = (email: string, method: "link" | "code"): VerifiedIdentity => {
    const sourceType: EmailSourceType = {
      type: "email_auth",
      verified: true,
      provider: mailboxProvider(email),
      metadata: { last_login: ctx.clock().toISOString(), method },
    };
    return { network: "email", sourceIdentifier: email, email, sourceType };
  };

  // The client's limit is counted in a commit of its own (the middleware), not in signInOnce's
  // (`limit`): core's use-up commit takes the limit's row after the secret's locks, its sign-in
  // commit before them, and two tries of one address's code from one client then deadlock on
  // PostgreSQL (a 500; the "parallel wrong codes" test found it).
  router.post("/email/verify", describeRoute(docs.verify), verifyLimit.middleware(), async (req: Request, res: Response) => {
    const isForm = Boolean(req.is("application/x-www-form-urlencoded"));
    let body: z.infer<typeof verifyBody> | undefined;
    try {
      body = ctx.parse(verifyBody, req.body);
      let result: SignInResult;
      if ("token" in body) {
        const token = body.token;
        const expected = body.email === undefined ? undefined : parseEmail(body.email);
        // Login CSRF (a victim opening the attacker's link is signed in as the attacker): replacing
        // the account this browser is signed in with takes an explicit switch. Checked before the
        // token is used, so a refusal leaves both the link and the session as they were.
        // A link that adds its address to a person (a link intent) replaces no session: core
        // attaches it, and only for the very session that asked.
        const { email: target, link } = await tokens.peekLink(token, expected);
        if (!link && body.switch === undefined && (await otherAccount(req, res, target))) {
          throw emailErrors.create("ERR_EMAIL_SWITCH_REQUIRED", { extensions: { email: target } });
        }
        // One commit: the link used up (and the address's other links and codes ended), the
        // identity and the session; a failure still uses the link up, alone.
        result = await ctx.signInOnce(req, res, {
          verify: () => identityOf(target, "link"),
          consume: (q) => tokens.consumeLink(q, token, { expected, peeked: target }),
        });
      } else {
        const email = parseEmail(body.email);
        const code = body.code;
        // The code is the proof, and checking it uses a try: it is checked in the commit. A wrong
        // code rolls that back, and signInOnce counts the try again in a commit of its own.
        result = await ctx.signInOnce(req, res, {
          verify: () => identityOf(email, "code"),
          consume: (q) => tokens.consumeCode(q, email, code),
        });
      }
      if (isForm) return res.redirect(303, options.successRedirect);
      res.json(result);
    } catch (error) {
      if (!isForm || !(error instanceof AuthError) || error.status >= 500) throw error;
      if (error.code === "ERR_EMAIL_SWITCH_REQUIRED" && body && "token" in body) {
        // The page again, with the choice to switch spelled out.
        const email = String(error.extensions.email);
        return confirmPage(res, 409, body.token, email, await otherAccount(req, res, email), error.code);
      }
      failurePage(res, error);
    }
  });
}

function failurePage(res: Response, error: AuthError): void {
  page(res, error.status, "Sign-in failed", `<h1>Sign-in failed</h1><p>${escapeHtml(error.title)}.</p><p><code>${escapeHtml(error.code)}</code></p>`);
}
