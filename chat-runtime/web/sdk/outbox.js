export class Outbox {
    transmit;
    queue = new Map();
    inFlight = 0;
    online = false;
    window;
    resendAfterMs;
    retryAfterMs;
    /** `transmit` puts one frame on the open connection. */
    constructor(transmit, options = {}) {
        this.transmit = transmit;
        this.window = options.window ?? 64;
        this.resendAfterMs = options.resendAfterMs ?? 10_000;
        this.retryAfterMs = options.retryAfterMs ?? 1_000;
    }
    /** Queues a send; the same id again joins the first one's promise. */
    add(frame) {
        const existing = this.queue.get(frame.client_msg_id);
        if (existing)
            return existing.promise;
        let resolve;
        let reject;
        const promise = new Promise((res, rej) => ((resolve = res), (reject = rej)));
        this.queue.set(frame.client_msg_id, {
            frame,
            promise,
            resolve,
            reject,
            inFlight: false,
            timer: undefined,
        });
        this.pump();
        return promise;
    }
    /** Sends waiting for their `sent`. */
    get size() {
        return this.queue.size;
    }
    /** A connection is ready (after `welcome`): transmit what waits. */
    up() {
        this.online = true;
        this.pump();
    }
    /** The connection is gone: whatever was on the wire goes again on the next. */
    down() {
        this.online = false;
        this.inFlight = 0;
        for (const p of this.queue.values()) {
            clearTimeout(p.timer);
            p.timer = undefined;
            p.inFlight = false;
        }
    }
    /** A `sent`: the message is stored; true if it answered a queued send. */
    sent(frame) {
        const p = this.queue.get(frame.client_msg_id);
        if (!p || p.frame.chat_id !== frame.chat_id)
            return false;
        this.finish(p);
        p.resolve(frame);
        return true;
    }
    /** An `error` naming a send: retried later if the code says so, else failed. */
    refused(clientMsgId, err) {
        const p = this.queue.get(clientMsgId);
        if (!p)
            return false;
        if (!err.retryable) {
            this.finish(p);
            p.reject(err);
            return true;
        }
        if (p.inFlight)
            this.inFlight -= 1;
        p.inFlight = false;
        clearTimeout(p.timer);
        p.timer = setTimeout(() => {
            p.timer = undefined;
            this.pump();
        }, err.retryAfterMs ?? this.retryAfterMs);
        this.pump();
        return true;
    }
    /** Fails every queued send (the client closed for good). */
    fail(err) {
        this.online = false;
        for (const p of [...this.queue.values()]) {
            this.finish(p);
            p.reject(err);
        }
    }
    finish(p) {
        clearTimeout(p.timer);
        if (p.inFlight)
            this.inFlight -= 1;
        this.queue.delete(p.frame.client_msg_id);
        this.pump();
    }
    /** Puts waiting sends on the wire, oldest first, while the window allows. */
    pump() {
        if (!this.online)
            return;
        for (const p of this.queue.values()) {
            if (this.inFlight >= this.window)
                return;
            if (p.inFlight || p.timer !== undefined)
                continue;
            p.inFlight = true;
            this.inFlight += 1;
            p.timer = setTimeout(() => this.unanswered(p), this.resendAfterMs);
            this.transmit(p.frame);
        }
    }
    /** No answer in time: the frame goes again (the server answers a repeat once). */
    unanswered(p) {
        p.timer = undefined;
        p.inFlight = false;
        this.inFlight -= 1;
        this.pump();
    }
}
