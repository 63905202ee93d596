import { closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync, utimesSync, writeSync } from "node:fs";
import { hostname } from "node:os";
import { dirname, join } from "node:path";
import { AuthError } from "../errors.js";

/** The lock file Erebus keeps in a PGlite data directory while a process has it open. */
export const LOCK_FILE = "erebus.lock";

/** What a held lock says about its holder. */
interface LockContent {
  pid: number;
  host: string;
  since: string;
}

export interface DirectoryLock {
  readonly file: string;
  /** Removes the lock file (only if it is still ours). Safe to call twice. */
  release(): void;
}

const WHAT_TO_DO =
  "PGlite is single-process: stop the process that has it open (the app) and retry, " +
  "or run the command through the running app, " +
  "or use a PostgreSQL server (DATABASE_URL=postgres://…) to share one database between processes";

function unavailable(detail: string, cause?: unknown): AuthError {
  return AuthError.of("ERR_DATABASE_UNAVAILABLE", { detail, ...(cause === undefined ? {} : { cause }) });
}

function readLock(file: string): LockContent | undefined {
  try {
    const parsed = JSON.parse(readFileSync(file, "utf8")) as Partial<LockContent>;
    if (Number.isSafeInteger(parsed.pid) && (parsed.pid as number) > 0 && typeof parsed.host === "string") return parsed as LockContent;
  } catch {
    // unreadable or half-written: treated as held (below), never silently taken over
  }
  return undefined;
}

/**
 * A holder touches its lock file this often. A lock naming another host that nobody has touched for
 * STALE_AFTER_MS is taken over: that is how a lock left by a container that was killed (its host
 * name and PID namespace gone with it, so neither can be checked) stops blocking the next one.
 */
const HEARTBEAT_MS = 10_000;
const STALE_AFTER_MS = 60_000;
/** Lock files this process holds: a lock naming our own PID that is not among them was left by an earlier process that had our PID (a container's PID 1). */
const heldHere = new Set<string>();

function untouchedFor(file: string): number {
  try {
    return Date.now() - statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

function isStale(file: string, holder: LockContent | undefined, mine: LockContent): boolean {
  if (holder === undefined) return untouchedFor(file) > STALE_AFTER_MS; // half-written by a crash
  if (holder.host === mine.host) {
    // On this host the PID says it all: a live holder keeps its lock however long it has not
    // touched it (paused, stopped in a debugger, a suspended laptop).
    if (holder.pid === process.pid) return !heldHere.has(file);
    return !isAlive(holder.pid);
  }
  // Another host name: a container that is gone, or another machine on a shared disk. Only the
  // heartbeat can tell.
  return untouchedFor(file) > STALE_AFTER_MS;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code !== "ESRCH";
  }
}

/**
 * Refuses a directory that lies inside another PostgreSQL data directory: that is a
 * mistyped or differently-resolved path (e.g. the CLI's default nested in the app's `.data`),
 * never what the user meant.
 */
function refuseNested(dir: string): void {
  for (let parent = dirname(dir); parent !== dirname(parent); parent = dirname(parent)) {
    if (existsSync(join(parent, "PG_VERSION")) || existsSync(join(parent, LOCK_FILE))) {
      throw unavailable(`${dir} is inside another embedded database directory (${parent}): check DATABASE_URL, relative paths resolve against the working directory`);
    }
  }
}

/**
 * Takes the exclusive lock on a PGlite data directory: a lock file created with O_EXCL holding the
 * holder's PID. Two processes on one PGlite directory each keep their own copy of the database in
 * memory and overwrite each other's files (lost writes, then a corrupt directory), so a second opener
 * is refused. Creates the directory (after checking it is not nested in another). A lock whose
 * process is gone (killed, crashed) is taken over. Released by `release()` and, failing that, when
 * the process exits.
 */
export function lockDataDirectory(dir: string): DirectoryLock {
  refuseNested(dir);
  try {
    mkdirSync(dir, { recursive: true });
  } catch (error) {
    throw unavailable(`cannot create the embedded database directory ${dir}: ${(error as Error).message}`, error);
  }
  const file = join(dir, LOCK_FILE);
  const mine: LockContent = { pid: process.pid, host: hostname(), since: new Date().toISOString() };
  const text = `${JSON.stringify(mine)}\n`;
  for (let attempt = 0; ; attempt++) {
    let fd: number;
    try {
      fd = openSync(file, "wx", 0o644);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw unavailable(`cannot create the lock file ${file}: ${(error as Error).message}`, error);
      const holder = readLock(file);
      const stale = isStale(file, holder, mine);
      if (!stale || attempt >= 2) {
        const who = holder ? `process ${holder.pid}${holder.host === mine.host ? "" : ` on ${holder.host}`} since ${holder.since}` : "another process";
        throw unavailable(`the embedded database ${dir} is in use by ${who} (lock file ${file}). ${WHAT_TO_DO}`);
      }
      // Take over only the stale lock we read: a lock someone else just took is left alone.
      try {
        if (readLock(file)?.pid === holder?.pid) unlinkSync(file);
      } catch {
        // already gone: the next attempt creates it
      }
      continue;
    }
    try {
      writeSync(fd, text);
    } finally {
      closeSync(fd);
    }
    break;
  }
  let held = true;
  heldHere.add(file);
  const heartbeat = setInterval(() => {
    try {
      utimesSync(file, new Date(), new Date());
    } catch {
      // the directory went away
    }
  }, HEARTBEAT_MS);
  heartbeat.unref();
  const release = () => {
    if (!held) return;
    held = false;
    heldHere.delete(file);
    clearInterval(heartbeat);
    process.off("exit", release);
    try {
      if (readLock(file)?.pid === process.pid) unlinkSync(file);
    } catch {
      // the directory went away: nothing to release
    }
  };
  // A clean exit without close() (process.exit in a CLI, a test runner) must not leave a lock behind;
  // a kill leaves one whose PID is dead, which the next opener takes over.
  process.on("exit", release);
  return { file, release };
}
