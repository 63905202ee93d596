import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { silentLogger } from "@erebus/core";
import { engines, startAuthServer, testProviderConformance, type ConformanceHarness } from "@erebus/core/testing";
import { startSmtpServer } from "../../../test/smtp.js";
import { emailProvider } from "./email-provider.js";
import { smtpTransport } from "./transport.js";

const LINK = /http:\/\/app\.test\/auth\/email\/verify\?token=([A-Za-z0-9_-]{43})/;

// Mail goes through a real SMTP server on loopback, started before the kit's suites.
let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
beforeAll(async () => {
  smtp = await startSmtpServer();
});
afterAll(async () => smtp?.close());

/** Tokens a sign-in step already took, so concurrent sign-ins of one address each use their own link. */
const claimed = new Set<string>();
async function link(h: ConformanceHarness, email: string): Promise<string> {
  const start = await h.request("/email/start", { json: { email, mode: "link" } });
  if (start.status !== 202) throw new Error(`POST /email/start answered ${start.status} ${start.text}`);
  for (const deadline = Date.now() + 15_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 20))) {
    for (const mail of smtp.inbox.filter((m) => m.to === email)) {
      const token = LINK.exec(mail.text)?.[1];
      if (token && !claimed.has(token)) {
        claimed.add(token);
        return token;
      }
    }
  }
  throw new Error(`no new link for ${email}`);
}

// The provider conformance kit of @erebus/core/testing (issue 11): a link sign-in as the sign-in
// step; the replay is the same link posted again.
testProviderConformance({
  name: "email provider",
  test: { describe, it, beforeAll, afterAll },
  engines: engines({ postgresUrl: inject("postgresUrl") }),
  provider: () => emailProvider({ appName: "Example App", transport: smtpTransport(smtp.transporter, "Example <login@app.test>"), maxLiveLinks: 10 }),
  sourceTypes: {
    email_auth: {
      valid: [{ type: "email_auth", verified: true, provider: "email" }],
      invalid: [{ type: "email_auth", verified: "yes", provider: "email" }, { type: "email_auth", provider: "email" }],
    },
  },
  signIn: {
    identity: () => `user-${Math.random().toString(36).slice(2, 10)}@example.com`,
    signIn: async (h, email) => h.request("/email/verify", { json: { token: await link(h, email) } }),
    async replay(h, email) {
      const token = await link(h, email);
      const first = await h.request("/email/verify", { json: { token } });
      if (first.status !== 200) throw new Error(`the sign-in before the replay failed: ${first.status} ${first.text}`);
      return () => h.request("/email/verify", { json: { token } });
    },
  },
});

// What the kit's concurrent sign-ins found (issue 11): two links of one address used at once each
// locked their own row, then waited for the other's while ending the address's other links, a
// deadlock PostgreSQL broke with an error, answered as 500. Ten links used at once, three rounds.
for (const engine of engines({ postgresUrl: inject("postgresUrl") })) {
  describe(`concurrent link sign-ins of one address on ${engine.name}`, () => {
    it("kit finding: ten links of one address used at once answer 200 or 4xx, never a 500 (a deadlock on PostgreSQL), and sign in one user", async () => {
      const db = await engine.create({ max: 20 });
      const { server } = await startAuthServer({
        database: db,
        baseURL: "http://app.test",
        logger: silentLogger,
        rateLimit: { enabled: false },
        providers: [emailProvider({ transport: smtpTransport(smtp.transporter, "Example <login@app.test>"), maxLiveLinks: 20 })],
      });
      try {
        const post = async (path: string, body: unknown) => {
          const res = await fetch(`${server.url}/auth${path}`, { method: "POST", headers: { "content-type": "application/json", origin: "http://app.test" }, body: JSON.stringify(body) });
          return { status: res.status, body: await res.json().catch(() => null) };
        };
        for (let round = 0; round < 3; round++) {
          const email = `race-${round}-${Math.random().toString(36).slice(2, 8)}@example.com`;
          for (let i = 0; i < 10; i++) expect((await post("/email/start", { email, mode: "link" })).status).toBe(202);
          const tokens = (await smtp.next(email, 9), smtp.inbox.filter((m) => m.to === email).map((m) => LINK.exec(m.text)![1]!));
          const results = await Promise.all(tokens.map((token) => post("/email/verify", { token })));
          const statuses = results.map((r) => r.status);
          expect(statuses.filter((s) => s !== 200 && (s < 400 || s >= 500))).toEqual([]);
          expect(new Set(results.filter((r) => r.status === 200).map((r) => r.body.user.id)).size).toBe(1);
        }
      } finally {
        await server.close();
        await db.close();
      }
    }, 60_000);
  });
}
