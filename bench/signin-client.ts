// The sign-in load generator, its own process (so its CPU is not the server's): `concurrency` clients,
// each looping nonce → sign (EIP-191, real secp256k1 keys) → verify for `seconds`, over a fixed set
// of wallets that all signed in once before the timed part (mostly returning wallets, as in real use).
// Signs with native libsecp256k1 for both servers alike, so the client costs each side the same and little.
//   node --import tsx bench/signin-client.ts <erebus|better-auth> <base url> <seconds> <concurrency>
import { randomBytes } from "node:crypto";
import http from "node:http";
import secp256k1 from "secp256k1";
import { createSiweMessage } from "viem/siwe";
import { bytesToHex, hashMessage, hexToBytes } from "viem";
import { privateKeyToAddress } from "viem/accounts";

const [kind, base, secondsArg, concurrencyArg] = process.argv.slice(2) as [string, string, string, string];
const seconds = Number(secondsArg);
const concurrency = Number(concurrencyArg);
const ORIGIN = "http://127.0.0.1";

const wallets = Array.from({ length: 40 }, (_, i) => {
  const key = randomBytes(32);
  return { key: new Uint8Array(key), address: privateKeyToAddress(bytesToHex(key)), from: `10.0.${i}.1` };
});

function sign(key: Uint8Array, message: string): string {
  const { signature, recid } = secp256k1.ecdsaSign(hexToBytes(hashMessage(message)), key);
  return `${bytesToHex(signature)}${(27 + recid).toString(16)}`;
}

/** BENCH_CLIENT_ADDRESSES=1: each wallet signs in from an address of its own (see bench/server.ts). */
const ownAddresses = process.env.BENCH_CLIENT_ADDRESSES === "1";
// node:http on kept-alive connections (as wrk does), not fetch: undici's fetch costs ~1 ms of CPU per
// request, and this process shares the cores with the server and PostgreSQL it measures.
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
const target = new URL(base);
const post = (path: string, body: unknown, from: string) =>
  new Promise<Record<string, unknown>>((resolve, reject) => {
    const payload = JSON.stringify(body);
    const headers: Record<string, string | number> = { "content-type": "application/json", "content-length": Buffer.byteLength(payload), origin: ORIGIN, ...(ownAddresses ? { "x-forwarded-for": from } : {}) };
    const req = http.request({ agent, host: target.hostname, port: target.port, path: `${target.pathname.replace(/\/$/, "")}${path}`, method: "POST", headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        if (res.statusCode !== 200) return reject(new Error(`${path} ${res.statusCode} ${text.slice(0, 200)}`));
        resolve(JSON.parse(text) as Record<string, unknown>);
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(payload);
  });

async function signInOnce(wallet: (typeof wallets)[number]): Promise<void> {
  if (kind === "erebus") {
    const { message } = (await post("/auth/siwe/nonce", { address: wallet.address, chainId: 1 }, wallet.from)) as { message: string };
    await post("/auth/siwe/verify", { message, signature: sign(wallet.key, message) }, wallet.from);
  } else {
    const { nonce } = (await post("/api/auth/siwe/nonce", {}, wallet.from)) as { nonce: string };
    const message = createSiweMessage({ domain: "127.0.0.1", address: wallet.address, statement: "Sign in to 127.0.0.1", uri: ORIGIN, version: "1", chainId: 1, nonce });
    await post("/api/auth/siwe/verify", { message, signature: sign(wallet.key, message) }, wallet.from);
  }
}

// Every wallet signs in once first: the timed part is returning wallets.
for (const wallet of wallets) await signInOnce(wallet);
// The orchestrator starts counting CPU and statements here (then sends SIGUSR2), and stops at our last line.
process.on("SIGUSR2", () => undefined);
process.stdout.write("WARM\n");
const keepAlive = setInterval(() => undefined, 1000); // a pending signal alone does not keep the process up
await new Promise<void>((resolve) => process.once("SIGUSR2", () => resolve()));
clearInterval(keepAlive);
let count = 0;
let errors = 0;
let firstError: string | undefined;
const start = performance.now();
const cpu0 = process.cpuUsage();
const end = start + seconds * 1000;
await Promise.all(
  Array.from({ length: concurrency }, async (_, worker) => {
    let i = worker;
    while (performance.now() < end) {
      try {
        await signInOnce(wallets[i % wallets.length]!);
        count++;
      } catch (error) {
        errors++;
        firstError ??= (error as Error).message;
      }
      i += concurrency;
    }
  }),
);
const elapsed = (performance.now() - start) / 1000;
// The client's own CPU: it shares the machine's cores with the server and PostgreSQL.
const cpu = process.cpuUsage(cpu0);
process.stdout.write(`${JSON.stringify({ count, errors, seconds: elapsed, rate: count / elapsed, clientCpuMs: (cpu.user + cpu.system) / 1000, firstError })}\n`);
agent.destroy();
