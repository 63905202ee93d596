import pg from "pg";
import { describe, expect, inject, it } from "vitest";
import { createAuth, silentLogger } from "../index.js";
import { engines } from "../testing/index.js";
import { postgresDatabase } from "./postgres.js";

const server = engines({ postgresUrl: inject("postgresUrl") }).find((engine) => engine.name === "postgres");

describe.runIf(server)("postgresDatabase close", () => {
  it("review: closing the database while a session check starts the cache's LISTEN neither hangs nor takes a connection again", async () => {
    const holder = await server!.create();
    const pool = new pg.Pool({ connectionString: holder.url!, max: 4 });
    const db = postgresDatabase(pool, { ownsConnection: true });
    const auth = createAuth({ database: db, baseURL: "http://app.test", migrate: true, logger: silentLogger });
    await auth.ready;
    const { token } = await auth.api.createSession((await auth.api.registerSystemAgent({ agentType: "t", capabilities: [] })).id);
    await auth.api.checkSession(token); // the cache starts listening
    await new Promise((resolve) => setTimeout(resolve, 200));
    // The database is closed (not auth.close()) while requests keep checking sessions: the cache,
    // told its LISTEN is lost, tries to listen again.
    const closed = db.close();
    const checks = Array.from({ length: 5 }, () => auth.api.checkSession(token).catch(() => undefined));
    const outcome = await Promise.race([closed.then(() => "closed"), new Promise((resolve) => setTimeout(() => resolve("hung"), 10_000))]);
    // (Look-ups still queued on the ended pool may never settle; what matters is that close returned.)
    void checks;
    expect(outcome).toBe("closed");
    await expect(db.listen("x", () => undefined)).rejects.toThrow(/closed/);
    await holder.close();
  });

  it("review: subscribers listening and leaving at once use the shared LISTEN connection one statement at a time (pg deprecates concurrent queries on a client), and every channel still hears", async () => {
    const holder = await server!.create();
    const pool = new pg.Pool({ connectionString: holder.url!, max: 4 });
    const db = postgresDatabase(pool, { ownsConnection: true });
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(warning.message);
    process.on("warning", onWarning);
    try {
      const heard: string[] = [];
      const channels = Array.from({ length: 6 }, (_, i) => `erebus_test_${i}`);
      const unsubscribes = await Promise.all(channels.map((channel) => db.listen(channel, (payload) => heard.push(`${channel}:${payload}`))));
      for (const channel of channels) await db.query("SELECT pg_notify($1, 'hi')", [channel]);
      for (let i = 0; i < 50 && heard.length < channels.length; i++) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(heard.sort()).toEqual(channels.map((c) => `${c}:hi`).sort());
      await Promise.all(unsubscribes.map((unsubscribe) => unsubscribe()));
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings.filter((w) => /already executing a query/.test(w))).toEqual([]);
    } finally {
      process.off("warning", onWarning);
      await db.close();
      await holder.close();
    }
  });

  it("review: closing the database while a LISTEN is on its way gives its connection back (close() returned, pool.end() waited forever)", async () => {
    const holder = await server!.create();
    const real = new pg.Pool({ connectionString: holder.url!, max: 4 });
    // The LISTEN waits at a gate, so close() runs exactly while it is on its way.
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    let listenSent = false;
    const pool = new Proxy(real, {
      get(target, prop) {
        if (prop === "connect") {
          return async () => {
            const client = await target.connect();
            const query = client.query.bind(client) as (...args: unknown[]) => Promise<unknown>;
            (client as unknown as { query: unknown }).query = (sql: unknown, ...rest: unknown[]) => {
              if (typeof sql === "string" && sql.startsWith("LISTEN")) {
                listenSent = true;
                return gate.then(() => query(sql, ...rest));
              }
              return query(sql, ...rest);
            };
            return client;
          };
        }
        const value = Reflect.get(target, prop, target) as unknown;
        return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const db = postgresDatabase(pool, { ownsConnection: true });
    const listening = db.listen("erebus_gate", () => undefined).then(
      () => "subscribed",
      (error: Error) => error.message,
    );
    while (!listenSent) await new Promise((resolve) => setTimeout(resolve, 5));
    const closed = db.close().then(() => "closed");
    await new Promise((resolve) => setTimeout(resolve, 50));
    open();
    const outcome = await Promise.race([closed, new Promise((resolve) => setTimeout(() => resolve("hung"), 10_000))]);
    expect(outcome).toBe("closed");
    expect(await listening).toMatch(/closed/);
    await holder.close();
  });
});
