// Where the example app's start-up goes, phase by phase, in one process: the same modules and steps
// as `node dist/server.js` (the built packages, not the sources), each timed alone (wall and CPU).
//   node --import tsx bench/cold-phases.ts      → one JSON line: { phase: { wallMs, cpuMs } }
// Run without the erebus-source condition, so @erebus/* load from dist as `npm start` does.
const phases: Record<string, { wallMs: number; cpuMs: number }> = {};
let cpu0 = process.cpuUsage();
let wall0 = performance.now();
const lap = (phase: string) => {
  const cpu = process.cpuUsage(cpu0);
  phases[phase] = { wallMs: performance.now() - wall0, cpuMs: (cpu.user + cpu.system) / 1000 };
  cpu0 = process.cpuUsage();
  wall0 = performance.now();
};

phases["process start to this script's first line (node and the tsx loader)"] = { wallMs: performance.now(), cpuMs: (process.cpuUsage().user + process.cpuUsage().system) / 1000 };
lap("(reset)");
await import("@erebus/core");
lap("import @erebus/core");
const app = "../examples/express-app/dist/";
await import(`${app}app.js`);
lap("import the rest of the app (providers, express, sync, Scalar)");
const { configFromEnv } = (await import(`${app}config.js`)) as typeof import("../examples/express-app/src/config.js");
const { providersFor } = (await import(`${app}providers.js`)) as typeof import("../examples/express-app/src/providers.js");
const { openDatabase } = (await import(`${app}embedded.js`)) as typeof import("../examples/express-app/src/embedded.js");
const { createAuth, silentLogger } = await import("@erebus/core");
const { postgresCacheSink } = await import("@erebus/sync");
const { PGlite } = await import("@electric-sql/pglite");
lap("(reset)");

const fresh = await PGlite.create();
await fresh.query("SELECT 1");
lap("an in-memory PGlite with initdb (PGlite.create(), before)");
await fresh.close();
lap("(reset)");
await (await openDatabase("pglite://memory")).close(); // writes the snapshot if there is none yet
lap("(reset)");
const main = await openDatabase("pglite://memory");
await main.query("SELECT 1");
lap("an in-memory PGlite from the snapshot (openDatabase, after)");
const config = configFromEnv({ NODE_ENV: "development", DATABASE_URL: "pglite://memory", AGENTS_DATABASE_URL: "pglite://memory" });
const auth = createAuth({ database: main, baseURL: config.publicUrl, basePath: "/auth", providers: providersFor(config).providers, migrate: true, logger: silentLogger, production: false });
await auth.ready;
lap("createAuth + every migration (auth.ready on a new database)");
const agents = await openDatabase("pglite://memory");
lap("the agents database, from the snapshot (after listening)");
await postgresCacheSink(agents).migrate();
lap("its cache table (sink.migrate)");
await agents.close();
await auth.close();
delete phases["(reset)"];
console.log(JSON.stringify(phases));
process.exit(0);
