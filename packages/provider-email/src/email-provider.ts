import type { ErebusProvider } from "@erebus/core/provider";
import { emailErrors } from "./errors.js";
import { resolveEmailOptions, type EmailOptions } from "./options.js";
import { emailRoutes } from "./routes.js";
import { dropEmailTokensMigration, emailCodeBudgetMigration, emailTokenMigration } from "./tokens.js";

/**
 * Passwordless email sign-in: magic links (with a confirm step that mail scanners cannot trigger)
 * and one-time codes. Links and codes live in core's single-use store (`ctx.verifications`).
 *
 * @example
 * emailProvider({ appName: "Example", transport: smtpTransport(process.env.SMTP_URL!, "Example <login@example.com>") })
 */
export function emailProvider(input: EmailOptions) {
  const options = resolveEmailOptions(input);
  return {
    id: "email",
    emits: ["email_auth"],
    errors: emailErrors.codes,
    migrations: [emailTokenMigration, emailCodeBudgetMigration, dropEmailTokensMigration],
    setup(ctx) {
      return {
        routes(router) {
          emailRoutes(router, ctx, options);
        },
      };
    },
  } satisfies ErebusProvider;
}
