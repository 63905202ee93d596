import type { Request } from "express";
import type { Logger } from "@erebus/core/provider";

/**
 * What Erebus needs of a Passport strategy: `authenticate(req, options)`, which ends by calling one of
 * the actions Passport attaches (`success`, `fail`, `redirect`, `pass`, `error`). Every strategy
 * built on passport-strategy has this shape.
 */
export interface PassportStrategy {
  name?: string | undefined;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- strategies type `this` and options their own way
  authenticate(this: any, req: any, options?: any): unknown;
}

/** How one attempt ended: the first action the strategy took, or the timeout. */
export type StrategyOutcome =
  | { action: "success"; user: unknown; info: unknown }
  | { action: "fail"; challenge: unknown; status: number | undefined }
  | { action: "redirect"; url: string; status: number }
  | { action: "pass" }
  | { action: "error"; error: unknown }
  | { action: "timeout" };

export interface RunOptions {
  /** Milliseconds before a strategy that took no action is given up on. */
  timeout: number;
  logger: Logger;
  /** For the logs. */
  label: string;
  /** Sets per-request fields on the instance (a state store) before `authenticate` runs. */
  prepare?(instance: Record<string, unknown>): void;
}

/**
 * Runs one authentication attempt of `strategy`, as Passport's `authenticate` middleware does but
 * without `passport.initialize()` or a session: a per-request instance (`Object.create(strategy)`,
 * so the shared strategy object is never written) gets the five actions, and the first one it calls
 * settles the attempt. A strategy that calls a second action (a verify callback that calls `done`
 * twice, say) is ignored and logged: the first answer already went out. One that never acts is
 * given up on after `timeout`.
 */
export function runStrategy(strategy: PassportStrategy, req: Request, authenticateOptions: Record<string, unknown>, options: RunOptions): Promise<StrategyOutcome> {
  return new Promise((resolve) => {
    let settled: StrategyOutcome["action"] | undefined;
    const settle = (outcome: StrategyOutcome) => {
      if (settled !== undefined) {
        options.logger.warn("passport strategy acted after its attempt had settled; ignored", { strategy: options.label, first: settled, then: outcome.action });
        return;
      }
      settled = outcome.action;
      clearTimeout(timer);
      resolve(outcome);
    };
    const timer = setTimeout(() => {
      options.logger.warn("passport strategy took no action in time", { strategy: options.label, timeout: options.timeout });
      settle({ action: "timeout" });
    }, options.timeout);
    timer.unref?.();

    const instance = Object.create(strategy) as Record<string, unknown>;
    instance.success = (user: unknown, info?: unknown) => settle({ action: "success", user, info });
    // Passport's fail(challenge, status) also takes fail(status).
    instance.fail = (challenge?: unknown, status?: unknown) =>
      typeof challenge === "number"
        ? settle({ action: "fail", challenge: undefined, status: challenge })
        : settle({ action: "fail", challenge, status: typeof status === "number" ? status : undefined });
    instance.redirect = (url: unknown, status?: unknown) => settle({ action: "redirect", url: String(url), status: typeof status === "number" ? status : 302 });
    instance.pass = () => settle({ action: "pass" });
    instance.error = (error: unknown) => settle({ action: "error", error });
    try {
      options.prepare?.(instance);
      (instance.authenticate as PassportStrategy["authenticate"]).call(instance, req, authenticateOptions);
    } catch (error) {
      settle({ action: "error", error });
    }
  });
}
