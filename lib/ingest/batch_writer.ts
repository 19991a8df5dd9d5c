import type { StorageLayout } from "../config/mod.ts";
import { isValidIdent } from "../db/ident.ts";
import { type Db, isDbAnswer, isRefusal, type Queryable } from "../db/mod.ts";
import { recordAtFault, writeIsolating } from "./_isolate.ts";
import { refusal } from "./_rejection.ts";
import { SchemaCache } from "./_schema.ts";
import {
  applyCapabilities,
  applyStatus,
  comparePairs,
  type DeviceMessage,
  type Event,
  freshRetained,
  insertEvents,
  insertReadings,
  insertRejected,
  json,
  noteReceived,
  type Received,
  registerDevices,
  type Row,
  sensorKey,
  touchSensors,
  upsertDevices,
} from "./_statements.ts";
import { hash32 } from "../text/hash.ts";
import { RESERVED_METRICS } from "./decode_message.ts";
import type {
  BatchWriter,
  CapabilitiesMessage,
  Decoded,
  ReadingMessage,
  RejectedMessage,
} from "./types.ts";

/** How the batch writer stores messages. */
export interface BatchWriterOptions {
  /** Table layouts to write (`STORAGE_LAYOUTS`): columnar per-type tables and/or `measurements`. */
  layouts: StorageLayout[];
  /**
   * Most sensor types the writer will create (tables and `metrics` entries) before refusing new
   * ones, so that a misbehaving device cannot fill the database with tables. Default 100.
   */
  maxSensorTypes?: number;
  /**
   * Most sensor types one device may introduce, so that one misbehaving device cannot use up
   * `maxSensorTypes` for everyone. Default 10.
   */
  maxSensorTypesPerDevice?: number;
  /** A refused sensor type is looked at again after this long, in ms (default one minute). */
  retryRefusedMs?: number;
  /**
   * Most metrics (columns) one sensor type may have before new ones are refused, far below
   * PostgreSQL's 1600-column limit. Default 100.
   */
  maxMetricsPerType?: number;
  /**
   * Transactions one batch is split into, on separate connections, by device (default: 2 on
   * PostgreSQL, 1 on PGlite, whose one engine runs one statement at a time). Only batches of at
   * least `LANE_MIN_MESSAGES` per lane are split.
   */
  lanes?: number;
  /**
   * Readings go in by `COPY` where the database takes it (PostgreSQL), falling back to
   * `INSERT … ON CONFLICT DO NOTHING` for a batch whose COPY is refused. Default true.
   */
  copy?: boolean;
}

/**
 * After a batch whose COPY was refused (it held readings stored already: a journal replay or
 * redelivered messages, which come in runs), this many batches go straight to the insert path.
 */
export const COPY_PAUSE_BATCHES = 16;

/**
 * A batch is split into lanes only when each gets at least this many messages: small (live)
 * batches gain nothing from a second transaction.
 */
export const LANE_MIN_MESSAGES = 500;

/**
 * Writes decoded messages to the database, one transaction per batch:
 *
 * - `devices`: data, status, error and capabilities register unknown devices and move
 *   `last_seen` forward; capabilities set name, firmware, location and metadata; status sets
 *   `status` (an older status replayed later does not overwrite a newer one).
 * - `sensors`: one row per device and sensor type, ids cached in memory; `last_seen` kept.
 * - readings: `<type>_measurements(time, sensor_id, <metric>…)` (columnar) and
 *   `measurements(time, sensor_id, metric_type, value)` (flexible), as the layouts say: by
 *   `COPY` under a savepoint, or, for a batch whose COPY is refused (it holds stored rows or a
 *   refused value), one statement per sensor type that feeds both from `unnest()` array
 *   parameters with `ON CONFLICT DO NOTHING`. For one sensor and time the first message of a
 *   batch wins, as the stored row wins over a later batch.
 * - a new sensor type gets its table (BRIN index on time, `SELECT` for `sensor_reader`,
 *   hypertable under TimescaleDB) and a new metric its column and `metrics` row, under an
 *   advisory lock so two collectors never race on DDL.
 * - status, error and capabilities → `device_events`; rejected input → `rejected_messages`.
 *   Both skip rows already stored, so a replayed batch adds nothing.
 *
 * Throws when the database cannot be reached (nothing is committed; the caller retries). A
 * message the database itself refuses (a data error) is isolated by splitting the batch and
 * recorded in `rejected_messages`, so one bad message never blocks the rest.
 */
export function createBatchWriter(db: Db, opts: BatchWriterOptions): BatchWriter {
  const columnar = opts.layouts.includes("columnar");
  const flexible = opts.layouts.includes("flexible");
  const schema = new SchemaCache(db, {
    columnar,
    maxTypes: opts.maxSensorTypes ?? 100,
    maxMetrics: opts.maxMetricsPerType ?? 100,
    maxTypesPerDevice: opts.maxSensorTypesPerDevice ?? 10,
    retryRefusedMs: opts.retryRefusedMs,
  });
  const sensorIds = new Map<string, number>();
  const copy = opts.copy ?? true;
  let copyPause = 0;

  const forget = () => {
    sensorIds.clear();
    schema.forget();
  };

  /** Splits readings into what can be stored now and rejections for refused types and metrics. */
  const applyLimits = (readings: ReadingMessage[]) => {
    const kept: ReadingMessage[] = [];
    const refused: RejectedMessage[] = [];
    for (const r of readings) {
      const state = schema.get(r.sensorType);
      if (!state || state.refused) {
        refused.push(
          refusal(r, state?.refused ?? `sensor type "${r.sensorType}" could not be created`),
        );
        continue;
      }
      const over = Object.keys(r.metrics).filter((m) => !state.ready.has(m));
      if (over.length === 0) {
        kept.push(r);
        continue;
      }
      refused.push(refusal(
        r,
        `metrics ${over.map((m) => `"${m}"`).join(", ")} refused: sensor type ` +
          `"${r.sensorType}" already has ${state.all.size} metrics, the most the collector creates`,
      ));
      const metrics = Object.fromEntries(
        Object.entries(r.metrics).filter(([m]) => state.ready.has(m)),
      );
      if (Object.keys(metrics).length > 0) kept.push({ ...r, metrics });
    }
    return { kept, refused };
  };

  const writeOnce = async (batch: Decoded[]): Promise<void> => {
    const readings: ReadingMessage[] = [];
    const caps: CapabilitiesMessage[] = [];
    const rejected: RejectedMessage[] = [];
    const events: Event[] = [];
    const seen = new Map<string, number>();
    const received = new Map<string, Received>();
    const status = new Map<string, { status: string; time: Date }>();
    const retained: DeviceMessage[] = [];
    const addEvent = (msg: DeviceMessage) => {
      events.push({
        time: msg.time,
        device: msg.device,
        kind: msg.kind,
        payload: json(msg.payload),
      });
      if (msg.kind === "capabilities") caps.push(msg);
      if (msg.kind === "status") {
        const prev = status.get(msg.device);
        if (!prev || prev.time <= msg.time) status.set(msg.device, msg);
      }
    };
    for (const msg of batch) {
      if (msg.kind === "rejected") {
        rejected.push(msg);
        continue;
      }
      if (msg.kind !== "reading" && msg.retained) {
        retained.push(msg);
        continue;
      }
      const t = msg.time.getTime();
      if (!(seen.get(msg.device)! >= t)) seen.set(msg.device, t);
      noteReceived(received, msg);
      if (msg.kind === "reading") {
        const bad = invalidReading(msg);
        if (bad) rejected.push(refusal(msg, bad));
        else readings.push(msg);
        if (msg.rejectedMetrics) rejected.push(refusal(msg, msg.rejectedMetrics.reason));
        continue;
      }
      addEvent(msg);
    }
    await schema.prepare(readings);
    const limited = applyLimits(readings);
    rejected.push(...limited.refused);
    const staged = new Map<string, number>();
    const fast = { copy: copy && copyPause === 0, failed: 0 };
    if (copyPause > 0) copyPause--;
    const live = { events: events.length, caps: caps.length, status: new Map(status) };
    await db.transaction(async (tx) => {
      // A retry of this function starts from the live messages again.
      events.length = live.events;
      caps.length = live.caps;
      status.clear();
      for (const [k, v] of live.status) status.set(k, v);
      // The broker sends retained messages again on every subscription: one that the device's
      // history already ends with is a repeat, and none is activity (`last_seen` stays).
      if (retained.length > 0) {
        for (const msg of await freshRetained(tx, retained)) addEvent(msg);
        await registerDevices(tx, retained.map((m) => m.device));
      }
      await upsertDevices(tx, seen, received);
      if (caps.length > 0) await applyCapabilities(tx, caps, staged);
      if (status.size > 0) await applyStatus(tx, status);
      const rows = await resolveSensors(tx, limited.kept, staged);
      const conflicts = await insertReadings(tx, rows, { columnar, flexible }, fast);
      await touchSensors(tx, rows);
      await insertEvents(tx, events);
      await insertRejected(tx, [
        ...rejected,
        ...conflicts.map((c) => refusal(c.row.msg, c.reason)),
      ]);
    });
    if (fast.failed > 0) copyPause = COPY_PAUSE_BATCHES;
    for (const [k, v] of staged) sensorIds.set(k, v);
  };

  const resolveSensors = async (
    tx: Queryable,
    readings: ReadingMessage[],
    staged: Map<string, number>,
  ): Promise<Row[]> => {
    // Ids read once, before any await: the other lane may clear the cache meanwhile (forget()).
    const known = new Map<string, number>();
    const missing = new Map<string, [string, string]>();
    for (const r of readings) {
      const key = sensorKey(r.device, r.sensorType);
      const id = sensorIds.get(key) ?? staged.get(key);
      if (id === undefined) missing.set(key, [r.device, r.sensorType]);
      else known.set(key, id);
    }
    if (missing.size > 0) {
      const pairs = [...missing.values()].sort(comparePairs);
      const devices = pairs.map((p) => p[0]);
      const kinds = pairs.map((p) => p[1]);
      await tx.sql`
        insert into sensors (device_id, sensor_type)
        select * from unnest(${devices}::text[], ${kinds}::text[])
        on conflict (device_id, sensor_type) do nothing`;
      const found = await tx.sql<{ sensor_id: number; device_id: string; sensor_type: string }>`
        select s.sensor_id, s.device_id, s.sensor_type
        from sensors s join unnest(${devices}::text[], ${kinds}::text[]) as u(d, t)
          on s.device_id = u.d and s.sensor_type = u.t`;
      for (const f of found) staged.set(sensorKey(f.device_id, f.sensor_type), f.sensor_id);
    }
    return readings.map((msg) => {
      const key = sensorKey(msg.device, msg.sensorType);
      return { sensorId: known.get(key) ?? staged.get(key)!, msg };
    });
  };

  const atFault = recordAtFault(db);
  /** One transaction for `batch`; a refused record is isolated and recorded. */
  const writeLane = async (batch: Decoded[]): Promise<void> => {
    try {
      await writeOnce(batch);
    } catch (err) {
      if (isDbAnswer(err)) {
        // Cached ids and columns may be stale (a table or sensor deleted behind our back), and
        // deadlocks or racing DDL succeed on a second try.
        forget();
        if (!isRefusal(err)) return await writeOnce(batch);
      } else if (!(await atFault(err))) throw err; // unreachable or closed: the caller retries
      await writeIsolating(batch, { write: writeOnce, atFault });
    }
  };
  const lanes = Math.max(1, Math.floor(opts.lanes ?? (db.kind === "postgres" ? 2 : 1)));
  return {
    async write(batch: Decoded[]): Promise<void> {
      if (batch.length === 0) return;
      const parts = splitByDevice(
        batch,
        Math.min(lanes, Math.floor(batch.length / LANE_MIN_MESSAGES)),
      );
      if (parts.length === 1) return await writeLane(batch);
      // The lanes touch disjoint rows (devices, sensors, readings, rollups and events are all
      // keyed by device), so they never wait for each other. Every statement skips what is
      // stored already, so when one lane fails after another committed, the caller's retry of
      // the whole batch stores the rest and adds nothing twice — as a journal replay does. All
      // lanes are awaited before that retry can start.
      const results = await Promise.allSettled(parts.map(writeLane));
      const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
      if (failed) throw failed.reason;
    },
  };
}

/**
 * `batch` in `n` parts by device (a stable hash of its id), each in the batch's order; messages
 * without a device (rejected topics) go to the first. Empty parts are left out.
 */
function splitByDevice(batch: Decoded[], n: number): Decoded[][] {
  if (n <= 1) return [batch];
  const parts: Decoded[][] = Array.from({ length: n }, () => []);
  for (const msg of batch) {
    parts[msg.kind === "rejected" ? 0 : hash32(msg.device) % n].push(msg);
  }
  return parts.filter((p) => p.length > 0);
}

/**
 * Why a reading cannot be written as it is, if it cannot: `decodeMessage()` never produces
 * such a reading, but names become SQL identifiers, so the writer checks them again.
 */
function invalidReading(msg: ReadingMessage): string | undefined {
  if (!isValidIdent(`${msg.sensorType}_measurements`)) {
    return `sensor type ${JSON.stringify(msg.sensorType)} cannot name a table`;
  }
  const names = Object.keys(msg.metrics);
  if (names.length === 0) return "reading has no metrics";
  for (const m of names) {
    if (!isValidIdent(m) || RESERVED_METRICS.has(m)) {
      return `metric ${JSON.stringify(m)} cannot name a column`;
    }
    if (typeof msg.metrics[m] !== "number" || !Number.isFinite(msg.metrics[m])) {
      return `metric ${JSON.stringify(m)}: reading ${msg.metrics[m]} is not a finite number`;
    }
  }
  return undefined;
}
