import { parseArgs } from "node:util";
import type { ProviderCommand } from "@erebus/core";
import type { ResolvedApiKeyOptions } from "./options.js";
import type { createKeyStore } from "./store.js";

const USAGE = `usage:
  erebus api-keys create --name <name> [--scopes a,b] [--agent <agent id>] [--expires-in-days N]
  erebus api-keys list [--all]
  erebus api-keys revoke <id>
  erebus api-keys rotate <id> [--grace-seconds N]`;

/** `npx erebus api-keys …`: keys that no web user owns (programs, system agents). */
export function apiKeyCommands(makeStore: (ctx: Parameters<ProviderCommand["run"]>[1]["ctx"]) => ReturnType<typeof createKeyStore>, options: ResolvedApiKeyOptions): Record<string, ProviderCommand> {
  return {
    "api-keys": {
      description: "create, list, revoke and rotate API keys",
      async run(args, { ctx, out }) {
        const { values, positionals } = parseArgs({
          args,
          allowPositionals: true,
          options: {
            name: { type: "string" },
            scopes: { type: "string" },
            agent: { type: "string" },
            "expires-in-days": { type: "string" },
            "grace-seconds": { type: "string" },
            all: { type: "boolean" },
          },
        });
        const [action, id] = positionals;
        const store = makeStore(ctx);
        const integer = (value: string | undefined, flag: string) => {
          if (value === undefined) return undefined;
          if (!/^\d+$/.test(value)) throw new TypeError(`${flag} must be a whole number`);
          return Number(value);
        };
        switch (action) {
          case "create": {
            if (!values.name) throw new TypeError(`--name is required\n${USAGE}`);
            const scopes = (values.scopes ?? "").split(",").map((s) => s.trim()).filter(Boolean);
            for (const scope of scopes) {
              if (!/^[a-z][a-z0-9_.:-]{0,63}$/.test(scope) || (options.allowedScopes && !options.allowedScopes.includes(scope))) {
                throw new TypeError(`scope "${scope}" is not allowed`);
              }
            }
            const { key, info } = await store.create({
              name: values.name,
              scopes,
              expiresInDays: integer(values["expires-in-days"], "--expires-in-days"),
              ownerId: null,
              createdBy: "cli",
              agentId: values.agent,
            });
            out(JSON.stringify({ key, ...info }, null, 2));
            out("Store the key now: it is not shown again.");
            return;
          }
          case "list":
            out(JSON.stringify(await store.list(values.all ? { all: true } : { ownerId: null }), null, 2));
            return;
          case "revoke":
            if (!id) throw new TypeError(USAGE);
            out(JSON.stringify(await store.revoke(id, undefined), null, 2));
            return;
          case "rotate": {
            if (!id) throw new TypeError(USAGE);
            const { key, info } = await store.rotate(id, undefined, integer(values["grace-seconds"], "--grace-seconds") ?? options.rotationGracePeriod);
            out(JSON.stringify({ key, ...info }, null, 2));
            out("Store the new key now: it is not shown again.");
            return;
          }
          default:
            throw new TypeError(USAGE);
        }
      },
    },
  };
}
