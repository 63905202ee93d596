import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { engines } from "../../../test/engines.js";
import { startAuthServer, type Running } from "../../../test/http.js";
import { silentLogger, type Database } from "./index.js";
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
  });
}
