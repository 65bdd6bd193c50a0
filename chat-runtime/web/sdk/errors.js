export class ConfabError extends Error {
    name = "ConfabError";
    /** The server's stable code, or a local one. */
    code;
    /** The HTTP status of a REST refusal. */
    status;
    /** How long the server asked to wait before retrying. */
    retryAfterMs;
    /** A WebSocket close code, when the connection's close caused this. */
    closeCode;
    constructor(code, message, extra = {}) {
        super(message);
        this.code = code;
        this.status = extra.status;
        this.retryAfterMs = extra.retryAfterMs;
        this.closeCode = extra.closeCode;
    }
    /** Whether sending the same thing again later may succeed. */
    get retryable() {
        return RETRYABLE.has(this.code);
    }
}
/** Codes after which the protocol says: try again (sends are idempotent). */
const RETRYABLE = new Set([
    "rate_limited",
    "unavailable",
    "internal",
    "timeout",
    "offline",
    "network",
]);
const encoder = new TextEncoder();
/** Byte length of `text` as UTF-8: the server's limits count bytes. */
export function utf8Bytes(text) {
    return encoder.encode(text).length;
}
/** Throws `invalid` unless `text` is a string of `min` to `max` UTF-8 bytes. */
export function checkBytes(what, text, min, max) {
    if (typeof text !== "string") {
        throw new ConfabError("invalid", `${what} must be a string`);
    }
    const n = utf8Bytes(text);
    if (n < min || n > max) {
        throw new ConfabError("invalid", `${what} must be ${min} to ${max} bytes, not ${n}`);
    }
}
/** The typed error of a refused request, from its status and error body. */
export function refusal(status, text, what) {
    let body = {};
    try {
        body = JSON.parse(text);
    }
    catch {
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
