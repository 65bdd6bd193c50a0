/**
 * The REST API under `/v1` (docs/protocol.md, "Accounts", "Chats",
 * "Devices", "Media"): one method per call, typed bodies and answers, and
 * every refusal a {@link ConfabError} with the server's code.
 */
import { ConfabError, refusal } from "./errors.js";
import { upload } from "./upload.js";
export class Rest {
    /** The bearer token sent with every call but register and login. */
    token;
    url;
    fetch;
    constructor(options) {
        this.url = options.url.replace(/\/+$/, "");
        this.token = options.token;
        this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    }
    register(body) {
        return this.call("POST", "/v1/register", body);
    }
    /** Signs in; the token is kept for the calls that follow. */
    async login(phone, password) {
        const session = await this.call("POST", "/v1/login", { phone, password });
        this.token = session.token;
        return session;
    }
    /** Revokes the token everywhere. */
    async logout() {
        await this.call("POST", "/v1/logout");
        this.token = undefined;
    }
    /** getAll: the user's chats, most recent first. */
    chats() {
        return this.call("GET", "/v1/chats");
    }
    chat(chatId) {
        return this.call("GET", `/v1/chats/${seg(chatId)}`);
    }
    /** getMessages: one page, newest first; pass `next_before` as `before` for the next. */
    messages(chatId, page = {}) {
        const q = new URLSearchParams();
        if (page.before !== undefined)
            q.set("before", String(page.before));
        if (page.limit !== undefined)
            q.set("limit", String(page.limit));
        const query = q.size ? `?${q}` : "";
        return this.call("GET", `/v1/chats/${seg(chatId)}/messages${query}`);
    }
    /** sendMessage: stored once per `client_msg_id`, however often it is retried. */
    send(chatId, body) {
        return this.call("POST", `/v1/chats/${seg(chatId)}/messages`, body);
    }
    /** Raises this user's delivered and/or read watermark. */
    receipts(chatId, marks) {
        return this.call("POST", `/v1/chats/${seg(chatId)}/receipts`, marks);
    }
    /** The 1:1 chat with the user registered under `phone`, created on first use. */
    direct(phone) {
        return this.call("POST", "/v1/direct", { phone });
    }
    createGroup(title, members = []) {
        return this.call("POST", "/v1/groups", { title, members });
    }
    join(chatId, invite) {
        return this.call("POST", `/v1/groups/${seg(chatId)}/join`, { invite });
    }
    /** Admins: the group's invite code. */
    invite(chatId) {
        return this.call("GET", `/v1/groups/${seg(chatId)}/invite`);
    }
    /** Admins: a new invite code; the old one stops working. */
    resetInvite(chatId) {
        return this.call("POST", `/v1/groups/${seg(chatId)}/invite`);
    }
    async leave(chatId) {
        await this.call("POST", `/v1/groups/${seg(chatId)}/leave`);
    }
    addMember(chatId, userId) {
        return this.call("POST", `/v1/groups/${seg(chatId)}/members`, { user_id: userId });
    }
    async removeMember(chatId, userId) {
        await this.call("DELETE", `/v1/groups/${seg(chatId)}/members/${seg(userId)}`);
    }
    /** The user registered under `phone` (`not_found` if none). */
    user(phone) {
        return this.call("GET", `/v1/users?${new URLSearchParams({ phone })}`);
    }
    /** A contact's presence (`not_found` unless you share a chat with a message). */
    presence(userId) {
        return this.call("GET", `/v1/users/${seg(userId)}/presence`);
    }
    async devices() {
        return (await this.call("GET", "/v1/devices")).devices;
    }
    putDevice(deviceId, body) {
        return this.call("PUT", `/v1/devices/${seg(deviceId)}`, body);
    }
    async deleteDevice(deviceId) {
        await this.call("DELETE", `/v1/devices/${seg(deviceId)}`);
    }
    /** Uploads a file (streamed, with progress); send it with its `media_id`. */
    upload(source, options = {}) {
        return upload(this.url, this.token, source, options, this.fetch);
    }
    /** A signed link to media that works without a token until it expires. */
    async mediaLink(mediaId, ttlSecs) {
        const q = ttlSecs === undefined ? "" : `?ttl=${ttlSecs}`;
        const link = await this.call("POST", `/v1/media/${seg(mediaId)}/link${q}`);
        // The server answers a path on itself: make it a whole URL.
        return { ...link, url: this.url + link.url };
    }
    /** One request; the answer's JSON, or a typed refusal. */
    async call(method, path, body) {
        const headers = {};
        if (body !== undefined)
            headers["content-type"] = "application/json";
        if (this.token)
            headers.authorization = `Bearer ${this.token}`;
        let resp;
        try {
            resp = await this.fetch(this.url + path, {
                method,
                headers,
                body: body === undefined ? undefined : JSON.stringify(body),
            });
        }
        catch (err) {
            throw new ConfabError("network", `${method} ${path}: ${err.message}`);
        }
        const text = await resp.text();
        if (!resp.ok)
            throw refusal(resp.status, text, `${method} ${path}`);
        if (!text)
            return undefined;
        try {
            return JSON.parse(text);
        }
        catch {
            throw new ConfabError("bad_response", `${method} ${path}: the answer is not JSON`);
        }
    }
}
/** A path segment: ids are UUIDs, but nothing a caller passes may change the path. */
function seg(id) {
    return encodeURIComponent(id);
}
