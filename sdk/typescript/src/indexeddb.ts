/**
 * Watermarks in IndexedDB: a browser tab that is closed and opened again
 * resumes where it was. One database per name (give each signed-in user
 * their own), one object store, chat id → seq.
 */
import type { WatermarkStore, Watermarks } from "./storage.js";

const STORE = "watermarks";

export interface IndexedDbOptions {
  /** The database's name, e.g. `confab-<user id>`. */
  name: string;
  /** The IndexedDB factory (default: the global `indexedDB`). */
  indexedDB?: IDBFactory;
}

export class IndexedDbStore implements WatermarkStore {
  private db: Promise<IDBDatabase> | undefined;
  private readonly name: string;
  private readonly factory: IDBFactory | undefined;

  constructor(options: IndexedDbOptions) {
    this.name = options.name;
    this.factory = options.indexedDB ?? globalThis.indexedDB;
  }

  async load(): Promise<Watermarks> {
    const db = await this.open();
    const tx = db.transaction(STORE, "readonly");
    const store = tx.objectStore(STORE);
    const [keys, values] = await Promise.all([
      request(store.getAllKeys()),
      request(store.getAll()),
    ]);
    const out: Watermarks = {};
    keys.forEach((k, i) => (out[String(k)] = Number(values[i])));
    return out;
  }

  async save(changes: Watermarks): Promise<void> {
    const db = await this.open();
    const tx = db.transaction(STORE, "readwrite");
    const store = tx.objectStore(STORE);
    for (const [chat, seq] of Object.entries(changes)) {
      // Read and write in one transaction: another tab's higher mark stays.
      const old = store.get(chat);
      old.onsuccess = () => {
        if (!(Number(old.result) >= seq)) store.put(seq, chat);
      };
    }
    await done(tx);
  }

  async clear(): Promise<void> {
    const db = await this.open();
    const tx = db.transaction(STORE, "readwrite");
    tx.objectStore(STORE).clear();
    await done(tx);
  }

  /** Closes the database (before deleting it, or in tests). */
  async close(): Promise<void> {
    if (this.db) (await this.db).close();
    this.db = undefined;
  }

  private open(): Promise<IDBDatabase> {
    const factory = this.factory;
    if (!factory) return Promise.reject(new Error("IndexedDB is not available here"));
    this.db ??= new Promise((resolve, reject) => {
      const req = factory.open(this.name, 1);
      req.onupgradeneeded = () => req.result.createObjectStore(STORE);
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    return this.db;
  }
}

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function done(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}
