import { EXIT } from "./exit_codes.ts";

/** Options of `stopSignal`. */
export interface StopSignalOptions {
  /**
   * Signals within this many milliseconds of the first count as the same stop: one Ctrl+C in a
   * terminal reaches the process twice (from the terminal to the process group, and forwarded
   * by `deno task`), and systemd's default stop signals every process of the unit. Default 1000.
   */
  graceMs?: number;
  /** Called on a later, deliberate signal; default: a warning, then exit status 130. */
  onForce?: (signal: string) => void;
}

const SIGNALS: Deno.Signal[] = ["SIGINT", "SIGTERM"];

/**
 * Resolves with the signal's name on the first SIGINT or SIGTERM (SIGINT alone on Windows). A
 * signal that follows more than `graceMs` later is deliberate: the process leaves at once with
 * status 130, and the collector's journal keeps what is not written yet for the next start.
 */
export function stopSignal(opts: StopSignalOptions = {}): Promise<string> {
  const graceMs = opts.graceMs ?? 1000;
  const onForce = opts.onForce ?? ((signal: string) => {
    const line = `${new Date().toISOString()} WARN  [process] Second ${signal}: stopping at ` +
      "once; what was not written yet is kept (the journal replays it at the next start)\n";
    try {
      Deno.stderr.writeSync(new TextEncoder().encode(line));
    } catch {
      // stderr closed: leave all the same.
    }
    Deno.exit(EXIT.forced);
  });
  return new Promise((resolve) => {
    let first = 0;
    for (const sig of SIGNALS) {
      const listener = () => {
        const now = performance.now();
        if (first === 0) {
          first = now;
          resolve(sig);
        } else if (now - first > graceMs) {
          onForce(sig);
        }
      };
      try {
        Deno.addSignalListener(sig, listener);
      } catch {
        // SIGTERM cannot be listened to on Windows; Ctrl+C (SIGINT) still works there.
      }
    }
  });
}
