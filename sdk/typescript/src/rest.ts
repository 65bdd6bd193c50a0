/**
 * The REST API under `/v1` (docs/protocol.md, "Accounts", "Chats",
 * "Devices", "Media"): one method per call, typed bodies and answers, and
 * every refusal a {@link ConfabError} with the server's code.
 */
import { ConfabError, refusal } from "./errors.js";
import type {
  ChatView,
  Device,
  DeviceBody,
  HistoryPage,
  Invite,
  MediaLink,
  PresenceView,
  RegisterBody,
  SendBody,
  SentView,
  Session,
  Upload,
  UserView,
} from "./protocol.js";
import { upload, type UploadOptions, type UploadSource } from "./upload.js";

export interface RestOptions {
  /** The server's origin, e.g. `https://chat.example` (a path prefix is kept). */
  url: string;
  /** A token from {@link Rest.login}; `login` sets it too. */
  token?: string;
  /** The fetch to use (default: the global one). */
  fetch?: typeof fetch;
}

export class Rest {
  /** The bearer token sent with every call but register and login. */
  token: string | undefined;
  readonly url: string;
  private readonly fetch: typeof fetch;

  constructor(options: RestOptions) {
    this.url = options.url.replace(/\/+$/, "");
    this.token = options.token;
    this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  register(body: RegisterBody): Promise<UserView> {
    return this.call("POST", "/v1/register", body);
  }

  /** Signs in; the token is kept for the calls that follow. */
  async login(phone: string, password: string): Promise<Session> {
    const session = await this.call<Session>("POST", "/v1/login", { phone, password });
    this.token = session.token;
    return session;
  }

  /** Revokes the token everywhere. */
  async logout(): Promise<void> {
    await this.call("POST", "/v1/logout");
    this.token = undefined;
  }

  /** getAll: the user's chats, most recent first. */
  chats(): Promise<ChatView[]> {
    return this.call("GET", "/v1/chats");
  }

  chat(chatId: string): Promise<ChatView> {
    return this.call("GET", `/v1/chats/${seg(chatId)}`);
  }

  /** getMessages: one page, newest first; pass `next_before` as `before` for the next. */
  messages(chatId: string, page: { before?: number; limit?: number } = {}): Promise<HistoryPage> {
    const q = new URLSearchParams();
    if (page.before !== undefined) q.set("before", String(page.before));
    if (page.limit !== undefined) q.set("limit", String(page.limit));
    const query = q.size ? `?${q}` : "";
    return this.call("GET", `/v1/chats/${seg(chatId)}/messages${query}`);
  }

  /** sendMessage: stored once per `client_msg_id`, however often it is retried. */
  send(chatId: string, body: SendBody): Promise<SentView> {
    return this.call("POST", `/v1/chats/${seg(chatId)}/messages`, body);
  }

  /** Raises this user's delivered and/or read watermark. */
  receipts(chatId: string, marks: { delivered?: number; read?: number }): Promise<ChatView> {
    return this.call("POST", `/v1/chats/${seg(chatId)}/receipts`, marks);
  }

  /** The 1:1 chat with the user registered under `phone`, created on first use. */
  direct(phone: string): Promise<ChatView> {
    return this.call("POST", "/v1/direct", { phone });
  }

  createGroup(title: string, members: string[] = []): Promise<ChatView> {
    return this.call("POST", "/v1/groups", { title, members });
  }

  join(chatId: string, invite: string): Promise<ChatView> {
    return this.call("POST", `/v1/groups/${seg(chatId)}/join`, { invite });
  }

  /** Admins: the group's invite code. */
  invite(chatId: string): Promise<Invite> {
    return this.call("GET", `/v1/groups/${seg(chatId)}/invite`);
  }

  /** Admins: a new invite code; the old one stops working. */
  resetInvite(chatId: string): Promise<Invite> {
    return this.call("POST", `/v1/groups/${seg(chatId)}/invite`);
  }

  async leave(chatId: string): Promise<void> {
    await this.call("POST", `/v1/groups/${seg(chatId)}/leave`);
  }

  addMember(chatId: string, userId: string): Promise<ChatView> {
    return this.call("POST", `/v1/groups/${seg(chatId)}/members`, { user_id: userId });
  }

  async removeMember(chatId: string, userId: string): Promise<void> {
    await this.call("DELETE", `/v1/groups/${seg(chatId)}/members/${seg(userId)}`);
  }

  /** The user registered under `phone` (`not_found` if none). */
  user(phone: string): Promise<UserView> {
    return this.call("GET", `/v1/users?${new URLSearchParams({ phone })}`);
  }

  /** A contact's presence (`not_found` unless you share a chat with a message). */
  presence(userId: string): Promise<PresenceView> {
    return this.call("GET", `/v1/users/${seg(userId)}/presence`);
  }

  async devices(): Promise<Device[]> {
    return (await this.call<{ devices: Device[] }>("GET", "/v1/devices")).devices;
  }

  putDevice(deviceId: string, body: DeviceBody): Promise<Device> {
    return this.call("PUT", `/v1/devices/${seg(deviceId)}`, body);
  }

  async deleteDevice(deviceId: string): Promise<void> {
    await this.call("DELETE", `/v1/devices/${seg(deviceId)}`);
  }

  /** Uploads a file (streamed, with progress); send it with its `media_id`. */
  upload(source: UploadSource, options: UploadOptions = {}): Promise<Upload> {
    return upload(this.url, this.token, source, options, this.fetch);
  }

  /** A signed link to media that works without a token until it expires. */
  async mediaLink(mediaId: string, ttlSecs?: number): Promise<MediaLink> {
    const q = ttlSecs === undefined ? "" : `?ttl=${ttlSecs}`;
    const link = await this.call<MediaLink>("POST", `/v1/media/${seg(mediaId)}/link${q}`);
    // The server answers a path on itself: make it a whole URL.
    return { ...link, url: this.url + link.url };
  }

  /** One request; the answer's JSON, or a typed refusal. */
  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers["content-type"] = "application/json";
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    let resp: Response;
    try {
      resp = await this.fetch(this.url + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new ConfabError("network", `${method} ${path}: ${(err as Error).message}`);
    }
    const text = await resp.text();
    if (!resp.ok) throw refusal(resp.status, text, `${method} ${path}`);
    if (!text) return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ConfabError("bad_response", `${method} ${path}: the answer is not JSON`);
    }
  }
}

/** A path segment: ids are UUIDs, but nothing a caller passes may change the path. */
function seg(id: string): string {
  return encodeURIComponent(id);
}
