// At most a few untrusted queries hold a database connection at once; a few more wait.
import { QueryBusy } from "./query_busy.ts";

/** Query slots of one database: `acquire()` resolves with the function that frees the slot. */
export class QuerySlots {
  #running = 0;
  #waiting: (() => void)[] = [];
  readonly maxRunning: number;
  readonly maxWaiting: number;

  constructor(opts: { maxRunning: number; maxWaiting: number }) {
    this.maxRunning = opts.maxRunning;
    this.maxWaiting = opts.maxWaiting;
  }

  /** Waits for a free slot; throws `QueryBusy` when too many already wait. */
  async acquire(): Promise<() => void> {
    if (this.#running >= this.maxRunning) {
      if (this.#waiting.length >= this.maxWaiting) {
        throw new QueryBusy(this.#running, this.#waiting.length);
      }
      // A finishing query hands its slot straight to the first waiter.
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    } else {
      this.#running++;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiting.shift();
      if (next) next();
      else this.#running--;
    };
  }
}
