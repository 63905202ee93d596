import nodemailer, { type SendMailOptions, type Transporter } from "nodemailer";

/** One mail, as Erebus hands it to a transport. */
export interface OutgoingMail {
  to: string;
  subject: string;
  text: string;
  html: string;
}

/** How mail leaves the app. `send` resolves once the mail is accepted for delivery. */
export interface MailTransport {
  send(mail: OutgoingMail): Promise<void>;
}

/**
 * Sends through nodemailer: an SMTP URL (`smtp://user:pass@host:587`, `smtps://…`) or a nodemailer
 * transporter you configured yourself.
 *
 * @example
 * emailProvider({ from: "Example <login@example.com>", transport: smtpTransport(process.env.SMTP_URL!) });
 */
export function smtpTransport(smtp: string | Transporter, from?: string): MailTransport & { from?: string } {
  const transporter = typeof smtp === "string" ? nodemailer.createTransport(smtp) : smtp;
  return {
    ...(from ? { from } : {}),
    async send(mail) {
      await transporter.sendMail({ from, ...mail } as SendMailOptions);
    },
  };
}

/** A stored mail, as a development mailbox shows it. */
export interface StoredMail extends OutgoingMail {
  sentAt: string;
}

/**
 * Keeps mail in memory instead of sending it: for development and tests, when no SMTP server is
 * configured. `messages()` lists them newest first. Never use it in production.
 */
export function memoryTransport(limit = 100): MailTransport & { messages(): StoredMail[]; clear(): void } {
  const box: StoredMail[] = [];
  return {
    async send(mail) {
      box.unshift({ ...mail, sentAt: new Date().toISOString() });
      box.length = Math.min(box.length, limit);
    },
    messages: () => box.map((m) => ({ ...m })),
    clear: () => {
      box.length = 0;
    },
  };
}
