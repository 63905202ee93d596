import { createCipheriv, createDecipheriv, createHash, createHmac } from "node:crypto";
import type { LinkIntent, ProviderContext, VerificationResult } from "@erebus/core/provider";
import type { Request, Response } from "express";
import { passportErrors } from "./errors.js";

/**
 * Redirect sign-ins in flight, on core's single-use store (`ctx.verifications`): the OAuth `state` a
 * strategy sends to its identity provider is the verification's secret (only its hash is stored),
 * bound to the browser that started it (core's HttpOnly cookie), used once, expiring. What the
 * strategy asks to keep with its state (the PKCE verifier, the OpenID Connect nonce context, its own
 * app state) goes in the verification's data, AES-256-GCM sealed with a key derived from the state:
 * `data` is stored as it is, and a read of the table must not yield a verifier or a nonce.
 */
export interface AttemptData {
  /** The second argument of the strategy's `store()`: a PKCE verifier (passport-oauth2) or the OIDC context (passport-openidconnect). */
  kept: unknown;
  /** The strategy's own `state` option, handed back on verify. */
  appState: unknown;
  /** A same-site path to land on. */
  returnTo: string;
}

const PURPOSE = "state";
const sealKey = (handle: string) => createHmac("sha256", handle).update("erebus-passport-attempt").digest();
// One key per state, so a fixed IV derived from it is never reused under that key.
const ivOf = (handle: string) => createHash("sha256").update(`iv:${handle}`).digest().subarray(0, 12);

function seal(handle: string, data: AttemptData): string {
  const cipher = createCipheriv("aes-256-gcm", sealKey(handle), ivOf(handle));
  const body = Buffer.concat([cipher.update(JSON.stringify(data), "utf8"), cipher.final()]);
  return `${body.toString("base64url")}.${cipher.getAuthTag().toString("base64url")}`;
}
function unseal(handle: string, sealed: unknown): AttemptData {
  const [body, tag] = String(sealed).split(".");
  const decipher = createDecipheriv("aes-256-gcm", sealKey(handle), ivOf(handle));
  decipher.setAuthTag(Buffer.from(tag ?? "", "base64url"));
  return JSON.parse(Buffer.concat([decipher.update(Buffer.from(body ?? "", "base64url")), decipher.final()]).toString("utf8")) as AttemptData;
}

const refusals = {
  unknown: "ERR_PASSPORT_STATE_INVALID",
  superseded: "ERR_PASSPORT_STATE_INVALID",
  exhausted: "ERR_PASSPORT_STATE_INVALID",
  used: "ERR_PASSPORT_STATE_USED",
  expired: "ERR_PASSPORT_STATE_EXPIRED",
  browser: "ERR_PASSPORT_BROWSER_MISMATCH",
} as const;

export function createAttemptStore(ctx: ProviderContext, ttlSeconds: number) {
  return {
    /** Stores the attempt for this browser and returns its handle (the `state` the identity provider echoes). */
    async issue(req: Request, res: Response, data: AttemptData, link: LinkIntent | undefined): Promise<string> {
      const handle = ctx.randomToken();
      await ctx.verifications.issue({ purpose: PURPOSE, ttlSeconds, secret: { value: handle }, data: { sealed: seal(handle, data) }, browser: { req, res }, ...(link ? { link } : {}) });
      return handle;
    },

    /** Uses the attempt up: once, unexpired, in the browser that started it (another browser's try leaves it unused). Throws why not. */
    async consume(req: Request, handle: string): Promise<{ data: AttemptData; verification: VerificationResult }> {
      if (!/^[A-Za-z0-9_-]{43}$/.test(handle)) throw passportErrors.create("ERR_PASSPORT_STATE_INVALID");
      const result = await ctx.verifications.consume({ purpose: PURPOSE, secret: handle, browser: req });
      if (!result.ok) throw passportErrors.create(refusals[result.reason]);
      return { data: unseal(handle, result.data.sealed), verification: result };
    },
  };
}

export type AttemptStore = ReturnType<typeof createAttemptStore>;
