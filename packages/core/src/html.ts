import type { Response } from "express";

/** Escapes text for HTML (element content and quoted attributes). */
export const escapeHtml = (value: string) =>
  value.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);

/**
 * Sends a small self-contained page a provider shows in the browser (a confirm step, a failure):
 * no scripts, no third-party anything, never framed, never cached, and no Referer to another site
 * (the URL often carries a token). `body` is HTML the caller has escaped; `title` is escaped here.
 * `imgSrc` allows images from those sources (e.g. `"https:"` for an avatar).
 */
export function sendPage(res: Response, status: number, title: string, body: string, options: { imgSrc?: string } = {}): void {
  const img = options.imgSrc ? ` img-src ${options.imgSrc};` : "";
  res
    .status(status)
    .set({
      "Content-Type": "text/html; charset=utf-8",
      "Referrer-Policy": "no-referrer",
      "Cache-Control": "no-store",
      "Content-Security-Policy": `default-src 'none';${img} style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`,
      "X-Content-Type-Options": "nosniff",
    })
    .send(`<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>${escapeHtml(title)}</title>
<style>body{font-family:system-ui,sans-serif;color:#1d1d24;background:#f6f5f2;max-width:28rem;margin:4rem auto;padding:0 1rem}
button{font:inherit;padding:.6rem 1.4rem;cursor:pointer}img{border-radius:50%;width:64px;height:64px}</style></head><body>${body}</body></html>`);
}
