import { ident } from "../db/ident.ts";
import { type Db, isDbAnswer, type Queryable } from "../db/mod.ts";
import { logger } from "../log/mod.ts";
import type { ReadingMessage } from "./types.ts";

/** What the writer knows to exist for one sensor type. */
export interface TypeState {
  /** Metrics with a `metrics` row and, when columnar is written, a column. */
  ready: Set<string>;
  /** Every metric name the type has anywhere (columns or `metrics` rows), for the cap. */
  all: Set<string>;
  hasTable: boolean;
  /** New metrics refused because the type has `maxMetricsPerType` already. */
  over: Set<string>;
  /** Why new data of this type is refused, when it is. */
  refused?: string;
  /** When it was refused: a refusal is looked at again later (an operator may have made room). */
  refusedAt?: number;
  /** Refused for these devices' quota only: another device may still introduce the type. */
  quotaDevices?: Set<string>;
}

/** What `SchemaCache` may create. */
export interface SchemaOptions {
  /** Whether per-type tables are written (else only `metrics` rows are kept). */
  columnar: boolean;
  /** Most sensor types before new ones are refused. */
  maxTypes: number;
  /** Most metrics of one sensor type before new ones are refused. */
  maxMetrics: number;
  /** Most sensor types one device may introduce. */
  maxTypesPerDevice: number;
  /** A refused sensor type is looked at again after this long (default one minute). */
  retryRefusedMs?: number;
}

const log = logger("ingest");
// Serialises schema changes of every collector writing to one database.
const SCHEMA_LOCK = 0x616d6232;
const KEY_COLUMNS = new Set(["time", "sensor_id"]);
/** A refused sensor type is looked at again after this long. */
const RETRY_REFUSED_MS = 60_000;
/** Refusals of sensor types are logged as errors at most this often (with a count between). */
const LOUD_EVERY_MS = 10_000;
let loudAt = 0;
let quiet = 0;

/** An error line that an operator must see, at most every `LOUD_EVERY_MS`. */
function loud(message: string, fields: Record<string, unknown>): void {
  const now = Date.now();
  if (now - loudAt < LOUD_EVERY_MS) {
    quiet++;
    return;
  }
  loudAt = now;
  log.error(message, { ...fields, ...(quiet > 0 ? { alsoRefusedSinceLast: quiet } : {}) });
  quiet = 0;
}

/**
 * The tables, columns and `metrics` rows of the sensor types a writer has seen, created on
 * demand: a new sensor type gets `<type>_measurements(time, sensor_id, …)` with its primary key,
 * a BRIN index on time, `SELECT` for `sensor_reader` and, under TimescaleDB, a hypertable; a new
 * metric gets a `double precision` column and a `metrics` row (unit unknown).
 */
export class SchemaCache {
  #db: Db;
  #opts: SchemaOptions;
  #types = new Map<string, TypeState>();
  /** The `prepare()` running now, if any; the next one starts after it. */
  #preparing: Promise<void> = Promise.resolve();

  constructor(db: Db, opts: SchemaOptions) {
    this.#db = db;
    this.#opts = opts;
  }

  /**
   * Creates the tables, columns and `metrics` rows the readings need, within the limits, in one
   * transaction under an advisory lock (two collectors never race on DDL), retried once when a
   * change made outside the lock collides. Known state is cached; `get()` tells the result.
   */
  prepare(readings: ReadingMessage[]): Promise<void> {
    // One at a time: concurrent batches (the writer's lanes) wait for each other's changes and
    // then find them cached instead of racing on the same DDL.
    const run = this.#preparing.then(() => this.#prepare(readings));
    this.#preparing = run.catch(() => {});
    return run;
  }

  async #prepare(readings: ReadingMessage[]): Promise<void> {
    const wanted = new Map<string, Wanted>();
    for (const r of readings) {
      let w = wanted.get(r.sensorType);
      if (!w) wanted.set(r.sensorType, w = { metrics: new Set(), devices: new Set() });
      for (const m in r.metrics) w.metrics.add(m);
      w.devices.add(r.device);
    }
    const now = Date.now();
    const pending = [...wanted].filter(([type, { metrics, devices }]) => {
      const s = this.#types.get(type);
      if (!s) return true;
      if (s.refused) {
        const retry = this.#opts.retryRefusedMs ?? RETRY_REFUSED_MS;
        if (now - (s.refusedAt ?? 0) >= retry) return true;
        return s.quotaDevices !== undefined && [...devices].some((d) => !s.quotaDevices!.has(d));
      }
      for (const m of metrics) if (!s.ready.has(m) && !s.over.has(m)) return true;
      return false;
    });
    if (pending.length === 0) return;
    for (let attempt = 1;; attempt++) {
      try {
        const staged = await this.#db.transaction((tx) => this.#change(tx, pending));
        for (const [type, state] of staged) this.#types.set(type, state);
        return;
      } catch (err) {
        // Schema changes made outside the lock (a migration, a person) can still collide.
        if (attempt >= 2 || !isDbAnswer(err)) throw err;
      }
    }
  }

  /** The committed state of a sensor type, once `prepare()` has seen it. */
  get(type: string): TypeState | undefined {
    return this.#types.get(type);
  }

  /** Drops everything cached (after an error: a table may have changed behind our back). */
  forget(): void {
    this.#types.clear();
  }

  async #change(tx: Queryable, pending: [string, Wanted][]): Promise<Map<string, TypeState>> {
    const { columnar, maxTypes, maxMetrics, maxTypesPerDevice } = this.#opts;
    await tx.query("select pg_advisory_xact_lock($1)", [SCHEMA_LOCK]);
    const staged = new Map<string, TypeState>();
    const [{ n }] = await tx.sql<{ n: number }>`
      select count(distinct sensor_type)::int as n from metrics`;
    let typeCount = n;
    let features: Features | undefined;
    // Sensor types each device has introduced, loaded when a new type needs them.
    let introduced: Map<string, number> | undefined;
    for (const [type, { metrics, devices }] of pending) {
      // Always loaded afresh: an operator may have removed the type or made room.
      const state = await this.#load(tx, type);
      const table = `${type}_measurements`;
      if (state.all.size === 0 && !state.hasTable) {
        if (typeCount >= maxTypes) {
          state.refused = `sensor type "${type}" refused: the database already has ${typeCount} ` +
            `sensor types, the most the collector creates (README: remove unused ones with ` +
            `drop_sensor_type)`;
          state.refusedAt = Date.now();
          staged.set(type, state);
          loud(
            "new sensor type refused: the sensor type limit is reached; remove unused types " +
              "with select drop_sensor_type('<type>') (README, MQTT contract)",
            {
              type,
              devices: [...devices].slice(0, 5),
              limit: maxTypes,
            },
          );
          continue;
        }
        introduced ??= await loadIntroduced(tx);
        const by = [...devices].sort().find((d) => (introduced!.get(d) ?? 0) < maxTypesPerDevice);
        if (by === undefined) {
          state.refused = `sensor type "${type}" refused: device ${
            [...devices].sort()[0]
          } has introduced ${maxTypesPerDevice} sensor types already, the most one device may`;
          state.refusedAt = Date.now();
          state.quotaDevices = new Set(devices);
          staged.set(type, state);
          loud("new sensor type refused: the device has introduced its quota of sensor types", {
            type,
            devices: [...devices].slice(0, 5),
            quota: maxTypesPerDevice,
          });
          continue;
        }
        await tx.sql`insert into sensor_types (sensor_type, created_by) values (${type}, ${by})
          on conflict (sensor_type) do nothing`;
        introduced.set(by, (introduced.get(by) ?? 0) + 1);
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
  }

  async #load(tx: Queryable, type: string): Promise<TypeState> {
    const columnar = this.#opts.columnar;
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
  }
}

/** What one batch needs of a sensor type: its metrics and the devices that sent it. */
interface Wanted {
  metrics: Set<string>;
  devices: Set<string>;
}

async function loadIntroduced(tx: Queryable): Promise<Map<string, number>> {
  const rows = await tx.sql<{ device: string; n: number }>`
    select created_by as device, count(*)::int as n from sensor_types
    where created_by is not null group by created_by`;
  return new Map(rows.map((r) => [r.device, Number(r.n)]));
}

/** What the database offers a new table. */
interface Features {
  timescale: boolean;
  reader: boolean;
  /** `attach_rollups()` exists: the table gets its rollups (README "Rollups and retention"). */
  rollups: boolean;
}

async function loadFeatures(tx: Queryable): Promise<Features> {
  const [row] = await tx.sql<Features>`
    select exists (select from pg_extension where extname = 'timescaledb') as timescale,
           exists (select from pg_roles where rolname = 'sensor_reader') as reader,
           exists (select from pg_proc where proname = 'attach_rollups') as rollups`;
  return row;
}

async function createTable(
  tx: Queryable,
  table: string,
  features: Features,
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
  if (features.rollups) await tx.sql`select attach_rollups(quote_ident(${table})::regclass)`;
}
