/**
 * Requests over the WebSocket (`chats`, `history`, `open_direct`, …): each
 * carries a `req_id`, and the answer or `error` with that id settles it.
 * A request waits for a connection; once on the wire, a connection lost
 * before its answer fails it with `offline` (it may or may not have run, so
 * it is not repeated behind the caller's back), and no answer in time
 * fails it with `timeout`.
 */
import { ConfabError } from "./errors.js";
export class Requests {
    transmit;
    timeoutMs;
    waiting = new Map();
    next = 0;
    online = false;
    constructor(transmit, timeoutMs) {
        this.transmit = transmit;
        this.timeoutMs = timeoutMs;
    }
    /** Sends `frame` with a fresh `req_id`; resolves with its answer. */
    ask(frame) {
        this.next += 1;
        const req_id = `q${this.next}`;
        return new Promise((resolve, reject) => {
            const w = {
                frame: { ...frame, req_id },
                resolve: resolve,
                reject,
                onWire: false,
                timer: setTimeout(() => {
                    this.waiting.delete(req_id);
                    reject(new ConfabError("timeout", `no answer to \`${frame.type}\` in ${this.timeoutMs} ms`));
                }, this.timeoutMs),
            };
            this.waiting.set(req_id, w);
            if (this.online)
                this.put(w);
        });
    }
    /** An answer (or `error`) carrying `req_id`; false if nothing waits for it. */
    answer(frame) {
        const w = this.waiting.get(frame.req_id);
        if (!w)
            return false;
        this.waiting.delete(frame.req_id);
        clearTimeout(w.timer);
        if (frame.type === "error") {
            w.reject(new ConfabError(frame.code, frame.message, {
                ...(frame.retry_after_ms == null ? {} : { retryAfterMs: frame.retry_after_ms }),
            }));
        }
        else {
            w.resolve(frame);
        }
        return true;
    }
    /** A connection is ready: requests that wait for one go out. */
    up() {
        this.online = true;
        for (const w of this.waiting.values())
            if (!w.onWire)
                this.put(w);
    }
    /** The connection is gone: what was on the wire fails with `offline`. */
    down() {
        this.online = false;
        for (const [id, w] of this.waiting) {
            if (!w.onWire)
                continue;
            this.waiting.delete(id);
            clearTimeout(w.timer);
            w.reject(new ConfabError("offline", `the connection closed before \`${w.frame.type}\` was answered`));
        }
    }
    /** Fails everything (the client closed for good). */
    fail(err) {
        this.online = false;
        for (const w of this.waiting.values()) {
            clearTimeout(w.timer);
            w.reject(err);
        }
        this.waiting.clear();
    }
    put(w) {
        w.onWire = true;
        this.transmit(w.frame);
    }
}
