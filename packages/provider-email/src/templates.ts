import { escapeHtml } from "@erebus/core/provider";
import type { OutgoingMail } from "./transport.js";

/** Core's HTML escape, kept exported here for apps that imported it from this package. */
export { escapeHtml };

const minutes = (seconds: number) => `${Math.round(seconds / 60)} minute${Math.round(seconds / 60) === 1 ? "" : "s"}`;

function layout(appName: string, body: string): string {
  return `<!doctype html><html><body style="font-family:system-ui,sans-serif;color:#1d1d24;max-width:32rem;margin:2rem auto;padding:0 1rem">
<h2 style="margin-bottom:.5rem">${escapeHtml(appName)}</h2>${body}
<p style="color:#777;font-size:.85rem">If you did not ask for this, ignore this mail: nothing happens without it.</p>
</body></html>`;
}

/** The magic-link mail (plain text and HTML). */
export function linkMail(appName: string, to: string, link: string, ttlSeconds: number): OutgoingMail {
  return {
    to,
    subject: `Sign in to ${appName}`,
    text: `Sign in to ${appName} with this link:\n\n${link}\n\nIt works once and expires in ${minutes(ttlSeconds)}.\nIf you did not ask for this, ignore this mail.\n`,
    html: layout(
      appName,
      `<p>Sign in with the button below. It works once and expires in ${minutes(ttlSeconds)}.</p>
<p><a href="${escapeHtml(link)}" style="display:inline-block;background:#1d1d24;color:#fff;padding:.6rem 1.2rem;border-radius:.4rem;text-decoration:none">Sign in to ${escapeHtml(appName)}</a></p>
<p style="font-size:.85rem;word-break:break-all">${escapeHtml(link)}</p>`,
    ),
  };
}

/** The one-time-code mail (plain text and HTML). */
export function codeMail(appName: string, to: string, code: string, ttlSeconds: number): OutgoingMail {
  return {
    to,
    subject: `${code} is your ${appName} sign-in code`,
    text: `Your ${appName} sign-in code is ${code}\n\nIt expires in ${minutes(ttlSeconds)}.\nIf you did not ask for this, ignore this mail.\n`,
    html: layout(
      appName,
      `<p>Your sign-in code:</p><p style="font-size:2rem;letter-spacing:.3rem;font-weight:bold">${escapeHtml(code)}</p><p>It expires in ${minutes(ttlSeconds)}.</p>`,
    ),
  };
}
