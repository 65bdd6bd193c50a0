/** A small typed event emitter: `on` returns the function that unsubscribes. */
export class Emitter {
    handlers = new Map();
    on(event, handler) {
        let set = this.handlers.get(event);
        if (!set)
            this.handlers.set(event, (set = new Set()));
        set.add(handler);
        return () => set.delete(handler);
    }
    emit(event, arg) {
        for (const handler of this.handlers.get(event) ?? []) {
            // A throwing handler must not stop the others, nor the session.
            try {
                handler(arg);
            }
            catch (err) {
                queueMicrotask(() => {
                    throw err;
                });
            }
        }
    }
}
