import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "@erebus/core";
import { createApp } from "./app.js";
import { configFromEnv } from "./config.js";

// Second review of issue 10, finding 2, read as an attacker. Binding to loopback keeps other
// machines out, but not a web page in the developer's own browser: DNS rebinding points
// attacker.example at 127.0.0.1, and its script then reads /dev/mailbox.json (every sign-in link)
// or signs in as anyone with X-Test-Key, same-origin as far as the browser can tell. Its requests
// carry `Host: attacker.example:<port>`; so do a reverse proxy's on the same machine.
describe("review: development helpers answer only requests addressed to a loopback name", () => {
  let server: Server;
  let port: number;
  let close: () => Promise<void>;

  beforeAll(async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", () => r()));
    port = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const config = configFromEnv({ NODE_ENV: "development", PORT: String(port), DATABASE_URL: "pglite://memory", SYNC: "off" });
    const made = await createApp(config, { logger: silentLogger });
    close = made.close;
    server = await new Promise<Server>((resolve) => {
      const s = made.app.listen(port, "127.0.0.1", () => resolve(s));
    });
  }, 120_000);
  afterAll(async () => {
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
    await close?.();
  });

  // node:http, since fetch sends its own Host whatever one asks for (a browser after DNS rebinding sends the attacker's name).
  const get = (path: string, host: string, headers: Record<string, string> = {}) =>
    new Promise<{ status: number; headers: { get(name: string): string | null }; json(): Promise<{ code?: string }> }>((resolve, reject) => {
      request({ host: "127.0.0.1", port, path, headers: { ...headers, host } }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (body += chunk));
        res.on("end", () =>
          resolve({ status: res.statusCode!, headers: { get: (name) => String(res.headers[name] ?? "") || null }, json: async () => JSON.parse(body) }),
        );
      })
        .on("error", reject)
        .end();
    });

  it("review: a DNS-rebinding Host (attacker.example) gets no mailbox, no development sign-in, no page", async () => {
    for (const host of [`attacker.example:${port}`, "attacker.example", `localhost.attacker.example:${port}`, `127.0.0.1.nip.io:${port}`]) {
      for (const path of ["/dev/mailbox.json", "/", "/api/me", "/auth/openapi.json"]) {
        const res = await get(path, host, { "x-test-key": "someone" });
        expect(res.status, `${host} ${path}`).toBe(421);
        expect(res.headers.get("content-type"), `${host} ${path}`).toMatch(/application\/problem\+json/);
        expect((await res.json()).code).toBe("ERR_HOST_NOT_LOOPBACK");
      }
    }
  });

  it("review: loopback names still reach the development helpers", async () => {
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, "localhost"]) {
      expect((await get("/dev/mailbox.json", host)).status, host).toBe(200);
    }
  });
});
