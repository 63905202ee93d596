import { afterAll, beforeAll, describe, inject, it } from "vitest";
import { engines, testProviderConformance, type ConformanceHarness } from "@erebus/core/testing";
import { signTelegramAuthData, telegramProvider } from "./index.js";

const BOT_TOKEN = "110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
let nextId = 5_000_000;
let logins = 0;

/** When this file loaded, in Telegram's seconds: every login is dated from it, not from a clock that ticks between two. */
const loaded = Math.floor(Date.now() / 1000);
/**
 * A login as the widget signs it for our bot (the kit's app runs on the real clock). Each one is dated
 * a second earlier than the last: two logins of one account in the same second are the same signed
 * data, which is one login, and the kit's "signed in twice" and concurrency steps need distinct ones.
 * (Dated from the real clock each time, two logins a second apart across a tick were the same login.)
 */
const signedLogin = (id: string) =>
  signTelegramAuthData(BOT_TOKEN, { id, first_name: "Conformance", username: `user_${id}`, auth_date: String(loaded - (logins++ % 3600)) });

// The provider conformance kit of @erebus/core/testing (issue 11): migrations twice, the telegram source
// type in zod and in the database trigger, malformed input to both routes, cross-site POSTs, one row
// per identity (also for concurrent first sign-ins), replay, and the error table.
testProviderConformance({
  test: { describe, it, beforeAll, afterAll },
  engines: engines({ postgresUrl: inject("postgresUrl") }),
  provider: () => telegramProvider({ botToken: BOT_TOKEN, perClient: 100_000 }),
  sourceTypes: {
    telegram: {
      valid: [
        { type: "telegram", user_id: "42", first_name: "Ada" },
        { type: "telegram", user_id: "42", first_name: "Ada", last_name: "Lovelace", username: "ada", photo_url: "https://t.me/i/userpic/320/ada.jpg", metadata: { last_login: "2026-05-01T09:00:00.000Z" } },
      ],
      invalid: [{ type: "telegram", user_id: 42, first_name: "Ada" }, { type: "telegram", user_id: "42" }, { type: "telegram", user_id: "42", first_name: "Ada", username: 7 }],
    },
  },
  signIn: {
    identity: () => String(nextId++),
    // Each sign-in is a new login (a login works once): concurrent first sign-ins of one account each bring their own.
    signIn: (h: ConformanceHarness, id: string) => h.request("/telegram/verify", { json: signedLogin(id) }),
    async replay(h, id) {
      const login = signedLogin(id);
      const first = await h.request("/telegram/verify", { json: login });
      if (first.status !== 200) throw new Error(`the sign-in before the replay failed: ${first.status} ${first.text}`);
      return () => h.request("/telegram/verify", { json: login });
    },
  },
});
