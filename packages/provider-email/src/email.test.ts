import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger, type Database } from "@erebus/core";
import { engines, rowCounts } from "../../../test/engines.js";
import { cookieFrom, startAuthServer, type Running } from "../../../test/http.js";
import { startSmtpServer } from "../../../test/smtp.js";
import { emailProvider } from "./email-provider.js";
import { smtpTransport } from "./transport.js";

const ORIGIN = "http://app.test";
const LINK = /http:\/\/app\.test\/auth\/email\/verify\?token=([A-Za-z0-9_-]{43})/;

for (const engine of engines()) {
  describe(`email sign-in through a real SMTP server on ${engine.name}`, () => {
    let db: Database;
    let server: Running;
    let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
    let now = new Date("2026-05-01T09:00:00Z");

    const post = async (path: string, body: unknown, headers: Record<string, string> = {}) => {
      const res = await fetch(`${server.url}/auth${path}`, {
        method: "POST",
        redirect: "manual",
        headers: { "content-type": "application/json", origin: ORIGIN, ...headers },
        body: typeof body === "string" ? body : JSON.stringify(body),
      });
      const text = await res.text();
      let json: any = null;
      try {
        json = JSON.parse(text);
      } catch {
        json = text;
      }
      return { status: res.status, body: json, res };
    };
    const counts = () => rowCounts(db);

    /** Asks for a link and reads it out of the mail the SMTP server received. */
    async function requestLink(email: string) {
      const before = smtp.count(email);
      const start = await post("/email/start", { email, mode: "link" });
      expect(start.status).toBe(202);
      const mail = await smtp.next(email, before);
      return { mail, token: LINK.exec(mail.text)![1]!, link: LINK.exec(mail.text)![0] };
    }
    async function requestCode(email: string) {
      const before = smtp.count(email);
      expect((await post("/email/start", { email, mode: "code" })).status).toBe(202);
      const mail = await smtp.next(email, before);
      return { mail, code: /\b(\d{6})\b/.exec(mail.subject)![1]! };
    }

    beforeAll(async () => {
      smtp = await startSmtpServer();
      db = await engine.create();
      ({ server } = await startAuthServer({
        database: db,
        baseURL: ORIGIN,
        providers: [emailProvider({ appName: "Example App", transport: smtpTransport(smtp.transporter, "Example <login@app.test>"), rateLimit: { perAddress: 1000, perClient: 10_000 } })],
        logger: silentLogger,
        clock: () => now,
      }));
    });
    afterAll(async () => {
      await server?.close();
      await smtp?.close();
      await db?.close();
    });

    it("mails a link built from the configured origin; GET shows a confirm page and does not use it up; the button signs in", async () => {
      const email = "ann@example.com";
      const { mail, token, link } = await requestLink(email);
      expect(mail.subject).toBe("Sign in to Example App");
      expect(mail.text).toContain("expires in 15 minutes");
      expect(mail.html).toContain("Example App");
      expect(mail.html).toContain(link.replace(/&/g, "&amp;"));

      for (let i = 0; i < 2; i++) {
        // What a mail scanner or a link preview does: a GET, maybe several.
        const confirm = await fetch(`${server.url}/auth/email/verify?token=${token}`);
        expect(confirm.status).toBe(200);
        expect(confirm.headers.get("referrer-policy")).toBe("no-referrer");
        expect(confirm.headers.get("cache-control")).toBe("no-store");
        const html = await confirm.text();
        expect(html).toContain('<form method="post" action="/auth/email/verify">');
        expect(html).toContain(`value="${token}"`);
      }
      const { rows } = await db.query<{ consumed_at: Date | null }>("SELECT consumed_at FROM erebus_email_tokens WHERE email = $1", [email]);
      expect(rows[0]!.consumed_at).toBeNull();

      // The confirm page's button: a form POST from the app's own origin.
      const signedIn = await post("/email/verify", `token=${token}`, { "content-type": "application/x-www-form-urlencoded" });
      expect(signedIn.status).toBe(303);
      expect(signedIn.res.headers.get("location")).toBe("/");
      const cookie = cookieFrom(signedIn.res, "erebus_session")!;
      const session = await (await fetch(`${server.url}/auth/session`, { headers: { cookie: `erebus_session=${cookie.value}` } })).json();
      expect(session.user).toMatchObject({
        network: "email",
        source_identifier: email,
        email,
        source_type: { type: "email_auth", verified: true, provider: "other", metadata: { method: "link", last_login: now.toISOString() } },
      });
    });

    it("signs in with a six-digit code, and normalizes the address", async () => {
      const { mail, code } = await requestCode("bob@gmail.com");
      expect(mail.text).toContain(code);
      expect(mail.text).toContain("expires in 10 minutes");
      const res = await post("/email/verify", { email: "  Bob@GMAIL.com ", code });
      expect(res.status).toBe(200);
      expect(res.body.user).toMatchObject({ source_identifier: "bob@gmail.com", email: "bob@gmail.com", source_type: { provider: "gmail", metadata: { method: "code" } } });
    });

    it("answers the same for an address that signed in before and one that never did", async () => {
      const known = await post("/email/start", { email: "ann@example.com" });
      const unknown = await post("/email/start", { email: "nobody-yet@example.com" });
      expect([known.status, unknown.status]).toEqual([202, 202]);
      expect(known.body).toEqual(unknown.body);
      expect([...known.res.headers.keys()].sort()).toEqual([...unknown.res.headers.keys()].sort());
    });

    it("refuses malformed addresses and bodies with 4xx problem+json", async () => {
      const cases: [unknown, string, number, string][] = [
        [{ email: "not-an-address" }, "application/json", 400, "ERR_EMAIL_INVALID"],
        [{ email: "a@b" }, "application/json", 400, "ERR_EMAIL_INVALID"],
        [{ email: "ann@example.com", mode: "carrier-pigeon" }, "application/json", 400, "ERR_BODY_INVALID"],
        [{ email: "x".repeat(20_000) + "@example.com" }, "application/json", 413, "ERR_BODY_TOO_LARGE"],
        ["{oops", "application/json", 400, "ERR_BODY_MALFORMED"],
        ["email=ann@example.com", "application/x-www-form-urlencoded", 415, "ERR_UNSUPPORTED_MEDIA_TYPE"],
      ];
      for (const [body, type, status, code] of cases) {
        const res = await post("/email/start", body, { "content-type": type });
        expect([res.status, res.body.code]).toEqual([status, code]);
      }
      const badGet = await fetch(`${server.url}/auth/email/verify?token=short`);
      expect(badGet.status).toBe(400);
    });

    describe("attacks, each refused with its own code and no session", () => {
      const attacks: [string, string, () => Promise<{ status: number; body: { code: string } }>][] = [
        ["a replayed link", "ERR_EMAIL_TOKEN_USED", async () => {
          const { token } = await requestLink("replay@example.com");
          expect((await post("/email/verify", { token })).status).toBe(200);
          return post("/email/verify", { token });
        }],
        ["an expired link", "ERR_EMAIL_TOKEN_EXPIRED", async () => {
          const { token } = await requestLink("late@example.com");
          now = new Date(now.getTime() + 16 * 60_000);
          return post("/email/verify", { token });
        }],
        ["a link presented for another address", "ERR_EMAIL_TOKEN_INVALID", async () => {
          const { token } = await requestLink("victim@example.com");
          const res = await post("/email/verify", { token, email: "attacker@example.com" });
          // The token was not burnt by the attempt: its owner can still use it.
          expect((await post("/email/verify", { token, email: "victim@example.com" })).status).toBe(200);
          return res;
        }],
        ["an old link after a new one was requested", "ERR_EMAIL_TOKEN_SUPERSEDED", async () => {
          const first = await requestLink("twice@example.com");
          await requestLink("twice@example.com");
          return post("/email/verify", { token: first.token });
        }],
        ["a made-up token", "ERR_EMAIL_TOKEN_INVALID", async () => post("/email/verify", { token: "A".repeat(43) })],
        ["a sixth code after five wrong ones (even the right code)", "ERR_EMAIL_CODE_ATTEMPTS", async () => {
          const { code } = await requestCode("guess@example.com");
          const wrong = code === "000000" ? "111111" : "000000";
          for (let i = 0; i < 5; i++) {
            expect((await post("/email/verify", { email: "guess@example.com", code: wrong })).body.code).toBe("ERR_EMAIL_CODE_INVALID");
          }
          return post("/email/verify", { email: "guess@example.com", code });
        }],
        ["an expired code", "ERR_EMAIL_CODE_EXPIRED", async () => {
          const { code } = await requestCode("slow@example.com");
          now = new Date(now.getTime() + 11 * 60_000);
          return post("/email/verify", { email: "slow@example.com", code });
        }],
        ["a code for an address that asked for none", "ERR_EMAIL_CODE_INVALID", async () => post("/email/verify", { email: "quiet@example.com", code: "123456" })],
        ["an old code after a new link was requested", "ERR_EMAIL_CODE_INVALID", async () => {
          const { code } = await requestCode("switch@example.com");
          await requestLink("switch@example.com");
          return post("/email/verify", { email: "switch@example.com", code });
        }],
      ];
      for (const [name, code, attack] of attacks) {
        it(`refuses ${name}: 401 ${code}`, async () => {
          const before = await counts();
          const res = await attack();
          expect([res.status, res.body.code]).toEqual([401, code]);
          const after = await counts();
          const legit = name === "a replayed link" || name === "a link presented for another address" ? 1 : 0;
          expect(after.sessions - before.sessions).toBe(legit);
        });
      }

      it("shows a form POST's failure as a page, not JSON", async () => {
        const res = await post("/email/verify", `token=${"B".repeat(43)}`, { "content-type": "application/x-www-form-urlencoded" });
        expect(res.status).toBe(401);
        expect(res.res.headers.get("content-type")).toMatch(/^text\/html/);
        expect(String(res.body)).toContain("ERR_EMAIL_TOKEN_INVALID");
      });

      it("refuses a cross-site form POST of a stolen link", async () => {
        const { token } = await requestLink("csrf@example.com");
        const res = await post("/email/verify", `token=${token}`, { "content-type": "application/x-www-form-urlencoded", origin: "http://evil.test" });
        expect(res.status).toBe(403);
      });
    });

    it("answers 300 fuzzed start and verify bodies with no 5xx and no row", async () => {
      const before = await counts();
      const field = fc.oneof(fc.string({ maxLength: 60 }), fc.emailAddress(), fc.integer(), fc.constant(null), fc.array(fc.string(), { maxLength: 3 }));
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom("/email/start", "/email/verify"),
          fc.oneof(
            fc.record({ email: field, mode: fc.oneof(fc.constantFrom("link", "code"), fc.string({ maxLength: 8 })) }, { requiredKeys: [] }),
            fc.record({ token: fc.oneof(field, fc.string({ minLength: 43, maxLength: 43 })), email: field }, { requiredKeys: [] }),
            fc.record({ email: field, code: fc.oneof(fc.stringMatching(/^\d{6}$/), field) }, { requiredKeys: [] }),
            fc.jsonValue({ maxDepth: 3 }),
          ),
          async (path, body) => {
            const res = await post(path, JSON.stringify(body) ?? "null");
            expect(res.status).toBeLessThan(500);
            expect(res.status).not.toBe(200); // no fuzzed body may sign anyone in
          },
        ),
        { numRuns: 300, seed: 5 },
      );
      const after = await counts();
      expect(after).toEqual(before);
    });
  });
}

describe("email sends: limits and failures", () => {
  it("limits sends per address, and logs a failed send without the address in the clear", async () => {
    const db = await engines()[0]!.create();
    const errors: string[] = [];
    let fail = false;
    const sent: string[] = [];
    const { server: running } = await startAuthServer({
      database: db,
      baseURL: ORIGIN,
      providers: [
        emailProvider({
          transport: {
            async send(mail) {
              if (fail) throw new Error("SMTP 421 try later");
              sent.push(mail.to);
            },
          },
          rateLimit: { perAddress: 2, perClient: 100 },
        }),
      ],
      logger: { ...silentLogger, error: (m, f) => errors.push(JSON.stringify({ m, f })) },
    });
    const start = (email: string) =>
      fetch(`${running.url}/auth/email/start`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ email }) });
    try {
      expect((await start("limit@example.com")).status).toBe(202);
      expect((await start("LIMIT@example.com ")).status).toBe(202); // the same address, normalized
      const third = await start("limit@example.com");
      expect([third.status, (await third.json()).code]).toEqual([429, "ERR_RATE_LIMITED"]);
      expect((await start("other@example.com")).status).toBe(202);
      await expect.poll(() => sent.length).toBe(3);

      fail = true;
      expect((await start("down@example.com")).status).toBe(202);
      await expect.poll(() => errors.length).toBe(1);
      expect(errors[0]).toContain("email not sent");
      expect(errors[0]).not.toContain("down@example.com");
    } finally {
      await running.close();
      await db.close();
    }
  });
});
