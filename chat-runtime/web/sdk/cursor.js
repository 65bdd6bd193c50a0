/**
 * Which messages a device holds, per chat: the resume watermarks sent in
 * `hello`, and "exactly once on screen" (dedupe by `(chat_id, seq)`).
 *
 * Within one connection the server sends each chat's messages in seq order
 * with no gaps, except the sender's own messages, which its connection gets
 * as `sent` frames instead — possibly before an earlier message of someone
 * else. So a chat's watermark is the highest seq such that everything up to
 * it was seen as a `message` or a `sent`; own seqs above it wait in a set
 * until the messages below them arrive. Pure bookkeeping, no I/O.
 */
export class Cursor {
    /** Per chat: every seq up to here is held. */
    high = new Map();
    /** Per chat: own messages (from `sent`) above `high`. */
    own = new Map();
    /** Starts from watermarks a device stored earlier (or a `hello` of its own). */
    constructor(watermarks = {}) {
        for (const [chat, seq] of Object.entries(watermarks))
            this.high.set(chat, seq);
    }
    /**
     * A `message` arrived: true when it is new (show it), false when this
     * device already holds it (a resume re-sent it, or it is an own message).
     */
    message(chat, seq) {
        const high = this.high.get(chat);
        if (high !== undefined && seq <= high)
            return false;
        const own = this.own.get(chat);
        if (own?.delete(seq)) {
            // Sent by this device before a reconnect, now sent back: the gap
            // below it is closed all the same.
            this.raise(chat, seq);
            return false;
        }
        this.raise(chat, seq);
        return true;
    }
    /**
     * A `sent` arrived: this device holds its own message at `seq`. In a chat
     * with no watermark yet, messages below it may still be on their way
     * (the resume backlog), so it only counts once they are in.
     */
    sent(chat, seq) {
        const high = this.high.get(chat);
        if (high !== undefined && seq === high + 1) {
            this.raise(chat, seq);
        }
        else if (high === undefined || seq > high) {
            let own = this.own.get(chat);
            if (!own)
                this.own.set(chat, (own = new Set()));
            own.add(seq);
        }
    }
    /**
     * A `synced` arrived: the backlog is complete, so every message up to
     * each chat's seq in it has reached this connection.
     */
    synced(chats) {
        for (const [chat, seq] of Object.entries(chats))
            if (seq !== undefined)
                this.raise(chat, seq);
    }
    /** The highest seq held without a gap in `chat`, if any. */
    watermark(chat) {
        return this.high.get(chat);
    }
    /** Every chat's watermark: what `hello` sends to resume. */
    watermarks() {
        return Object.fromEntries(this.high);
    }
    raise(chat, seq) {
        let high = Math.max(this.high.get(chat) ?? 0, seq);
        const own = this.own.get(chat);
        if (own) {
            for (const s of own)
                if (s <= high)
                    own.delete(s);
            while (own.delete(high + 1))
                high += 1;
            if (own.size === 0)
                this.own.delete(chat);
        }
        this.high.set(chat, high);
    }
}
