import { spawn, spawnSync } from "node:child_process";
import type { Queryable } from "@erebus/core";

const AGENT = JSON.stringify({ type: "system_agent", agent_type: "task_runner", capabilities: ["run"] });

/** The source table, as JSON, in id order. */
export async function sourceRows(db: Queryable) {
  const { rows } = await db.query(
    `SELECT id, source_identifier, network, user_type, source_type, email, metadata, preferences, is_active, created_at, updated_at, person_id
     FROM user_references ORDER BY id`,
  );
  return JSON.parse(JSON.stringify(rows));
}
/** The cache table with the source's own timestamps, comparable to sourceRows(). */
export async function cacheRows(db: Queryable) {
  const { rows } = await db.query(
    `SELECT id, source_identifier, network, user_type, source_type, email, metadata, preferences, is_active,
            erebus_created_at AS created_at, erebus_updated_at AS updated_at, person_id
     FROM user_references_cache ORDER BY id`,
  );
  return JSON.parse(JSON.stringify(rows));
}
/** Inserts a system agent by hand in SQL (no Erebus API involved). */
export const insertAgent = (db: Queryable, name: string) =>
  db.query<{ id: string }>(
    "INSERT INTO user_references (source_identifier, network, user_type, source_type) VALUES ($1, 'system', 'agent', $2::jsonb) RETURNING id",
    [name, AGENT],
  );


/** A Kafka cluster for the tests: librdkafka's mock cluster through kcat, or the real one in KAFKA_BROKERS. */
export interface KafkaCluster {
  /** false when KAFKA_BROKERS points at a real cluster. */
  readonly mock: boolean;
  /** The current bootstrap brokers (they change when the mock restarts). */
  brokers(): string[];
  /** Mock only: stops the cluster (its log is gone with it) and starts a new one on new ports. */
  restart(): Promise<void>;
  /** Mock only: stops the cluster; `start()` brings a new one up. */
  down(): Promise<void>;
  up(): Promise<void>;
  stop(): Promise<void>;
}

/** Whether kcat (Debian package kcat, librdkafka) is installed to start the mock cluster. */
export const kcatAvailable = () => spawnSync(process.env.KCAT ?? "kcat", ["-V"], { stdio: "ignore" }).status === 0;

/**
 * Starts librdkafka's mock cluster (3 brokers, in-process in kcat, listening on loopback TCP) and
 * reads its bootstrap servers from kcat's debug output. kcat lives while its stdin is open; it is
 * ended by its PID.
 */
async function startMockCluster(): Promise<{ brokers: string[]; stop(): Promise<void> }> {
  const child = spawn(process.env.KCAT ?? "kcat", ["-b", "127.0.0.1:1", "-X", "test.mock.num.brokers=3", "-d", "mock", "-P", "-t", "erebus-mock-probe"], {
    stdio: ["pipe", "ignore", "pipe"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const brokers = await new Promise<string[]>((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(() => reject(new Error(`kcat mock cluster did not start: ${seen.slice(0, 500)}`)), 15_000);
    const onData = (chunk: Buffer) => {
      seen += chunk.toString();
      const match = /bootstrap\.servers=([0-9.:,]+)/.exec(seen);
      if (match) {
        clearTimeout(timer);
        child.stderr.off("data", onData);
        child.stderr.resume(); // keep draining the debug log so kcat never blocks on a full pipe
        resolve(match[1]!.split(","));
      }
    };
    child.stderr.on("data", onData);
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`kcat exited (${code}) before the mock cluster started: ${seen.slice(0, 500)}`)));
  });
  return {
    brokers,
    async stop() {
      child.stdin.end();
      if (child.pid !== undefined && child.exitCode === null) process.kill(child.pid, "SIGTERM");
      await exited;
    },
  };
}

export async function startKafka(): Promise<KafkaCluster> {
  const real = process.env.KAFKA_BROKERS?.split(",").filter(Boolean);
  if (real?.length) {
    const unsupported = async () => {
      throw new Error("a real cluster (KAFKA_BROKERS) is not restarted by the tests");
    };
    return { mock: false, brokers: () => real, restart: unsupported, down: unsupported, up: unsupported, stop: async () => undefined };
  }
  let current: Awaited<ReturnType<typeof startMockCluster>> | undefined = await startMockCluster();
  let last = current.brokers;
  return {
    mock: true,
    brokers: () => current?.brokers ?? last,
    async down() {
      await current?.stop();
      last = current?.brokers ?? last;
      current = undefined;
    },
    async up() {
      current ??= await startMockCluster();
    },
    async restart() {
      await this.down();
      await this.up();
    },
    async stop() {
      await current?.stop();
      current = undefined;
    },
  };
}
