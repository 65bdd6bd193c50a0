/**
 * When to reconnect: the close-code classes of docs/protocol.md ("Close
 * codes") and jittered exponential waits between attempts.
 */
/**
 * The class of a WebSocket close code. Terminal: 1000 (normal), 1009 (a
 * message too big) and 4100–4199 (authentication, protocol violations):
 * do not reconnect until the user acts. Everything else — 1012 (restart),
 * 4000–4099 (slow consumer, capacity, heartbeat, too many sessions), and
 * any close the server did not choose (1006: the connection dropped) —
 * means reconnect and resume.
 */
export function closeAction(code) {
    if (code === 1000 || code === 1009 || (code >= 4100 && code <= 4199))
        return "terminal";
    return "reconnect";
}
/**
 * Exponential waits with "equal jitter": attempt n waits a random time in
 * [d/2, d] where d = initial · 2ⁿ, capped at max. Jitter spreads the
 * reconnects of many clients after a server restart, so they do not all
 * arrive in the same instant.
 */
export class Backoff {
    attempt = 0;
    initialMs;
    maxMs;
    random;
    constructor(options = {}) {
        this.initialMs = options.initialMs ?? 500;
        this.maxMs = options.maxMs ?? 30_000;
        this.random = options.random ?? Math.random;
    }
    /** The wait before the next attempt; each call doubles the next one. */
    next() {
        const ceiling = Math.min(this.maxMs, this.initialMs * 2 ** this.attempt);
        if (ceiling < this.maxMs)
            this.attempt += 1;
        return Math.round(ceiling / 2 + (this.random() * ceiling) / 2);
    }
    /** Back to the first wait: call once a connection is established. */
    reset() {
        this.attempt = 0;
    }
}
