import { join } from "node:path";
import mqtt, { type DoneCallback, type IPublishPacket, type MqttClient } from "mqtt";
import type { ResolvedCollectorConfig } from "../config/mod.ts";
import type { Db } from "../db/mod.ts";
import { logger } from "../log/mod.ts";
import { createBatchWriter } from "./batch_writer.ts";
import { decodeMessage } from "./decode_message.ts";
import { Journal, type JournalRecord } from "./journal.ts";
import type { BatchWriter, Decoded, RawMessage } from "./types.ts";

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
  /** Age of the oldest message not yet committed, in milliseconds (0 when none). */
  lagMs: number;
  /** False while the database is unreachable. */
  dbUp: boolean;
  /** True while connected to the broker with the subscriptions acknowledged. */
  mqttConnected: boolean;
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
  /** Most messages per database transaction (default 5000). */
  batchSize?: number;
  /** Most journal bytes per batch, bounding memory when payloads are large (default 8 MiB). */
  batchBytes?: number;
  /** First retry delay after a database error, doubled up to `retryMaxMs` (default 500 ms). */
  retryMinMs?: number;
  /** Longest retry delay for the database and the broker (default 30 s). */
  retryMaxMs?: number;
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
const TOPICS = [
  "devices/+/capabilities",
  "devices/+/sensors/+/data",
  "devices/+/status",
  "devices/+/error",
];

/** The database could not be reached; the batch stays in the journal. */
class DbDown extends Error {
  constructor(cause: unknown) {
    super(errorText(cause), { cause });
    this.name = "DbDown";
  }
}

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
  const flushIntervalMs = opts.flushIntervalMs ?? 50;
  const batchSize = opts.batchSize ?? 5000;
  const batchBytes = opts.batchBytes ?? 8 * 1024 * 1024;
  const retryMinMs = opts.retryMinMs ?? 500;
  const retryMaxMs = opts.retryMaxMs ?? 30_000;
  const stopTimeoutMs = opts.stopTimeoutMs ?? 30_000;
  const statsIntervalMs = opts.statsIntervalMs ?? 60_000;
  const syncIntervalMs = opts.syncIntervalMs ?? 1000;
  const writeTimeoutMs = opts.writeTimeoutMs ?? 120_000;
  const slowWriteMs = opts.slowWriteMs ?? 5000;
  const probeTimeoutMs = opts.probeTimeoutMs ?? 5000;
  const writer = opts.writer ?? createBatchWriter(db, { layouts: config.layouts });
  const journal = await openJournal(opts.journalDir ?? join(config.dataDir, "journal"), config);

  if (journal.pendingBytes > 0) {
    log.info("Replaying messages left in the journal by the previous run", {
      journal_bytes: journal.pendingBytes,
    });
  }
  const counts = { received: 0, stored: 0, rejected: 0, timestampsReplaced: 0 };
  let dbUp = true;
  let subscribed = false;
  let stopping = false;
  let deadline = Infinity;
  let stopPromise: Promise<void> | undefined;

  // ---- writer loop ----------------------------------------------------------------------------
  let unread = 0; // records appended since the last batch was read
  let firstUnreadAt = 0;
  let wakeAt = 1; // `unread` that ends the current wait
  let wake: (() => void) | undefined;
  const sleep = (ms: number, threshold: number) =>
    new Promise<void>((resolve) => {
      wakeAt = threshold;
      const done = () => {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      wake = done;
    });

  let lastSync = Date.now();
  let lastStats = Date.now();
  const housekeeping = () => {
    const now = Date.now();
    if (now - lastSync >= syncIntervalMs) {
      lastSync = now;
      try {
        journal.sync();
      } catch (err) {
        log.warn("Journal fsync failed", { error: errorText(err) });
      }
    }
    if (now - lastStats >= statsIntervalMs) {
      lastStats = now;
      const s = stats();
      log.info("counts", {
        received: s.received,
        stored: s.stored,
        rejected: s.rejected,
        timestamps_replaced: s.timestampsReplaced,
        journal_mb: (s.journalBytes / 1048576).toFixed(1),
        lag_ms: s.lagMs,
        db: s.dbUp ? "up" : "down",
        mqtt: s.mqttConnected ? "up" : "down",
      });
    }
    releaseHeld();
  };

  const withTimeout = async <T>(p: Promise<T>, ms: number): Promise<T> => {
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
  };
  const callTimeout = () =>
    stopping ? Math.max(1000, Math.min(writeTimeoutMs, deadline - Date.now())) : writeTimeoutMs;
  const dbAlive = async () => {
    try {
      await withTimeout(db.query("select 1"), Math.min(probeTimeoutMs, callTimeout()));
      return true;
    } catch {
      return false;
    }
  };
  const markDown = (cause: unknown) => {
    if (!dbUp) return;
    dbUp = false;
    log.warn("Database unavailable; messages stay in the journal and are retried", {
      error: errorText(cause),
    });
  };

  /**
   * One write of a batch. A write that is slow to answer triggers a probe, so an unreachable
   * database shows as down (stats, log) while the write is still pending.
   */
  const attempt = async (batch: Decoded[]) => {
    const write = writer.write(batch);
    let watchdog: ReturnType<typeof setTimeout> | undefined;
    const slow = new Promise<"slow">((resolve) => {
      watchdog = setTimeout(() => resolve("slow"), slowWriteMs);
    });
    try {
      if (await Promise.race([write.then(() => "done" as const), slow]) === "done") return;
    } finally {
      clearTimeout(watchdog);
    }
    if (!(await dbAlive())) markDown(new Error("no answer from the database"));
    await withTimeout(write, Math.max(1, callTimeout() - slowWriteMs));
  };

  /**
   * Writes `items[from, to)`. When the database refuses a batch while it is reachable, the batch
   * is split until the one record at fault is found; it becomes a rejected message in place, so
   * one bad record cannot wedge the loop.
   */
  const writeRange = async (items: Decoded[], from: number, to: number): Promise<void> => {
    let failure: unknown;
    try {
      await attempt(items.slice(from, to));
      return;
    } catch (err) {
      failure = err;
    }
    if (!(await dbAlive())) throw new DbDown(failure);
    if (to - from > 1) {
      const mid = (from + to) >> 1;
      await writeRange(items, from, mid);
      await writeRange(items, mid, to);
      return;
    }
    const bad = items[from];
    const reason = `could not be stored: ${errorText(failure)}`.slice(0, 500);
    log.warn("A message the database refused was moved to rejected_messages", {
      topic: topicOf(bad),
      reason,
    });
    const rejected: Decoded = {
      kind: "rejected",
      topic: topicOf(bad),
      payload: sanitizeText(bad.kind === "rejected" ? bad.payload : JSON.stringify(bad))
        .slice(0, 4096),
      reason,
      time: new Date(),
    };
    items[from] = rejected;
    try {
      await attempt([rejected]);
    } catch (err) {
      if (!(await dbAlive())) throw new DbDown(err);
      log.error("A message could not be stored even in rejected_messages; skipped", {
        topic: rejected.topic,
        error: errorText(err),
      });
    }
  };

  const decodeBatch = async (records: JournalRecord[]): Promise<Decoded[]> => {
    const items: Decoded[] = [];
    for (let i = 0; i < records.length; i++) {
      // Let MQTT.js acknowledge incoming messages between slices of a large batch: a busy event
      // loop makes the broker queue (and, past its limit, drop) messages for this session.
      if (i > 0 && i % 1000 === 0) await new Promise((r) => setTimeout(r, 0));
      items.push(decodeSafely(records[i].message));
    }
    return items;
  };
  const readBatch = (from: number): JournalRecord[] => {
    const records = journal.read(from, batchSize, batchBytes);
    unread = Math.max(0, unread - records.length);
    firstUnreadAt = Date.now();
    return records;
  };
  const countStored = (items: Decoded[]) => {
    for (const d of items) {
      if (d.kind === "rejected") counts.rejected++;
      else counts.stored++;
      if (d.kind === "reading" && d.timestampReplaced) counts.timestampsReplaced++;
      // Bad metrics of an otherwise good reading land in rejected_messages too.
      if (d.kind === "reading" && d.rejectedMetrics) counts.rejected++;
    }
  };

  const loop = async () => {
    let backoff = retryMinMs;
    let lastLoopError = "";
    // The next batch, read and decoded while the database was writing the previous one.
    let next: { records: JournalRecord[]; items: Promise<Decoded[]> } | undefined;
    for (;;) {
      housekeeping();
      try {
        let batch = next;
        next = undefined;
        if (!batch) {
          if (journal.pendingBytes === 0) {
            if (stopping) return;
            await sleep(syncIntervalMs, 1);
            continue;
          }
          // A batch goes when `batchSize` messages wait or the oldest waited `flushIntervalMs`.
          if (!stopping && unread > 0 && unread < batchSize) {
            const age = Date.now() - firstUnreadAt;
            if (age < flushIntervalMs) await sleep(flushIntervalMs - age, batchSize);
          }
          const records = readBatch(journal.committed);
          if (records.length === 0) {
            // Only damaged bytes were left (the journal logged them): nothing to store.
            journal.commit(journal.end);
            continue;
          }
          batch = { records, items: decodeBatch(records) };
        }
        const end = batch.records[batch.records.length - 1].end;
        const items = await batch.items;
        let settled = false;
        const writing = writeRange(items, 0, items.length).finally(() => {
          settled = true;
          wake?.();
        });
        writing.catch(() => {}); // awaited below; a failure must not count as unhandled meanwhile
        // Under load, read and decode the next batch while the database works on this one.
        while (!settled && !stopping && unread < batchSize) {
          await sleep(syncIntervalMs, batchSize);
          housekeeping();
        }
        if (!settled && !stopping && journal.end > end) {
          const records = readBatch(end);
          next = { records, items: decodeBatch(records) };
        }
        await writing;
        countStored(items);
        journal.commit(end);
      } catch (err) {
        next = undefined; // the retry starts again from the last commit
        if (err instanceof DbDown) {
          markDown(err);
        } else if (errorText(err) !== lastLoopError) {
          // Neither the database nor the input (both handled above): a fault such as a journal
          // read error. Retrying keeps the messages; the journal holds them meanwhile.
          lastLoopError = errorText(err);
          log.error("Unexpected error while storing a batch; retrying", { error: lastLoopError });
        }
        if (stopping && Date.now() >= deadline) {
          log.warn(
            "Stopping with messages left in the journal; they are stored at the next start",
            { journal_bytes: journal.pendingBytes },
          );
          return;
        }
        await sleep(stopping ? Math.min(backoff, deadline - Date.now()) : backoff, Infinity);
        backoff = Math.min(backoff * 2, retryMaxMs);
        continue;
      }
      lastLoopError = "";
      backoff = retryMinMs;
      if (!dbUp) {
        dbUp = true;
        log.info("Database reachable again; writing what the journal holds", {
          remaining_bytes: journal.pendingBytes,
        });
      }
    }
  };

  // ---- MQTT intake ----------------------------------------------------------------------------
  let generation = 0; // bumps on every lost connection
  let held: { message: RawMessage; done: DoneCallback; generation: number } | undefined;
  let fullSince = 0;

  let appendFailing = false;
  // Receive times stand in for missing device timestamps, and a burst (the backlog a broker
  // delivers after a reconnect) brings many messages in one millisecond: each message gets a
  // time of its own, a microsecond past the previous one, so none collapses onto another's key.
  let lastReceivedUs = 0; // whole microseconds: repeated float steps of 0.001 ms would round together
  const receiveClock = () => {
    const nowUs = Date.now() * 1000;
    // A clock stepped back by more than a second is followed rather than waited out.
    lastReceivedUs = nowUs > lastReceivedUs || lastReceivedUs - nowUs > 1_000_000
      ? nowUs
      : lastReceivedUs + 1;
    return lastReceivedUs / 1000;
  };

  const accept = (message: RawMessage, done: DoneCallback): boolean => {
    try {
      journal.append(message);
    } catch (err) {
      if (!appendFailing) {
        appendFailing = true;
        log.error("Cannot write to the journal; holding acknowledgements", {
          error: errorText(err),
        });
      }
      return false;
    }
    if (appendFailing) {
      appendFailing = false;
      log.info("Journal writable again");
    }
    counts.received++;
    if (unread++ === 0) firstUnreadAt = Date.now();
    if (wake && unread >= wakeAt) wake();
    // The record is with the operating system now: acknowledging cannot lose it.
    done();
    return true;
  };

  /**
   * Acknowledges a message that waited for journal space, once there is some. The "full" state
   * ends (and is logged) only when half of the budget is free, so a journal that fills as fast as
   * it drains does not log every batch.
   */
  function releaseHeld() {
    if (held) {
      if (held.generation !== generation || stopping) {
        // Its connection is gone: the broker delivers it again on the next one.
        held = undefined;
      } else if (journal.hasRoom(held.message)) {
        const h = held;
        held = undefined;
        accept(h.message, h.done);
      }
    }
    if (fullSince && !held && journal.diskBytes <= journal.maxBytes / 2) {
      log.info("Journal has room again", { full_for_ms: Date.now() - fullSince });
      fullSince = 0;
    }
  }

  const onMessage = (packet: IPublishPacket, done: DoneCallback) => {
    // Once stopping, messages are neither journaled nor acknowledged: the broker keeps them.
    if (stopping) return;
    const message: RawMessage = {
      topic: packet.topic,
      payload: typeof packet.payload === "string"
        ? new TextEncoder().encode(packet.payload)
        : packet.payload,
      receivedAt: receiveClock(),
      ...(packet.retain ? { retained: true } : {}),
    };
    const room = journal.hasRoom(message);
    if (room && accept(message, done)) return;
    // Journal full (or failing): hold the acknowledgement. MQTT.js reads no further packet until
    // `done` runs, so the broker keeps everything else queued for this session.
    if (!room && !fullSince) {
      fullSince = Date.now();
      log.warn(
        "Journal full (JOURNAL_MAX_MB); holding acknowledgements until the database catches up",
        {
          journal_mb: (journal.diskBytes / 1048576).toFixed(1),
        },
      );
    }
    held = { message, done, generation };
  };

  const topics = TOPICS.map((t) =>
    config.mqtt.sharedGroup ? `$share/${config.mqtt.sharedGroup}/${t}` : t
  );
  const client: MqttClient = mqtt.connect(url, {
    clientId: config.mqtt.clientId,
    clean: false,
    username: config.mqtt.username,
    password: config.mqtt.password,
    protocolVersion: 4,
    keepalive: 30,
    connectTimeout: 10_000,
    reconnectPeriod: 1000,
    reconnectOnConnackError: true,
    // Subscriptions are renewed on every connect below, not only when the session was lost.
    resubscribe: false,
  });
  client.handleMessage = onMessage;
  const where = brokerName(url);
  let lastError = "";
  client.on("connect", (connack) => {
    client.options.reconnectPeriod = 1000;
    lastError = "";
    log.info("Connected to the MQTT broker", { broker: where, session: connack.sessionPresent });
    const wanted = Object.fromEntries(topics.map((t) => [t, { qos: 1 as const }]));
    client.subscribe(wanted, (err, granted) => {
      if (err) {
        if (!stopping) log.warn("Subscribing failed", { error: errorText(err) });
        return;
      }
      const refused = (granted ?? []).filter((g) => g.qos === 128).map((g) => g.topic);
      if (refused.length > 0) {
        log.error("The broker refused subscriptions (check its ACL)", { topics: refused });
        return;
      }
      subscribed = true;
      log.info("Subscribed", { topics: topics.join(","), qos: 1 });
    });
  });
  client.on("close", () => {
    generation++;
    if (subscribed && !stopping) {
      log.warn("Lost the MQTT connection; reconnecting", { broker: where });
    }
    subscribed = false;
  });
  client.on("reconnect", () => {
    client.options.reconnectPeriod = Math.min(
      (client.options.reconnectPeriod ?? 1000) * 2,
      retryMaxMs,
    );
  });
  client.on("error", (err) => {
    const text = errorText(err);
    if (text !== lastError && !stopping) {
      lastError = text;
      log.warn("MQTT connection problem; retrying", { broker: where, error: text });
    }
  });

  const loopDone = loop().catch((err) => {
    // A bug, not bad input: say so loudly; the journal keeps the messages for the next start.
    log.error("Collector writer stopped by an unexpected error", { error: errorText(err) });
  });

  const endClient = async () => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      client.endAsync(false).catch(() => {}),
      new Promise<void>((resolve) => timer = setTimeout(resolve, 5000)),
    ]);
    clearTimeout(timer);
    if (!client.disconnected) await client.endAsync(true).catch(() => {});
  };

  let oldestPending: { committed: number; receivedAt: number | undefined } = {
    committed: -1,
    receivedAt: undefined,
  };
  function stats(): CollectorStats {
    const pending = journal.pendingBytes;
    let lagMs = 0;
    if (pending > 0 && !stopPromise) {
      // The oldest pending record changes only with a commit: read it once per commit.
      if (oldestPending.committed !== journal.committed) {
        const oldest = journal.read(journal.committed, 1)[0];
        oldestPending = oldest
          ? { committed: journal.committed, receivedAt: oldest.message.receivedAt }
          : { committed: -1, receivedAt: undefined };
      }
      if (oldestPending.receivedAt !== undefined) {
        lagMs = Math.max(0, Date.now() - oldestPending.receivedAt);
      }
    }
    return {
      ...counts,
      journalBytes: pending,
      lagMs,
      dbUp,
      mqttConnected: client.connected && subscribed,
    };
  }

  return {
    stats,
    stop() {
      stopPromise ??= (async () => {
        stopping = true;
        held = undefined;
        await endClient();
        deadline = Date.now() + stopTimeoutMs;
        wake?.();
        await loopDone;
        journal.close();
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
      ? "this process may not write there (deno task collect may write under ./data only)"
      : errorText(err).replace(/: \w+ '[^']*'$/, ""); // the folder is named by DATA_DIR already
    throw new Error(`Cannot open the collector journal under DATA_DIR: ${why}`, { cause: err });
  }
}

/** Decodes one message; a bug in the decoder turns into a rejection instead of a stuck loop. */
function decodeSafely(message: RawMessage): Decoded {
  try {
    return decodeMessage(message);
  } catch (err) {
    return {
      kind: "rejected",
      topic: message.topic,
      payload: sanitizeText(new TextDecoder().decode(message.payload.subarray(0, 4096))),
      reason: `could not be decoded: ${errorText(err)}`.slice(0, 500),
      time: new Date(message.receivedAt),
    };
  }
}

function topicOf(d: Decoded): string {
  if (d.kind === "rejected") return d.topic;
  if (d.kind === "reading") return `devices/${d.device}/sensors/${d.sensorType}/data`;
  return `devices/${d.device}/${d.kind}`;
}

/** PostgreSQL text cannot hold NUL; other control characters are kept out of logs and rows. */
function sanitizeText(s: string): string {
  // deno-lint-ignore no-control-regex
  return s.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, "\ufffd");
}

function errorText(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}

/** `host:port` of the broker, without credentials. */
function brokerName(url: string): string {
  try {
    const u = new URL(url);
    return u.port ? `${u.hostname}:${u.port}` : u.hostname;
  } catch {
    return "(unparsable MQTT_URL)";
  }
}
