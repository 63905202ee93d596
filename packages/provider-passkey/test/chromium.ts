import { existsSync } from "node:fs";
import type { Browser } from "playwright-core";

const CANDIDATES = [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].filter(Boolean) as string[];

/** The Chromium binary, or undefined. Under CI=true a missing browser is an error, not a skip. */
export function chromiumPath(): string | undefined {
  const found = CANDIDATES.find((path) => existsSync(path));
  if (!found && process.env.CI === "true") throw new Error("CI=true: Chromium not found (apt-get install -y chromium, or set CHROMIUM_PATH)");
  return found;
}

/** Headless Chromium, kept off the network. */
export async function launchChromium(executablePath: string): Promise<Browser> {
  const { chromium } = await import("playwright-core");
  return chromium.launch({
    executablePath,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
  });
}
