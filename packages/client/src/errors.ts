/** An RFC 9457 problem document as Erebus sends it: `code` is the stable part to match on. */
export interface Problem {
  type?: string;
  title: string;
  status: number;
  detail?: string;
  code: string;
  [extension: string]: unknown;
}

/**
 * Every failure of a client call: an Erebus problem+json answer, or a transport failure
 * (`ERR_CLIENT_NETWORK`), or an answer that is not one of ours (`ERR_CLIENT_UNEXPECTED_RESPONSE`).
 * Match on `code`, never on the message.
 *
 * @example
 * try { await client.email.verify({ email, code }); }
 * catch (error) { if (error instanceof ErebusError && error.code === "ERR_EMAIL_CODE_INVALID") … }
 */
export class ErebusError extends Error {
  override readonly name: string = "ErebusError";
  readonly code: string;
  readonly status: number;
  readonly title: string;
  readonly detail: string | undefined;
  /** The whole problem document, extension members included (`field`, `retryAfter`, …). */
  readonly problem: Problem;

  constructor(problem: Problem, options?: { cause?: unknown }) {
    super(problem.detail ? `${problem.title}: ${problem.detail} (${problem.code})` : `${problem.title} (${problem.code})`, options);
    this.code = problem.code;
    this.status = problem.status;
    this.title = problem.title;
    this.detail = problem.detail;
    this.problem = problem;
  }
}

/**
 * 403 `ERR_REAUTH_REQUIRED`: linking, unlinking and merging need a session that proved a credential
 * recently; sign in again with any identity of the person (it refreshes the session), then retry.
 */
export class ReauthRequiredError extends ErebusError {
  override readonly name = "ReauthRequiredError";
  /** The window the server allows, in seconds, when it said. */
  readonly maxAge: number | undefined;

  constructor(problem: Problem, options?: { cause?: unknown }) {
    super(problem, options);
    this.maxAge = typeof problem.maxAge === "number" ? problem.maxAge : undefined;
  }
}

/**
 * 409 `ERR_IDENTITY_LINKED_ELSEWHERE`: the identity just proven belongs to another person with
 * `identities` identities. Linking again with `merge: true` (and a fresh proof) takes that person in.
 *
 * @example
 * catch (error) {
 *   if (error instanceof IdentityLinkedElsewhereError && confirm(`Merge a person with ${error.identities} identities?`))
 *     await client.signInWithEthereum(signer, { intent: "link", merge: true });
 * }
 */
export class IdentityLinkedElsewhereError extends ErebusError {
  override readonly name = "IdentityLinkedElsewhereError";
  /** How many identities the other person has (0 when the server did not say). */
  readonly identities: number;

  constructor(problem: Problem, options?: { cause?: unknown }) {
    super(problem, options);
    this.identities = typeof problem.identities === "number" && Number.isInteger(problem.identities) && problem.identities >= 0 ? problem.identities : 0;
  }
}

/** The typed error for a problem document: a subclass for the codes a caller acts on, else `ErebusError`. */
export function errorFromProblem(problem: Problem, options?: { cause?: unknown }): ErebusError {
  if (problem.code === "ERR_REAUTH_REQUIRED") return new ReauthRequiredError(problem, options);
  if (problem.code === "ERR_IDENTITY_LINKED_ELSEWHERE") return new IdentityLinkedElsewhereError(problem, options);
  return new ErebusError(problem, options);
}

/** Builds the error for a non-2xx response: the server's problem document when it sent one. */
export async function errorFromResponse(response: Response): Promise<ErebusError> {
  const text = await response.text().catch(() => "");
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  const candidate = body as Partial<Problem> | undefined;
  if (candidate && typeof candidate.code === "string" && typeof candidate.title === "string") {
    return errorFromProblem({ ...candidate, code: candidate.code, title: candidate.title, status: response.status });
  }
  return new ErebusError({
    code: "ERR_CLIENT_UNEXPECTED_RESPONSE",
    title: "Unexpected response",
    status: response.status,
    detail: `HTTP ${response.status} without a problem document`,
  });
}
