import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import express, { type Express } from "express";
import { createAuth, type ErebusAuth } from "../create-auth.js";
import type { AuthOptions } from "../options.js";

/** A server listening on 127.0.0.1. */
export interface Running {
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** Drops open connections and stops listening. */
  close(): Promise<void>;
}

/** Listens on 127.0.0.1 on a free port. */
export function listen(app: Express): Promise<Running> {
  return new Promise((resolve) => {
    const server: Server = app.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        url: `http://127.0.0.1:${port}`,
        close: () => new Promise((done) => { server.closeAllConnections(); server.close(() => done()); }),
      });
    });
  });
}

/** The value and attributes of the Set-Cookie header for `name` on a fetch Response, or undefined. */
export function cookieFrom(response: Response, name: string): { value: string; attributes: string } | undefined {
  for (const header of response.headers.getSetCookie()) {
    const [pair, ...rest] = header.split(";");
    const [key, ...value] = pair!.split("=");
    if (key === name) return { value: value.join("="), attributes: rest.join(";").trim() };
  }
  return undefined;
}

/**
 * The setup most HTTP tests share: createAuth (migrating, unless `migrate: false` is given), an
 * Express app with the auth router at /auth, listening on 127.0.0.1. `routes` adds the test's own
 * app routes after the router.
 *
 * @example
 * const { auth, server } = await startAuthServer({ database: db, baseURL: "http://app.test", providers: [myProvider()] });
 * const res = await fetch(`${server.url}/auth/my/sign-in`, { method: "POST", headers: { origin: "http://app.test", "content-type": "application/json" }, body: "{}" });
 * await server.close();
 */
export async function startAuthServer(options: AuthOptions, routes?: (app: Express, auth: ErebusAuth) => void): Promise<{ auth: ErebusAuth; server: Running }> {
  const auth = createAuth({ migrate: true, ...options });
  await auth.ready;
  const app = express();
  app.use("/auth", auth.router);
  routes?.(app, auth);
  return { auth, server: await listen(app) };
}

/** The same as {@link startAuthServer}, under the name the provider guide uses. */
export const createTestAuth = startAuthServer;
