import { type Logger, logger } from "../log/mod.ts";
import type { Notification, Notifier } from "./types.ts";

/** Writes notifications to the log only; used when Pushover is not configured. Never fails. */
export class LogNotifier implements Notifier {
  readonly name = "log";
  #log: Logger;

  constructor(opts: { log?: Logger } = {}) {
    this.#log = opts.log ?? logger("monitor");
  }

  /** Logs `n` at warning level (recoveries at info level). */
  send(n: Notification): Promise<void> {
    const fields = { devices: n.deviceIds.join(","), message: n.message };
    if (n.priority < 0) this.#log.info(`NOTIFICATION ${n.title}`, fields);
    else this.#log.warn(`NOTIFICATION ${n.title}`, fields);
    return Promise.resolve();
  }
}
