import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import express, { type Express } from "express";
import { createAuth, type AuthOptions, type ErebusAuth } from "@erebus/core";

export interface Running {
  url: string;
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

/** The name=value of a Set-Cookie header for `name`, or undefined. */
export function cookieFrom(response: Response, name: string): { value: string; attributes: string } | undefined {
  for (const header of response.headers.getSetCookie()) {
    const [pair, ...rest] = header.split(";");
    const [key, ...value] = pair!.split("=");
    if (key === name) return { value: value.join("="), attributes: rest.join(";").trim() };
  }
  return undefined;
}

/**
 * The setup most HTTP tests share: createAuth (migrating), an Express app with the auth router at
 * /auth, listening on 127.0.0.1. `routes` adds the test's own app routes after the router.
 */
export async function startAuthServer(options: AuthOptions, routes?: (app: Express, auth: ErebusAuth) => void): Promise<{ auth: ErebusAuth; server: Running }> {
  const auth = createAuth({ migrate: true, ...options });
  await auth.ready;
  const app = express();
  app.use("/auth", auth.router);
  routes?.(app, auth);
  return { auth, server: await listen(app) };
}
