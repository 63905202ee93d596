// What `npx erebus …` loads when run in this folder: the same providers as the app, so
// `npx erebus migrate` and `npx erebus api-keys create …` work on the app's database.
//   cd examples/express-app && npx erebus api-keys create --name nightly --scopes read
import { configFromEnv } from "./dist/config.js";
import { providersFor } from "./dist/providers.js";

// The app's database and origin too, so the CLI never works on another database than the app's
// (a relative pglite:// path is resolved against this folder, where `npm start` runs the app).
// The app must be stopped first when it runs on PGlite: one process per embedded database.
const config = configFromEnv();
export default { database: config.databaseUrl, baseURL: config.publicUrl, providers: providersFor(config).providers };
