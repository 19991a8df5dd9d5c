// The one place that isolates a record the database refuses: a failing batch is split until the
// record at fault is found, and that record is stored as a rejection instead.
import { type Db, isDbUnavailable, isRefusal, sqlState } from "../db/mod.ts";
import { logger } from "../log/mod.ts";
import { errorText } from "./_error_text.ts";
import { refusal } from "./_rejection.ts";
import { topicOf } from "./_topic_of.ts";
import type { Decoded } from "./types.ts";

const log = logger("ingest");

/** Tells whether a failed write is the fault of the records written (not of the database). */
export type FaultJudge = (err: unknown) => Promise<boolean>;

/**
 * The judge of the collector's writers: the database refused the data (SQLSTATE classes 22, 23,
 * 42, 54), or an error that is not the database's at all (no SQLSTATE, not a lost connection)
 * while the database answers a probe within `probeMs` — some record makes the writer fail.
 */
export function recordAtFault(db: Db, probeMs = 5000): FaultJudge {
  return async (err) => {
    if (isRefusal(err)) return true;
    if (sqlState(err) !== undefined || isDbUnavailable(err)) return false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        db.query("select 1"),
        new Promise((_, reject) => timer = setTimeout(() => reject(new Error("probe")), probeMs)),
      ]);
      return true;
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
    }
  };
}

/**
 * Writes `batch` with `write`; when that fails and `atFault` blames the records, splits the batch
 * until the one record at fault is found and writes its rejection (`database refused the
 * message: …`) instead; the rejection takes the refused record's place in `batch`, so callers
 * count it as rejected. One bad record never blocks the rest. Any other failure is thrown:
 * nothing of the failed part was written, and the caller retries it.
 */
export async function writeIsolating(
  batch: Decoded[],
  opts: { write: (batch: Decoded[]) => Promise<void>; atFault: FaultJudge },
): Promise<void> {
  await writeRange(batch, 0, batch.length, opts);
}

async function writeRange(
  batch: Decoded[],
  from: number,
  to: number,
  opts: { write: (batch: Decoded[]) => Promise<void>; atFault: FaultJudge },
): Promise<void> {
  try {
    await opts.write(from === 0 && to === batch.length ? batch : batch.slice(from, to));
    return;
  } catch (err) {
    if (!(await opts.atFault(err))) throw err;
    if (to - from > 1) {
      const mid = (from + to) >> 1;
      await writeRange(batch, from, mid, opts);
      await writeRange(batch, mid, to, opts);
      return;
    }
    const msg = batch[from];
    log.warn("A message the database refused was moved to rejected_messages", {
      topic: topicOf(msg),
      error: errorText(err),
    });
    const rejected = refusal(msg, `database refused the message: ${errorText(err)}`);
    batch[from] = rejected;
    try {
      await opts.write([rejected]);
    } catch (again) {
      if (!(await opts.atFault(again))) throw again;
      log.error("A message could not be stored even in rejected_messages; skipped", {
        topic: rejected.topic,
        error: errorText(again),
      });
    }
  }
}
