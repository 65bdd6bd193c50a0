/**
 * Where a device keeps its per-chat watermarks between runs, so that after
 * a restart its `hello` resumes where it left off instead of from the
 * account's acknowledged position. Two adapters: in memory (tests, servers,
 * throwaway sessions) and IndexedDB (browsers: ./indexeddb.ts).
 */

/** A device's watermarks: chat id → highest seq held. */
export type Watermarks = Record<string, number>;

export interface WatermarkStore {
  /** Everything stored. */
  load(): Promise<Watermarks>;
  /** Raises the stored watermarks of the chats in `changes`; never lowers one. */
  save(changes: Watermarks): Promise<void>;
  /** Forgets everything (sign-out). */
  clear(): Promise<void>;
}

/** Watermarks kept in memory: they last as long as the object. */
export class MemoryStore implements WatermarkStore {
  private readonly marks = new Map<string, number>();

  async load(): Promise<Watermarks> {
    return Object.fromEntries(this.marks);
  }

  async save(changes: Watermarks): Promise<void> {
    for (const [chat, seq] of Object.entries(changes)) {
      this.marks.set(chat, Math.max(this.marks.get(chat) ?? 0, seq));
    }
  }

  async clear(): Promise<void> {
    this.marks.clear();
  }
}
