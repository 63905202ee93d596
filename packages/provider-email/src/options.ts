import { parseOptions } from "@erebus/core/provider";
import * as z from "zod";
import type { MailTransport } from "./transport.js";

const isTransport = (value: unknown): value is MailTransport =>
  typeof value === "object" && value !== null && typeof (value as { send?: unknown }).send === "function";

/** Every option of `emailProvider()`, with its default. */
export const emailOptionsSchema = z.strictObject({
  /** Where mail goes: `smtpTransport(url)`, `memoryTransport()` in development, or your own `{ send }`. */
  transport: z.custom<MailTransport>(isTransport, "must have a send(mail) method (smtpTransport, memoryTransport or your own)"),
  /** Name used in subjects and bodies. */
  appName: z.string().min(1).max(64).default("Erebus"),
  /** Seconds a magic link works. */
  linkTtl: z.number().int().min(60).max(86_400).default(15 * 60),
  /** Seconds a one-time code works. */
  codeTtl: z.number().int().min(60).max(3600).default(10 * 60),
  /** Wrong codes allowed before the code is dead. */
  maxCodeAttempts: z.number().int().min(1).max(10).default(5),
  /**
   * Wrong codes allowed per address across all its codes within `codeFailureWindow`; past it no
   * code works for the address until a link is used or the window ends (a new code is no new budget).
   */
  maxCodeFailures: z.number().int().min(1).max(100).default(10),
  /** Seconds over which `maxCodeFailures` counts, from the first wrong code. */
  codeFailureWindow: z.number().int().min(60).max(30 * 86_400).default(86_400),
  /**
   * Links per address that work at once: a new link ends only links beyond the newest this many
   * (someone else can ask for links to your address, and every such link is in your mailbox);
   * using any link ends the others.
   */
  maxLiveLinks: z.number().int().min(1).max(20).default(5),
  /** Where the browser goes after signing in through the confirm page (a same-origin path). */
  successRedirect: z.string().regex(/^\/(?!\/)[^\s\\]*$/, "must be a same-origin path like /").default("/"),
  /**
   * `perAddress`: mails of each kind (links, codes) per address per 15 minutes; past it starts
   * still answer the same 202 and send nothing. `perClient`: start requests per client IP per
   * minute (429). `verifyPerClient`: confirm-page views and verify requests per client IP per minute (429).
   */
  rateLimit: z
    .strictObject({
      perAddress: z.number().int().positive().default(5),
      perClient: z.number().int().positive().default(20),
      verifyPerClient: z.number().int().positive().default(60),
    })
    .default({ perAddress: 5, perClient: 20, verifyPerClient: 60 }),
});

export type EmailOptions = z.input<typeof emailOptionsSchema>;
export type ResolvedEmailOptions = z.output<typeof emailOptionsSchema>;

export const resolveEmailOptions = (input: unknown): ResolvedEmailOptions => parseOptions(emailOptionsSchema, input ?? {}, "emailProvider");
