import type { Db } from "../db/mod.ts";
import { logger } from "../log/mod.ts";
import { decodeMessage } from "./decode_message.ts";
import { errorText } from "./_error_text.ts";
import type { Journal, JournalRecord } from "./journal.ts";
import type { BatchWriter, Decoded } from "./types.ts";

/** Resolved tuning and parts of the write loop (defaults live in `CollectorOptions`). */
export interface WriteLoopOptions {
  db: Db;
  journal: Journal;
  writer: BatchWriter;
  /** Longest wait before a partial batch is written. */
  flushIntervalMs: number;
  /** Most messages per database transaction. */
  batchSize: number;
  /** Most journal bytes per batch. */
  batchBytes: number;
  /** First retry delay after a database error, doubled up to `retryMaxMs`. */
  retryMinMs: number;
  /** Longest retry delay. */
  retryMaxMs: number;
  /** Interval of the journal's fsync while messages arrive. */
  syncIntervalMs: number;
  /** A batch write that takes longer counts as failed and is retried. */
  writeTimeoutMs: number;
  /** A batch write still unanswered after this starts a probe of the database. */
  slowWriteMs: number;
  /** How long a `select 1` probe may take before the database counts as down. */
  probeTimeoutMs: number;
  /** Runs at every turn of the loop and while a write is pending. */
  onTick: () => void;
  /** Receives each batch once it is committed. */
  onStored: (items: Decoded[]) => void;
}

const log = logger("collector");

/** The database could not be reached; the batch stays in the journal. */
class DbDown extends Error {
  constructor(cause: unknown) {
    super(errorText(cause), { cause });
    this.name = "DbDown";
  }
}

/** The stop's time ran out while a write was pending; the batch stays in the journal. */
class OutOfTime extends Error {
  constructor() {
    super("no answer from the database before the stop");
    this.name = "OutOfTime";
  }
}

/**
 * Writes the journal to the database in batches — read, decode, write, commit — retrying with
 * backoff while the database is down. The one owner of "the database is up or down": probes,
 * backoff, and the journal growing meanwhile; refused records are the writer's (`_isolate.ts`).
 */
export class WriteLoop {
  #o: WriteLoopOptions;
  #dbUp = true;
  #stopping = false;
  #deadline = Infinity;
  #unread = 0; // records appended since the last batch was read
  #firstUnreadAt = 0;
  #wakeAt = 1; // `unread` that ends the current wait
  #wake: (() => void) | undefined;
  #lastSync = Date.now();
  /** Rejects once `drain()`'s time is up, ending a write still pending then. */
  #outOfTime: Promise<never>;
  #giveUp: (err: OutOfTime) => void = () => {};
  #outOfTimeTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(opts: WriteLoopOptions) {
    this.#o = opts;
    this.#outOfTime = new Promise<never>((_, reject) => this.#giveUp = reject);
    this.#outOfTime.catch(() => {}); // raced by every write; unobserved until the stop
  }

  /** False while the database is unreachable. */
  get dbUp(): boolean {
    return this.#dbUp;
  }

  /** A record was appended to the journal: counts towards the next batch. */
  appended(): void {
    if (this.#unread++ === 0) this.#firstUnreadAt = Date.now();
    if (this.#wake && this.#unread >= this.#wakeAt) this.#wake();
  }

  /** From now on, write what the journal holds without waiting for more, then end. */
  stop(): void {
    this.#stopping = true;
  }

  /** Gives the loop `timeoutMs` from now to empty the journal, and wakes it. */
  drain(timeoutMs: number): void {
    this.#deadline = Date.now() + timeoutMs;
    clearTimeout(this.#outOfTimeTimer);
    this.#outOfTimeTimer = setTimeout(
      () => this.#giveUp(new OutOfTime()),
      timeoutMs,
    );
    this.#wake?.();
  }

  /** Runs until stopped and drained (or out of time); the journal keeps what was not written. */
  async run(): Promise<void> {
    try {
      await this.#run();
    } finally {
      clearTimeout(this.#outOfTimeTimer);
    }
  }

  async #run(): Promise<void> {
    const { journal, batchSize, flushIntervalMs, retryMinMs, retryMaxMs, syncIntervalMs } = this.#o;
    let backoff = retryMinMs;
    let lastLoopError = "";
    // The next batch, read and decoded while the database was writing the previous one. Only its
    // end offset and its decoded messages are kept: the raw records go once decoded.
    let next: PendingBatch | undefined;
    for (;;) {
      this.#housekeeping();
      try {
        let batch = next;
        next = undefined;
        if (!batch) {
          if (journal.pendingBytes === 0) {
            if (this.#stopping) return;
            await this.#sleep(syncIntervalMs, 1);
            continue;
          }
          // A batch goes when `batchSize` messages wait or the oldest waited `flushIntervalMs`.
          if (!this.#stopping && this.#unread > 0 && this.#unread < batchSize) {
            const age = Date.now() - this.#firstUnreadAt;
            if (age < flushIntervalMs) await this.#sleep(flushIntervalMs - age, batchSize);
          }
          batch = this.#readBatch(journal.committed);
          if (!batch) {
            // Only unreadable bytes were left (the journal kept them aside): nothing to store.
            journal.commit(journal.end);
            continue;
          }
        }
        const { end } = batch;
        const items = await batch.items;
        let settled = false;
        const writing = this.#write(items).finally(() => {
          settled = true;
          this.#wake?.();
        });
        writing.catch(() => {}); // awaited below; a failure must not count as unhandled meanwhile
        // Under load, read and decode the next batch while the database works on this one.
        while (!settled && !this.#stopping && this.#unread < batchSize) {
          await this.#sleep(syncIntervalMs, batchSize);
          this.#housekeeping();
        }
        if (!settled && !this.#stopping && journal.end > end) {
          next = this.#readBatch(end);
        }
        await writing;
        this.#o.onStored(items);
        journal.commit(end);
      } catch (err) {
        next = undefined; // the retry starts again from the last commit
        if (err instanceof DbDown) {
          this.#markDown(err);
        } else if (err instanceof OutOfTime) {
          // Only at the stop's deadline: the check below ends the loop.
        } else if (errorText(err) !== lastLoopError) {
          // Neither the database nor the input (both handled above): a fault such as a journal
          // read error. Retrying keeps the messages; the journal holds them meanwhile.
          lastLoopError = errorText(err);
          log.error("Unexpected error while storing a batch; retrying", { error: lastLoopError });
        }
        if (this.#stopping && Date.now() >= this.#deadline) {
          log.warn(
            "Stopping with messages left in the journal; they are stored at the next start",
            { journal_bytes: journal.pendingBytes },
          );
          return;
        }
        await this.#sleep(
          this.#stopping ? Math.min(backoff, this.#deadline - Date.now()) : backoff,
          Infinity,
        );
        backoff = Math.min(backoff * 2, retryMaxMs);
        continue;
      }
      lastLoopError = "";
      backoff = retryMinMs;
      if (!this.#dbUp) {
        this.#dbUp = true;
        log.info("Database reachable again; writing what the journal holds", {
          remaining_bytes: journal.pendingBytes,
        });
      }
    }
  }

  /** Waits `ms`, or until `threshold` records are unread, or until woken. */
  #sleep(ms: number, threshold: number): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#wakeAt = threshold;
      const done = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      this.#wake = done;
    });
  }

  #housekeeping(): void {
    const now = Date.now();
    if (now - this.#lastSync >= this.#o.syncIntervalMs) {
      this.#lastSync = now;
      try {
        this.#o.journal.sync();
      } catch (err) {
        log.warn("Journal fsync failed", { error: errorText(err) });
      }
    }
    this.#o.onTick();
  }

  #callTimeout(): number {
    const { writeTimeoutMs } = this.#o;
    return this.#stopping
      ? Math.max(1000, Math.min(writeTimeoutMs, this.#deadline - Date.now()))
      : writeTimeoutMs;
  }

  async #dbAlive(): Promise<boolean> {
    try {
      await withTimeout(
        this.#o.db.query("select 1"),
        Math.min(this.#o.probeTimeoutMs, this.#callTimeout()),
      );
      return true;
    } catch {
      return false;
    }
  }

  #markDown(cause: unknown): void {
    if (!this.#dbUp) return;
    this.#dbUp = false;
    log.warn("Database unavailable; messages stay in the journal and are retried", {
      error: errorText(cause),
    });
  }

  /**
   * One write of a batch. A write that is slow to answer triggers a probe, so an unreachable
   * database shows as down (stats, log) while the write is still pending.
   */
  async #attempt(batch: Decoded[]): Promise<void> {
    const { slowWriteMs } = this.#o;
    const written = this.#o.writer.write(batch);
    // Once stopping is out of time, a write still pending counts as failed (the journal keeps it).
    const write = Promise.race([written, this.#outOfTime]);
    let watchdog: ReturnType<typeof setTimeout> | undefined;
    const slow = new Promise<"slow">((resolve) => {
      watchdog = setTimeout(() => resolve("slow"), slowWriteMs);
    });
    try {
      if (await Promise.race([write.then(() => "done" as const), slow]) === "done") return;
    } finally {
      clearTimeout(watchdog);
    }
    if (!(await this.#dbAlive())) this.#markDown(new Error("no answer from the database"));
    await withTimeout(write, Math.max(1, this.#callTimeout() - slowWriteMs));
  }

  /**
   * Writes a batch. A failure while the database answers probes is the writer's to explain (it
   * isolates records the database refuses itself, see `writeIsolating()`): the batch is retried
   * with backoff. A failure while it does not is the database being down.
   */
  async #write(items: Decoded[]): Promise<void> {
    try {
      await this.#attempt(items);
    } catch (err) {
      // Out of time says nothing about the database.
      if (err instanceof OutOfTime) throw err;
      if (!(await this.#dbAlive())) throw new DbDown(err);
      throw err;
    }
  }

  /**
   * The next batch from `from`, being decoded; undefined when only unreadable bytes were left.
   * The raw records stay out of `run()`'s frame, so they are garbage once decoded.
   */
  #readBatch(from: number): PendingBatch | undefined {
    const records = this.#o.journal.read(from, this.#o.batchSize, this.#o.batchBytes);
    this.#unread = Math.max(0, this.#unread - records.length);
    this.#firstUnreadAt = Date.now();
    if (records.length === 0) return undefined;
    return { end: records[records.length - 1].end, items: decodeBatch(records) };
  }
}

async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer from the database within ${Math.round(ms)} ms`)),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** A batch read from the journal: the offset after its last record, and its messages decoded. */
interface PendingBatch {
  end: number;
  items: Promise<Decoded[]>;
}

async function decodeBatch(records: JournalRecord[]): Promise<Decoded[]> {
  const items: Decoded[] = [];
  for (let i = 0; i < records.length; i++) {
    // Let MQTT.js acknowledge incoming messages between slices of a large batch: a busy event
    // loop makes the broker queue (and, past its limit, drop) messages for this session.
    if (i > 0 && i % 1000 === 0) await new Promise((r) => setTimeout(r, 0));
    // Total: a bug in the decoder turns into a rejection instead of a stuck loop.
    items.push(decodeMessage(records[i].message));
  }
  return items;
}
