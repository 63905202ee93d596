import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { engines } from "../../../test/engines.js";
import { runMigrations, coreSourceTypes, type Database } from "./index.js";
import { coreMigrations } from "./migrate.js";
import { SourceTypeRegistry } from "./source-types.js";
import { testAccountSourceType } from "./testing/index.js";

// The seed document's five JSON examples, verbatim.
const seedExamples = {
  web3_wallet: { type: "web3_wallet", provider: "metamask", network: "ethereum", metadata: { wallet_version: "10.0.0" } },
  api_key: { type: "api_key", name: "trading_bot", scope: ["read", "write"], metadata: { permissions: ["trade", "withdraw"] } },
  email_auth: { type: "email_auth", verified: true, provider: "gmail", metadata: { last_login: "2025-01-20T10:00:00Z" } },
  system_agent: { type: "system_agent", agent_type: "task_runner", capabilities: ["execute_tasks", "monitor_status"], metadata: { version: "1.0.0" } },
  oauth: { type: "oauth", provider: "google", user_id: "12345", metadata: { access_token_expires: "2025-02-20T10:00:00Z" } },
};

const broken: Record<string, unknown> = {
  "not an object": ["web3_wallet"],
  "missing type": { provider: "metamask" },
  "type not a string": { type: 5, provider: "metamask" },
  "unknown type": { type: "carrier_pigeon", provider: "x" },
  "missing required key (api_key.scope)": { type: "api_key", name: "bot" },
  "missing required key (oauth.user_id)": { type: "oauth", provider: "google" },
  "wrong kind (email_auth.verified as string)": { type: "email_auth", verified: "yes", provider: "gmail" },
  "wrong kind (api_key.scope as string)": { type: "api_key", name: "bot", scope: "read" },
  "wrong element kind (system_agent.capabilities)": { type: "system_agent", agent_type: "runner", capabilities: ["a", 1] },
  "wrong kind (oauth.user_id as number)": { type: "oauth", provider: "google", user_id: 12345 },
  "non-object metadata (array)": { type: "web3_wallet", provider: "metamask", metadata: [1, 2] },
  "non-object metadata (string)": { type: "oauth", provider: "google", user_id: "1", metadata: "x" },
  "null optional key": { type: "web3_wallet", provider: "metamask", network: null },
  "wrong kind (test_account.level fractional)": { type: "test_account", handle: "a", level: 1.5 },
};

const registry = new SourceTypeRegistry([...coreSourceTypes, testAccountSourceType]);

for (const engine of engines()) {
  describe(`user_references schema on ${engine.name}`, () => {
    let db: Database;
    let n = 0;
    const insert = (sourceType: unknown, extra: { metadata?: unknown } = {}) =>
      db.query<{ id: string; updated_at: Date }>(
        `INSERT INTO user_references (source_identifier, network, source_type, metadata)
         VALUES ($1, 'test', $2::jsonb, COALESCE($3::jsonb, '{}'::jsonb)) RETURNING id, updated_at`,
        [`id-${n++}`, JSON.stringify(sourceType), extra.metadata === undefined ? null : JSON.stringify(extra.metadata)],
      );

    beforeAll(async () => {
      db = await engine.create();
      await runMigrations(db, [coreMigrations], [
        ...coreSourceTypes.map((definition) => ({ definition, owner: "core" })),
        { definition: testAccountSourceType, owner: "test" },
      ]);
    });
    afterAll(async () => db?.close());

    it("has the seed's columns, types and defaults", async () => {
      const { rows } = await db.query<{ column_name: string; data_type: string; is_nullable: string; column_default: string | null }>(
        `SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns
         WHERE table_name = 'user_references' ORDER BY ordinal_position`,
      );
      expect(rows.map((r) => [r.column_name, r.data_type, r.is_nullable])).toEqual([
        ["id", "uuid", "NO"],
        ["source_identifier", "character varying", "NO"],
        ["network", "character varying", "NO"],
        ["user_type", "character varying", "NO"],
        ["source_type", "jsonb", "NO"],
        ["email", "character varying", "YES"],
        ["metadata", "jsonb", "YES"],
        ["preferences", "jsonb", "YES"],
        ["is_active", "boolean", "YES"],
        ["created_at", "timestamp with time zone", "NO"],
        ["updated_at", "timestamp with time zone", "NO"],
        // The one deliberate addition to the seed's table (DESIGN.md, "People").
        ["person_id", "uuid", "NO"],
      ]);
      const defaults = Object.fromEntries(rows.map((r) => [r.column_name, r.column_default]));
      expect(defaults.id).toBe("gen_random_uuid()");
      expect(defaults.user_type).toMatch(/^'external'/);
      expect(defaults.is_active).toBe("true");
      expect(defaults.source_type).toContain(`"provider": "unknown"`);
    });

    it("has the unique identity constraint and the look-up indexes", async () => {
      const { rows } = await db.query<{ indexname: string; indexdef: string }>(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'user_references'",
      );
      const defs = rows.map((r) => r.indexdef).join("\n");
      expect(defs).toMatch(/UNIQUE INDEX \S+ ON \S*user_references USING btree \(network, source_identifier\)/);
      for (const column of ["email", "user_type", "is_active", "created_at"]) {
        expect(defs).toMatch(new RegExp(`USING btree \\(${column}\\)`));
      }
      expect(defs).toMatch(/USING gin \(source_type\)/);
      expect(defs).toMatch(/USING gin \(metadata\)/);
    });

    for (const [type, example] of Object.entries(seedExamples)) {
      it(`accepts the seed's ${type} example in zod and in the database`, async () => {
        expect(registry.parse(example).success).toBe(true);
        const { rows } = await insert(example);
        expect(rows).toHaveLength(1);
      });
    }

    it("accepts the table's default source_type", async () => {
      const { rows } = await db.query<{ source_type: unknown }>(
        "INSERT INTO user_references (source_identifier, network) VALUES ('default-st', 'test') RETURNING source_type",
      );
      expect(rows[0]!.source_type).toEqual({ type: "web3_wallet", provider: "unknown", metadata: {} });
    });

    for (const [why, value] of Object.entries(broken)) {
      it(`rejects a source_type with ${why} in zod and in the database`, async () => {
        expect(registry.parse(value).success).toBe(false);
        await expect(insert(value)).rejects.toMatchObject({ code: "23514" });
      });
    }

    it("validates source_type on UPDATE too", async () => {
      const { rows } = await insert(seedExamples.oauth);
      await expect(
        db.query("UPDATE user_references SET source_type = source_type - 'user_id' WHERE id = $1", [rows[0]!.id]),
      ).rejects.toMatchObject({ code: "23514" });
    });

    it("rejects a non-object metadata column", async () => {
      await expect(insert(seedExamples.oauth, { metadata: [1] })).rejects.toMatchObject({ code: "23514" });
    });

    it("accepts a provider's type once its rule is registered, as data", async () => {
      const { rows } = await insert({ type: "test_account", handle: "alice", level: 3 });
      expect(rows).toHaveLength(1);
      const rule = await db.query<{ required: unknown; registered_by: string }>(
        "SELECT required, registered_by FROM erebus_source_types WHERE type = 'test_account'",
      );
      expect(rule.rows[0]).toEqual({ required: { handle: "string" }, registered_by: "test" });
    });

    it("moves updated_at on update", async () => {
      const { rows } = await insert(seedExamples.web3_wallet);
      const before = rows[0]!.updated_at;
      await new Promise((r) => setTimeout(r, 15));
      const after = await db.query<{ updated_at: Date; created_at: Date }>(
        "UPDATE user_references SET preferences = '{\"theme\":\"dark\"}' WHERE id = $1 RETURNING updated_at, created_at",
        [rows[0]!.id],
      );
      expect(after.rows[0]!.updated_at.getTime()).toBeGreaterThan(before.getTime());
      expect(after.rows[0]!.created_at.getTime()).toBe(before.getTime());
    });

    it("holds one row per (network, source_identifier)", async () => {
      await db.query("INSERT INTO user_references (source_identifier, network) VALUES ('dup', 'ethereum')");
      await expect(
        db.query("INSERT INTO user_references (source_identifier, network) VALUES ('dup', 'ethereum')"),
      ).rejects.toMatchObject({ code: "23505" });
      // Same identifier on another network is another identity; case matters (Solana base58).
      await db.query("INSERT INTO user_references (source_identifier, network) VALUES ('dup', 'solana')");
      await db.query("INSERT INTO user_references (source_identifier, network) VALUES ('DUP', 'ethereum')");
    });
  });
}
