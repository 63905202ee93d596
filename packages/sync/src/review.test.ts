import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { connectDatabase, createAuth, silentLogger, type Database } from "@erebus/core";
import { engines, serverEngine } from "../../../test/engines.js";
import { cacheRows, insertAgent, sourceRows } from "../../../test/sync.js";
import { postgresCacheSink } from "./cache-sink.js";
import type { ChangeEnvelope } from "./envelope.js";
import { createSyncRelay } from "./relay.js";
import { syncProvider } from "./sync-provider.js";

// Second review of issue 10, finding 1, read as an attacker: a reader role that can create objects
// somewhere (its own temporary schema, which PUBLIC may use on every database by default; or
// `public`, which PUBLIC may create in on databases from PostgreSQL 14 and older) must not be able
// to steer the code that the cache's owner, or an administrator, runs.
const server = serverEngine();
describe.skipIf(!server)("review: finding 1 on a PostgreSQL server, a reader that can create objects", () => {
  const suffix = randomBytes(4).toString("hex");
  const writerRole = `erebus_sync_${suffix}`;
  const readerRole = `agents_${suffix}`;
  const otherRole = `agents2_${suffix}`;
  let source: Database;
  let admin: Database & { url: string };
  let writer: Database;
  let reader: Database;
  const as = (role: string) => {
    const url = new URL(admin.url);
    url.username = role;
    return connectDatabase(url.toString(), { max: 2 });
  };

  beforeAll(async () => {
    source = await server!.create();
    admin = (await server!.create()) as Database & { url: string };
    for (const role of [writerRole, readerRole, otherRole]) await admin.query(`CREATE ROLE ${role} LOGIN`);
    // As on a database created by PostgreSQL 14 or older (or upgraded from one): everyone may create in public.
    await admin.query("GRANT CREATE ON SCHEMA public TO PUBLIC");
    writer = await as(writerRole);
    const auth = createAuth({ database: source, baseURL: "http://app.test", providers: [syncProvider()], migrate: true, logger: silentLogger });
    await auth.ready;
    const sink = postgresCacheSink(writer, { logger: silentLogger });
    await sink.migrate();
    for (let i = 0; i < 3; i++) await insertAgent(source, `review-${i}`);
    await createSyncRelay({ source, sink, logger: silentLogger }).drain();
    await sink.grantReader(readerRole);
    reader = await as(readerRole);
  });
  afterAll(async () => {
    await reader?.close();
    await writer?.close();
    await source?.close();
    await admin?.close();
    const cluster = await connectDatabase(inject("postgresUrl")!, { max: 1 });
    for (const role of [readerRole, otherRole, writerRole]) await cluster.query(`DROP ROLE IF EXISTS ${role}`);
    await cluster.close();
  });

  it("review: a reader granted write by hand cannot pass the owner-only trigger with a temporary pg_class shadowing the catalog", async () => {
    // Someone granted more than SELECT by hand: the trigger is the line that is left.
    await admin.query(`GRANT UPDATE ON user_references_cache TO ${readerRole}`);
    try {
      const { rows } = await reader.query<{ oid: number; me: number }>(
        "SELECT 'user_references_cache'::regclass::oid AS oid, (SELECT oid FROM pg_roles WHERE rolname = current_user) AS me",
      );
      const attack = reader.transaction(async (tx) => {
        // A temporary table named pg_class, found before the catalog once pg_temp is named first in search_path.
        await tx.query("CREATE TEMP TABLE pg_class (oid oid, relowner oid) ON COMMIT DROP");
        await tx.query(`INSERT INTO pg_temp.pg_class VALUES (${rows[0]!.oid}, ${rows[0]!.me})`);
        await tx.query("SET LOCAL search_path = pg_temp, pg_catalog, public");
        await tx.query("UPDATE user_references_cache SET is_active = true, erebus_version = 999999999999");
      });
      await expect(attack).rejects.toMatchObject({ code: "42501" });
      expect(await cacheRows(admin)).toEqual(await sourceRows(source));
    } finally {
      await admin.query(`REVOKE UPDATE ON user_references_cache FROM ${readerRole}`);
    }
  });

  it("review: grant-reader does not run a function a reader planted in public (it runs as the owner or a superuser)", async () => {
    // An exact-type overload beats pg_catalog's polymorphic unnest(anyarray) and variadic format(text, "any").
    for (const sql of [
      `CREATE FUNCTION public.unnest(text[]) RETURNS SETOF text LANGUAGE plpgsql AS $$
       BEGIN
         UPDATE user_references_cache SET is_active = true, erebus_version = 999999999999;
         RETURN QUERY SELECT x FROM pg_catalog.unnest($1) AS x;
       END $$`,
      `CREATE FUNCTION public.format(text, name, text) RETURNS text LANGUAGE plpgsql AS $$
       BEGIN
         UPDATE user_references_cache SET is_active = true, erebus_version = 999999999999;
         RETURN pg_catalog.format($1, $2, $3);
       END $$`,
    ]) {
      await reader.query(sql);
    }
    try {
      await postgresCacheSink(writer, { logger: silentLogger }).grantReader(otherRole);
      expect(await cacheRows(admin)).toEqual(await sourceRows(source));
      const { rows } = await admin.query<{ n: number }>("SELECT count(*)::int AS n FROM user_references_cache WHERE erebus_version > 1000000");
      expect(rows[0]!.n).toBe(0);
    } finally {
      await admin.query("DROP FUNCTION IF EXISTS public.unnest(text[])");
      await admin.query("DROP FUNCTION IF EXISTS public.format(text, name, text)");
    }
  });
});

for (const engine of engines()) {
  describe(`review: finding 1 resync on ${engine.name}`, () => {
    it("review: after a resync, a replayed old (validly signed) insert does not bring back a reference deleted before it", async () => {
      const source = await engine.create();
      const cache = await engine.create();
      try {
        const auth = createAuth({ database: source, baseURL: "http://app.test", providers: [syncProvider()], migrate: true, logger: silentLogger });
        await auth.ready;
        const { rows } = await insertAgent(source, "deleted-before-resync");
        const id = rows[0]!.id;
        const captured: ChangeEnvelope[] = [];
        const capture = { name: "capture", deliver: async (events: readonly ChangeEnvelope[]) => void captured.push(...events) };
        await createSyncRelay({ source, sink: capture, logger: silentLogger }).drain();
        await source.query("DELETE FROM user_references WHERE id = $1", [id]);
        await insertAgent(source, "still-here");
        await createSyncRelay({ source, sink: capture, logger: silentLogger }).drain();
        const insert = captured.find((e) => e.reference_id === id && e.op === "insert")!;

        // A cache built (or rebuilt after a forgery) by resync: it never saw the delete, so it has no tombstone for it.
        const sink = postgresCacheSink(cache, { logger: silentLogger });
        await sink.migrate();
        await sink.resync(source);
        expect(await cacheRows(cache)).toEqual(await sourceRows(source));
        // Someone who can produce to the topic replays the old signed record (its HMAC is still valid).
        await sink.deliver([insert]);
        expect(await cacheRows(cache)).toEqual(await sourceRows(source));
        // Real changes after the resync still apply.
        await source.query("UPDATE user_references SET email = 'later@x.test' WHERE source_identifier = 'still-here'");
        await createSyncRelay({ source, sink, logger: silentLogger }).drain();
        expect(await cacheRows(cache)).toEqual(await sourceRows(source));
      } finally {
        await source.close();
        await cache.close();
      }
    });
  });
}

describe("review: finding 13 on pglite, a relay whose source fails between deliver and mark", () => {
  it("review: a relay does not leave its own claims stranded for claimTimeout when the source was away at the mark (nothing waits 60 s)", async () => {
    const engine = engines()[0]!;
    const source = await engine.create();
    const cache = await engine.create();
    try {
      const auth = createAuth({ database: source, baseURL: "http://app.test", providers: [syncProvider()], migrate: true, logger: silentLogger });
      await auth.ready;
      const sink = postgresCacheSink(cache, { logger: silentLogger });
      await sink.migrate();
      await insertAgent(source, "mark-fails");
      // The source goes away right after the delivery: the mark and the release of the claim both fail.
      let down = false;
      let wentDown = false;
      const flaky: Database = {
        ...source,
        query: ((sql: string, params?: readonly unknown[]) => {
          if (down) return Promise.reject(Object.assign(new Error("Connection terminated unexpectedly"), { code: "57P01" }));
          return source.query(sql, params as unknown[]);
        }) as Database["query"],
      };
      const relay = createSyncRelay({
        source: flaky,
        sink: { name: "then-down", deliver: async (events) => { await sink.deliver(events); down = !wentDown; wentDown = true; } },
        logger: silentLogger,
      });
      await expect(relay.runOnce()).rejects.toThrow(/terminated/);
      down = false; // back a moment later
      await relay.runOnce().catch(() => undefined);
      await relay.runOnce().catch(() => undefined);
      expect((await relay.status()).pending).toBe(0);
      expect(await cacheRows(cache)).toEqual(await sourceRows(source));
    } finally {
      await source.close();
      await cache.close();
    }
  });
});
