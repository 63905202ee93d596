import { createApp } from "./app.js";
import { configFromEnv } from "./config.js";

const config = configFromEnv();
const { app, close } = await createApp(config);
const server = app.listen(config.port, config.host, () => {
  console.log(`Erebus example app listening on ${config.publicUrl} (database: ${config.databaseUrl.replace(/\/\/[^@/]*@/, "//***@")})`);
});

function shutdown() {
  server.close(() => void close().finally(() => process.exit(0)));
}
process.on("SIGINT", shutdown);
process.on("SIGTERM", shutdown);
