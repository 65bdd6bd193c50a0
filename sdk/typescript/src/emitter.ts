/** A small typed event emitter: `on` returns the function that unsubscribes. */

export class Emitter<Events extends { [K in keyof Events]: (arg: never) => void }> {
  private readonly handlers = new Map<keyof Events, Set<(arg: never) => void>>();

  on<K extends keyof Events>(event: K, handler: Events[K]): () => void {
    let set = this.handlers.get(event);
    if (!set) this.handlers.set(event, (set = new Set()));
    set.add(handler);
    return () => set.delete(handler);
  }

  protected emit<K extends keyof Events>(event: K, arg: Parameters<Events[K]>[0]): void {
    for (const handler of this.handlers.get(event) ?? []) {
      // A throwing handler must not stop the others, nor the session.
      try {
        (handler as (a: typeof arg) => void)(arg);
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
}
