import { createHash } from "node:crypto";
import { AuthError, type ProviderContext } from "@erebus/core";
import type { Request, Response, Router } from "express";
import * as z from "zod";
import { emailErrors } from "./errors.js";
import type { ResolvedEmailOptions } from "./options.js";
import { emailSchema, mailboxProvider, type EmailSourceType } from "./source-type.js";
import { codeMail, escapeHtml, linkMail } from "./templates.js";
import { createTokenStore, LINK_TOKEN } from "./tokens.js";

const startBody = z.strictObject({ email: z.string().max(320), mode: z.enum(["link", "code"]).default("link") });
const verifyBody = z.union([
  z.strictObject({ token: z.string().max(128), email: z.string().max(320).optional() }),
  z.strictObject({ email: z.string().max(320), code: z.string().regex(/^\d{6}$/, "must be 6 digits") }),
]);

/** A small self-contained page: no scripts, no third-party anything, never framed, never cached. */
function page(res: Response, status: number, title: string, body: string): void {
  res
    .status(status)
    .set({
      "Content-Type": "text/html; charset=utf-8",
      // The URL carries the token: it must not leak to another site through Referer.
      "Referrer-Policy": "no-referrer",
      "Cache-Control": "no-store",
      "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
      "X-Content-Type-Options": "nosniff",
    })
    .send(`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>${escapeHtml(title)}</title>
<style>body{font-family:system-ui,sans-serif;color:#1d1d24;background:#f6f5f2;max-width:28rem;margin:4rem auto;padding:0 1rem}
button{font:inherit;padding:.6rem 1.4rem;cursor:pointer}</style></head><body>${body}</body></html>`);
}

const hashed = (email: string) => createHash("sha256").update(email).digest("hex").slice(0, 32);

export function emailRoutes(router: Router, ctx: ProviderContext, options: ResolvedEmailOptions): void {
  const tokens = createTokenStore(ctx, options);
  const perClient = ctx.rateLimit({ name: "email-start-client", points: options.rateLimit.perClient, duration: 60 });
  const perAddress = ctx.rateLimit({ name: "email-start-address", points: options.rateLimit.perAddress, duration: 15 * 60 });
  const verifyLimit = ctx.rateLimit({ name: "email-verify-client", points: 60, duration: 60 });
  const verifyPath = `${ctx.basePath === "/" ? "" : ctx.basePath}/email/verify`;

  const parseEmail = (value: string) => {
    const parsed = emailSchema.safeParse(value);
    if (!parsed.success) throw emailErrors.create("ERR_EMAIL_INVALID", { extensions: { field: "email" } });
    return parsed.data;
  };

  router.post("/email/start", perClient.middleware(), async (req, res) => {
    const body = ctx.parse(startBody, req.body);
    const email = parseEmail(body.email);
    // Keyed by a hash: the limiter's table need not hold addresses.
    await perAddress.consume(hashed(email));
    // The same work for every address, known or not: nothing is looked up about the user here.
    const { secret } = await tokens.issue(email, body.mode);
    const mail =
      body.mode === "link"
        ? linkMail(options.appName, email, `${ctx.baseURL.origin}${verifyPath}?token=${secret}`, options.linkTtl)
        : codeMail(options.appName, email, secret, options.codeTtl);
    res.status(202).json({ ok: true, mode: body.mode });
    // Sent after answering, not awaited: SMTP latency and failures are not visible to the caller either.
    options.transport.send(mail).catch((error: Error) =>
      ctx.logger.error("email not sent", { to: hashed(email), mode: body.mode, error: error.message }),
    );
  });

  // The link in the mail lands here. GET never uses the token up: mail scanners and link previews
  // follow links. The person presses the button, which POSTs the token.
  router.get("/email/verify", (req, res) => {
    const token = typeof req.query.token === "string" ? req.query.token : "";
    if (!LINK_TOKEN.test(token)) {
      return page(res, 400, "Invalid link", `<h1>This link is not valid</h1><p>Ask for a new sign-in link.</p>`);
    }
    page(
      res,
      200,
      `Sign in to ${options.appName}`,
      `<h1>Sign in to ${escapeHtml(options.appName)}</h1><p>Press the button to finish signing in on this device.</p>
<form method="post" action="${escapeHtml(verifyPath)}"><input type="hidden" name="token" value="${escapeHtml(token)}"><button type="submit">Sign in</button></form>`,
    );
  });

  router.post("/email/verify", verifyLimit.middleware(), async (req: Request, res: Response) => {
    const isForm = Boolean(req.is("application/x-www-form-urlencoded"));
    try {
      const body = ctx.parse(verifyBody, req.body);
      let email: string;
      let method: "link" | "code";
      if ("token" in body) {
        email = await tokens.consumeLink(body.token, body.email === undefined ? undefined : parseEmail(body.email));
        method = "link";
      } else {
        email = parseEmail(body.email);
        await tokens.consumeCode(email, body.code);
        method = "code";
      }
      const sourceType: EmailSourceType = {
        type: "email_auth",
        verified: true,
        provider: mailboxProvider(email),
        metadata: { last_login: ctx.clock().toISOString(), method },
      };
      const user = await ctx.resolveIdentity({ network: "email", sourceIdentifier: email, email, sourceType });
      const result = await ctx.signIn(req, res, user);
      if (isForm) return res.redirect(303, options.successRedirect);
      res.json(result);
    } catch (error) {
      if (!isForm || !(error instanceof AuthError) || error.status >= 500) throw error;
      page(res, error.status, "Sign-in failed", `<h1>Sign-in failed</h1><p>${escapeHtml(error.title)}.</p><p><code>${escapeHtml(error.code)}</code></p>`);
    }
  });
}
