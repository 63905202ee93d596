export { emailProvider } from "./email-provider.js";
export { emailOptionsSchema, type EmailOptions } from "./options.js";
export { emailErrors, type EmailErrorCode } from "./errors.js";
export { emailSchema, mailboxProvider, emailSourceTypeSchema, type EmailSourceType } from "./source-type.js";
export { smtpTransport, memoryTransport, type MailTransport, type OutgoingMail, type StoredMail } from "./transport.js";
export { linkMail, codeMail, escapeHtml } from "./templates.js";
