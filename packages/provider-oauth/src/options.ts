import { parseOptions } from "@erebus/core/provider";
import * as z from "zod";
import type { ProviderConfig } from "./presets.js";
import { endpointRefusal } from "./secure-endpoints.js";

const url = z.url({ protocol: /^https?$/ });
const oidcSchema = z.object({
  kind: z.literal("oidc"),
  issuer: url,
  clientId: z.string().min(1, "is required"),
  clientSecret: z.string().min(1).optional(),
  scopes: z.array(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/)).refine((s) => s.includes("openid"), "must include openid"),
  endpoints: z.object({ authorization: url, token: url, jwks: url, userinfo: url.optional() }).optional(),
  params: z.record(z.string(), z.string()).optional(),
  label: z.string().max(40).optional(),
});
const oauth2Schema = z.object({
  kind: z.literal("oauth2"),
  issuer: url,
  clientId: z.string().min(1, "is required"),
  clientSecret: z.string().min(1, "is required"),
  scopes: z.array(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/)),
  endpoints: z.object({ authorization: url, token: url }),
  profile: z.custom<(get: (url: string) => Promise<unknown>) => Promise<unknown>>((v) => typeof v === "function", "must be a function"),
  params: z.record(z.string(), z.string()).optional(),
  label: z.string().max(40).optional(),
});

/** Every option of `oauthProvider()`, with its default. */
export const oauthOptionsSchema = z.strictObject({
  /** Provider id → configuration (`google({...})`, `github({...})`, `oidc({...})`). The id is in the URLs and in `source_identifier`. */
  providers: z
    .record(z.string().regex(/^[a-z][a-z0-9-]{0,31}$/, "provider ids are short lower-case tokens"), z.discriminatedUnion("kind", [oidcSchema, oauth2Schema]))
    .refine((p) => Object.keys(p).length > 0, "name at least one provider"),
  /** Where a failed sign-in sends the browser, with `?error=<code>` (a same-origin path). */
  errorRedirect: z.string().regex(/^\/(?!\/)[^\s\\]*$/, "must be a same-origin path like /").default("/"),
  /** Seconds between the redirect to the provider and the callback. */
  stateTtl: z.number().int().min(60).max(3600).default(600),
  /** Store each account's refresh token, encrypted (AES-256-GCM) with this 32-byte key (base64). Off by default. */
  refreshTokenKey: z
    .string()
    .refine((k) => Buffer.from(k, "base64").length === 32, "must be 32 bytes, base64 (openssl rand -base64 32)")
    .optional(),
  /** Seconds before a call to the provider gives up (503). */
  timeout: z.number().int().min(1).max(120).default(10),
  /**
   * Allow plain http:// endpoints on any host, also in production. Without it, plain http is allowed
   * only to loopback (localhost, 127.0.0.0/8, ::1) outside production; everything else must be https.
   */
  allowInsecureRequests: z.boolean().default(false),
  /** Sign-ins started per client and minute. */
  startsPerMinute: z.number().int().positive().default(30),
}).superRefine((options, check) => {
  // Plain http to a host that is not loopback is refused here, whatever the environment; loopback
  // in production is refused when createAuth hands the provider its context (it knows `production`).
  const policy = { production: false, allowInsecureRequests: options.allowInsecureRequests };
  for (const [id, config] of Object.entries(options.providers)) {
    const urls: [string, unknown][] = [["issuer", config.issuer], ...Object.entries(config.endpoints ?? {}).map(([k, v]) => [`endpoints.${k}`, v] as [string, unknown])];
    for (const [field, url] of urls) {
      const reason = typeof url === "string" ? endpointRefusal(url, policy) : undefined;
      if (reason) check.addIssue({ code: "custom", path: ["providers", id, ...field.split(".")], message: reason });
    }
  }
});

export type OAuthOptions = Omit<z.input<typeof oauthOptionsSchema>, "providers"> & { providers: Record<string, ProviderConfig> };
export type ResolvedOAuthOptions = Omit<z.output<typeof oauthOptionsSchema>, "providers"> & { providers: Record<string, ProviderConfig> };

/** Names a provider by its id in errors: `providers.google ("google").clientId`. */
function describePath(path: PropertyKey[]): string {
  const [head, id, ...rest] = path.map(String);
  if (head === "providers" && id) return `providers.${id} ("${id}")${rest.length ? `.${rest.join(".")}` : ""}`;
  return path.map(String).join(".");
}

export const resolveOAuthOptions = (input: unknown): ResolvedOAuthOptions =>
  parseOptions(oauthOptionsSchema, input ?? {}, "oauthProvider", describePath) as ResolvedOAuthOptions;
