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
  override readonly name = "ErebusError";
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
    return new ErebusError({ ...candidate, code: candidate.code, title: candidate.title, status: response.status });
  }
  return new ErebusError({
    code: "ERR_CLIENT_UNEXPECTED_RESPONSE",
    title: "Unexpected response",
    status: response.status,
    detail: `HTTP ${response.status} without a problem document`,
  });
}
