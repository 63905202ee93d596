import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, normalize, posix } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/**
 * Finding 13 of issue 10: the packages shipped their tests, which import the repository's `test/`
 * folder. This packs every package as `npm publish` would, installs the tarballs into an empty
 * folder as an app would, and imports every entry point with plain node (no `erebus-source`
 * condition, so the compiled `dist` is what runs).
 */

const run = promisify(execFile);
const root = fileURLToPath(new URL("..", import.meta.url));
const manifestOf = (w: string) => JSON.parse(readFileSync(join(root, "packages", w, "package.json"), "utf8")) as LockEntry & { name: string; private?: boolean };
// Every published package: each folder of packages/ that is not private.
const workspaces = readdirSync(join(root, "packages")).filter((w) => existsSync(join(root, "packages", w, "package.json")) && !manifestOf(w).private);

interface PackResult {
  name: string;
  filename: string;
  files: { path: string }[];
}
interface LockEntry {
  version?: string;
  link?: boolean;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
}

// npm, and whatever `npm test` put in the environment (npm_config_*), must not steer the child npm;
// NODE_OPTIONS could carry the erebus-source condition into the plain-node import.
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k) && k !== "NODE_OPTIONS"));
}

/**
 * The part of the repository's package-lock that the packed packages need (their dependencies,
 * transitively, as the lock resolved them), relocated under the fresh folder's node_modules. With
 * it, npm installs the third-party packages from its cache by integrity and needs no registry
 * metadata, so the install works offline and gets the exact versions the suite was tested with.
 */
function lockClosure(): Record<string, LockEntry> {
  const lock = JSON.parse(readFileSync(join(root, "package-lock.json"), "utf8")) as { packages: Record<string, LockEntry> };
  const entries = lock.packages;
  const resolve = (from: string, name: string): string | undefined => {
    if (name.startsWith("@erebus/")) return `packages/${name.slice("@erebus/".length)}`;
    // Node's lookup: the nearest node_modules up from the dependent.
    for (let base = from; ; ) {
      const candidate = base === "" ? `node_modules/${name}` : `${base}/node_modules/${name}`;
      if (entries[candidate] && !entries[candidate]!.link) return candidate;
      if (base === "") return undefined;
      const i = base.lastIndexOf("/node_modules/");
      base = i < 0 ? "" : base.slice(0, i);
    }
  };
  const seen = new Set<string>();
  const stack = workspaces.map((w) => `packages/${w}`);
  while (stack.length > 0) {
    const key = stack.pop()!;
    if (seen.has(key)) continue;
    seen.add(key);
    // A package added since the last `npm install` is not in the lock yet: its manifest says the same.
    const entry = entries[key] ?? (key.startsWith("packages/") && !key.includes("/node_modules/") ? manifestOf(key.slice("packages/".length)) : undefined);
    if (!entry) throw new Error(`package-lock.json has no entry ${key}: run npm install`);
    for (const [field, deps] of [["required", entry.dependencies], ["optional", entry.optionalDependencies], ["peer", entry.peerDependencies]] as const) {
      for (const name of Object.keys(deps ?? {})) {
        const found = resolve(key, name);
        if (found) stack.push(found);
        else if (field === "required") throw new Error(`package-lock.json does not resolve ${name} for ${key}: run npm install`);
      }
    }
  }
  const out: Record<string, LockEntry> = {};
  for (const key of seen) {
    const nested = /^packages\/([^/]+)\/(node_modules\/.+)$/.exec(key);
    if (nested) out[`node_modules/@erebus/${nested[1]}/${nested[2]}`] = entries[key]!;
    else if (!key.startsWith("packages/")) out[key] = entries[key]!;
  }
  return out;
}

/** Relative specifiers in `import … from`, `export … from`, `import(…)` and `require(…)`. */
function relativeImports(source: string): string[] {
  const found: string[] = [];
  const pattern = /(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*|\bimport\s+)["'](\.{1,2}\/[^"']*)["']/g;
  for (let m = pattern.exec(source); m; m = pattern.exec(source)) found.push(m[1]!);
  return found;
}

describe("npm packages", () => {
  let dir: string;
  let app: string;
  const packs = new Map<string, PackResult>();

  beforeAll(async () => {
    for (const w of workspaces) {
      if (!existsSync(join(root, "packages", w, "dist", "index.js"))) throw new Error(`packages/${w}/dist is missing: run npm run build first`);
    }
    dir = mkdtempSync(join(tmpdir(), "erebus-pack-"));
    const { stdout } = await run("npm", ["pack", "--json", "--ignore-scripts", "--pack-destination", dir, ...workspaces.flatMap((w) => ["-w", `packages/${w}`])], {
      cwd: root,
      env: cleanEnv(),
      maxBuffer: 16 * 1024 * 1024,
    });
    for (const p of JSON.parse(stdout) as PackResult[]) packs.set(p.name, p);

    app = join(dir, "app");
    mkdirSync(app);
    const manifest = { name: "erebus-pack-check", version: "0.0.0", private: true, type: "module" };
    writeFileSync(join(app, "package.json"), JSON.stringify(manifest));
    writeFileSync(join(app, "package-lock.json"), JSON.stringify({ name: manifest.name, version: manifest.version, lockfileVersion: 3, requires: true, packages: { "": manifest, ...lockClosure() } }));
    const tarballs = [...packs.values()].map((p) => join(dir, p.filename));
    const install = (mode: string) => run("npm", ["install", mode, "--no-audit", "--no-fund", "--ignore-scripts", "--no-save", ...tarballs], { cwd: app, env: cleanEnv(), maxBuffer: 16 * 1024 * 1024 });
    try {
      await install("--offline");
    } catch (error) {
      // Only when the npm cache lacks a tarball (a dependency added without a fresh `npm ci`).
      if (!/ENOTCACHED/.test(String((error as { stderr?: string }).stderr))) throw error;
      await install("--prefer-offline");
    }
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("finding 13: packs every package", () => {
    expect([...packs.keys()].sort()).toEqual(workspaces.map((w) => manifestOf(w).name).sort());
  });

  it("finding 13: no tarball ships a test file or anything outside dist, src, bin, migrations and the docs", () => {
    for (const { name, files } of packs.values()) {
      const paths = files.map((f) => f.path);
      expect(paths.filter((p) => /(^|\/)[^/]*\.test\.[^/]*$|(^|\/)__tests__\//.test(p)), name).toEqual([]);
      expect(paths.filter((p) => !/^(dist|src|bin|migrations)\/|^(package\.json|README\.md|LICENSE)$/.test(p)), name).toEqual([]);
      expect(paths, name).toContain("dist/index.js");
    }
  });

  it("finding 13: no shipped file imports the repository's test/ folder or any path outside its package", () => {
    for (const { name, files } of packs.values()) {
      const base = join(app, "node_modules", name);
      const shipped = new Set(files.map((f) => f.path));
      for (const file of files.map((f) => f.path).filter((p) => /\.(m?js|ts)$/.test(p) && !p.endsWith(".d.ts"))) {
        const source = readFileSync(join(base, file), "utf8");
        expect(source, `${name}/${file}`).not.toMatch(/["'](\.\.\/)+test\//);
        for (const specifier of relativeImports(source)) {
          const target = posix.normalize(posix.join(posix.dirname(file), specifier));
          expect(target.startsWith("../"), `${name}/${file} imports ${specifier}`).toBe(false);
          // Compiled code must find what it imports in the tarball (sources import .js names of .ts files).
          if (!file.startsWith("src/")) expect(shipped.has(target), `${name}/${file} imports ${specifier}, which is not in the tarball`).toBe(true);
        }
      }
    }
  });

  it("finding 13: every export, bin and source map points at a file in the tarball", () => {
    for (const { name, files } of packs.values()) {
      const shipped = new Set(files.map((f) => f.path));
      const manifest = JSON.parse(readFileSync(join(app, "node_modules", name, "package.json"), "utf8")) as { exports: Record<string, string | Record<string, string>>; bin?: Record<string, string> };
      for (const [entry, value] of Object.entries(manifest.exports)) {
        // A plain string export ("./package.json": "./package.json") has no conditions.
        const conditions = typeof value === "string" ? { default: value } : value;
        for (const [condition, target] of Object.entries(conditions)) expect(shipped.has(posix.normalize(target)), `${name} exports ${entry} (${condition}) → ${target}`).toBe(true);
      }
      for (const target of Object.values(manifest.bin ?? {})) expect(shipped.has(posix.normalize(target)), `${name} bin ${target}`).toBe(true);
      for (const map of [...shipped].filter((p) => p.endsWith(".js.map"))) {
        const { sources } = JSON.parse(readFileSync(join(app, "node_modules", name, map), "utf8")) as { sources: string[] };
        for (const source of sources) expect(shipped.has(posix.normalize(posix.join(posix.dirname(map), source))), `${name}/${map} → ${source}`).toBe(true);
      }
    }
  });

  it("finding 13: every package installs from its tarball into an empty folder and imports with plain node", async () => {
    const manifests = [...packs.keys()].map((name) => ({
      name,
      exports: Object.keys((JSON.parse(readFileSync(join(app, "node_modules", name, "package.json"), "utf8")) as { exports: Record<string, unknown> }).exports),
    }));
    // Code entry points only: a package.json export is data (imported with { type: "json" }).
    const specifiers = manifests.flatMap(({ name, exports }) => exports.filter((e) => !e.endsWith(".json")).map((e) => (e === "." ? name : `${name}/${e.slice(2)}`)));
    const script = `
      const out = {};
      for (const s of ${JSON.stringify(specifiers)}) {
        const m = await import(s);
        out[s] = { url: import.meta.resolve(s), exports: Object.keys(m).length };
      }
      console.log(JSON.stringify(out));
    `;
    const { stdout } = await run(process.execPath, ["--input-type=module", "-e", script], { cwd: app, env: cleanEnv() });
    const loaded = JSON.parse(stdout) as Record<string, { url: string; exports: number }>;
    expect(Object.keys(loaded).sort()).toEqual([...specifiers].sort());
    for (const [specifier, { url, exports }] of Object.entries(loaded)) {
      // The installed copy, compiled: not the repository's sources through a workspace link.
      const path = normalize(fileURLToPath(url));
      expect(path.startsWith(join(app, "node_modules")), `${specifier} → ${path}`).toBe(true);
      expect(path, specifier).toMatch(/\/dist\/.*\.js$/);
      expect(exports, specifier).toBeGreaterThan(0);
    }
    // The CLI runs from the installed bin.
    const cli = await run(join(app, "node_modules", ".bin", "erebus"), ["--help"], { cwd: app, env: cleanEnv() });
    expect(cli.stdout).toContain("Usage: erebus");
  });
});
