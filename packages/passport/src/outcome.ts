import { AuthError, isConnectionError, type Logger } from "@erebus/core/provider";
import type { StrategyOutcome } from "./drive.js";
import { passportErrors } from "./errors.js";

/** Where an attempt ran: a form post, a redirect start or callback, or a header credential. */
export type Phase = "form" | "redirect" | "header";

/**
 * What a strategy's error becomes: an AuthError it raised passes as it is (a state store's refusal),
 * a database connection error is core's 503, anything else (an unreachable token endpoint, a verify
 * callback that threw) is 502 ERR_PASSPORT_STRATEGY_ERROR, logged, never a 500.
 */
export function strategyError(error: unknown, logger: Logger, label: string): AuthError {
  if (error instanceof AuthError) return error;
  if (isConnectionError(error)) return AuthError.of("ERR_DATABASE_UNAVAILABLE", { cause: error, retryAfter: 5 });
  const name = error instanceof Error ? error.name : typeof error;
  // Some strategies' errors have no message at all (passport-oauth2's AuthorizationError without an error_description).
  const message = error instanceof Error ? String(error.message ?? "").slice(0, 200) : "";
  logger.warn("passport strategy raised an error", { strategy: label, error: `${name}: ${message}` });
  return passportErrors.create("ERR_PASSPORT_STRATEGY_ERROR", { cause: error });
}

/**
 * The refusal an outcome other than `success` stands for. A failure's message (passport-local's
 * "Incorrect password" vs "Unknown user") is not passed on: it would tell an attacker which
 * usernames exist.
 */
export function refusalOf(outcome: Exclude<StrategyOutcome, { action: "success" }>, phase: Phase, logger: Logger, label: string): AuthError {
  switch (outcome.action) {
    case "fail":
      logger.debug("passport strategy refused the attempt", { strategy: label, status: outcome.status });
      if (phase === "redirect") return passportErrors.create("ERR_PASSPORT_DENIED");
      return passportErrors.create(outcome.status === 400 ? "ERR_PASSPORT_CREDENTIALS_MISSING" : "ERR_PASSPORT_CREDENTIALS_INVALID");
    case "pass":
      return passportErrors.create(phase === "redirect" ? "ERR_PASSPORT_DENIED" : "ERR_PASSPORT_CREDENTIALS_MISSING");
    case "error":
      return strategyError(outcome.error, logger, label);
    case "timeout":
      return passportErrors.create("ERR_PASSPORT_TIMEOUT", { retryAfter: 5 });
    case "redirect":
      logger.warn("passport strategy redirected where Erebus expected an answer", { strategy: label, phase });
      return passportErrors.create("ERR_PASSPORT_STRATEGY_ERROR");
  }
}
