import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { engines } from "../../../test/engines.js";
import { startAuthServer, type Running } from "../../../test/http.js";
import { main } from "./cli.js";
import { createAuth, silentLogger, type Database } from "./index.js";
import { testProvider } from "./testing/index.js";

for (const engine of engines()) {
  describe(`Postgres-backed rate limiting on ${engine.name}`, () => {
    let db: Database;
    const servers: Running[] = [];

    beforeAll(async () => {
      db = await engine.create();
      // Two app instances sharing one database, like two replicas behind a load balancer.
      for (let i = 0; i < 2; i++) {
        servers.push((await startAuthServer({ database: db, baseURL: "http://app.test", providers: [testProvider({ signInsPerMinute: 3 })], logger: silentLogger })).server);
      }
    });
    afterAll(async () => {
      for (const server of servers) await server.close();
      await db?.close();
    });

    it("keeps its counters in an UNLOGGED table: a hit waits for no fsync, so hits on one key never queue through a disk flush", async () => {
      const { rows } = await db.query<{ relpersistence: string }>("SELECT relpersistence FROM pg_class WHERE relname = 'erebus_rate_limits'");
      expect(rows[0]!.relpersistence).toBe("u");
    });

    it("holds one limit across instances and answers 429 with Retry-After", async () => {
      const statuses: number[] = [];
      let limited: Response | undefined;
      for (let i = 0; i < 5; i++) {
        const res = await fetch(`${servers[i % 2]!.url}/auth/test/sign-in`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ handle: `user_${i}` }),
        });
        statuses.push(res.status);
        if (res.status === 429) limited = res;
      }
      expect(statuses).toEqual([200, 200, 200, 429, 429]);
      expect(Number(limited!.headers.get("retry-after"))).toBeGreaterThan(0);
      expect((await limited!.json()).code).toBe("ERR_RATE_LIMITED");
      const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM user_references WHERE network = 'test'");
      expect(rows[0]!.n).toBe(3);
    });

    it("finding 12: pruning deletes rate-limit counters whose window ended and keeps live ones (auth.api.prune)", async () => {
      const auth = createAuth({ database: db, baseURL: "http://app.test", logger: silentLogger });
      const short = auth.api.rateLimit({ name: "prune-short", points: 5, duration: 1 });
      const long = auth.api.rateLimit({ name: "prune-long", points: 2, duration: 3600 });
      for (let i = 0; i < 50; i++) await short.consume(`client-${i}`);
      await long.consume("live");
      await long.consume("live");
      const keys = async () => (await db.query<{ key: string }>("SELECT key FROM erebus_rate_limits WHERE key LIKE 'erebus:prune-%'")).rows.map((r) => r.key);
      expect(await keys()).toHaveLength(51);
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      expect(await auth.api.pruneRateLimits()).toBe(50);
      expect(await keys()).toEqual(["erebus:prune-long:live"]);
      // The live counter still counts: its window's budget is spent.
      await expect(long.consume("live")).rejects.toMatchObject({ code: "ERR_RATE_LIMITED" });
      // prune() does sessions and counters together (what `npx erebus prune` runs).
      expect(await auth.api.prune()).toEqual({ sessions: 0, rateLimits: 0, verifications: 0 });
    });

    // The CLI opens the database by URL: only the server engine has one (not a skip: on PGlite the test is not defined).
    if (engine.name === "postgres") it("finding 12: npx erebus prune deletes ended counters and ended sessions, and keeps live ones", async () => {
      const url = (db as Database & { url?: string }).url!;
      await db.query("INSERT INTO erebus_rate_limits (key, points, expire) VALUES ('erebus:cli:ended', 3, $1), ('erebus:cli:live', 3, $2)", [Date.now() - 1000, Date.now() + 3_600_000]);
      const out: string[] = [];
      const code = await main(["prune", "--older-than-days", "0"], { env: { DATABASE_URL: url }, cwd: process.cwd(), out: (l) => out.push(l), err: () => undefined, info: () => undefined });
      expect(code).toBe(0);
      expect(out.join("\n")).toMatch(/^pruned \d+ session\(s\), \d+ single-use secret\(s\) and [1-9]\d* rate-limit counter\(s\)$/);
      const { rows } = await db.query<{ key: string }>("SELECT key FROM erebus_rate_limits WHERE key LIKE 'erebus:cli:%'");
      expect(rows.map((r) => r.key)).toEqual(["erebus:cli:live"]);
      expect(await main(["prune", "--older-than-days", "x"], { env: { DATABASE_URL: url }, cwd: process.cwd(), out: () => undefined, err: () => undefined, info: () => undefined })).toBe(2);
    });
  });
}
