// The statements of the batch writer: each takes a transaction and one batch's worth of rows and
// sends them as array parameters expanded with `unnest()`, a handful of parameters per statement;
// readings go by `COPY` first where the database takes it (`copyReadings()`).
import { buildQuery, type Ident, ident } from "../db/ident.ts";
import { isDbAnswer, type Queryable } from "../db/mod.ts";
import { DEVICE_TEXT_MAX, deviceText } from "./device_text.ts";
import type {
  CapabilitiesMessage,
  ErrorMessage,
  ReadingMessage,
  RejectedMessage,
  StatusMessage,
} from "./types.ts";

/** A reading whose sensor row is known, ready for the insert statements. */
export interface Row {
  sensorId: number;
  msg: ReadingMessage;
}

/** A `device_events` row to be. */
export type Event = {
  time: Date;
  device: string;
  kind: "status" | "error" | "capabilities";
  payload: string;
};

/** A message about a device that becomes a `device_events` row. */
export type DeviceMessage = CapabilitiesMessage | StatusMessage | ErrorMessage;

/** Registers devices not known yet, leaving `last_seen` unset. */
export async function registerDevices(tx: Queryable, ids: string[]): Promise<void> {
  if (ids.length === 0) return;
  await tx.sql`
    insert into devices (device_id) select unnest(${[...new Set(ids)].sort()}::text[])
    on conflict (device_id) do nothing`;
}

/**
 * The retained messages that tell something new: each device's first of a kind and payload,
 * unless its newest stored event of that kind has the same payload already.
 */
export async function freshRetained(
  tx: Queryable,
  messages: DeviceMessage[],
): Promise<DeviceMessage[]> {
  const unique = new Map<string, DeviceMessage>();
  for (const m of messages) {
    const key = `${m.device}\0${m.kind}\0${json(m.payload)}`;
    if (!unique.has(key)) unique.set(key, m);
  }
  const list = [...unique.values()];
  const rows = await tx.sql<{ i: number }>`
    select (u.i - 1)::int as i
    from unnest(${list.map((m) => m.device)}::text[], ${list.map((m) => m.kind)}::text[],
                ${list.map((m) => json(m.payload))}::text[]) with ordinality as u(d, k, p, i)
    where (select e.payload from device_events e
            where e.device_id = u.d and e.kind = u.k order by e.time desc limit 1)
          is distinct from u.p::jsonb`;
  return rows.map((r) => list[r.i]);
}

/** A device's newest receive time in a batch, and its clock offset from its newest reading. */
export interface Received {
  /** Epoch ms on the collector's clock. */
  at: number;
  /** Device timestamp minus receive time, in seconds, of the newest reading with a timestamp. */
  offsetS: number | null;
  /** Receive time of that reading. */
  offsetAt: number;
}

/** Adds one live message to the per-device receive times of a batch. */
export function noteReceived(received: Map<string, Received>, msg: DeviceMessage | ReadingMessage) {
  const at = (msg.kind === "reading" ? msg.receivedAt ?? msg.time : msg.time).getTime();
  const r = received.get(msg.device) ?? { at, offsetS: null, offsetAt: -Infinity };
  r.at = Math.max(r.at, at);
  if (msg.kind === "reading" && msg.deviceTime && at >= r.offsetAt) {
    r.offsetS = (msg.deviceTime.getTime() - at) / 1000;
    r.offsetAt = at;
  }
  received.set(msg.device, r);
}

/**
 * Registers unknown devices and moves `last_seen` (device time, `seen`: device → epoch ms) and
 * `last_received` (the collector's receive time) forward, with the newest clock offset.
 */
export async function upsertDevices(
  tx: Queryable,
  seen: Map<string, number>,
  received: Map<string, Received> = new Map(),
): Promise<void> {
  if (seen.size === 0) return;
  const ids = [...seen.keys()].sort();
  const times = ids.map((id) => iso(seen.get(id)!));
  const rec = ids.map((id) => received.get(id));
  await tx.sql`
    insert into devices as d (device_id, last_seen, last_received, clock_offset_s)
    select * from unnest(${ids}::text[], ${times}::timestamptz[],
                         ${rec.map((r) => r ? iso(r.at) : null)}::timestamptz[],
                         ${rec.map((r) => r?.offsetS ?? null)}::float8[])
    on conflict (device_id) do update set
      last_seen = greatest(d.last_seen, excluded.last_seen),
      last_received = greatest(d.last_received, excluded.last_received),
      clock_offset_s = coalesce(excluded.clock_offset_s, d.clock_offset_s)`;
}

/**
 * Applies each device's newest capabilities: name, firmware, location and metadata of the device,
 * and a `sensors` row per listed sensor type (location and metadata from `metadata[type]`), whose
 * ids go to `staged`.
 */
export async function applyCapabilities(
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
  const ids = list.map((c) => c.device);
  const names = list.map((c) => c.deviceName ?? null);
  const firmware = list.map((c) => c.firmwareVersion ?? null);
  const locations = list.map((c) => c.location ?? null);
  const metadata = list.map((c) => json(c.metadata));
  const times = list.map((c) => c.time.toISOString());
  // A capabilities message older than one already stored (a replay) changes nothing.
  await tx.sql`
    update devices d set
      device_name = coalesce(u.name, d.device_name),
      firmware_version = coalesce(u.fw, d.firmware_version),
      location = coalesce(u.loc, d.location),
      metadata = u.meta::jsonb
    from unnest(${ids}::text[], ${names}::text[], ${firmware}::text[], ${locations}::text[],
                ${metadata}::text[], ${times}::timestamptz[]) as u(id, name, fw, loc, meta, t)
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
        location: typeof loc === "string" ? deviceText(loc, DEVICE_TEXT_MAX.name) || null : null,
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

/** Sets `devices.status` from each device's newest status, unless a newer one is stored. */
export async function applyStatus(
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

/** A reading that was not stored because another value is stored for its sensor and time. */
export interface Conflict {
  row: Row;
  /** `conflicting duplicate …: stored co2 600, received co2 650 …` */
  reason: string;
}

/**
 * Inserts the readings, one statement per sensor type for both layouts: the rows travel once as
 * one array parameter per column, feed the type's table and, one row per metric, `measurements`.
 * For one sensor and time the first message of the batch wins, in both layouts. An identical
 * repeat (replay, redelivery) is skipped silently; a reading with another value for a stored
 * sensor and time comes back as a `Conflict`. The statement reports how many rows it inserted:
 * only when some were skipped does a second query compare them with what is stored.
 *
 * With `fast.copy` (and a database that takes COPY), each type's rows are first offered to
 * `copyReadings()`; only a type whose COPY is refused takes the statement above.
 */
export async function insertReadings(
  tx: Queryable,
  rows: Row[],
  layouts: { columnar: boolean; flexible: boolean },
  fast: FastPath = { copy: false, failed: 0 },
): Promise<Conflict[]> {
  const conflicts: Conflict[] = [];
  const byType = new Map<string, Row[]>();
  for (const r of rows) {
    const list = byType.get(r.msg.sensorType);
    if (list) list.push(r);
    else byType.set(r.msg.sensorType, [r]);
  }
  for (const [type, list] of byType) {
    const first = new Map<string, Row>();
    const metrics = [...new Set(list.flatMap((r) => Object.keys(r.msg.metrics)))].sort();
    const times: string[] = [];
    const ids: number[] = [];
    const sent: Row[] = [];
    const values: (number | null)[][] = metrics.map(() => []);
    let flexibleRows = 0;
    for (const row of list) {
      const { sensorId, msg } = row;
      const key = `${sensorId}:${msg.time.getTime()}.${msg.micros ?? 0}`;
      const earlier = first.get(key);
      if (earlier) {
        const diff = differences(earlier.msg.metrics, msg.metrics);
        if (diff) conflicts.push({ row, reason: conflictReason(msg, sensorId, diff) });
        continue;
      }
      first.set(key, row);
      sent.push(row);
      times.push(readingTime(msg));
      ids.push(sensorId);
      for (let i = 0; i < metrics.length; i++) {
        const v = msg.metrics[metrics[i]] ?? null;
        values[i].push(v);
        if (v !== null) flexibleRows++;
      }
    }
    const table = ident(`${type}_measurements`);
    const cols = metrics.map((m) => ident(m));
    if (fast.copy && tx.copyIn) {
      if (await copyReadings(tx, { table, cols, metrics, times, ids, values }, layouts)) continue;
      fast.failed++;
    }
    const unnest = (q: Statement) => {
      // Sent as text: a timestamptz parameter would be cut to milliseconds by the client.
      q.text("unnest(").param(times).text("::text[]::timestamptz[], ").param(ids).text("::int[]");
      for (const v of values) q.text(", ").param(v).text("::float8[]");
      return q.text(")");
    };
    const q = unnest(new Statement().text("with u as (select * from "));
    q.text(" as u (time, sensor_id, ").param(cols).text("))");
    if (layouts.columnar) {
      q.text(", c as (insert into ").param(table).text(" (time, sensor_id, ").param(cols)
        .text(") select * from u on conflict do nothing returning 1)");
    }
    if (layouts.flexible) {
      // One scan of `u` per metric, not a lateral VALUES list per row (cheaper by a third).
      q.text(", f as (insert into measurements (time, sensor_id, metric_type, value) ");
      metrics.forEach((m, i) => {
        q.text(i === 0 ? "" : " union all ").text("select u.time, u.sensor_id, ").param(m)
          .text("::text, u.").param(cols[i]).text(" from u where u.").param(cols[i])
          .text(" is not null");
      });
      q.text(" on conflict do nothing returning 1)");
    }
    q.text(layouts.columnar ? " select (select count(*) from c)::int as c" : " select 0 as c");
    q.text(layouts.flexible ? ", (select count(*) from f)::int as f" : ", 0 as f");
    const [done] = await q.run<{ c: number; f: number }>(tx);
    const skipped = layouts.columnar ? Number(done.c) < sent.length : Number(done.f) < flexibleRows;
    if (!skipped) continue;
    // Some rows were already stored: those with other values are conflicts. (Rows inserted by
    // the statement above are visible now and equal to what was sent.)
    const c = new Statement().text("select (u.i - 1)::int as i");
    if (layouts.columnar) {
      cols.forEach((col, n) => c.text(`, t.`).param(col).text(` as s${n}`));
      unnest(c.text(" from ")).text(" with ordinality as u (time, sensor_id, ").param(cols)
        .text(", i) join ").param(table)
        .text(" t on t.sensor_id = u.sensor_id and t.time = u.time where false");
      cols.forEach((col) => {
        c.text(" or (u.").param(col).text(" is not null and t.").param(col)
          .text(" is distinct from u.").param(col).text(")");
      });
      for (const r of await c.run<Record<string, unknown> & { i: number }>(tx)) {
        const row = sent[r.i];
        const stored = Object.fromEntries(metrics.map((m, n) => [m, r[`s${n}`] as number | null]));
        const diff = differences(stored, row.msg.metrics);
        if (diff) conflicts.push({ row, reason: conflictReason(row.msg, row.sensorId, diff) });
      }
    } else {
      const found = await tx.sql<{ i: number; metric: string; stored: number }>`
        select (u.i - 1)::int as i, m.metric_type as metric, m.value as stored
        from unnest(${times}::text[]::timestamptz[], ${ids}::int[]) with ordinality as u(t, s, i)
        join measurements m on m.sensor_id = u.s and m.time = u.t
        where m.metric_type = any(${metrics}::text[])`;
      const storedOf = new Map<number, Record<string, number>>();
      for (const f of found) {
        const rec = storedOf.get(f.i) ?? {};
        rec[f.metric] = Number(f.stored);
        storedOf.set(f.i, rec);
      }
      for (const [i, stored] of storedOf) {
        const row = sent[i];
        const diff = differences(stored, row.msg.metrics, false);
        if (diff) conflicts.push({ row, reason: conflictReason(row.msg, row.sensorId, diff) });
      }
    }
  }
  return conflicts;
}

/**
 * Whether `insertReadings()` tries `COPY` first (where the database takes it), and how many of
 * its COPYs failed (it counts them up).
 */
export interface FastPath {
  copy: boolean;
  failed: number;
}

/** One sensor type's rows of a batch, deduplicated, as columns. */
interface Columns {
  table: Ident;
  cols: Ident[];
  metrics: string[];
  times: string[];
  ids: number[];
  values: (number | null)[][];
}

/**
 * The fast path of `insertReadings()`: the rows by `COPY` straight into the tables, without
 * `ON CONFLICT`, under a savepoint. True when all were stored. When the database refuses any
 * row — one is stored already (a replay or redelivery: unique violation) or a value does not
 * fit — nothing of it stays and false tells the caller to take the insert path, which sorts out
 * repeats, conflicts and refused records exactly as before. The rollup triggers fire for COPY
 * as for INSERT.
 */
async function copyReadings(
  tx: Queryable,
  c: Columns,
  layouts: { columnar: boolean; flexible: boolean },
): Promise<boolean> {
  await tx.query("savepoint copy_readings");
  try {
    if (layouts.columnar) {
      let data = "";
      for (let r = 0; r < c.ids.length; r++) {
        data += `${c.times[r]}\t${c.ids[r]}`;
        for (const v of c.values) data += v[r] === null ? "\t\\N" : `\t${v[r]}`;
        data += "\n";
      }
      await tx.copyIn!(
        statement`copy ${c.table} (time, sensor_id, ${c.cols}) from stdin`,
        data,
      );
    }
    if (layouts.flexible) {
      let data = "";
      const names = c.metrics.map(copyEscape);
      for (let r = 0; r < c.ids.length; r++) {
        for (let m = 0; m < names.length; m++) {
          const v = c.values[m][r];
          if (v !== null) data += `${c.times[r]}\t${c.ids[r]}\t${names[m]}\t${v}\n`;
        }
      }
      await tx.copyIn!("copy measurements (time, sensor_id, metric_type, value) from stdin", data);
    }
    await tx.query("release savepoint copy_readings");
    return true;
  } catch (err) {
    if (!isDbAnswer(err)) throw err;
    await tx.query("rollback to savepoint copy_readings");
    return false;
  }
}

/** SQL text of a template whose values are all `ident()`s. */
function statement(strings: TemplateStringsArray, ...values: unknown[]): string {
  return buildQuery(strings, values).text;
}

/** `text` as a field of COPY's text format. */
function copyEscape(text: string): string {
  return text.replace(
    /[\\\t\n\r]/g,
    (ch) => ch === "\\" ? "\\\\" : ch === "\t" ? "\\t" : ch === "\n" ? "\\n" : "\\r",
  );
}

/**
 * The metrics of `received` that differ from `stored` ("co2: stored 600, received 650"), or
 * undefined when the reading adds nothing new. `missingConflicts`: a metric stored as NULL (or
 * absent) while one was received counts too (the columnar row keeps its NULL).
 */
function differences(
  stored: Record<string, number | null>,
  received: Record<string, number>,
  missingConflicts = true,
): string | undefined {
  const parts: string[] = [];
  for (const [m, v] of Object.entries(received)) {
    const old = stored[m];
    if (old === undefined || old === null) {
      if (missingConflicts) parts.push(`${m}: stored none, received ${v}`);
    } else if (old !== v) parts.push(`${m}: stored ${old}, received ${v}`);
  }
  return parts.length > 0 ? parts.join("; ") : undefined;
}

function conflictReason(msg: ReadingMessage, sensorId: number, diff: string): string {
  return `conflicting duplicate: sensor ${sensorId} already has a reading at ` +
    `${readingTime(msg)} (${diff}); the stored value is kept`;
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

  run<T = Record<string, unknown>>(tx: Queryable): Promise<T[]> {
    const strings = [...this.#strings];
    const template = Object.assign(strings, { raw: [...strings] });
    return tx.sql<T>(template as unknown as TemplateStringsArray, ...this.#values);
  }
}

/** Moves `sensors.last_seen` forward to the newest reading of each sensor in the batch. */
export async function touchSensors(tx: Queryable, rows: Row[]): Promise<void> {
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

/** Stores status, error and capabilities messages in `device_events`, skipping stored ones. */
export async function insertEvents(tx: Queryable, events: Event[]): Promise<void> {
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

/** Stores refused input in `rejected_messages`, skipping rows already stored (replays). */
export async function insertRejected(tx: Queryable, rejected: RejectedMessage[]): Promise<void> {
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

/** Key of the sensor id cache. */
export function sensorKey(device: string, type: string): string {
  return `${device}\0${type}`;
}

/** JSON text of a value for a jsonb parameter (`undefined` → `null`). */
export function json(value: unknown): string {
  return JSON.stringify(value ?? null);
}

/** ISO 8601 text of a reading's time, to the microsecond when it has `micros`. */
function readingTime(msg: ReadingMessage): string {
  const iso = msg.time.toISOString();
  return msg.micros ? `${iso.slice(0, -1)}${String(msg.micros).padStart(3, "0")}Z` : iso;
}

/** ISO 8601 text of epoch milliseconds, for timestamptz parameters. */
export function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** Code-point order, the same in every locale (rows are locked in this order). */
export function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** `compare()` of (device, sensor type) pairs. */
export function comparePairs(a: [string, string], b: [string, string]): number {
  return compare(a[0], b[0]) || compare(a[1], b[1]);
}
