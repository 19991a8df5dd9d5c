import { join } from "node:path";
import type { ResolvedCollectorConfig } from "../config/mod.ts";
import type { Db } from "../db/mod.ts";
import { logger } from "../log/mod.ts";
import { errorText } from "./_error_text.ts";
import { MqttIntake } from "./_mqtt_intake.ts";
import { Stats } from "./_stats.ts";
import { WriteLoop } from "./_write_loop.ts";
import { createBatchWriter } from "./batch_writer.ts";
import { recordAtFault, writeIsolating } from "./_isolate.ts";
import { Journal } from "./journal.ts";
import { startRetention } from "../readings/start_retention.ts";
import type { BatchWriter } from "./types.ts";

/**
 * Counters of a running collector, since it started. `stored` and `rejected` include messages
 * replayed from the journal that an earlier run had received.
 */
export interface CollectorStats {
  /** Messages received from the broker (and journaled). */
  received: number;
  /** Messages stored as data, status, error or capabilities. */
  stored: number;
  /** Messages (or bad metrics of a message) stored in `rejected_messages`. */
  rejected: number;
  /** Readings whose missing or implausible timestamp was replaced by the receive time. */
  timestampsReplaced: number;
  /** Journaled bytes not yet committed to the database. */
  journalBytes: number;
  /** Unreadable journal records kept aside in `DATA_DIR/journal/quarantine/` since the start. */
  quarantined: number;
  /** Age of the oldest message not yet committed, in milliseconds (0 when none). */
  lagMs: number;
  /** False while the database is unreachable. */
  dbUp: boolean;
  /** True while connected to the broker with the subscriptions acknowledged. */
  mqttConnected: boolean;
  /** Reconnects to the broker since the start. */
  mqttReconnects: number;
}

/** A running collector. */
export interface Collector {
  /** Current counters. */
  stats(): CollectorStats;
  /**
   * Stops taking messages, writes everything journaled to the database (waiting at most
   * `stopTimeoutMs` for it), then disconnects. Idempotent. What could not be written stays in the
   * journal for the next start.
   */
  stop(): Promise<void>;
}

/** Tuning of `startCollector()`. */
export interface CollectorOptions {
  /** Longest wait before a partial batch is written (default 50 ms). */
  flushIntervalMs?: number;
  /** Most messages per database transaction (default `DEFAULT_BATCH_SIZE`). */
  batchSize?: number;
  /** Most journal bytes per batch, bounding memory when payloads are large (default 8 MiB). */
  batchBytes?: number;
  /** First retry delay after a database error, doubled up to `retryMaxMs` (default 500 ms). */
  retryMinMs?: number;
  /** Longest retry delay for the database and the broker (default 30 s). */
  retryMaxMs?: number;
  /** First delay before reconnecting to the broker, doubled up to `retryMaxMs` (default 1 s). */
  mqttRetryMinMs?: number;
  /** A SUBSCRIBE the broker leaves unanswered this long makes the collector reconnect (10 s). */
  mqttSubscribeTimeoutMs?: number;
  /** How long `stop()` waits for the database to take the journal (default 30 s). */
  stopTimeoutMs?: number;
  /** Interval of the counts log line (default 60 s). */
  statsIntervalMs?: number;
  /** Interval of the journal's fsync while messages arrive (default 1 s). */
  syncIntervalMs?: number;
  /** A batch write that takes longer counts as failed and is retried (default 120 s). */
  writeTimeoutMs?: number;
  /** A batch write still unanswered after this starts a probe of the database (default 5 s). */
  slowWriteMs?: number;
  /** How long a `select 1` probe may take before the database counts as down (default 5 s). */
  probeTimeoutMs?: number;
  /** Journal folder (default `DATA_DIR/journal`). */
  journalDir?: string;
  /** Writer of decoded batches (default `createBatchWriter(db, { layouts })`). */
  writer?: BatchWriter;
}

const log = logger("collector");

/**
 * Most messages per database transaction. Larger batches make the rollups cheaper per message
 * (one upsert per sensor, metric and bucket of a batch) but cost memory: draining a backlog,
 * batches of 8,000 took the collector to 145–165 MB and 10,000 to 153 MB, over its 150 MB budget
 * (README "Benchmarks"). Live traffic flushes every 50 ms long before a batch is full.
 */
export const DEFAULT_BATCH_SIZE = 5_000;

/**
 * Starts the collector: subscribes to the device topics (QoS 1, persistent session), appends each
 * message to the journal before it is acknowledged, and writes the journal to the database in
 * batches, trimming it after each commit. Replays what an earlier run left in the journal first.
 * `config.mqtt.url` must be set (in embedded mode, the embedded broker's URL).
 */
export async function startCollector(
  db: Db,
  config: ResolvedCollectorConfig,
  opts: CollectorOptions = {},
): Promise<Collector> {
  const url = config.mqtt.url;
  if (!url) {
    throw new Error(
      "The collector needs an MQTT broker: set MQTT_URL (or MQTT_BROKER and MQTT_PORT)",
    );
  }
  const retryMaxMs = opts.retryMaxMs ?? 30_000;
  const stopTimeoutMs = opts.stopTimeoutMs ?? 30_000;
  // A writer passed in gets the same isolation of refused records as the collector's own.
  const custom = opts.writer;
  const writer: BatchWriter = custom
    ? {
      write: (batch) =>
        writeIsolating(batch, {
          write: (b) => custom.write(b),
          atFault: recordAtFault(db, opts.probeTimeoutMs ?? 5000),
        }),
    }
    : createBatchWriter(db, { layouts: config.layouts });
  const journal = await openJournal(opts.journalDir ?? join(config.dataDir, "journal"), config);

  if (journal.pendingBytes > 0) {
    log.info("Replaying messages left in the journal by the previous run", {
      journal_bytes: journal.pendingBytes,
    });
  }
  let stopPromise: Promise<void> | undefined;
  const stats = new Stats({
    journal,
    intervalMs: opts.statsIntervalMs ?? 60_000,
    dbUp: () => loop.dbUp,
    mqttConnected: () => intake.connected,
    mqttReconnects: () => intake.reconnects,
    stopping: () => stopPromise !== undefined,
  });
  const loop = new WriteLoop({
    db,
    journal,
    writer,
    flushIntervalMs: opts.flushIntervalMs ?? 50,
    batchSize: opts.batchSize ?? DEFAULT_BATCH_SIZE,
    batchBytes: opts.batchBytes ?? 8 * 1024 * 1024,
    retryMinMs: opts.retryMinMs ?? 500,
    retryMaxMs,
    syncIntervalMs: opts.syncIntervalMs ?? 1000,
    writeTimeoutMs: opts.writeTimeoutMs ?? 120_000,
    slowWriteMs: opts.slowWriteMs ?? 5000,
    probeTimeoutMs: opts.probeTimeoutMs ?? 5000,
    onTick: () => {
      stats.logIfDue();
      intake.releaseHeld();
    },
    onStored: (items) => stats.countStored(items),
  });
  const intake = new MqttIntake({
    url,
    mqtt: config.mqtt,
    journal,
    retryMinMs: opts.mqttRetryMinMs ?? 1000,
    retryMaxMs,
    subscribeTimeoutMs: opts.mqttSubscribeTimeoutMs,
    onAccepted: () => {
      stats.counts.received++;
      loop.appended();
    },
  });

  const loopDone = loop.run().catch((err) => {
    // A bug, not bad input: say so loudly; the journal keeps the messages for the next start.
    log.error("Collector writer stopped by an unexpected error", { error: errorText(err) });
  });
  // RAW_RETENTION_DAYS: old raw readings are removed, their rollups kept (README).
  const retention = config.rawRetentionDays === undefined
    ? undefined
    : startRetention(db, { rawRetentionDays: config.rawRetentionDays });

  return {
    stats: () => stats.snapshot(),
    stop() {
      stopPromise ??= (async () => {
        await retention?.stop();
        loop.stop();
        await intake.stop();
        loop.drain(stopTimeoutMs);
        await loopDone;
        journal.close();
        const counts = stats.counts;
        log.info("Collector stopped", {
          received: counts.received,
          stored: counts.stored,
          rejected: counts.rejected,
          journal_bytes: journal.pendingBytes,
        });
      })();
      return stopPromise;
    },
  };
}

async function openJournal(dir: string, config: ResolvedCollectorConfig): Promise<Journal> {
  try {
    await Deno.mkdir(dir, { recursive: true });
    return Journal.open({ dir, maxBytes: config.journalMaxBytes });
  } catch (err) {
    const why = err instanceof Deno.errors.NotCapable || err instanceof Deno.errors.PermissionDenied
      ? "this process may not write there (deno task collect may write only to the DATA_DIR it reads from the environment or .env)"
      : errorText(err).replace(/: \w+ '[^']*'$/, ""); // the folder is named by DATA_DIR already
    throw new Error(`Cannot open the collector journal under DATA_DIR: ${why}`, { cause: err });
  }
}
