import { AuthError } from "@erebus/core";
import { createApp } from "./app.js";
import { configFromEnv, type AppConfig } from "./config.js";

/**
 * Configuration mistakes are TypeErrors with a message that says how to fix them, and a database
 * that cannot be opened (locked by another process, damaged) is ERR_DATABASE_UNAVAILABLE with a
 * one-line reason: print that line, not a stack.
 */
function exitOnStartupError(error: unknown): never {
  if (error instanceof AuthError && error.code === "ERR_DATABASE_UNAVAILABLE") {
    console.error(`Erebus example app: ${error.code}: ${error.detail ?? error.title}`);
    process.exit(1);
  }
  if (!(error instanceof TypeError)) throw error;
  console.error(`Erebus example app: ${error.message}`);
  process.exit(1);
}

let config: AppConfig;
let started: Awaited<ReturnType<typeof createApp>>;
try {
  config = configFromEnv();
  started = await createApp(config);
} catch (error) {
  exitOnStartupError(error);
}
const { app, agentsReady, close } = started;
// The agents database is set up while the app serves; one that cannot be opened stops it as above,
// once the app has said it listens (a lock found at once must not overtake that line).
let listening = false;
let agentsFailure: { error: unknown } | undefined;
agentsReady.catch((error: unknown) => {
  if (listening) exitOnStartupError(error);
  agentsFailure = { error };
});
const server = app.listen(config.port, config.host, () => {
  // performance.now() counts from the process's start: the time a restart costs a developer.
  console.log(`Erebus example app listening on ${config.publicUrl} (database: ${config.databaseUrl.replace(/\/\/[^@/]*@/, "//***@")}; started in ${Math.round(performance.now())} ms)`);
  if (config.development) console.log("Development helpers are on (development sign-in, /dev/mailbox, /dev/oidc, /dev/agents-cache): loopback only.");
  listening = true;
  if (agentsFailure) exitOnStartupError(agentsFailure.error);
});

function shutdown() {
  server.close(() => void close().finally(() => process.exit(0)));
}
process.on("SIGINT", shutdown);
process.on("SIGTERM", shutdown);
