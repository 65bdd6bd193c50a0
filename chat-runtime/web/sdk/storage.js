/**
 * Where a device keeps its per-chat watermarks between runs, so that after
 * a restart its `hello` resumes where it left off instead of from the
 * account's acknowledged position. Two adapters: in memory (tests, servers,
 * throwaway sessions) and IndexedDB (browsers: ./indexeddb.ts).
 */
/** Watermarks kept in memory: they last as long as the object. */
export class MemoryStore {
    marks = new Map();
    async load() {
        return Object.fromEntries(this.marks);
    }
    async save(changes) {
        for (const [chat, seq] of Object.entries(changes)) {
            this.marks.set(chat, Math.max(this.marks.get(chat) ?? 0, seq));
        }
    }
    async clear() {
        this.marks.clear();
    }
}
