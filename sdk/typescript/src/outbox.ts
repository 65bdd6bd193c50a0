/**
 * The send queue. Every send has a `client_msg_id` and stays queued until
 * its `sent` arrives: it is (re)transmitted on every connection, after no
 * answer for a while, and after a refusal that says "try again" — always
 * with the same id, so the server stores it once (docs/protocol.md,
 * "Idempotent send"). At most `window` sends are on the wire at a time,
 * in the order they were queued.
 */
import { ConfabError } from "./errors.js";
import type { ClientFrame, ServerFrame } from "./protocol.js";

export type SendFrame = Extract<ClientFrame, { type: "send" }>;
export type Sent = Extract<ServerFrame, { type: "sent" }>;

interface Pending {
  frame: SendFrame;
  promise: Promise<Sent>;
  resolve: (sent: Sent) => void;
  reject: (err: ConfabError) => void;
  /** On the wire now, waiting for its answer. */
  inFlight: boolean;
  /** Set while it waits: for an answer, or before a retry. */
  timer: ReturnType<typeof setTimeout> | undefined;
}

export interface OutboxOptions {
  /** Sends on the wire at once (default 64). */
  window?: number;
  /** Transmit again after this long without an answer (default 10 s). */
  resendAfterMs?: number;
  /** Wait before retrying a refusal that names no wait (default 1 s). */
  retryAfterMs?: number;
}

export class Outbox {
  private readonly queue = new Map<string, Pending>();
  private inFlight = 0;
  private online = false;
  private readonly window: number;
  private readonly resendAfterMs: number;
  private readonly retryAfterMs: number;

  /** `transmit` puts one frame on the open connection. */
  constructor(
    private readonly transmit: (frame: SendFrame) => void,
    options: OutboxOptions = {},
  ) {
    this.window = options.window ?? 64;
    this.resendAfterMs = options.resendAfterMs ?? 10_000;
    this.retryAfterMs = options.retryAfterMs ?? 1_000;
  }

  /** Queues a send; the same id again joins the first one's promise. */
  add(frame: SendFrame): Promise<Sent> {
    const existing = this.queue.get(frame.client_msg_id);
    if (existing) return existing.promise;
    let resolve!: (sent: Sent) => void;
    let reject!: (err: ConfabError) => void;
    const promise = new Promise<Sent>((res, rej) => ((resolve = res), (reject = rej)));
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
  get size(): number {
    return this.queue.size;
  }

  /** A connection is ready (after `welcome`): transmit what waits. */
  up(): void {
    this.online = true;
    this.pump();
  }

  /** The connection is gone: whatever was on the wire goes again on the next. */
  down(): void {
    this.online = false;
    this.inFlight = 0;
    for (const p of this.queue.values()) {
      clearTimeout(p.timer);
      p.timer = undefined;
      p.inFlight = false;
    }
  }

  /** A `sent`: the message is stored; true if it answered a queued send. */
  sent(frame: Sent): boolean {
    const p = this.queue.get(frame.client_msg_id);
    if (!p || p.frame.chat_id !== frame.chat_id) return false;
    this.finish(p);
    p.resolve(frame);
    return true;
  }

  /** An `error` naming a send: retried later if the code says so, else failed. */
  refused(clientMsgId: string, err: ConfabError): boolean {
    const p = this.queue.get(clientMsgId);
    if (!p) return false;
    if (!err.retryable) {
      this.finish(p);
      p.reject(err);
      return true;
    }
    if (p.inFlight) this.inFlight -= 1;
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
  fail(err: ConfabError): void {
    this.online = false;
    for (const p of [...this.queue.values()]) {
      this.finish(p);
      p.reject(err);
    }
  }

  private finish(p: Pending): void {
    clearTimeout(p.timer);
    if (p.inFlight) this.inFlight -= 1;
    this.queue.delete(p.frame.client_msg_id);
    this.pump();
  }

  /** Puts waiting sends on the wire, oldest first, while the window allows. */
  private pump(): void {
    if (!this.online) return;
    for (const p of this.queue.values()) {
      if (this.inFlight >= this.window) return;
      if (p.inFlight || p.timer !== undefined) continue;
      p.inFlight = true;
      this.inFlight += 1;
      p.timer = setTimeout(() => this.unanswered(p), this.resendAfterMs);
      this.transmit(p.frame);
    }
  }

  /** No answer in time: the frame goes again (the server answers a repeat once). */
  private unanswered(p: Pending): void {
    p.timer = undefined;
    p.inFlight = false;
    this.inFlight -= 1;
    this.pump();
  }
}
