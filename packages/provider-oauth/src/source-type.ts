import * as z from "zod";

/** The `source_type` this provider emits (core's `oauth`). */
export const oauthSourceTypeSchema = z.object({
  type: z.literal("oauth"),
  /** The provider id in this app: `google`, `github`, … */
  provider: z.string(),
  /** The provider's stable subject (OIDC `sub`, GitHub/Discord user id). */
  user_id: z.string(),
  metadata: z.object({
    issuer: z.string(),
    name: z.string().optional(),
    username: z.string().optional(),
    picture: z.string().optional(),
  }),
});

export type OAuthSourceType = z.infer<typeof oauthSourceTypeSchema>;

/** What a provider's user information boils down to. */
export interface OAuthProfile {
  subject: string;
  /** Only a verified address (OIDC `email_verified: true`, GitHub primary+verified, Discord `verified`). */
  verifiedEmail: string | null;
  name?: string | undefined;
  username?: string | undefined;
  picture?: string | undefined;
}
