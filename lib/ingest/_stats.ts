import { logger } from "../log/mod.ts";
import type { CollectorStats } from "./collector.ts";
import type { Journal } from "./journal.ts";
import type { Decoded } from "./types.ts";

/** Message counts of a collector since it started. */
export interface CollectorCounts {
  received: number;
  stored: number;
  rejected: number;
  timestampsReplaced: number;
}

/** What `Stats` reads its gauges from. */
export interface StatsOptions {
  journal: Journal;
  /** Interval of the counts log line. */
  intervalMs: number;
  /** False while the database is unreachable. */
  dbUp: () => boolean;
  /** True while connected to the broker with the subscriptions acknowledged. */
  mqttConnected: () => boolean;
  /** Reconnects to the broker so far. */
  mqttReconnects: () => number;
  /** True once the collector is stopping: the lag is no longer measured. */
  stopping: () => boolean;
}

const log = logger("collector");

/** Counters and gauges of a running collector, and its periodic counts log line. */
export class Stats {
  /** Message counts, updated by the intake and the write loop. */
  readonly counts: CollectorCounts = { received: 0, stored: 0, rejected: 0, timestampsReplaced: 0 };
  #opts: StatsOptions;
  #lastLog = Date.now();
  #oldestPending: { committed: number; receivedAt: number | undefined } = {
    committed: -1,
    receivedAt: undefined,
  };

  constructor(opts: StatsOptions) {
    this.#opts = opts;
  }

  /** Counts a committed batch. */
  countStored(items: Decoded[]): void {
    const counts = this.counts;
    for (const d of items) {
      if (d.kind === "rejected") counts.rejected++;
      else counts.stored++;
      if (d.kind === "reading" && d.timestampReplaced) counts.timestampsReplaced++;
      // Bad metrics of an otherwise good reading land in rejected_messages too.
      if (d.kind === "reading" && d.rejectedMetrics) counts.rejected++;
    }
  }

  /** Writes the counts log line when `intervalMs` has passed since the last one. */
  logIfDue(): void {
    const now = Date.now();
    if (now - this.#lastLog < this.#opts.intervalMs) return;
    this.#lastLog = now;
    const s = this.snapshot();
    log.info("counts", {
      received: s.received,
      stored: s.stored,
      rejected: s.rejected,
      timestamps_replaced: s.timestampsReplaced,
      journal_mb: (s.journalBytes / 1048576).toFixed(1),
      quarantined: s.quarantined,
      lag_ms: s.lagMs,
      db: s.dbUp ? "up" : "down",
      mqtt: s.mqttConnected ? "up" : "down",
    });
  }

  /** Current counters and gauges. */
  snapshot(): CollectorStats {
    const { journal } = this.#opts;
    const pending = journal.pendingBytes;
    let lagMs = 0;
    if (pending > 0 && !this.#opts.stopping()) {
      // The oldest pending record changes only with a commit: read it once per commit.
      if (this.#oldestPending.committed !== journal.committed) {
        let oldest;
        try {
          oldest = journal.read(journal.committed, 1)[0];
        } catch {
          // An unreadable record not yet kept aside (the write loop reports it): lag unknown.
        }
        this.#oldestPending = oldest
          ? { committed: journal.committed, receivedAt: oldest.message.receivedAt }
          : { committed: -1, receivedAt: undefined };
      }
      if (this.#oldestPending.receivedAt !== undefined) {
        lagMs = Math.max(0, Date.now() - this.#oldestPending.receivedAt);
      }
    }
    return {
      ...this.counts,
      journalBytes: pending,
      quarantined: journal.quarantined,
      lagMs,
      dbUp: this.#opts.dbUp(),
      mqttConnected: this.#opts.mqttConnected(),
      mqttReconnects: this.#opts.mqttReconnects(),
    };
  }
}
