/**
 * Typed failures. Every refusal the server sends carries a stable `code`
 * (docs/protocol.md, "Error codes"); the SDK adds a few of its own for what
 * happens on the client's side of the wire.
 */
import type { ErrorBody, ErrorCode } from "./protocol.js";

/** Failures that never reached the server, or whose answer was lost. */
export type LocalCode =
  /** The connection dropped before the answer came; the request may or may not have run. */
  | "offline"
  /** No answer within the request timeout. */
  | "timeout"
  /** The client was closed, or the server closed it for good (a terminal close code). */
  | "closed"
  /** The HTTP request could not be made (DNS, refused connection, reset). */
  | "network"
  /** The server answered something that is not this protocol. */
  | "bad_response";

export type Code = ErrorCode | LocalCode;

export class ConfabError extends Error {
  override readonly name = "ConfabError";
  /** The server's stable code, or a local one. */
  readonly code: Code;
  /** The HTTP status of a REST refusal. */
  readonly status: number | undefined;
  /** How long the server asked to wait before retrying. */
  readonly retryAfterMs: number | undefined;
  /** A WebSocket close code, when the connection's close caused this. */
  readonly closeCode: number | undefined;

  constructor(
    code: Code,
    message: string,
    extra: { status?: number; retryAfterMs?: number; closeCode?: number } = {},
  ) {
    super(message);
    this.code = code;
    this.status = extra.status;
    this.retryAfterMs = extra.retryAfterMs;
    this.closeCode = extra.closeCode;
  }

  /** Whether sending the same thing again later may succeed. */
  get retryable(): boolean {
    return RETRYABLE.has(this.code);
  }
}

/** Codes after which the protocol says: try again (sends are idempotent). */
const RETRYABLE: ReadonlySet<Code> = new Set<Code>([
  "rate_limited",
  "unavailable",
  "internal",
  "timeout",
  "offline",
  "network",
]);

const encoder = new TextEncoder();

/** Byte length of `text` as UTF-8: the server's limits count bytes. */
export function utf8Bytes(text: string): number {
  return encoder.encode(text).length;
}

/** Throws `invalid` unless `text` is a string of `min` to `max` UTF-8 bytes. */
export function checkBytes(what: string, text: unknown, min: number, max: number): void {
  if (typeof text !== "string") {
    throw new ConfabError("invalid", `${what} must be a string`);
  }
  const n = utf8Bytes(text);
  if (n < min || n > max) {
    throw new ConfabError("invalid", `${what} must be ${min} to ${max} bytes, not ${n}`);
  }
}

/** The typed error of a refused request, from its status and error body. */
export function refusal(status: number, text: string, what: string): ConfabError {
  let body: Partial<ErrorBody> = {};
  try {
    body = JSON.parse(text) as ErrorBody;
  } catch {
    // Not an error body (a proxy's page, say): the status still tells.
  }
  if (typeof body.code !== "string") {
    return new ConfabError("bad_response", `${what}: HTTP ${status} without an error body`, { status });
  }
  return new ConfabError(body.code, body.message ?? `HTTP ${status}`, {
    status,
    ...(body.retry_after_ms === undefined || body.retry_after_ms === null
      ? {}
      : { retryAfterMs: body.retry_after_ms }),
  });
}
