// Size of each @erebus/client entry point as a page loads it: bundled (with everything it imports),
// minified, and gzipped. Run after `npm run build`: node bench/client-size.ts
import { buildSync } from "esbuild";
import { gzipSync } from "node:zlib";

const entries = ["index", "ethereum", "solana", "wallet-standard"];
console.log("| entry point | minified | gzip |\n|---|---|---|");
for (const entry of entries) {
  const { outputFiles } = buildSync({ entryPoints: [`packages/client/dist/${entry}.js`], bundle: true, minify: true, format: "esm", platform: "browser", write: false });
  const bytes = outputFiles[0]!.contents;
  const name = entry === "index" ? "@erebus/client" : `@erebus/client/${entry}`;
  console.log(`| \`${name}\` | ${(bytes.length / 1024).toFixed(1)} kB | ${(gzipSync(bytes).length / 1024).toFixed(1)} kB |`);
}
