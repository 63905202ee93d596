import { parseArgs } from "node:util";
import type { ProviderCommand } from "@erebus/core/provider";
import type { ResolvedApiKeyOptions } from "./options.js";
import type { KeyStore } from "./store.js";

const USAGE = `usage:
  erebus api-keys create --name <name> [--scopes a,b] [--agent <agent id>] [--expires-in-days N] [--allow-pepper-mismatch]
  erebus api-keys list [--all]
  erebus api-keys revoke <id>
  erebus api-keys rotate <id> [--grace-seconds N] [--allow-pepper-mismatch]`;

const FIX_PEPPER =
  "Run this command with the app's pepper (the same erebus.config and API_KEY_PEPPER environment as the app), or pass --allow-pepper-mismatch if you are changing the pepper on purpose (keys made under the old one then stop working).";

/** `npx erebus api-keys …`: keys that no web user owns (programs, system agents). */
export function apiKeyCommands(store: KeyStore, options: ResolvedApiKeyOptions): Record<string, ProviderCommand> {
  return {
    "api-keys": {
      description: "create, list, revoke and rotate API keys",
      async run(args, { out, err }) {
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
            "allow-pepper-mismatch": { type: "boolean" },
          },
        });
        const [action, id] = positionals;
        const mine = `${store.fingerprint}${options.pepper ? "" : ", no pepper set"}`;
        /**
         * A key made or rotated here under another pepper than the app's would never verify there
         * (ERR_APIKEY_PEPPER_MISMATCH), and nothing would say so until someone tried it: the pepper
         * of the newest live key is the best evidence of the app's, so a different one is refused.
         */
        const refuseOrWarn = (message: string) => {
          if (!values["allow-pepper-mismatch"]) throw new Error(`${message}\n${FIX_PEPPER}`);
          err(`WARNING: ${message}`);
        };
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
            const [newest, ...older] = await store.fingerprintsInUse();
            if (newest && newest.fingerprint !== store.fingerprint) {
              refuseOrWarn(
                `this command's pepper (fingerprint ${mine}) is not the one the newest live API keys were made with (fingerprint ${newest.fingerprint}, ${newest.keys} key(s)): the app would refuse a key made now.`,
              );
            } else if (older.length) {
              err(`note: ${older.reduce((n, f) => n + f.keys, 0)} live key(s) were made under another pepper (fingerprints ${older.map((f) => f.fingerprint).join(", ")}) and fail verification with ERR_APIKEY_PEPPER_MISMATCH.`);
            }
            if (!options.pepper) err("warning: no pepper is set (apiKeyProvider({ pepper })): the key is hashed with plain SHA-256, and the app must run without a pepper too to accept it.");
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
            const current = (await store.list({ all: true })).find((k) => k.id === id);
            if (current?.pepperFingerprint && current.pepperFingerprint !== store.fingerprint) {
              refuseOrWarn(`key ${id} was made under another pepper (fingerprint ${current.pepperFingerprint}) than this command's (fingerprint ${mine}): rotating it here would give it a secret the app cannot verify.`);
            }
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
