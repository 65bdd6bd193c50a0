/**
 * One device's live session (docs/protocol.md, "WebSocket session"):
 * connect and `hello` with the device's stored watermarks, resume, then
 * live events; heartbeats; reconnect with jittered backoff unless the close
 * code is terminal; the send queue; `delivered` for what arrived, `read`
 * when the app says so; requests answered by `req_id`.
 */
import { Backoff, type BackoffOptions, closeAction } from "./backoff.js";
import { Cursor } from "./cursor.js";
import { Emitter } from "./emitter.js";
import { type Code, ConfabError, checkBytes } from "./errors.js";
import { Outbox, type OutboxOptions, type SendFrame, type Sent } from "./outbox.js";
import type { ChatView, ClientFrame, Message, ServerFrame } from "./protocol.js";
import { type Question, Requests } from "./requests.js";
import { MemoryStore, type WatermarkStore } from "./storage.js";

type Frame<T extends ServerFrame["type"]> = Extract<ServerFrame, { type: T }>;
export type Welcome = Frame<"welcome">;
export type Synced = Frame<"synced">;
export type Receipt = Frame<"receipt">;
export type Typing = Frame<"typing">;
export type PresenceFrame = Frame<"presence">;
export type HistoryFrame = Frame<"history">;
export type InviteFrame = Frame<"invite">;
export type UserFrame = Frame<"user">;
export type { Sent };

export type ConnectionState = "connecting" | "open" | "closed";

export interface ClientEvents {
  /** A message this device did not hold: each `(chat_id, seq)` once. */
  message: (m: Message) => void;
  /** One of this client's sends is stored. */
  sent: (f: Sent) => void;
  receipt: (f: Receipt) => void;
  typing: (f: Typing) => void;
  /** A contact came online or went offline. */
  presence: (f: PresenceFrame) => void;
  /** The resume backlog is in; refresh chat views. */
  synced: (f: Synced) => void;
  state: (s: { state: ConnectionState; closeCode?: number; error?: ConfabError }) => void;
  /** A refusal no send or request waits for. */
  error: (e: ConfabError) => void;
}

/** A text, or an upload sent as a media message with an optional caption. */
export type Content = string | { kind: "image" | "video" | "audio" | "file"; media_id: string; caption?: string };

export interface ClientOptions {
  /** The server's origin, e.g. `https://chat.example`. */
  url: string;
  token: string;
  /** Where the device keeps its watermarks (default: in memory). */
  storage?: WatermarkStore;
  /** The WebSocket class (default: the global one). */
  WebSocket?: new (url: string) => WebSocket;
  /** Acknowledge arrived messages with `delivered` (default true). */
  autoDeliver?: boolean;
  backoff?: BackoffOptions;
  outbox?: OutboxOptions;
  /** How long a request waits for its answer (default 15 s). */
  requestTimeoutMs?: number;
}

/** How long receipts and watermark writes are gathered before going out. */
const FLUSH_MS = 50;

export class ConfabClient extends Emitter<ClientEvents> {
  private readonly options: ClientOptions;
  private readonly storage: WatermarkStore;
  private readonly backoff: Backoff;
  private readonly outbox: Outbox;
  private readonly requests: Requests;
  private cursor: Cursor | undefined;
  private ws: WebSocket | undefined;
  private current: ConnectionState = "closed";
  private stopped = true;
  private started: { resolve: (w: Welcome) => void; reject: (e: ConfabError) => void } | undefined;
  private timers: { reconnect?: ReturnType<typeof setTimeout>; heartbeat?: ReturnType<typeof setInterval>; flush?: ReturnType<typeof setTimeout> } = {};
  private lastFrameAt = 0;
  /** Receipts to send, per chat: the highest seq of each kind. */
  private readonly marks = { delivered: new Map<string, number>(), read: new Map<string, number>() };
  private readonly unsaved = new Set<string>();

  constructor(options: ClientOptions) {
    super();
    this.options = options;
    this.storage = options.storage ?? new MemoryStore();
    this.backoff = new Backoff(options.backoff);
    this.outbox = new Outbox((f) => this.put(f), options.outbox);
    this.requests = new Requests((f) => this.put(f), options.requestTimeoutMs ?? 15_000);
  }

  get state(): ConnectionState {
    return this.current;
  }

  /** Sends waiting for their `sent`. */
  get unsent(): number {
    return this.outbox.size;
  }

  /** The highest seq this device holds per chat (what `hello` resumes from). */
  watermarks(): Record<string, number> {
    return this.cursor?.watermarks() ?? {};
  }

  /**
   * Connects and resumes; resolves at the first `welcome`. Keeps the session
   * up (reconnecting) until {@link close} or a terminal close code, which
   * rejects with the reason.
   */
  async connect(): Promise<Welcome> {
    if (!this.stopped) throw new ConfabError("invalid", "connect() was already called");
    this.stopped = false;
    this.cursor ??= new Cursor(await this.storage.load());
    return new Promise((resolve, reject) => {
      this.started = { resolve, reject };
      this.open();
    });
  }

  /** Closes for good: queued sends and requests fail with `closed`. */
  close(): void {
    this.finish(new ConfabError("closed", "the client was closed"), 1000);
  }

  /** Sends a message; resolves once it is stored (the `sent` frame), retrying until then. */
  send(chatId: string, content: Content, clientMsgId: string = crypto.randomUUID()): Promise<Sent> {
    try {
      checkBytes("client_msg_id", clientMsgId, 1, 64);
      const frame: SendFrame =
        typeof content === "string"
          ? (checkBytes("body", content, 1, 16_384),
            { type: "send", chat_id: chatId, client_msg_id: clientMsgId, kind: "text", body: content })
          : (checkBytes("caption", content.caption ?? "", 0, 1024),
            {
              type: "send",
              chat_id: chatId,
              client_msg_id: clientMsgId,
              kind: content.kind,
              media_id: content.media_id,
              body: content.caption ?? "",
            });
      if (this.stopped) throw new ConfabError("closed", "the client is not connected: connect() first");
      return this.outbox.add(frame);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** The user has read `chatId` up to `seq` (implies delivered). */
  markRead(chatId: string, seq: number): void {
    this.mark("read", chatId, seq);
  }

  /** This device holds `chatId` up to `seq` (sent by itself unless `autoDeliver` is off). */
  markDelivered(chatId: string, seq: number): void {
    this.mark("delivered", chatId, seq);
  }

  /** Tells the chat's other members this user is typing; dropped while offline. */
  typing(chatId: string): void {
    if (this.current === "open") this.put({ type: "typing", chat_id: chatId });
  }

  async chats(): Promise<ChatView[]> {
    return (await this.ask<Frame<"chats">>({ type: "chats" })).chats;
  }

  /** One page of history, newest first; pass `next_before` as `before` for the next. */
  history(chatId: string, page: { before?: number; limit?: number } = {}): Promise<HistoryFrame> {
    return this.ask({ type: "history", chat_id: chatId, ...page });
  }

  /** Every page of a chat's history, newest first, back to its start. */
  async *historyPages(chatId: string, limit = 50): AsyncGenerator<Message[]> {
    let before: number | undefined;
    do {
      const page = await this.history(chatId, before === undefined ? { limit } : { before, limit });
      yield page.messages;
      before = page.next_before ?? undefined;
    } while (before !== undefined);
  }

  /** A contact's presence (`not_found` unless you are contacts). */
  presence(userId: string): Promise<PresenceFrame> {
    return this.ask({ type: "presence", user_id: userId });
  }

  async openDirect(phone: string): Promise<ChatView> {
    return (await this.ask<Frame<"chat">>({ type: "open_direct", phone })).chat;
  }

  async createGroup(title: string, members: string[] = []): Promise<ChatView> {
    return (await this.ask<Frame<"chat">>({ type: "create_group", title, members })).chat;
  }

  async join(chatId: string, invite: string): Promise<ChatView> {
    return (await this.ask<Frame<"chat">>({ type: "join", chat_id: chatId, invite })).chat;
  }

  /** Admins: the group's invite code; `reset` replaces it first. */
  async invite(chatId: string, reset = false): Promise<string> {
    const type = reset ? "reset_invite" : "invite";
    return (await this.ask<InviteFrame>({ type, chat_id: chatId })).invite;
  }

  async leave(chatId: string): Promise<void> {
    await this.ask({ type: "leave", chat_id: chatId });
  }

  async addMember(chatId: string, userId: string): Promise<ChatView> {
    return (await this.ask<Frame<"chat">>({ type: "add_member", chat_id: chatId, user_id: userId })).chat;
  }

  async removeMember(chatId: string, userId: string): Promise<void> {
    await this.ask({ type: "remove_member", chat_id: chatId, user_id: userId });
  }

  /** The user registered under `phone`. */
  lookup(phone: string): Promise<UserFrame> {
    return this.ask({ type: "lookup", phone });
  }

  /** A request: it waits for the connection, unless the client is closed. */
  private ask<T extends ServerFrame>(question: Question): Promise<T> {
    if (this.stopped) return Promise.reject(new ConfabError("closed", "the client is not connected: connect() first"));
    return this.requests.ask<T>(question);
  }

  // ---------- the connection ----------

  private open(): void {
    this.setState("connecting");
    const WS = this.options.WebSocket ?? globalThis.WebSocket;
    const url = this.options.url.replace(/^http/, "ws").replace(/\/+$/, "") + "/v1/ws";
    const ws = new WS(url);
    this.ws = ws;
    ws.onopen = () => {
      const watermarks = this.cursor?.watermarks() ?? {};
      ws.send(JSON.stringify({ type: "hello", token: this.options.token, watermarks }));
    };
    ws.onmessage = (ev) => this.receive(ev.data);
    ws.onclose = (ev) => this.closed(ws, ev.code, ev.reason);
    // A connection that fails before it opens is a dropped one (1006). Not
    // every WebSocket follows that error with a close event (node 20's does
    // not), so the error itself counts; a later close is then ignored.
    ws.onerror = () => {
      if (ws.readyState === ws.CONNECTING) this.closed(ws, 1006, "the connection failed");
    };
  }

  /** One frame onto the open connection. */
  private put(frame: ClientFrame): void {
    this.ws?.send(JSON.stringify(frame));
  }

  private closed(ws: WebSocket, code: number, reason: string): void {
    if (ws !== this.ws) return;
    this.down();
    if (this.stopped) return;
    if (closeAction(code) === "terminal") {
      this.finish(new ConfabError(terminalCode(code), `the server closed the session: ${code} ${reason}`, { closeCode: code }), code);
      return;
    }
    this.setState("connecting", code);
    this.timers.reconnect = setTimeout(() => this.open(), this.backoff.next());
  }

  /** The connection is gone (or given up on): what was on the wire goes again later. */
  private down(): void {
    const ws = this.ws;
    this.ws = undefined;
    clearInterval(this.timers.heartbeat);
    if (ws) {
      ws.onclose = ws.onmessage = ws.onopen = ws.onerror = null;
      if (ws.readyState <= 1) ws.close();
    }
    this.outbox.down();
    this.requests.down();
  }

  private finish(err: ConfabError, code: number): void {
    this.stopped = true;
    clearTimeout(this.timers.reconnect);
    this.flush();
    this.down();
    this.outbox.fail(err);
    this.requests.fail(err);
    this.started?.reject(err);
    this.started = undefined;
    this.setState("closed", code, err);
  }

  private setState(state: ConnectionState, closeCode?: number, error?: ConfabError): void {
    this.current = state;
    this.emit("state", { state, ...(closeCode === undefined ? {} : { closeCode }), ...(error ? { error } : {}) });
  }

  /** Pings at half the heartbeat interval; a connection silent for two intervals is given up. */
  private heartbeat(intervalMs: number): void {
    this.lastFrameAt = Date.now();
    clearInterval(this.timers.heartbeat);
    this.timers.heartbeat = setInterval(() => {
      if (Date.now() - this.lastFrameAt > 2 * intervalMs) {
        if (this.ws) this.closed(this.ws, 4002, "no frames from the server");
        return;
      }
      this.put({ type: "ping" });
    }, intervalMs / 2);
  }

  // ---------- frames from the server ----------

  private receive(data: unknown): void {
    this.lastFrameAt = Date.now();
    let f: ServerFrame;
    try {
      f = JSON.parse(String(data)) as ServerFrame;
    } catch {
      this.emit("error", new ConfabError("bad_response", "the server sent a frame that is not JSON"));
      return;
    }
    switch (f.type) {
      case "welcome":
        return this.welcomed(f);
      case "message":
        return this.arrived(f.message);
      case "sent":
        this.cursor?.sent(f.chat_id, f.seq);
        this.touched(f.chat_id);
        this.outbox.sent(f);
        return this.emit("sent", f);
      case "synced":
        this.cursor?.synced(f.chats);
        for (const chat of Object.keys(f.chats)) this.touched(chat);
        return this.emit("synced", f);
      case "receipt":
        return this.emit("receipt", f);
      case "typing":
        return this.emit("typing", f);
      case "presence":
        if (f.req_id && this.requests.answer({ ...f, req_id: f.req_id })) return;
        return this.emit("presence", f);
      case "error":
        return this.refused(f);
      case "pong":
        return;
      default:
        if ("req_id" in f && f.req_id) this.requests.answer(f);
    }
  }

  private welcomed(f: Welcome): void {
    this.backoff.reset();
    this.setState("open");
    this.heartbeat(f.heartbeat_ms);
    this.outbox.up();
    this.requests.up();
    this.schedule();
    this.started?.resolve(f);
    this.started = undefined;
  }

  private arrived(m: Message): void {
    if (!this.cursor?.message(m.chat_id, m.seq)) return;
    this.touched(m.chat_id);
    this.emit("message", m);
  }

  private refused(f: Frame<"error">): void {
    const err = new ConfabError(f.code, f.message, {
      ...(f.retry_after_ms == null ? {} : { retryAfterMs: f.retry_after_ms }),
    });
    if (f.req_id && this.requests.answer({ ...f, req_id: f.req_id })) return;
    if (f.client_msg_id && this.outbox.refused(f.client_msg_id, err)) return;
    this.emit("error", err);
  }

  // ---------- receipts and watermarks, gathered ----------

  /** A chat's watermark may have moved: store it, and acknowledge it. */
  private touched(chat: string): void {
    this.unsaved.add(chat);
    const seq = this.cursor?.watermark(chat);
    if (seq !== undefined && this.options.autoDeliver !== false) this.mark("delivered", chat, seq);
    this.schedule();
  }

  private mark(kind: "delivered" | "read", chat: string, seq: number): void {
    const marks = this.marks[kind];
    if (!((marks.get(chat) ?? 0) >= seq)) marks.set(chat, seq);
    this.schedule();
  }

  private schedule(): void {
    this.timers.flush ??= setTimeout(() => this.flush(), FLUSH_MS);
  }

  /** Sends gathered receipts (kept for the next connection while offline) and stores watermarks. */
  private flush(): void {
    clearTimeout(this.timers.flush);
    this.timers.flush = undefined;
    if (this.current === "open") {
      for (const kind of ["delivered", "read"] as const) {
        for (const [chat, seq] of this.marks[kind]) this.put({ type: kind, chat_id: chat, seq });
        this.marks[kind].clear();
      }
    }
    if (this.unsaved.size && this.cursor) {
      const changes: Record<string, number> = {};
      for (const chat of this.unsaved) {
        const seq = this.cursor.watermark(chat);
        if (seq !== undefined) changes[chat] = seq;
      }
      this.unsaved.clear();
      this.storage.save(changes).catch((e: unknown) => this.emit("error", new ConfabError("internal", `storing watermarks failed: ${String(e)}`)));
    }
  }
}

/** The error code a terminal close stands for. */
function terminalCode(close: number): Code {
  if (close === 4100 || close === 4101) return "unauthenticated";
  if (close === 4103) return "token_revoked";
  return "closed";
}
