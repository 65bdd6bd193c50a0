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
export { Backoff, closeAction, type BackoffOptions, type CloseAction } from "./backoff.js";
export {
  ConfabClient,
  type ClientEvents,
  type ClientOptions,
  type ConnectionState,
  type Content,
  type HistoryFrame,
  type PresenceFrame,
  type Receipt,
  type Synced,
  type Typing,
  type Welcome,
} from "./client.js";
export { Cursor } from "./cursor.js";
export { ConfabError, type Code, type LocalCode } from "./errors.js";
export { IndexedDbStore, type IndexedDbOptions } from "./indexeddb.js";
export type { OutboxOptions, Sent } from "./outbox.js";
export type * from "./protocol.js";
export { Rest, type RestOptions } from "./rest.js";
export { MemoryStore, type WatermarkStore, type Watermarks } from "./storage.js";
export type { UploadOptions, UploadSource } from "./upload.js";
