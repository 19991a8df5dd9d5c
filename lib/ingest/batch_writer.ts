import type { StorageLayout } from "../config/mod.ts";
import { ident, isValidIdent } from "../db/ident.ts";
import type { Db, Queryable } from "../db/mod.ts";
import { logger } from "../log/mod.ts";
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
   * Most metrics (columns) one sensor type may have before new ones are refused, far below
   * PostgreSQL's 1600-column limit. Default 100.
   */
  maxMetricsPerType?: number;
}

/** What the writer knows to exist for one sensor type. */
interface TypeState {
  /** Metrics with a `metrics` row and, when columnar is written, a column. */
  ready: Set<string>;
  /** Every metric name the type has anywhere (columns or `metrics` rows), for the cap. */
  all: Set<string>;
  hasTable: boolean;
  /** New metrics refused because the type has `maxMetricsPerType` already. */
  over: Set<string>;
  /** Why new data of this type is refused, when it is. */
  refused?: string;
}

/** A reading whose sensor row is known, ready for the insert statements. */
interface Row {
  sensorId: number;
  msg: ReadingMessage;
}

type Event = {
  time: Date;
  device: string;
  kind: "status" | "error" | "capabilities";
  payload: string;
};

const log = logger("ingest");
// Serialises schema changes of every collector writing to one database.
const SCHEMA_LOCK = 0x616d6232;
const KEY_COLUMNS = new Set(["time", "sensor_id"]);

/**
 * Writes decoded messages to the database, one transaction per batch:
 *
 * - `devices`: data, status, error and capabilities register unknown devices and move
 *   `last_seen` forward; capabilities set name, firmware, location and metadata; status sets
 *   `status` (an older status replayed later does not overwrite a newer one).
 * - `sensors`: one row per device and sensor type, ids cached in memory; `last_seen` kept.
 * - readings: `<type>_measurements(time, sensor_id, <metric>…)` (columnar) and
 *   `measurements(time, sensor_id, metric_type, value)` (flexible), as the layouts say, with
 *   one `unnest()` insert per table and `ON CONFLICT DO NOTHING`. For one sensor and time the
 *   first message of a batch wins, as the stored row wins over a later batch.
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
  const maxTypes = opts.maxSensorTypes ?? 100;
  const maxMetrics = opts.maxMetricsPerType ?? 100;
  const sensorIds = new Map<string, number>();
  const types = new Map<string, TypeState>();

  const forget = () => {
    sensorIds.clear();
    types.clear();
  };

  /** Creates the tables, columns and `metrics` rows the readings need, within the limits. */
  const prepareSchema = async (readings: ReadingMessage[]): Promise<void> => {
    const wanted = new Map<string, Set<string>>();
    for (const r of readings) {
      let set = wanted.get(r.sensorType);
      if (!set) wanted.set(r.sensorType, set = new Set());
      for (const m in r.metrics) set.add(m);
    }
    const pending = [...wanted].filter(([type, metrics]) => {
      const s = types.get(type);
      if (!s) return true;
      if (s.refused) return false;
      for (const m of metrics) if (!s.ready.has(m) && !s.over.has(m)) return true;
      return false;
    });
    if (pending.length === 0) return;
    for (let attempt = 1;; attempt++) {
      try {
        const staged = await db.transaction((tx) => changeSchema(tx, pending));
        for (const [type, state] of staged) types.set(type, state);
        return;
      } catch (err) {
        // Schema changes made outside the lock (a migration, a person) can still collide.
        if (attempt >= 2 || !hasSqlState(err)) throw err;
      }
    }
  };

  const changeSchema = async (
    tx: Queryable,
    pending: [string, Set<string>][],
  ): Promise<Map<string, TypeState>> => {
    await tx.query("select pg_advisory_xact_lock($1)", [SCHEMA_LOCK]);
    const staged = new Map<string, TypeState>();
    const [{ n }] = await tx.sql<{ n: number }>`
      select count(distinct sensor_type)::int as n from metrics`;
    let typeCount = n;
    let features: { timescale: boolean; reader: boolean } | undefined;
    for (const [type, metrics] of pending) {
      // A copy: the cache changes only once this transaction has committed.
      const known = types.get(type);
      const state = known ? cloneState(known) : await loadType(tx, type);
      const table = `${type}_measurements`;
      if (state.all.size === 0 && !state.hasTable) {
        if (typeCount >= maxTypes) {
          state.refused = `sensor type "${type}" refused: the database already has ${typeCount} ` +
            `sensor types, the most the collector creates`;
          staged.set(type, state);
          log.warn("sensor type refused", { type, limit: maxTypes });
          continue;
        }
        typeCount++;
      }
      if (columnar && !state.hasTable) {
        features ??= await loadFeatures(tx);
        await createTable(tx, table, features);
        state.hasTable = true;
        log.info("created table for a new sensor type", { table });
      }
      for (const m of metrics) {
        if (state.ready.has(m)) continue;
        if (!state.all.has(m) && state.all.size >= maxMetrics) {
          if (!state.over.has(m)) {
            log.warn("metric refused", { type, metric: m, limit: maxMetrics });
          }
          state.over.add(m);
          continue;
        }
        if (columnar) {
          await tx.sql`alter table ${ident(table)}
            add column if not exists ${ident(m)} double precision`;
        }
        await tx.sql`insert into metrics (sensor_type, metric) values (${type}, ${m})
          on conflict do nothing`;
        state.ready.add(m);
        if (!state.all.has(m)) log.info("new metric", { type, metric: m });
        state.all.add(m);
      }
      staged.set(type, state);
    }
    return staged;
  };

  const loadType = async (tx: Queryable, type: string): Promise<TypeState> => {
    const cols = columnar
      ? (await tx.sql<{ name: string }>`
          select column_name::text as name from information_schema.columns
          where table_schema = current_schema() and table_name = ${`${type}_measurements`}`)
        .map((r) => r.name)
      : [];
    const rows = await tx.sql<{ metric: string }>`
      select metric from metrics where sensor_type = ${type}`;
    const inMetrics = new Set(rows.map((r) => r.metric));
    const columns = new Set(cols.filter((c) => !KEY_COLUMNS.has(c)));
    const ready = new Set([...inMetrics].filter((m) => !columnar || columns.has(m)));
    return {
      ready,
      all: new Set([...inMetrics, ...columns]),
      hasTable: cols.length > 0,
      over: new Set(),
    };
  };

  /** Splits readings into what can be stored now and rejections for refused types and metrics. */
  const applyLimits = (readings: ReadingMessage[]) => {
    const kept: ReadingMessage[] = [];
    const refused: RejectedMessage[] = [];
    for (const r of readings) {
      const state = types.get(r.sensorType);
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
    const status = new Map<string, { status: string; time: Date }>();
    for (const msg of batch) {
      if (msg.kind === "rejected") {
        rejected.push(msg);
        continue;
      }
      const t = msg.time.getTime();
      if (!(seen.get(msg.device)! >= t)) seen.set(msg.device, t);
      if (msg.kind === "reading") {
        const bad = invalidReading(msg);
        if (bad) rejected.push(refusal(msg, bad));
        else readings.push(msg);
        if (msg.rejectedMetrics) rejected.push(refusal(msg, msg.rejectedMetrics.reason));
        continue;
      }
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
    }
    await prepareSchema(readings);
    const limited = applyLimits(readings);
    rejected.push(...limited.refused);
    const staged = new Map<string, number>();
    await db.transaction(async (tx) => {
      await upsertDevices(tx, seen);
      if (caps.length > 0) await applyCapabilities(tx, caps, staged);
      if (status.size > 0) await applyStatus(tx, status);
      const rows = await resolveSensors(tx, limited.kept, staged);
      await insertReadings(tx, rows, { columnar, flexible });
      await touchSensors(tx, rows);
      await insertEvents(tx, events);
      await insertRejected(tx, rejected);
    });
    for (const [k, v] of staged) sensorIds.set(k, v);
  };

  const resolveSensors = async (
    tx: Queryable,
    readings: ReadingMessage[],
    staged: Map<string, number>,
  ): Promise<Row[]> => {
    const missing = new Map<string, [string, string]>();
    for (const r of readings) {
      const key = sensorKey(r.device, r.sensorType);
      if (!sensorIds.has(key) && !staged.has(key)) missing.set(key, [r.device, r.sensorType]);
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
      return { sensorId: sensorIds.get(key) ?? staged.get(key)!, msg };
    });
  };

  /** Writes one message alone, or records why the database refused it. */
  const isolate = async (batch: Decoded[]): Promise<void> => {
    try {
      await writeOnce(batch);
    } catch (err) {
      if (!isRefusal(err)) throw err;
      if (batch.length === 1) {
        const msg = batch[0];
        log.warn("message refused by the database", { topic: topicOf(msg), error: err });
        await writeOnce([refusal(msg, `database refused the message: ${errorText(err)}`)]);
        return;
      }
      const mid = batch.length >> 1;
      await isolate(batch.slice(0, mid));
      await isolate(batch.slice(mid));
    }
  };

  return {
    async write(batch: Decoded[]): Promise<void> {
      if (batch.length === 0) return;
      try {
        await writeOnce(batch);
      } catch (err) {
        if (!hasSqlState(err)) throw err; // unreachable or closed: the caller retries
        // Cached ids and columns may be stale (a table or sensor deleted behind our back), and
        // deadlocks or racing DDL succeed on a second try.
        forget();
        if (!isRefusal(err)) return await writeOnce(batch);
        await isolate(batch);
      }
    },
  };
}

function cloneState(s: TypeState): TypeState {
  return { ...s, ready: new Set(s.ready), all: new Set(s.all), over: new Set(s.over) };
}

async function loadFeatures(tx: Queryable): Promise<{ timescale: boolean; reader: boolean }> {
  const [row] = await tx.sql<{ timescale: boolean; reader: boolean }>`
    select exists (select from pg_extension where extname = 'timescaledb') as timescale,
           exists (select from pg_roles where rolname = 'sensor_reader') as reader`;
  return row;
}

async function createTable(
  tx: Queryable,
  table: string,
  features: { timescale: boolean; reader: boolean },
): Promise<void> {
  const t = ident(table);
  await tx.sql`create table if not exists ${t} (
    time      timestamptz not null,
    sensor_id integer not null,
    primary key (sensor_id, time))`;
  // Unnamed: PostgreSQL picks a name that fits in 63 characters whatever the type's length.
  await tx.sql`create index on ${t} using brin (time)`;
  if (features.reader) await tx.sql`grant select on ${t} to sensor_reader`;
  if (features.timescale) {
    await tx.sql`do $$ begin
      perform create_hypertable('${t}'::regclass, 'time', if_not_exists => true);
    exception when others then
      raise warning 'hypertable not created: %', sqlerrm;
    end $$`;
  }
}

async function upsertDevices(tx: Queryable, seen: Map<string, number>): Promise<void> {
  if (seen.size === 0) return;
  const ids = [...seen.keys()].sort();
  const times = ids.map((id) => iso(seen.get(id)!));
  await tx.sql`
    insert into devices as d (device_id, last_seen)
    select * from unnest(${ids}::text[], ${times}::timestamptz[])
    on conflict (device_id) do update set last_seen = excluded.last_seen
    where d.last_seen is null or d.last_seen < excluded.last_seen`;
}

async function applyCapabilities(
  tx: Queryable,
  caps: CapabilitiesMessage[],
  staged: Map<string, number>,
): Promise<void> {
  const latest = new Map<string, CapabilitiesMessage>();
  for (const c of caps) {
    const prev = latest.get(c.device);
    if (!prev || prev.time <= c.time) latest.set(c.device, c);
  }
  const list = [...latest.values()].sort((a, b) => compare(a.device, b.device));
  await tx.sql`
    update devices d set
      device_name = coalesce(u.name, d.device_name),
      firmware_version = coalesce(u.fw, d.firmware_version),
      location = coalesce(u.loc, d.location),
      metadata = u.meta::jsonb
    from unnest(${list.map((c) => c.device)}::text[], ${
    list.map((c) => c.deviceName ?? null)
  }::text[],
                ${list.map((c) => c.firmwareVersion ?? null)}::text[],
                ${list.map((c) => c.location ?? null)}::text[],
                ${list.map((c) => json(c.metadata))}::text[],
                ${list.map((c) => c.time.toISOString())}::timestamptz[])
      as u(id, name, fw, loc, meta, t)
    where d.device_id = u.id and not exists (
      select from device_events e
      where e.device_id = u.id and e.kind = 'capabilities' and e.time > u.t)`;
  const sensors: { device: string; type: string; location: string | null; meta: string | null }[] =
    [];
  for (const c of list) {
    for (const type of c.sensors) {
      const meta = c.metadata[type];
      const plain = typeof meta === "object" && meta !== null && !Array.isArray(meta);
      const loc = plain ? (meta as Record<string, unknown>).location : undefined;
      sensors.push({
        device: c.device,
        type,
        location: typeof loc === "string" ? loc : null,
        meta: plain ? json(meta) : null,
      });
    }
  }
  if (sensors.length === 0) return;
  sensors.sort((a, b) => compare(a.device, b.device) || compare(a.type, b.type));
  const rows = await tx.sql<{ sensor_id: number; device_id: string; sensor_type: string }>`
    insert into sensors as s (device_id, sensor_type, location, metadata)
    select u.d, u.t, u.l, coalesce(u.m::jsonb, '{}')
    from unnest(${sensors.map((s) => s.device)}::text[], ${sensors.map((s) => s.type)}::text[],
                ${sensors.map((s) => s.location)}::text[], ${sensors.map((s) => s.meta)}::text[])
      as u(d, t, l, m)
    on conflict (device_id, sensor_type) do update set
      location = coalesce(excluded.location, s.location),
      metadata = case when excluded.metadata = '{}'::jsonb then s.metadata
                      else excluded.metadata end
    returning sensor_id, device_id, sensor_type`;
  for (const r of rows) staged.set(sensorKey(r.device_id, r.sensor_type), r.sensor_id);
}

async function applyStatus(
  tx: Queryable,
  status: Map<string, { status: string; time: Date }>,
): Promise<void> {
  const ids = [...status.keys()].sort();
  await tx.sql`
    update devices d set status = u.s
    from unnest(${ids}::text[], ${ids.map((id) => status.get(id)!.status)}::text[],
                ${ids.map((id) => status.get(id)!.time.toISOString())}::timestamptz[])
      as u(id, s, t)
    where d.device_id = u.id and d.status is distinct from u.s and not exists (
      select from device_events e where e.device_id = u.id and e.kind = 'status' and e.time > u.t)`;
}

/**
 * Inserts the readings, one statement per sensor type for both layouts: the rows travel once as
 * one array parameter per column, feed the type's table and, one row per metric, `measurements`.
 * For one sensor and time the first message of the batch wins, in both layouts.
 */
async function insertReadings(
  tx: Queryable,
  rows: Row[],
  layouts: { columnar: boolean; flexible: boolean },
): Promise<void> {
  const byType = new Map<string, Row[]>();
  for (const r of rows) {
    const list = byType.get(r.msg.sensorType);
    if (list) list.push(r);
    else byType.set(r.msg.sensorType, [r]);
  }
  for (const [type, list] of byType) {
    const seen = new Set<string>();
    const metrics = [...new Set(list.flatMap((r) => Object.keys(r.msg.metrics)))].sort();
    const times: string[] = [];
    const ids: number[] = [];
    const values: (number | null)[][] = metrics.map(() => []);
    for (const { sensorId, msg } of list) {
      const key = `${sensorId}:${msg.time.getTime()}`;
      if (seen.has(key)) continue;
      seen.add(key);
      times.push(msg.time.toISOString());
      ids.push(sensorId);
      for (let i = 0; i < metrics.length; i++) values[i].push(msg.metrics[metrics[i]] ?? null);
    }
    const table = ident(`${type}_measurements`);
    const cols = metrics.map((m) => ident(m));
    const q = new Statement();
    q.text("with u as (select * from unnest(").param(times).text("::timestamptz[], ")
      .param(ids).text("::int[]");
    for (const v of values) q.text(", ").param(v).text("::float8[]");
    q.text(") as u (time, sensor_id, ").param(cols).text("))");
    if (layouts.columnar) {
      q.text(layouts.flexible ? ", c as (" : " ");
      q.text("insert into ").param(table).text(" (time, sensor_id, ").param(cols)
        .text(") select * from u on conflict do nothing");
      q.text(layouts.flexible ? ") " : "");
    }
    if (layouts.flexible) {
      q.text(
        "insert into measurements (time, sensor_id, metric_type, value) " +
          "select u.time, u.sensor_id, m.metric_type, m.value from u cross join lateral (values ",
      );
      metrics.forEach((m, i) => {
        q.text(i === 0 ? "(" : ", (").param(m).text("::text, u.").param(cols[i]).text(")");
      });
      q.text(") as m (metric_type, value) where m.value is not null on conflict do nothing");
    }
    await q.run(tx);
  }
}

/**
 * A statement assembled from fixed text fragments and values: `ident()` values become quoted
 * identifiers and anything else a parameter, exactly as in a `sql` tagged template.
 */
class Statement {
  #strings: string[] = [""];
  #values: unknown[] = [];

  text(fragment: string): this {
    this.#strings[this.#strings.length - 1] += fragment;
    return this;
  }

  param(value: unknown): this {
    this.#values.push(value);
    this.#strings.push("");
    return this;
  }

  run(tx: Queryable): Promise<unknown> {
    const strings = [...this.#strings];
    const template = Object.assign(strings, { raw: [...strings] });
    return tx.sql(template as unknown as TemplateStringsArray, ...this.#values);
  }
}

async function touchSensors(tx: Queryable, rows: Row[]): Promise<void> {
  const newest = new Map<number, number>();
  for (const { sensorId, msg } of rows) {
    const t = msg.time.getTime();
    if (!(newest.get(sensorId)! >= t)) newest.set(sensorId, t);
  }
  if (newest.size === 0) return;
  const ids = [...newest.keys()].sort((a, b) => a - b);
  await tx.sql`
    update sensors s set last_seen = u.t
    from unnest(${ids}::int[], ${ids.map((id) => iso(newest.get(id)!))}::timestamptz[]) as u(id, t)
    where s.sensor_id = u.id and (s.last_seen is null or s.last_seen < u.t)`;
}

async function insertEvents(tx: Queryable, events: Event[]): Promise<void> {
  if (events.length === 0) return;
  const unique = new Map<string, Event>();
  for (const e of events) {
    unique.set(`${e.device}\0${e.kind}\0${e.time.getTime()}\0${e.payload}`, e);
  }
  const list = [...unique.values()];
  await tx.sql`
    insert into device_events (time, device_id, kind, payload)
    select u.t, u.d, u.k, u.p::jsonb
    from unnest(${list.map((e) => e.time.toISOString())}::timestamptz[],
                ${list.map((e) => e.device)}::text[], ${list.map((e) => e.kind)}::text[],
                ${list.map((e) => e.payload)}::text[]) as u(t, d, k, p)
    where not exists (
      select from device_events x
      where x.device_id = u.d and x.time = u.t and x.kind = u.k and x.payload = u.p::jsonb)`;
}

async function insertRejected(tx: Queryable, rejected: RejectedMessage[]): Promise<void> {
  if (rejected.length === 0) return;
  const unique = new Map<string, RejectedMessage>();
  for (const r of rejected) {
    unique.set(`${r.time.getTime()}\0${r.topic}\0${r.reason}\0${r.payload}`, r);
  }
  const list = [...unique.values()];
  await tx.sql`
    insert into rejected_messages (received_at, topic, payload, reason)
    select * from unnest(${list.map((r) => r.time.toISOString())}::timestamptz[],
                         ${list.map((r) => r.topic)}::text[], ${list.map((r) => r.payload)}::text[],
                         ${list.map((r) => r.reason)}::text[]) as u(t, topic, p, r)
    where not exists (
      select from rejected_messages x
      where x.received_at = u.t and x.topic = u.topic and x.reason = u.r
        and x.payload is not distinct from u.p)`;
}

/**
 * A rejection for a decoded message the writer cannot store, or stores only in part. The payload
 * is the device's text when the decoder kept it, else the decoded message as JSON.
 */
function refusal(msg: Decoded, reason: string): RejectedMessage {
  let payload: string;
  let time = msg.time;
  if (msg.kind === "rejected") payload = msg.payload;
  else if (msg.kind === "reading") {
    payload = msg.rejectedMetrics?.payload ??
      JSON.stringify({ timestamp: msg.time.toISOString(), value: msg.metrics });
    time = msg.rejectedMetrics?.receivedAt ?? msg.time;
  } else payload = json(msg.payload);
  return { kind: "rejected", topic: topicOf(msg), payload, reason, time };
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

function topicOf(msg: Decoded): string {
  switch (msg.kind) {
    case "rejected":
      return msg.topic;
    case "reading":
      return `devices/${msg.device}/sensors/${msg.sensorType}/data`;
    default:
      return `devices/${msg.device}/${msg.kind}`;
  }
}

function sensorKey(device: string, type: string): string {
  return `${device}\0${type}`;
}

function json(value: unknown): string {
  return JSON.stringify(value ?? null);
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function comparePairs(a: [string, string], b: [string, string]): number {
  return compare(a[0], b[0]) || compare(a[1], b[1]);
}

function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** PostgreSQL answered with an error (as opposed to a lost or closed connection). */
function hasSqlState(err: unknown): boolean {
  const code = sqlState(err);
  // 08 connection exception, 57P admin shutdown/crash: the database went away.
  return code !== undefined && !code.startsWith("08") && !code.startsWith("57P");
}

/** The database refused the data: data exception, constraint, undefined object, limits. */
function isRefusal(err: unknown): boolean {
  return /^(22|23|42|54)/.test(sqlState(err) ?? "");
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
