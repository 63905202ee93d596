// `erebus` from the sources, for tests that run the CLI as a child process (see cliProcess in ./cli.ts).
import { runCli } from "@erebus/core";

process.exitCode = await runCli(process.argv.slice(2), { env: process.env, cwd: process.cwd() });
