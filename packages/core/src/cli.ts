import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { createAuth, type ErebusAuth } from "./create-auth.js";
import { pgliteDirectory } from "./db/connect.js";
import { lazyDatabase } from "./db/lazy.js";
import type { Database } from "./db/types.js";
import { AuthError } from "./errors.js";
import { silentLogger } from "./logger.js";
import type { ErebusProvider } from "./provider.js";

const USAGE = `Usage: erebus <command> [options]

Commands:
  migrate                      apply pending migrations (core's and the configured providers')
  users show <id>              print a user_references row as JSON
  users deactivate <id>        soft-delete a user: sign-in refused, sessions revoked
  users reactivate <id>        let a deactivated user sign in again (sessions revoked at deactivation stay revoked)
  prune [--older-than-days N]  delete sessions that expired or were revoked N days ago (default 1) and
                               rate-limit counters whose window ended; run it from cron
  sessions prune [--older-than-days N]
                               delete only such sessions
  agents create --type <t> [--capabilities a,b] [--id <agent id>] [--system]
                               register (or update) a system agent; prints its row
  <provider command> ...       commands contributed by configured providers

Options:
  --config <file>   module whose default export is { database?, baseURL?, providers?: [...] }, the app's
                    settings (default: ./erebus.config.js or .mjs if present)
  --help            this text

Environment (when the config does not set database / baseURL):
  DATABASE_URL      postgres://…, pglite://<dir> or pglite://memory (default pglite://.data/erebus)
  PUBLIC_URL        the app's public origin (default http://localhost:3000)

An embedded (pglite://<dir>) database is open in one process at a time: stop the app first, or use
a PostgreSQL server. The database used is printed on stderr.`;

export interface CliIO {
  env: NodeJS.ProcessEnv;
  cwd: string;
  out?: (line: string) => void;
  err?: (line: string) => void;
  /** Notes on what the command works on (the database it opened); default stderr. */
  info?: (line: string) => void;
}

/**
 * What an erebus.config.js exports by default: the app's settings, so the CLI works on the app's
 * database with the app's providers. Share them with the app (e.g. one function both call) rather
 * than repeating them.
 */
export interface ErebusCliConfig {
  /** The app's database: a URL (a relative `pglite://` path is resolved against the config file's folder) or a Database. */
  database?: string | Database;
  /** The app's public origin. */
  baseURL?: string;
  providers?: ErebusProvider[];
}

const DEFAULT_DATABASE = "pglite://.data/erebus";

async function loadConfig(path: string | undefined, cwd: string): Promise<{ config: ErebusCliConfig; file?: string }> {
  const candidates = path ? [resolve(cwd, path)] : ["erebus.config.js", "erebus.config.mjs"].map((f) => resolve(cwd, f));
  const file = candidates.find((f) => existsSync(f));
  if (!file) {
    if (path) throw new Error(`config file not found: ${path}`);
    return { config: {} };
  }
  const loaded = (await import(pathToFileURL(file).href)) as { default?: ErebusCliConfig };
  return { config: loaded.default ?? {}, file };
}

/** Hides a password in a database URL. */
const redact = (url: string) => url.replace(/\/\/[^@/]*@/, "//***@");

/**
 * The database the command works on, and where that choice came from. Relative `pglite://` paths
 * are made absolute here, against the config file's folder (where the app runs) or the CLI's cwd
 * for DATABASE_URL: never against whatever process.cwd() happens to be.
 */
function chooseDatabase(config: ErebusCliConfig, configFile: string | undefined, io: CliIO): { database: string | Database; shown: string } {
  const absolute = (url: string, base: string) => {
    if (!url.startsWith("pglite://")) return url;
    const dir = pgliteDirectory(url, base);
    return dir === undefined ? "pglite://memory" : `pglite://${dir}`;
  };
  if (config.database !== undefined && configFile) {
    if (typeof config.database !== "string") return { database: config.database, shown: `the Database from ${configFile}` };
    const url = absolute(config.database, dirname(configFile));
    return { database: url, shown: `${redact(url)} (from ${configFile})` };
  }
  if (io.env.DATABASE_URL) {
    const url = absolute(io.env.DATABASE_URL, io.cwd);
    return { database: url, shown: `${redact(url)} (from DATABASE_URL)` };
  }
  const url = absolute(DEFAULT_DATABASE, io.cwd);
  return { database: url, shown: `${url} (the default: set DATABASE_URL, or "database" in erebus.config.js, to the app's database)` };
}

/**
 * The `erebus` command. Returns the process exit code: 0 done, 1 failed, 2 usage.
 *
 * @example
 * DATABASE_URL=postgres://localhost/app npx erebus migrate
 */
export async function main(argv: string[], io: CliIO): Promise<number> {
  const out = io.out ?? ((line) => process.stdout.write(`${line}\n`));
  const err = io.err ?? ((line) => process.stderr.write(`${line}\n`));
  const info = io.info ?? ((line) => process.stderr.write(`${line}\n`));
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, strict: false, options: {
      config: { type: "string" },
      help: { type: "boolean" },
      type: { type: "string" },
      capabilities: { type: "string" },
      id: { type: "string" },
      system: { type: "boolean" },
      "older-than-days": { type: "string" },
    } });
  } catch (error) {
    err((error as Error).message);
    return 2;
  }
  const [command, ...rest] = parsed.positionals;
  if (parsed.values.help || !command) {
    out(USAGE);
    return command || parsed.values.help ? 0 : 2;
  }
  let auth: ErebusAuth | undefined;
  try {
    const { config, file } = await loadConfig(parsed.values.config as string | undefined, io.cwd);
    const providers = config.providers ?? [];
    const { database, shown } = chooseDatabase(config, file, io);
    // Opened by the first command that needs it (a usage error opens and locks nothing), and said
    // when it is. A URL of an unknown kind goes to createAuth as is, which explains the option.
    const db =
      typeof database === "string" && /^(postgres|postgresql|pglite):\/\//.test(database)
        ? lazyDatabase(database, { onConnect: () => info(`erebus: database ${shown}`) })
        : database;
    auth = createAuth({
      database: db,
      baseURL: config.baseURL ?? io.env.PUBLIC_URL ?? "http://localhost:3000",
      providers,
      logger: silentLogger,
    });
    if (typeof database !== "string") info(`erebus: database ${shown}`);
    if (command === "migrate") {
      const { applied } = await auth.api.migrate();
      out(applied.length ? `applied ${applied.length} migration(s):\n  ${applied.join("\n  ")}` : "nothing to apply: the database is up to date");
      return 0;
    }
    if (command === "users") {
      const [action, id] = rest;
      if (!id || !["show", "deactivate", "reactivate"].includes(action ?? "")) {
        err("usage: erebus users show|deactivate|reactivate <id>");
        return 2;
      }
      const row =
        action === "show"
          ? await auth.api.getUser(id)
          : action === "deactivate"
            ? await auth.api.deactivateUser(id)
            : await auth.api.reactivateUser(id);
      if (!row) {
        err(`no user ${id}`);
        return 1;
      }
      out(action === "show" ? JSON.stringify(row, null, 2) : `${action}d ${row.id} (${row.network}:${row.source_identifier})`);
      return 0;
    }
    if (command === "prune") {
      const days = (parsed.values as { "older-than-days"?: string })["older-than-days"] ?? "1";
      if (rest.length || !/^\d{1,4}$/.test(days)) {
        err("usage: erebus prune [--older-than-days N]");
        return 2;
      }
      const pruned = await auth.api.prune(Number(days) * 86_400);
      out(`pruned ${pruned.sessions} session(s), ${pruned.verifications} single-use secret(s) and ${pruned.rateLimits} rate-limit counter(s)`);
      return 0;
    }
    if (command === "sessions") {
      const days = (parsed.values as { "older-than-days"?: string })["older-than-days"] ?? "1";
      if (rest[0] !== "prune" || !/^\d{1,4}$/.test(days)) {
        err("usage: erebus sessions prune [--older-than-days N]");
        return 2;
      }
      out(`pruned ${await auth.api.pruneSessions(Number(days) * 86_400)} session(s)`);
      return 0;
    }
    if (command === "agents") {
      const { type, capabilities, id, system } = parsed.values as { type?: string; capabilities?: string; id?: string; system?: boolean };
      if (rest[0] !== "create" || !type) {
        err("usage: erebus agents create --type <agent type> [--capabilities a,b] [--id <agent id>] [--system]");
        return 2;
      }
      const agent = await auth.api.registerSystemAgent({
        agentType: type,
        capabilities: capabilities ? capabilities.split(",").map((c) => c.trim()).filter(Boolean) : [],
        userType: system ? "system" : "agent",
        ...(id ? { agentId: id } : {}),
      });
      out(JSON.stringify(agent, null, 2));
      return 0;
    }
    const handler = auth.commands.get(command);
    if (handler) {
      // The provider parses its own flags: hand it the raw words after the command, less --config.
      const own = argv.slice(argv.indexOf(command) + 1).filter((word, i, all) => !(word === "--config" || word.startsWith("--config=") || all[i - 1] === "--config"));
      await handler.command.run(own, { auth, ctx: auth.providerContext(handler.providerId), out, err });
      return 0;
    }
    err(`unknown command "${command}"\n\n${USAGE}`);
    return 2;
  } catch (error) {
    err(`erebus ${command}: ${error instanceof AuthError ? `${error.code}: ${error.message}` : (error as Error).message}`);
    return error instanceof TypeError ? 2 : 1;
  } finally {
    await auth?.close();
  }
}
