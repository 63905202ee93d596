import { connectDatabase, type ErebusProvider } from "@erebus/core";
import { postgresCacheSink } from "./cache-sink.js";
import { outboxClaimsMigration, outboxMigration } from "./outbox.js";
import { createSyncRelay } from "./relay.js";

/**
 * Adds the outbox to an Erebus database (its migration) and the `npx erebus sync run|status`
 * commands. The relay itself is `createSyncRelay()`, in-process or through the command.
 *
 * @example
 * createAuth({ database, baseURL, providers: [walletProvider(), syncProvider({ target: process.env.AGENTS_DATABASE_URL })] })
 */
export function syncProvider(options: { target?: string | undefined } = {}) {
  if (options.target !== undefined && !/^(postgres|postgresql|pglite):\/\//.test(options.target)) {
    throw new TypeError("syncProvider: option \"target\" must be a postgres://, postgresql:// or pglite:// URL");
  }
  return {
    id: "sync",
    emits: [],
    migrations: [outboxMigration, outboxClaimsMigration],
    commands: {
      sync: {
        description:
          "run the relay into the agents database (sync run), report its lag (sync status), re-copy every row and overwrite the cache (sync resync), let a role read the cache (sync grant-reader <role>)",
        async run(args, { auth, out, err }) {
          const [action] = args;
          if (action === "status") {
            const relay = createSyncRelay({ source: auth.db, sink: { name: "none", deliver: async () => undefined } });
            out(JSON.stringify(await relay.status(), null, 2));
            return;
          }
          if (!["run", "resync", "grant-reader"].includes(action ?? "")) {
            throw new TypeError("usage: erebus sync run | status | resync | grant-reader <role>");
          }
          const target = options.target ?? process.env.AGENTS_DATABASE_URL;
          if (!target) throw new TypeError("set AGENTS_DATABASE_URL (or syncProvider({ target })) to the agents database");
          const shown = target.replace(/\/\/[^@/]*@/, "//***@");
          if (action === "grant-reader") {
            const role = args[1];
            if (!role) throw new TypeError("usage: erebus sync grant-reader <role>");
            const sink = postgresCacheSink(await connectDatabase(target));
            try {
              await sink.migrate();
              await sink.grantReader(role);
            } finally {
              await sink.close();
            }
            out(`${role} may now read user_references_cache in ${shown} (SELECT only)`);
            return;
          }
          await auth.api.migrate();
          if (action === "resync") {
            const sink = postgresCacheSink(await connectDatabase(target));
            try {
              await sink.migrate();
              const result = await sink.resync(auth.db);
              out(JSON.stringify(result, null, 2));
            } finally {
              await sink.close();
            }
            return;
          }
          const sink = postgresCacheSink(await connectDatabase(target));
          await sink.migrate();
          const relay = createSyncRelay({ source: auth.db, sink });
          relay.start();
          out(`sync relay running into ${shown}; Ctrl-C stops it`);
          await new Promise<void>((resolve) => {
            process.once("SIGINT", resolve);
            process.once("SIGTERM", resolve);
          });
          await relay.stop();
          await sink.close?.();
          err("sync relay stopped");
        },
      },
    },
  } satisfies ErebusProvider;
}
