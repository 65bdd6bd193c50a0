const STORE = "watermarks";
export class IndexedDbStore {
    db;
    name;
    factory;
    constructor(options) {
        this.name = options.name;
        this.factory = options.indexedDB ?? globalThis.indexedDB;
    }
    async load() {
        const db = await this.open();
        const tx = db.transaction(STORE, "readonly");
        const store = tx.objectStore(STORE);
        const [keys, values] = await Promise.all([
            request(store.getAllKeys()),
            request(store.getAll()),
        ]);
        const out = {};
        keys.forEach((k, i) => (out[String(k)] = Number(values[i])));
        return out;
    }
    async save(changes) {
        const db = await this.open();
        const tx = db.transaction(STORE, "readwrite");
        const store = tx.objectStore(STORE);
        for (const [chat, seq] of Object.entries(changes)) {
            // Read and write in one transaction: another tab's higher mark stays.
            const old = store.get(chat);
            old.onsuccess = () => {
                if (!(Number(old.result) >= seq))
                    store.put(seq, chat);
            };
        }
        await done(tx);
    }
    async clear() {
        const db = await this.open();
        const tx = db.transaction(STORE, "readwrite");
        tx.objectStore(STORE).clear();
        await done(tx);
    }
    /** Closes the database (before deleting it, or in tests). */
    async close() {
        if (this.db)
            (await this.db).close();
        this.db = undefined;
    }
    open() {
        const factory = this.factory;
        if (!factory)
            return Promise.reject(new Error("IndexedDB is not available here"));
        this.db ??= new Promise((resolve, reject) => {
            const req = factory.open(this.name, 1);
            req.onupgradeneeded = () => req.result.createObjectStore(STORE);
            req.onsuccess = () => resolve(req.result);
            req.onerror = () => reject(req.error);
        });
        return this.db;
    }
}
function request(req) {
    return new Promise((resolve, reject) => {
        req.onsuccess = () => resolve(req.result);
        req.onerror = () => reject(req.error);
    });
}
function done(tx) {
    return new Promise((resolve, reject) => {
        tx.oncomplete = () => resolve();
        tx.onerror = () => reject(tx.error);
        tx.onabort = () => reject(tx.error);
    });
}
