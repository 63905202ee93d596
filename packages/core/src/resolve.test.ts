import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { engines, serverEngine } from "../../../test/engines.js";
import { AuthError, createAuth, runMigrations, silentLogger, toChecksumAddress, type Database, type ErebusAuth } from "./index.js";
import { coreMigrations } from "./migrate.js";
import { testProvider } from "./testing/index.js";

const ADDRESS = toChecksumAddress("0x52908400098527886e0f7030069857d2e4169ee7");
const wallet = (address = ADDRESS) => ({
  network: "ethereum",
  sourceIdentifier: address,
  sourceType: { type: "web3_wallet", provider: "metamask", network: "ethereum", metadata: { chain_id: 1 } },
});

async function expectAuthError(promise: Promise<unknown>, code: string, status: number) {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(AuthError);
  expect((error as AuthError).code).toBe(code);
  expect((error as AuthError).status).toBe(status);
}

for (const engine of engines()) {
  describe(`identity resolution on ${engine.name}`, () => {
    let db: Database;
    let auth: ErebusAuth;
    const count = async () => (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM user_references")).rows[0]!.n;

    beforeAll(async () => {
      db = await engine.create({ max: 20 });
      auth = createAuth({ database: db, baseURL: "http://localhost:3000", providers: [testProvider()], migrate: true, logger: silentLogger });
      await auth.ready;
    });
    afterAll(async () => db?.close());

    it("creates one row per identity with the canonical network, identifier and user type", async () => {
      const first = await auth.api.resolveIdentity(wallet());
      expect(first).toMatchObject({ network: "ethereum", source_identifier: ADDRESS, user_type: "external", is_active: true, metadata: {}, preferences: {} });
      const again = await auth.api.resolveIdentity(wallet());
      expect(again.id).toBe(first.id);
    });

    it("refreshes source_type and a newly verified email, and never touches metadata or preferences", async () => {
      const identity = { network: "email", sourceIdentifier: "ann@example.com", sourceType: { type: "email_auth", verified: true, provider: "other", metadata: { last_login: "a" } }, metadata: { plan: "free" } };
      const first = await auth.api.resolveIdentity({ ...identity, email: "Ann@Example.com" });
      expect(first.email).toBe("ann@example.com");
      expect(first.metadata).toEqual({ plan: "free" });
      await db.query(`UPDATE user_references SET metadata = '{"plan":"pro"}', preferences = '{"theme":"dark"}' WHERE id = $1`, [first.id]);
      const second = await auth.api.resolveIdentity({ ...identity, sourceType: { ...identity.sourceType, metadata: { last_login: "b" } }, metadata: { plan: "reset-attempt" }, email: null });
      expect(second.id).toBe(first.id);
      expect(second.source_type).toMatchObject({ metadata: { last_login: "b" } });
      expect(second.email).toBe("ann@example.com"); // not cleared by a sign-in without a verified email
      expect(second.metadata).toEqual({ plan: "pro" });
      expect(second.preferences).toEqual({ theme: "dark" });
    });

    it("re-validates source_type with zod before the database sees it, and writes nothing", async () => {
      const before = await count();
      await expectAuthError(auth.api.resolveIdentity({ ...wallet(), sourceType: { type: "web3_wallet" } as never }), "ERR_SOURCE_TYPE_INVALID", 400);
      await expectAuthError(auth.api.resolveIdentity({ ...wallet(), sourceType: { type: "nope" } }), "ERR_SOURCE_TYPE_INVALID", 400);
      expect(await count()).toBe(before);
    });

    it("refuses identifiers that are not canonical for their network", async () => {
      const before = await count();
      await expectAuthError(auth.api.resolveIdentity(wallet(ADDRESS.toLowerCase())), "ERR_IDENTITY_INVALID", 400);
      await expectAuthError(
        auth.api.resolveIdentity({ network: "email", sourceIdentifier: " Bob@Example.com", sourceType: { type: "email_auth", verified: true, provider: "other" } }),
        "ERR_IDENTITY_INVALID",
        400,
      );
      await expectAuthError(
        auth.api.resolveIdentity({ network: "oauth", sourceIdentifier: "google:1", sourceType: { type: "oauth", provider: "google", user_id: "2" } }),
        "ERR_IDENTITY_INVALID",
        400,
      );
      await expectAuthError(
        auth.api.resolveIdentity({ network: "solana", sourceIdentifier: "1111", sourceType: { type: "web3_wallet", provider: "phantom", network: "solana" } }),
        "ERR_IDENTITY_INVALID",
        400,
      );
      await expectAuthError(auth.api.resolveIdentity({ ...wallet(), userType: "api" }), "ERR_IDENTITY_INVALID", 400);
      await expectAuthError(
        auth.api.resolveIdentity({ network: "ethereum", sourceIdentifier: ADDRESS, sourceType: { type: "oauth", provider: "google", user_id: "1" } }),
        "ERR_IDENTITY_INVALID",
        400,
      );
      expect(await count()).toBe(before);
    });

    it("accepts a 32-byte Solana address as given (case-sensitive)", async () => {
      const address = "7EcDhSYGxXyscszYEp35KHN8vvw3svAuLKTzXwCFLtV"; // 43 chars, 32 bytes
      const row = await auth.api.resolveIdentity({ network: "solana", sourceIdentifier: address, sourceType: { type: "web3_wallet", provider: "phantom", network: "solana", metadata: { chain_id: "mainnet" } } });
      expect(row.source_identifier).toBe(address);
    });

    it("refuses a deactivated user with 403 ERR_USER_DEACTIVATED and leaves the row as it was", async () => {
      const user = await auth.api.resolveIdentity(wallet(toChecksumAddress("0x" + "ab".repeat(20))));
      await auth.api.deactivateUser(user.id);
      await expectAuthError(auth.api.resolveIdentity(wallet(user.source_identifier)), "ERR_USER_DEACTIVATED", 403);
      const row = await auth.api.getUser(user.id);
      expect(row).toMatchObject({ is_active: false, updated_at: expect.any(Date) });
      const reactivated = await auth.api.reactivateUser(user.id);
      expect(reactivated.is_active).toBe(true);
      expect((await auth.api.resolveIdentity(wallet(user.source_identifier))).id).toBe(user.id);
    });

    it("deactivate/reactivate an unknown or malformed id is ERR_USER_NOT_FOUND", async () => {
      await expectAuthError(auth.api.deactivateUser("00000000-0000-4000-8000-000000000000"), "ERR_USER_NOT_FOUND", 404);
      await expectAuthError(auth.api.reactivateUser("not-a-uuid"), "ERR_USER_NOT_FOUND", 404);
    });

    it("registers system agents as network system, user type agent, idempotently by agent id", async () => {
      const agent = await auth.api.registerSystemAgent({ agentId: "runner-1", agentType: "task_runner", capabilities: ["execute_tasks"], metadata: { version: "1.0.0" } });
      expect(agent).toMatchObject({
        network: "system",
        user_type: "agent",
        source_identifier: "runner-1",
        source_type: { type: "system_agent", agent_type: "task_runner", capabilities: ["execute_tasks"], metadata: { version: "1.0.0" } },
      });
      const again = await auth.api.registerSystemAgent({ agentId: "runner-1", agentType: "task_runner", capabilities: ["execute_tasks", "monitor_status"] });
      expect(again.id).toBe(agent.id);
      expect(again.source_type.capabilities).toEqual(["execute_tasks", "monitor_status"]);
      const random = await auth.api.registerSystemAgent({ agentType: "monitor", capabilities: [], userType: "system" });
      expect(random).toMatchObject({ user_type: "system", source_identifier: expect.stringMatching(/^agent_/) });
      await expectAuthError(auth.api.registerSystemAgent({ agentType: "x", capabilities: [1 as never] }), "ERR_SOURCE_TYPE_INVALID", 400);
    });

    it("200 concurrent first sign-ins of one identity yield exactly one row and no errors", async () => {
      const address = toChecksumAddress("0x" + "cd".repeat(20));
      const results = await Promise.allSettled(Array.from({ length: 200 }, () => auth.api.resolveIdentity(wallet(address))));
      const rejected = results.filter((r) => r.status === "rejected");
      expect(rejected).toEqual([]);
      const ids = new Set(results.map((r) => (r as PromiseFulfilledResult<{ id: string }>).value.id));
      expect(ids.size).toBe(1);
      const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM user_references WHERE source_identifier = $1", [address]);
      expect(rows[0]!.n).toBe(1);
    });

    it("a repeat sign-in that changes nothing writes nothing (no new row version, updated_at kept); one that changes source_type writes it", async () => {
      const address = toChecksumAddress("0x" + "ce".repeat(20));
      const first = await auth.api.resolveIdentity(wallet(address));
      const version = async () => (await db.query<{ xmin: string; updated_at: Date }>("SELECT xmin::text, updated_at FROM user_references WHERE id = $1", [first.id])).rows[0]!;
      const before = await version();
      const again = await auth.api.resolveIdentity(wallet(address));
      expect(again).toEqual(first);
      expect(await version()).toEqual(before);
      const changed = { ...wallet(address), sourceType: { ...wallet(address).sourceType, provider: "rainbow" } };
      const updated = await auth.api.resolveIdentity(changed);
      expect(updated.id).toBe(first.id);
      expect(updated.source_type).toMatchObject({ provider: "rainbow" });
      expect((await version()).xmin).not.toBe(before.xmin);
    });

    it("review: 30 concurrent repeat sign-ins of one identity, each with a new source_type, all succeed (no deadlock between the read's lock and the update)", async () => {
      const address = toChecksumAddress("0x" + "cf".repeat(20));
      await auth.api.resolveIdentity(wallet(address));
      const results = await Promise.allSettled(
        Array.from({ length: 30 }, (_, i) => auth.api.resolveIdentity({ ...wallet(address), sourceType: { ...wallet(address).sourceType, metadata: { chain_id: i + 1 } } })),
      );
      expect(results.filter((r) => r.status === "rejected")).toEqual([]);
    });
  });
}

describe("migration runner", () => {
  const server = serverEngine();
  it.skipIf(!server)("two runners started at once on two connections apply each migration once (PostgreSQL)", async () => {
    const a = await server!.create();
    try {
      // A second pool on the same database: another app instance starting at the same moment.
      const { connectDatabase } = await import("./index.js");
      const other = await connectDatabase(a.url!);
      const [first, second] = await Promise.all([runMigrations(a, [coreMigrations]), runMigrations(other, [coreMigrations])]);
      expect([...first.applied, ...second.applied].sort()).toEqual(["core/0001_user_references", "core/0002_sessions_and_rate_limits", "core/0003_session_notify", "core/0004_verifications", "core/0005_people", "core/0006_rate_limits_unlogged"]);
      expect(first.applied.length === 0 || second.applied.length === 0).toBe(true);
      const { rows } = await a.query<{ n: number }>("SELECT count(*)::int AS n FROM erebus_migrations");
      expect(rows[0]!.n).toBe(6);
      await other.close();
    } finally {
      await a.close();
    }
  });

  for (const engine of engines()) {
    it(`is idempotent, applies new provider migrations, and refuses an edited one (${engine.name})`, async () => {
      const db = await engine.create();
      try {
        const results = await Promise.all([runMigrations(db, [coreMigrations]), runMigrations(db, [coreMigrations])]);
        expect(results.flatMap((r) => r.applied)).toHaveLength(6);
        const provider = { owner: "demo", migrations: [{ id: "0001_things", sql: "CREATE TABLE demo_things (id int)" }] };
        expect((await runMigrations(db, [coreMigrations, provider])).applied).toEqual(["demo/0001_things"]);
        expect((await runMigrations(db, [coreMigrations, provider])).applied).toEqual([]);
        const edited = { owner: "demo", migrations: [{ id: "0001_things", sql: "CREATE TABLE demo_things (id bigint)" }] };
        await expect(runMigrations(db, [coreMigrations, edited])).rejects.toThrow(/changed after it was applied/);
        const failing = { owner: "demo", migrations: [...provider.migrations, { id: "0002_bad", sql: "CREATE TABLE demo_things (id int)" }] };
        await expect(runMigrations(db, [coreMigrations, failing])).rejects.toThrow(/demo\/0002_bad failed/);
        const { rows } = await db.query<{ id: string }>("SELECT id FROM erebus_migrations WHERE owner = 'demo'");
        expect(rows.map((r) => r.id)).toEqual(["0001_things"]); // the failed one left no trace
      } finally {
        await db.close();
      }
    });
  }
});
