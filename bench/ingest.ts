/**
 * Ingest benchmark: end-to-end throughput of the collector (first publish → last row committed)
 * against a naive writer (one transaction per message, the seed's design) and two `COPY`
 * ceilings for the same rows (into the same tables, rollup triggers firing, and into empty twins
 * without triggers), with the collector's memory; also the publisher alone and the batch
 * writer alone, to show which part limits. Uses `DATABASE_URL` (a fresh database,
 * dropped afterwards) or embedded PGlite, and `MQTT_URL` or the embedded broker.
 *
 * Flags: `--ingest-n=100000` messages, `--ingest-naive-n=2000`, `--ingest-devices=500`,
 * `--ingest-window=1000` (publisher QoS 1 in-flight window), `--ingest-ahead=300` (most messages
 * published ahead of what the collector has taken: Mosquitto drops what exceeds a subscriber's
 * `max_queued_messages`, 1000 by default), `--ingest-layouts=columnar,flexible`,
 * `--ingest-v8-flags=…` (V8 flags of the collector process; default: those of `deno task collect`),
 * `--ingest-batch=5000` (most messages per batch, of the collector and the batch writer alone: the
 * rollups cost per batch, memory per message of a batch).
 *
 * @module
 */
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { parseArgs } from "node:util";
import { PGlite } from "@electric-sql/pglite";
import mqtt from "mqtt";
import postgres from "postgres";
import { loadCollectorConfig, type StorageLayout } from "../lib/config/mod.ts";
import { type Db, ident, loadMigrations, migrate, openDb } from "../lib/db/mod.ts";
import { createBatchWriter, decodeMessage, DEFAULT_BATCH_SIZE } from "../lib/ingest/mod.ts";
import { startEmbeddedBroker } from "../lib/mqtt/mod.ts";
import type { CollectorJob, CollectorReport } from "./_ingest_collector.ts";
import { benchMessage, type PublishJob } from "./_ingest_publisher.ts";

interface Options {
  n: number;
  naiveN: number;
  /** Messages queued at the broker for the backlog drains. */
  drainN: number;
  devices: number;
  window: number;
  ahead: number;
  layouts: StorageLayout[];
  /** V8 flags of the collector process; undefined → those of `deno task collect`. */
  v8Flags?: string;
  /** Most messages per batch (`DEFAULT_BATCH_SIZE`). */
  batch: number;
}

const MB = 1024 * 1024;

function options(args: string[]): Options {
  const { values } = parseArgs({
    args,
    options: {
      "ingest-n": { type: "string" },
      "ingest-naive-n": { type: "string" },
      "ingest-drain-n": { type: "string" },
      "ingest-devices": { type: "string" },
      "ingest-window": { type: "string" },
      "ingest-layouts": { type: "string" },
      "ingest-ahead": { type: "string" },
      "ingest-v8-flags": { type: "string" },
      "ingest-batch": { type: "string" },
    },
    strict: false,
    allowPositionals: true,
  });
  const int = (name: string, fallback: number) => {
    const raw = values[name];
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1) {
      throw new RangeError(`--${name} must be a positive integer, got "${raw}"`);
    }
    return n;
  };
  const layouts = String(values["ingest-layouts"] ?? "columnar,flexible").split(",")
    .map((s) => s.trim());
  for (const l of layouts) {
    if (l !== "columnar" && l !== "flexible") {
      throw new RangeError(`--ingest-layouts must list columnar and/or flexible, got "${l}"`);
    }
  }
  return {
    n: int("ingest-n", 100_000),
    naiveN: int("ingest-naive-n", 2000),
    drainN: int("ingest-drain-n", 50_000),
    batch: int("ingest-batch", DEFAULT_BATCH_SIZE),
    devices: int("ingest-devices", 500),
    window: int("ingest-window", 1000),
    ahead: int("ingest-ahead", 300),
    layouts: layouts as StorageLayout[],
    v8Flags: values["ingest-v8-flags"] === undefined
      ? undefined
      : String(values["ingest-v8-flags"]),
  };
}

/** The database under test: a fresh PostgreSQL database or PGlite in a temporary folder. */
interface Target {
  db: Db;
  label: string;
  url?: string;
  close(): Promise<void>;
}

async function openTarget(adminUrl: string | undefined): Promise<Target> {
  if (!adminUrl) {
    const dir = await Deno.makeTempDir({ prefix: "ambient-bench-pglite-" });
    const db = await openDb({ databaseUrl: undefined, dataDir: dir });
    await migrate(db);
    return {
      db,
      label: "embedded PGlite (worker, on disk)",
      close: async () => {
        await db.close();
        await Deno.remove(dir, { recursive: true });
      },
    };
  }
  const name = `bench_ingest_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const admin = await openDb({ databaseUrl: adminUrl, dataDir: "", max: 1 });
  await admin.sql`create database ${ident(name)}`;
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  const db = await openDb({ databaseUrl: u.toString(), dataDir: "", appName: "ambient-bench" });
  await migrate(db);
  const [{ version }] = await db.sql<{ version: string }>`select version()`;
  return {
    db,
    url: u.toString(),
    label: `${version.split(" on ")[0]} (fresh database ${name}, dropped after)`,
    close: async () => {
      await db.close();
      try {
        await admin.sql`drop database if exists ${ident(name)} with (force)`;
      } finally {
        await admin.close();
      }
    },
  };
}

/** The publisher worker, driven by request/answer messages. */
class Publisher {
  #worker = new Worker(new URL("./_ingest_publisher.ts", import.meta.url), { type: "module" });

  /** Tells the publisher how many messages the collector has taken (its flow control). */
  credit(n: number) {
    this.#worker.postMessage({ op: "credit", n });
  }

  call(op: "connect" | "publish" | "close", job?: PublishJob): Promise<{ ms?: number }> {
    return new Promise((resolve, reject) => {
      this.#worker.onmessage = (e) => {
        if (e.data.ok) resolve(e.data);
        else reject(new Error(`publisher: ${e.data.error}`));
      };
      this.#worker.postMessage({ op, job });
    });
  }

  terminate() {
    this.#worker.terminate();
  }
}

/** Runs the ingest benchmark and prints msgs/s, ratios and the collector's memory. */
export async function run(args: string[]): Promise<void> {
  const o = options(args);
  const env = Deno.env.toObject();
  const target = await openTarget(env.DATABASE_URL);
  const broker = env.MQTT_URL
    ? undefined
    : await startEmbeddedBroker({ host: "127.0.0.1", port: 0 });
  const base = loadCollectorConfig(env);
  const mqttUrl = base.mqtt.url ?? broker!.url;
  const publisher = new Publisher();
  const baseSec = Math.floor(Date.now() / 1000) - Math.ceil(o.n / o.devices) - 3600;
  const job = (prefix: string, root: string, n: number): PublishJob => ({
    url: mqttUrl,
    username: base.mqtt.username,
    password: base.mqtt.password,
    n,
    devices: o.devices,
    prefix,
    root,
    baseSec,
    window: o.window,
    ahead: o.ahead,
  });
  const fmt = (r: number) => `${Math.round(r).toLocaleString("en-US")} msg/s`;
  try {
    console.log(
      `ingest: ${o.n.toLocaleString("en-US")} SCD30 messages (3 metrics each) from ${o.devices} ` +
        `devices, QoS 1, layouts ${o.layouts.join("+")}`,
    );
    console.log(`database: ${target.label}`);
    console.log(`broker: ${broker ? "embedded (aedes, in-process)" : "MQTT_URL"} ${mqttUrl}`);
    await publisher.call("connect", job("bench", "devices", 0));

    // 1. The load generator alone: what one MQTT.js client and the broker can take.
    const alone = await publisher.call("publish", {
      ...job("bench", "bench-void", o.n),
      ahead: undefined,
    });
    const publisherRate = rate(o.n, alone.ms!);
    console.log(
      `publisher alone (topic without subscribers, window ${o.window}): ${fmt(publisherRate)}`,
    );

    // 2. The seed's design: one transaction per message, messages handed over directly.
    const naiveMs = await naiveWriter(target.db, job("naive", "devices", o.naiveN), o.layouts);
    const naiveRate = rate(o.naiveN, naiveMs);
    console.log(
      `naive writer (1 transaction per message, ${o.naiveN.toLocaleString("en-US")} messages ` +
        `without MQTT, rate extrapolated): ${fmt(naiveRate)}`,
    );

    // 3. The batch writer alone: decoded messages in the collector's batches, no MQTT or journal; the
    // rollup triggers, or with them disabled. Alternating rounds, so that a change of the machine's load hits every variant alike.
    const writerRates: Record<WriterVariant, number[]> = { rollups: [], insert: [], none: [] };
    const half = Math.max(1, Math.floor(o.n / 2));
    for (let round = 0; round < 2; round++) {
      for (const variant of Object.keys(writerRates) as WriterVariant[]) {
        const ms = await writerAlone(
          target.db,
          job(`w${round}${variant[0]}`, "devices", half),
          { layouts: o.layouts, variant, batch: o.batch },
        );
        writerRates[variant].push(rate(half, ms));
      }
    }
    const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
    const writer = { rollups: mean(writerRates.rollups), none: mean(writerRates.none) };
    console.log(
      `batch writer alone (batches of ${o.batch.toLocaleString("en-US")} decoded ` +
        `messages, no MQTT): ` +
        `${fmt(writer.rollups)} with the rollups, ${fmt(writer.none)} without ` +
        `rollups; with the rollups but INSERT … ON CONFLICT instead of COPY: ` +
        fmt(mean(writerRates.insert)),
    );

    // 3b. Another write path: COPY into a staging table, merged with INSERT … ON CONFLICT.
    let stagingRate: number | undefined;
    if (target.url) {
      const ms = await stagingWriter(target.url, o, baseSec + 7 * 86_400);
      stagingRate = rate(o.n, ms);
      console.log(
        `COPY into a staging table + INSERT … SELECT … ON CONFLICT DO NOTHING (same rows and ` +
          `batches, without rollups): ${fmt(stagingRate)}`,
      );
    }

    // 4. What the broker delivers from a backlog to MQTT.js with a handler that does nothing.
    const drainBase = baseSec - Math.ceil(o.drainN / o.devices) - 3600;
    const drainJob = (prefix: string, root: string): PublishJob => ({
      ...job(prefix, root, o.drainN),
      baseSec: drainBase,
      ahead: undefined,
    });
    const noopRate = await noopDrain(publisher, drainJob("noop", "bench-noop"), base.mqtt);
    console.log(
      `MQTT.js draining a backlog of ${o.drainN.toLocaleString("en-US")} messages, no-op ` +
        `handler: ${fmt(noopRate)}`,
    );

    // 5. The collector draining a backlog: subscribed once (persistent session), offline while
    // the messages are queued, then timed from its first stored row to its last.
    const v8Flags = o.v8Flags ?? await collectTaskV8Flags();
    const clientId = `ambient-bench-drain-${crypto.randomUUID().slice(0, 8)}`;
    const drainSpec: CollectorJob = {
      databaseUrl: target.url,
      mqttUrl,
      layouts: o.layouts,
      n: o.drainN,
      prefix: "drain",
      clientId,
      batchSize: o.batch,
    };
    await collectorRun({ job: { ...drainSpec, mode: "subscribe" }, publisher, v8Flags });
    await publisher.call("publish", drainJob("drain", "devices"));
    const d = await collectorRun({ job: { ...drainSpec, mode: "drain" }, publisher, v8Flags });
    const drainRate = rate(o.drainN - d.firstCount, d.drainMs);
    console.log(
      `collector draining the same backlog (first stored row → last): ${fmt(drainRate)}; ` +
        `peak RSS ${Math.round(d.peakRss / MB)} MB`,
    );
    verify(d.rows, o.drainN, o.layouts);

    // 6. The collector, end to end, in its own process; then again without the rollups.
    const e2e = async (prefix: string) => {
      const c = await collectorRun({
        job: {
          databaseUrl: target.url,
          mqttUrl,
          layouts: o.layouts,
          n: o.n,
          prefix,
          batchSize: o.batch,
        },
        publisher,
        publish: job(prefix, "devices", o.n),
        v8Flags,
      });
      verify(c.rows, o.n, o.layouts);
      return c;
    };
    const c = await e2e("bench");
    const collectorRate = rate(o.n, c.ms);
    console.log(
      `collector end to end (first publish → last commit): ${fmt(collectorRate)} ` +
        `(${(c.ms / 1000).toFixed(1)} s; the publisher was done after ` +
        `${(c.publishMs / 1000).toFixed(1)} s)`,
    );
    console.log(
      `  ${c.batches} batches; the writer was busy ${Math.round((100 * c.writeMs) / c.ms)}% ` +
        `of the run; collector V8 flags: ${v8Flags ?? "none"}`,
    );
    await setRollupTriggers(target.db, false);
    const bare = await e2e("bare");
    await setRollupTriggers(target.db, true);
    const bareRate = rate(o.n, bare.ms);
    console.log(`collector end to end without rollups (triggers disabled): ${fmt(bareRate)}`);

    // 7. The ceilings: the same rows loaded with COPY, one statement per layout, no MQTT — into
    // the same tables as the collector's (their rollup triggers fire), and into empty twins of
    // them without triggers (what the engine takes at best).
    const copyMs = target.url
      ? await copyPostgres(target.url, o, baseSec + 14 * 86_400)
      : await copyPglite(o, baseSec);
    const copyRate = rate(o.n, copyMs.tables);
    const bareCopyRate = rate(o.n, copyMs.bare);
    console.log(
      `COPY ceiling, same rows into the same tables (rollup triggers firing): ${fmt(copyRate)}`,
    );
    console.log(
      `COPY ceiling, same rows into empty twins of the tables without triggers: ` +
        `${fmt(bareCopyRate)}`,
    );

    const x = (r: number) => `${r.toFixed(1)}x`;
    const f2 = (r: number) => r.toFixed(2);
    const slower = (a: number, b: number) => `${Math.round(100 * (1 - a / b))}%`;
    console.log(
      `ratios: drain/COPY ${f2(drainRate / copyRate)} (target ≥ 0.8), ` +
        `end to end/COPY ${f2(collectorRate / copyRate)} (target ≥ 0.7), ` +
        `drain/bare COPY ${f2(drainRate / bareCopyRate)}, ` +
        `end to end/bare COPY ${f2(collectorRate / bareCopyRate)}, ` +
        `drain/no-op MQTT.js ${f2(drainRate / noopRate)}, ` +
        `collector/naive ${x(collectorRate / naiveRate)} (target ≥ 15x), ` +
        `collector/publisher-alone ${f2(collectorRate / publisherRate)}` +
        (stagingRate ? `, staging COPY/batch writer ${f2(stagingRate / writer.none)}` : ""),
    );
    console.log(
      `rollup cost: collector end to end ${slower(collectorRate, bareRate)} slower with the ` +
        `rollups (target ≤ 15%); batch writer ${slower(writer.rollups, writer.none)} slower`,
    );
    console.log(
      `collector RSS: peak ${Math.round(Math.max(c.peakRss, d.peakRss) / MB)} MB ` +
        `(drain ${Math.round(d.peakRss / MB)}, end to end ${Math.round(c.peakRss / MB)}), ` +
        `${Math.round(c.readyRss / MB)} MB when it had subscribed (target < 150 MB; its own ` +
        `process${target.url ? "" : ", with the embedded database in it"})`,
    );
    console.log(`load average at the end: ${loadAverage()}`);
  } finally {
    await publisher.call("close").catch(() => {});
    publisher.terminate();
    await broker?.close();
    await target.close();
  }
}

/** The collector's writer; the same without COPY (insert path only); without rollup triggers. */
type WriterVariant = "rollups" | "insert" | "none";

/**
 * Writes `job`'s messages with the collector's batch writer, `batch` at a time, with the rollup
 * triggers or without them (disabled for the round).
 */
async function writerAlone(
  db: Db,
  job: PublishJob,
  opts: { layouts: StorageLayout[]; variant: WriterVariant; batch: number },
): Promise<number> {
  const enc = new TextEncoder();
  const decoded = [];
  for (let i = 0; i < job.n; i++) {
    const m = benchMessage(job, i);
    decoded.push(
      decodeMessage({ topic: m.topic, payload: enc.encode(m.payload), receivedAt: Date.now() }),
    );
  }
  if (opts.variant === "none") await setRollupTriggers(db, false);
  try {
    const writer = createBatchWriter(db, {
      layouts: opts.layouts,
      copy: opts.variant !== "insert",
    });
    const start = performance.now();
    for (let i = 0; i < decoded.length; i += opts.batch) {
      await writer.write(decoded.slice(i, i + opts.batch));
    }
    return performance.now() - start;
  } finally {
    if (opts.variant === "none") await setRollupTriggers(db, true);
  }
}

/** Enables or disables the rollup triggers of the benchmark's tables (its own database). */
async function setRollupTriggers(db: Db, on: boolean): Promise<void> {
  for (const table of ["scd30_measurements", "measurements"]) {
    await db.exec(`alter table ${table} ${on ? "enable" : "disable"} trigger rollups_after_insert`);
  }
}

/**
 * The write path the collector does not take, measured for comparison: per batch, one
 * transaction that COPYs the rows into temporary staging tables and merges them into the
 * measurement tables with INSERT … SELECT … ON CONFLICT DO NOTHING (rollup triggers disabled, as
 * in the batch writer's round without rollups).
 */
async function stagingWriter(url: string, o: Options, baseSec: number): Promise<number> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    for (const table of ["scd30_measurements", "measurements"]) {
      await sql.unsafe(`alter table ${table} disable trigger rollups_after_insert`);
    }
    const offset = await copySensors(sql, o);
    const start = performance.now();
    const chunks = [...o.layouts].map((l) => copyText(o, baseSec, l, o.batch, offset));
    for (;;) {
      const parts = chunks.map((g) => g.next());
      if (parts.some((p) => p.done)) break;
      await sql.begin(async (tx) => {
        for (let i = 0; i < o.layouts.length; i++) {
          const { table, columns } = COPY_TABLES[o.layouts[i]];
          const stage = `stage_${table}`;
          await tx.unsafe(
            `create temp table if not exists ${stage} (like ${table}) on commit delete rows`,
          );
          const writable = await tx.unsafe(`copy ${stage} (${columns}) from stdin`).writable();
          await pipeline(Readable.from([parts[i].value as string]), writable);
          await tx.unsafe(
            `insert into ${table} (${columns}) select ${columns} from ${stage} ` +
              `on conflict do nothing`,
          );
        }
      });
    }
    return performance.now() - start;
  } finally {
    for (const table of ["scd30_measurements", "measurements"]) {
      await sql.unsafe(`alter table ${table} enable trigger rollups_after_insert`);
    }
    await sql.end({ timeout: 5 });
  }
}

/**
 * Registers the COPY rows' devices and sensors once per run; returns the sensor id before the
 * first.
 */
async function copySensors(sql: postgres.Sql, o: Options): Promise<number> {
  const [{ id }] = await sql<{ id: number | null }[]>`
    select min(sensor_id)::int as id from sensors where device_id like 'copy-%'`;
  if (id !== null) return id - 1;
  const ids = Array.from({ length: o.devices }, (_, i) => `copy-${String(i).padStart(4, "0")}`);
  await sql`insert into devices (device_id) select unnest(${ids}::text[]) on conflict do nothing`;
  const rows = await sql<{ id: number }[]>`
    insert into sensors (device_id, sensor_type) select unnest(${ids}::text[]), 'scd30'
    returning sensor_id::int as id`;
  return Math.min(...rows.map((r) => r.id)) - 1;
}

/**
 * MQTT.js alone draining a backlog: subscribes once with a persistent session, goes away while
 * `job` is published, then counts the messages with a handler that does nothing; msg/s from the
 * first message to the last.
 */
async function noopDrain(
  publisher: Publisher,
  job: PublishJob,
  auth: { username?: string; password?: string },
): Promise<number> {
  const options = {
    clientId: `ambient-bench-noop-${crypto.randomUUID().slice(0, 8)}`,
    clean: false,
    username: auth.username,
    password: auth.password,
    protocolVersion: 4 as const,
    reconnectPeriod: 0,
  };
  const topic = `${job.root}/+/sensors/+/data`;
  const first = await mqtt.connectAsync(job.url, options);
  await first.subscribeAsync(topic, { qos: 1 });
  await first.endAsync();
  await publisher.call("publish", job);
  let count = 0;
  let firstAt = 0;
  let lastAt = 0;
  const client = mqtt.connect(job.url, options);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no-op subscriber: ${count} of ${job.n} messages in 120 s`)),
        120_000,
      );
      client.on("error", reject);
      client.on("message", () => {
        lastAt = performance.now();
        if (count++ === 0) firstAt = lastAt;
        if (count === job.n) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
  } finally {
    await client.endAsync();
    // Remove the session from the broker.
    const gone = await mqtt.connectAsync(job.url, { ...options, clean: true });
    await gone.endAsync();
  }
  return rate(job.n - 1, lastAt - firstAt);
}

function rate(n: number, ms: number): number {
  return n / (ms / 1000);
}

/** The 1-, 5- and 15-minute load averages of the machine, as Linux tells them. */
function loadAverage(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  } catch {
    return "unknown";
  }
}

/** Writes `job`'s messages as the seed did: decode, then one transaction with its INSERTs. */
async function naiveWriter(db: Db, job: PublishJob, layouts: StorageLayout[]): Promise<number> {
  const sensors = new Map<string, number>();
  const enc = new TextEncoder();
  const start = performance.now();
  for (let i = 0; i < job.n; i++) {
    const m = benchMessage(job, i);
    const d = decodeMessage({
      topic: m.topic,
      payload: enc.encode(m.payload),
      receivedAt: Date.now(),
    });
    if (d.kind !== "reading") throw new Error(`benchmark message rejected: ${JSON.stringify(d)}`);
    await db.transaction(async (tx) => {
      let id = sensors.get(d.device);
      if (id === undefined) {
        await tx.sql`insert into devices (device_id, last_seen) values (${d.device}, ${d.time})
          on conflict (device_id) do update set last_seen = excluded.last_seen`;
        const [row] = await tx.sql<{ sensor_id: number }>`
          insert into sensors (device_id, sensor_type) values (${d.device}, ${d.sensorType})
          on conflict (device_id, sensor_type) do update set sensor_type = excluded.sensor_type
          returning sensor_id`;
        id = row.sensor_id;
        sensors.set(d.device, id);
      }
      const { co2, temperature, humidity } = d.metrics;
      if (layouts.includes("columnar")) {
        await tx.sql`
          insert into scd30_measurements (time, sensor_id, co2, temperature, humidity)
          values (${d.time}, ${id}, ${co2}, ${temperature}, ${humidity}) on conflict do nothing`;
      }
      if (layouts.includes("flexible")) {
        await tx.sql`
          insert into measurements (time, sensor_id, metric_type, value)
          values (${d.time}, ${id}, 'co2', ${co2}), (${d.time}, ${id}, 'temperature', ${temperature}),
                 (${d.time}, ${id}, 'humidity', ${humidity})
          on conflict do nothing`;
      }
    });
  }
  return performance.now() - start;
}

interface CollectorResult {
  /** Start of the run (ready) → last commit. */
  ms: number;
  /** First commit of a batch with this run's readings → last commit. */
  drainMs: number;
  /** Readings committed by that first commit. */
  firstCount: number;
  publishMs: number;
  peakRss: number;
  readyRss: number;
  /** Time spent inside the batch writer, and the number of batches. */
  writeMs: number;
  batches: number;
  rows: Rows;
}

const EMPTY_RESULT: CollectorResult = {
  ms: 0,
  drainMs: 0,
  firstCount: 0,
  publishMs: 0,
  peakRss: 0,
  readyRss: 0,
  writeMs: 0,
  batches: 0,
  rows: { columnar: 0, flexible: 0 },
};

/**
 * The V8 flags `deno task collect` runs with (deno.json), so that the benchmark measures the
 * collector's memory as users run it.
 */
async function collectTaskV8Flags(): Promise<string | undefined> {
  try {
    const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
    return /--v8-flags=(\S+)/.exec(String(config.tasks?.collect ?? ""))?.[1];
  } catch {
    return undefined;
  }
}

/** Runs the collector in a child process and publishes `publish` to it (if given). */
async function collectorRun(
  args: { job: CollectorJob; publisher: Publisher; publish?: PublishJob; v8Flags?: string },
): Promise<CollectorResult> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      ...(args.v8Flags ? [`--v8-flags=${args.v8Flags}`] : []),
      new URL("./_ingest_collector.ts", import.meta.url).pathname,
      JSON.stringify(args.job),
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reports = lines(child.stdout);
  const next = async (): Promise<CollectorReport> => {
    const { value, done } = await reports.next();
    if (done) throw new Error("the benchmark's collector process ended early");
    const r = JSON.parse(value) as CollectorReport;
    if ("error" in r) throw new Error(`collector: ${r.error}`);
    return r;
  };
  try {
    let ready: CollectorReport;
    while (!("ready" in (ready = await next())));
    const readyRss = (ready as { rss: number }).rss;
    const start = performance.timeOrigin + performance.now();
    let publishMs = NaN;
    const publishing = args.publish
      ? args.publisher.call("publish", args.publish).then((r) => {
        publishMs = r.ms!;
      })
      : Promise.resolve();
    if (args.job.mode === "subscribe") return { ...EMPTY_RESULT, readyRss };
    let r = await next();
    let last = -1;
    let lastChange = performance.now();
    while (!("done" in r)) {
      if ("received" in r) {
        if (args.publish) args.publisher.credit(r.received);
        if (r.committed !== last) {
          last = r.committed;
          lastChange = performance.now();
        } else if (performance.now() - lastChange > 30_000) {
          throw new Error(
            `the collector committed ${r.committed} of ${args.job.n} messages and made no ` +
              `progress for 30 s (a broker dropping messages? see --ingest-ahead)`,
          );
        }
      }
      r = await next();
    }
    await publishing;
    const done = r;
    let rows: CollectorReport;
    while (!("rows" in (rows = await next())));
    return {
      ms: done.lastCommit - start,
      drainMs: done.lastCommit - done.firstCommit,
      firstCount: done.firstCount,
      publishMs,
      peakRss: done.peakRss,
      readyRss,
      writeMs: done.writeMs,
      batches: done.batches,
      rows: (rows as { rows: Rows }).rows,
    };
  } finally {
    // Closing its stdin tells the child to stop; it stops its collector and removes its folder,
    // and is ended only when it does not finish by itself.
    await child.stdin.close().catch(() => {});
    let timer: ReturnType<typeof setTimeout> | undefined;
    const ended = await Promise.race([
      child.status.then(() => true),
      new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), 20_000)),
    ]);
    clearTimeout(timer);
    if (!ended) {
      child.kill("SIGTERM");
      await child.status;
    }
    await reports.return(undefined);
  }
}

/** The lines of a byte stream. */
async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    rest += chunk;
    let nl;
    while ((nl = rest.indexOf("\n")) >= 0) {
      yield rest.slice(0, nl);
      rest = rest.slice(nl + 1);
    }
  }
  if (rest) yield rest;
}

type Rows = { columnar: number; flexible: number };

function verify(rows: Rows, n: number, layouts: StorageLayout[]): void {
  const want = {
    columnar: layouts.includes("columnar") ? n : 0,
    flexible: layouts.includes("flexible") ? 3 * n : 0,
  };
  if (rows.columnar !== want.columnar || rows.flexible !== want.flexible) {
    throw new Error(
      `stored rows do not match: columnar ${rows.columnar}/${want.columnar}, ` +
        `flexible ${rows.flexible}/${want.flexible}`,
    );
  }
}

/** The benchmark's rows as COPY text, `chunk` messages at a time. */
function* copyText(
  o: Options,
  baseSec: number,
  layout: StorageLayout,
  chunk = 10_000,
  /** Added to the sensor ids 1…devices. */
  idOffset = 0,
): Generator<string> {
  const job = { devices: o.devices, prefix: "copy", root: "devices", baseSec };
  for (let from = 0; from < o.n; from += chunk) {
    let text = "";
    for (let i = from; i < Math.min(o.n, from + chunk); i++) {
      const m = benchMessage(job, i);
      const t = new Date(m.ts * 1000).toISOString();
      const id = (i % o.devices) + 1 + idOffset;
      if (layout === "columnar") {
        text += `${t}\t${id}\t${m.co2}\t${m.temperature}\t${m.humidity}\n`;
      } else {
        text += `${t}\t${id}\tco2\t${m.co2}\n${t}\t${id}\ttemperature\t${m.temperature}\n` +
          `${t}\t${id}\thumidity\t${m.humidity}\n`;
      }
    }
    yield text;
  }
}

const COPY_TABLES = {
  columnar: { table: "scd30_measurements", columns: "time, sensor_id, co2, temperature, humidity" },
  flexible: { table: "measurements", columns: "time, sensor_id, metric_type, value" },
};

/** Milliseconds of the two COPY ceilings. */
interface CopyTimes {
  /** Into the measurement tables themselves, their rollup triggers firing. */
  tables: number;
  /** Into empty twins of them (same keys and indexes), without triggers. */
  bare: number;
}

/**
 * Both COPY ceilings on PostgreSQL: into the run's own measurement tables (rows of the `copy-…`
 * sensors at `baseSec`, apart from every other phase's rows) and into empty twins.
 */
async function copyPostgres(url: string, o: Options, baseSec: number): Promise<CopyTimes> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const offset = await copySensors(sql, o);
    const times = { tables: 0, bare: 0 };
    for (const layout of o.layouts) {
      const { table, columns } = COPY_TABLES[layout];
      const twin = `copy_${table}`;
      await sql`create table ${sql(twin)} (like ${sql(table)} including all)`;
      for (const [into, key] of [[table, "tables"], [twin, "bare"]] as const) {
        const start = performance.now();
        const writable = await sql`copy ${sql(into)} (${sql.unsafe(columns)}) from stdin`
          .writable();
        await pipeline(Readable.from(copyText(o, baseSec, layout, 10_000, offset)), writable);
        times[key] += performance.now() - start;
      }
      await sql`drop table ${sql(twin)}`;
    }
    return times;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/**
 * Both COPY ceilings on PGlite, in a fresh database on disk (the same engine as the embedded
 * one): COPY FROM '/dev/blob' into its measurement tables (rollup triggers firing) and into
 * empty twins.
 */
async function copyPglite(o: Options, baseSec: number): Promise<CopyTimes> {
  const dir = await Deno.makeTempDir({ prefix: "ambient-bench-copy-" });
  const pg = await PGlite.create(dir);
  try {
    for (const m of await loadMigrations()) await pg.exec(m.sql);
    const times = { tables: 0, bare: 0 };
    for (const layout of o.layouts) {
      const { table, columns } = COPY_TABLES[layout];
      const twin = `copy_${table}`;
      await pg.exec(`create table ${twin} (like ${table} including all)`);
      for (const [into, key] of [[table, "tables"], [twin, "bare"]] as const) {
        const start = performance.now();
        const blob = new Blob([...copyText(o, baseSec, layout)]);
        await pg.query(`copy ${into} (${columns}) from '/dev/blob'`, [], { blob });
        times[key] += performance.now() - start;
      }
    }
    return times;
  } finally {
    await pg.close();
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) await run(Deno.args);
