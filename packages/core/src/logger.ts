/** Where Erebus writes what happened. Fields never carry secrets (tokens, keys, codes). */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/** A logger writing one JSON line per entry to stderr, from `level` up. */
export function consoleLogger(level: "debug" | "info" | "warn" | "error" = "info"): Logger {
  const order = ["debug", "info", "warn", "error"] as const;
  const min = order.indexOf(level);
  const write = (at: (typeof order)[number]) => (message: string, fields?: Record<string, unknown>) => {
    if (order.indexOf(at) < min) return;
    process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level: at, msg: `erebus: ${message}`, ...fields })}\n`);
  };
  return { debug: write("debug"), info: write("info"), warn: write("warn"), error: write("error") };
}

/** A logger that drops everything (tests). */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
