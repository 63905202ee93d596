import * as z from "zod";
import { defineErrors } from "../errors.js";
import { describeRoute, signInResultSchema } from "../openapi.js";
import type { ErebusProvider } from "../provider.js";
import { defineSourceType } from "../source-types.js";

/** The `test_account` source type the test provider registers. */
export const testAccountSourceType = defineSourceType("test_account", {
  handle: z.string(),
  level: z.int().optional(),
  metadata: z.record(z.string(), z.unknown()).optional(),
});

const errors = defineErrors({
  ERR_TEST_KEY_INVALID: { status: 401, title: "The X-Test-Key header is not valid" },
  ERR_TEST_TICKET_INVALID: { status: 401, title: "The ticket is unknown, used, expired or for another handle" },
});

const startBody = z.strictObject({
  handle: z.string().regex(/^[a-z0-9_]{1,32}$/, "must be 1-32 of a-z, 0-9, _"),
  intent: z.enum(["sign-in", "link", "reauthenticate"]).optional(),
  merge: z.boolean().optional(),
});
const verifyBody = z.strictObject({
  handle: z.string().regex(/^[a-z0-9_]{1,32}$/, "must be 1-32 of a-z, 0-9, _"),
  ticket: z.string().regex(/^[A-Za-z0-9_-]{43}$/, "must be a ticket from /test/start"),
});

const signInBody = z.strictObject({
  handle: z.string().regex(/^[a-z0-9_]{1,32}$/, "must be 1-32 of a-z, 0-9, _"),
  level: z.int().min(0).max(100).optional(),
});

export interface TestProviderOptions {
  /** Sign-ins allowed per client per minute (default 1000). */
  signInsPerMinute?: number;
}

/**
 * A provider that exercises the whole contract, for tests and development only: anyone can sign in
 * as any handle. It registers a source type (`test_account`, network `test`), brings a migration
 * (a table logging its sign-ins), adds a route (`POST /test/sign-in { handle }`) and a header
 * authenticator (`X-Test-Key: <handle>` for a handle that signed in before).
 *
 * **Never mount it in production**: `createAuth` throws when `production` is on (the default unless
 * `NODE_ENV` is `development` or `test`, or `EREBUS_DEV=1`).
 *
 * @example
 * const auth = createAuth({ database, baseURL, providers: [testProvider()] });
 */
export function testProvider(options: TestProviderOptions = {}) {
  return {
    id: "test",
    // Anyone can sign in as anyone: createAuth refuses it when production is on.
    developmentOnly: true,
    emits: ["test_account"],
    sourceTypes: [testAccountSourceType],
    errors: errors.codes,
    migrations: [
      {
        id: "0001_test_sign_ins",
        sql: `CREATE TABLE erebus_test_sign_ins (
                id BIGSERIAL PRIMARY KEY,
                user_id UUID NOT NULL REFERENCES user_references (id) ON DELETE CASCADE,
                signed_in_at TIMESTAMPTZ NOT NULL
              );`,
      },
    ],
    setup(ctx) {
      const limit = ctx.rateLimit({ name: "sign-in", points: options.signInsPerMinute ?? 1000, duration: 60 });
      const identityOf = (handle: string, level?: number) => ({
        network: "test",
        sourceIdentifier: handle,
        sourceType: { type: "test_account", handle, ...(level === undefined ? {} : { level }) },
      });
      return {
        routes(router) {
          const doc = describeRoute({
            summary: "Development sign-in as any handle (never in production)",
            body: signInBody,
            responses: { 200: { description: "signed in", schema: signInResultSchema } },
            errors: ["ERR_USER_DEACTIVATED"],
          });
          router.post("/test/sign-in", doc, limit.middleware(), async (req, res) => {
            const body = ctx.parse(signInBody, req.body);
            const user = await ctx.resolveIdentity(identityOf(body.handle, body.level));
            await ctx.db.query("INSERT INTO erebus_test_sign_ins (user_id, signed_in_at) VALUES ($1, $2)", [user.id, ctx.clock()]);
            res.json(await ctx.signIn(req, res, user));
          });

          // The two-step shape of a real provider (nonce, then proof), on core's single-use store:
          // a ticket for a handle, used once by /test/verify; `intent: "link"` attaches instead.
          router.post(
            "/test/start",
            describeRoute({
              summary: "Development: a single-use ticket for a handle (link intent allowed)",
              body: startBody,
              responses: { 200: { description: "the ticket", schema: z.object({ ticket: z.string(), expiresAt: z.string() }) } },
              errors: ["ERR_REAUTH_REQUIRED"],
            }),
            limit.middleware(),
            async (req, res) => {
              const body = ctx.parse(startBody, req.body);
              const link = await ctx.linkIntent(req, { intent: body.intent, merge: body.merge }, res);
              const issued = await ctx.verifications.issue({ purpose: "ticket", ttlSeconds: 300, subject: body.handle, ...(link ? { link } : {}) });
              res.setHeader("Cache-Control", "no-store");
              res.json({ ticket: issued.secret, expiresAt: issued.expiresAt.toISOString() });
            },
          );
          router.post(
            "/test/verify",
            describeRoute({
              summary: "Development: sign in (or link) with a ticket",
              body: verifyBody,
              responses: { 200: { description: "signed in, or linked under a link intent", schema: signInResultSchema } },
              errors: [
                "ERR_TEST_TICKET_INVALID",
                "ERR_USER_DEACTIVATED",
                "ERR_LINK_SESSION_MISMATCH",
                "ERR_REAUTH_IDENTITY_FOREIGN",
                "ERR_IDENTITY_LINKED_ELSEWHERE",
                "ERR_IDENTITY_LIMIT",
                "ERR_LINK_CONFLICT",
              ],
            }),
            async (req, res) => {
              const body = ctx.parse(verifyBody, req.body);
              res.json(
                await ctx.signInOnce(req, res, {
                  verify: () => identityOf(body.handle),
                  async consume(q) {
                    const used = await ctx.verifications.consume({ purpose: "ticket", secret: body.ticket, subject: body.handle, q });
                    if (!used.ok) throw errors.create("ERR_TEST_TICKET_INVALID", { detail: used.reason });
                    return used;
                  },
                }),
              );
            },
          );
        },
        async authenticate(req) {
          const header = req.headers["x-test-key"];
          if (header === undefined) return null;
          if (typeof header !== "string" || !/^[a-z0-9_]{1,32}$/.test(header)) throw errors.create("ERR_TEST_KEY_INVALID");
          const user = await ctx.findUser("test", header);
          if (!user) throw errors.create("ERR_TEST_KEY_INVALID");
          return { user, via: "test_key", scopes: ["read"], credentialId: header };
        },
      };
    },
  } satisfies ErebusProvider;
}
