// What `npx erebus …` loads when run in this folder: the same providers as the app, so
// `npx erebus migrate` and `npx erebus api-keys create …` work on the app's database.
//   cd examples/express-app && npx erebus api-keys create --name nightly --scopes read
import { configFromEnv } from "./dist/config.js";
import { providersFor } from "./dist/providers.js";

export default { providers: providersFor(configFromEnv()).providers };
