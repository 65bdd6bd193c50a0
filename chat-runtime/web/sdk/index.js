/**
 * @confab/client — the client SDK of Confab's protocol v1.
 *
 * - {@link Rest}: accounts, chats, groups, devices and media over HTTP.
 * - {@link ConfabClient}: one device's live WebSocket session — resume,
 *   reconnect, the send queue, receipts, typing, presence, history.
 * - Watermark stores: {@link MemoryStore}, {@link IndexedDbStore}.
 * - Every failure is a {@link ConfabError} with a stable `code`.
 *
 * The wire types (`protocol.ts`) are generated from the server's JSON Schema.
 */
export { Backoff, closeAction } from "./backoff.js";
export { ConfabClient, } from "./client.js";
export { Cursor } from "./cursor.js";
export { ConfabError } from "./errors.js";
export { IndexedDbStore } from "./indexeddb.js";
export { Rest } from "./rest.js";
export { MemoryStore } from "./storage.js";
