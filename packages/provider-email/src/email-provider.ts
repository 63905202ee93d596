import type { ErebusProvider } from "@erebus/core";
import { emailErrors } from "./errors.js";
import { resolveEmailOptions, type EmailOptions } from "./options.js";
import { emailRoutes } from "./routes.js";
import { emailCodeBudgetMigration, emailTokenMigration } from "./tokens.js";

/**
 * Passwordless email sign-in: magic links (with a confirm step that mail scanners cannot trigger)
 * and one-time codes.
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
    migrations: [emailTokenMigration, emailCodeBudgetMigration],
    // The confirm page's button is a plain HTML form.
    formRoutes: ["/email/verify"],
    routes(router, ctx) {
      emailRoutes(router, ctx, options);
    },
  } satisfies ErebusProvider;
}
