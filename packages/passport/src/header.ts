import { isPgText, type ProviderAuthResult, type ProviderContext } from "@erebus/core/provider";
import type { Request } from "express";
import { runStrategy } from "./drive.js";
import { mapIdentity } from "./identity.js";
import type { ResolvedPassportOptions } from "./options.js";
import { refusalOf } from "./outcome.js";

/** `info.scope` as Passport bearer strategies hand it over: `"read write"`, or `["read", "write"]`. */
function scopesOf(info: unknown): string[] {
  const scope = (info as { scope?: unknown } | null | undefined)?.scope;
  if (typeof scope === "string") return scope.split(/[\s,]+/).filter(Boolean);
  if (Array.isArray(scope)) return scope.filter((s): s is string => typeof s === "string");
  return [];
}

/**
 * The provider's header authenticator: core runs it on every request, so it looks at its header
 * first and runs the strategy only when the request carries one (no credential → not mine, `null`).
 * `success` → the identity's row (created on first use; later requests only read it, so a
 * credential costs no write per request); `pass` → not mine; `fail` → 401 problem+json, or, with
 * `fallThrough`, not mine (core's Bearer sessions share `Authorization`, and core refuses a Bearer
 * token nobody recognises with its own 401).
 */
export function headerAuthenticator(ctx: ProviderContext, options: ResolvedPassportOptions) {
  const header = options.header!;
  const label = options.strategy.name ?? options.id;
  const prefix = header.scheme ? new RegExp(`^${header.scheme}\\s`, "i") : undefined;
  return async function authenticate(req: Request): Promise<ProviderAuthResult | null> {
    const value = req.headers[header.name];
    if (typeof value !== "string" || value === "" || (prefix && !prefix.test(value))) return null;
    const outcome = await runStrategy(options.strategy, req, { ...options.authenticateOptions }, { timeout: options.timeout, logger: ctx.logger, label });
    if (outcome.action === "pass") return null;
    if (outcome.action !== "success") {
      // Core checks only a Bearer value in Authorization itself: a refused Basic (or JWT, …) one left
      // to it would run anonymous, or as the session cookie.
      if (outcome.action === "fail" && options.fallThrough && (header.name !== "authorization" || /^bearer(?:\s|$)/i.test(value))) return null;
      throw refusalOf(outcome, "header", ctx.logger, label);
    }
    const identity = await mapIdentity(options.toIdentity, outcome.user, outcome.info);
    // A string PostgreSQL refuses goes straight to resolveIdentity, which answers 400 for it.
    const known = isPgText(identity.network) && isPgText(identity.sourceIdentifier) ? await ctx.findUser(identity.network, identity.sourceIdentifier) : null;
    const user = known ?? (await ctx.resolveIdentity(identity));
    const scopes = options.scopes ? options.scopes(outcome.user, outcome.info) : scopesOf(outcome.info);
    return { user, via: `passport:${options.id}`, scopes, credentialId: `${options.id}:${identity.sourceIdentifier}` };
  };
}
