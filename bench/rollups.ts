/**
 * Rollups benchmark: a year of one reading per minute for 10 SCD30 sensors (5.3M columnar and
 * 15.8M flexible rows, seeded with generate_series, the rollups built after by attach_rollups), then p50/p99 of
 * `sensorHistory` over 1, 30 and 365 days and of `airSummary` over 30 days, next to the same
 * answers computed from raw rows in the same run (and checked equal); the batch writer's
 * messages per second with and without the rollup triggers; bytes on disk per reading; and how
 * fast retention trims. PostgreSQL when DATABASE_URL is set, else the embedded worker-backed
 * PGlite as `deno task serve` runs it. `--months=N` seeds fewer months (default 12 on
 * PostgreSQL, 3 on PGlite, where a year takes too long on a small machine).
 *
 * @module
 */
import { loadServeConfig } from "../lib/config/mod.ts";
import type { Db, Queryable } from "../lib/db/mod.ts";
import { registerGetAirSummaryTool } from "../lib/mcp/tools/get_air_summary.ts";
import { registerGetSensorHistoryTool } from "../lib/mcp/tools/get_sensor_history.ts";
import { tempResults } from "../tests/fixtures/readings_results.ts";
import { withTestDb } from "../lib/db/testing.ts";
import { createBatchWriter, decodeMessage } from "../lib/ingest/mod.ts";
import { airSummary, sensorHistory, trimRawReadings } from "../lib/readings/mod.ts";
import { timings } from "./_stats.ts";
import { connectTools } from "./_tool_client.ts";

const SENSORS = 10;
const RUNS = 30;
const WARMUP = 3;
const MINUTE = 60_000;
const DAY = 86_400_000;

/** Runs the rollups benchmark and prints its figures against the targets. */
export async function run(args: string[]): Promise<void> {
  await using db = await withTestDb({ killable: true });
  const monthsArg = args.find((a) => a.startsWith("--months="));
  const months = monthsArg ? Number(monthsArg.slice(9)) : db.kind === "postgres" ? 12 : 3;
  const target = db.kind === "postgres" ? 30 : 100;
  const end = Date.UTC(2025, 0, 1, 0, 0, 0);
  const minutes = Math.round(months * 30.4167 * 1440);
  const start = end - minutes * MINUTE;

  // Raw rows first with the rollup triggers off, then each rollup built by one set-based
  // INSERT … SELECT (minutes from raw, hours from minutes, days from hours), then the triggers
  // back on and the rollups checked against raw aggregates on samples.
  await db.exec(`
    alter table scd30_measurements disable trigger rollups_after_insert;
    alter table measurements disable trigger rollups_after_insert;`);
  const seeded = performance.now();
  await seed(db, start, minutes);
  const seedS = (performance.now() - seeded) / 1000;
  const built = performance.now();
  await buildRollups(db);
  const buildS = (performance.now() - built) / 1000;
  await db.exec(`
    alter table scd30_measurements enable trigger rollups_after_insert;
    alter table measurements enable trigger rollups_after_insert;`);
  const [{ c, f }] = await db.sql<{ c: number; f: number }>`
    select (select count(*) from scd30_measurements)::bigint as c,
           (select count(*) from measurements)::bigint as f`;
  const checked = await checkRollups(db, start, minutes);
  console.log(
    `seeded ${months} months × ${SENSORS} sensors at 1/min on ${db.kind}: ` +
      `${Number(c).toLocaleString("en-US")} columnar + ${
        Number(f).toLocaleString("en-US")
      } flexible rows in ${seedS.toFixed(0)} s; rollups built from them in ${
        buildS.toFixed(0)
      } s; ${checked} sampled rollup rows equal the raw aggregates`,
  );
  await db.exec("analyze");

  await using results = await tempResults();
  const mcp = await connectTools({ db, results, config: loadServeConfig({}) }, [
    registerGetSensorHistoryTool,
    registerGetAirSummaryTool,
  ]);

  // Periods end 17 s before the newest reading, not on a bucket boundary (as "now" would).
  const now = new Date(end - 17_000);
  for (const days of [1, 30, 365]) {
    const o = {
      sensorId: 1,
      metric: "co2",
      start: new Date(now.getTime() - days * DAY),
      end: now,
      maxPoints: 500,
    };
    let source = "";
    let points: { count: number; min: number; max: number; avg: number }[] = [];
    const fast = await timings(async () => {
      const h = await sensorHistory(db, o);
      source = h.source;
      points = h.points;
    }, { runs: RUNS, warmup: WARMUP });
    const viaMcp = await timings(async () => {
      const r = await mcp.call("get_sensor_history", {
        sensor_id: 1,
        metric: "co2",
        start: o.start.toISOString(),
        end: o.end.toISOString(),
        max_points: 500,
      });
      const n = (r.structuredContent as { points: unknown[] }).points.length;
      if (n !== points.length) {
        throw new Error(`the tool answered ${n} points, not ${points.length}`);
      }
    }, { runs: RUNS, warmup: WARMUP });
    let rawPoints: typeof points = [];
    const rawRuns = days === 365 && db.kind === "pglite" ? 3 : days >= 30 ? 5 : RUNS;
    const raw = await timings(async () => {
      rawPoints = (await sensorHistory(db, { ...o, rollups: false })).points;
    }, { runs: rawRuns, warmup: 1 });
    const same = points.length === rawPoints.length &&
      points.every((p, i) =>
        p.count === rawPoints[i].count && p.min === rawPoints[i].min &&
        p.max === rawPoints[i].max && Math.abs(p.avg - rawPoints[i].avg) < 1e-9
      );
    console.log(
      `get_sensor_history ${days} d (${points.length} points, source ${source}): ` +
        `p50 ${fmt(fast.p50)} p99 ${fmt(fast.p99)} (target p50 ≤ ${target} ms: ${
          fast.p50 <= target ? "met" : "missed"
        }); raw p50 ${fmt(raw.p50)} → ${(raw.p50 / fast.p50).toFixed(0)}× faster` +
        `${days === 365 ? " (target ≥ 20×)" : ""}; same answer as raw: ${same ? "yes" : "NO"}; ` +
        `as the MCP tool (in-memory client): p50 ${fmt(viaMcp.p50)} p99 ${fmt(viaMcp.p99)}`,
    );
  }

  const so = { device: "dev-01", start: new Date(now.getTime() - 30 * DAY), end: now };
  let summaryText = "";
  const summary = await timings(async () => {
    const s = await airSummary(db, so);
    summaryText = JSON.stringify(
      s.metrics.map((m) => [m.metric, m.readings, m.min, m.max, m.above, m.band]),
    );
  }, { runs: RUNS, warmup: WARMUP });
  const summaryMcp = await timings(async () => {
    const r = await mcp.call("get_air_summary", {
      device: so.device,
      start: so.start.toISOString(),
      end: so.end.toISOString(),
    });
    if (!(r.structuredContent as { summary?: unknown }).summary) throw new Error("no summary");
  }, { runs: RUNS, warmup: WARMUP });
  let rawText = "";
  const rawSummary = await timings(async () => {
    rawText = JSON.stringify(await rawAirSummary(db, 1, so.start, so.end));
  }, { runs: 5, warmup: 1 });
  console.log(
    `get_air_summary 30 d: p50 ${fmt(summary.p50)} p99 ${
      fmt(summary.p99)
    } (target p50 ≤ ${target} ms: ${summary.p50 <= target ? "met" : "missed"}); raw p50 ${
      fmt(rawSummary.p50)
    } → ${(rawSummary.p50 / summary.p50).toFixed(0)}× faster; ` +
      `same answer as raw: ${summaryText === rawText ? "yes" : "NO"}; as the MCP tool: p50 ${
        fmt(summaryMcp.p50)
      } p99 ${fmt(summaryMcp.p99)}`,
  );
  await mcp.close();

  const [size] = await db.sql<{ raw: number; rollups: number; readings: number }>`
    select (pg_total_relation_size('scd30_measurements')
            + pg_total_relation_size('measurements'))::bigint as raw,
           (pg_total_relation_size('rollup_1m') + pg_total_relation_size('rollup_1h')
            + pg_total_relation_size('rollup_1d'))::bigint as rollups,
           (select count(*) from measurements)::bigint as readings`;
  const perReading = (bytes: number) => (Number(bytes) / Number(size.readings)).toFixed(1);
  console.log(
    `bytes on disk per reading (one metric value, ${
      Number(size.readings).toLocaleString("en-US")
    } in each layout): raw ${perReading(size.raw)} (columnar + flexible), rollups ${
      perReading(size.rollups)
    } (1m + 1h + 1d, both layouts)`,
  );

  const trimStart = performance.now();
  const cut = new Date(start + 30 * DAY);
  let trimmed = 0;
  for (;;) {
    const r = await trimRawReadings(db, { before: cut, batchRows: 5000 });
    trimmed += r.reduce((n, t) => n + t.rows, 0);
    if (!r.some((t) => t.more)) break;
  }
  const trimS = (performance.now() - trimStart) / 1000;
  console.log(
    `retention: removed the oldest 30 days (${trimmed.toLocaleString("en-US")} raw rows) in ` +
      `batches of 5000 on the primary key: ${trimS.toFixed(1)} s, ${
        Math.round(trimmed / trimS).toLocaleString("en-US")
      } rows/s; rollups untouched`,
  );

  if (!args.includes("--no-ingest")) await ingestCost(db.kind);
}

function fmt(ms: number): string {
  return `${ms.toFixed(1)} ms`;
}

/** 10 devices with one SCD30 each, one reading per minute; one statement per sensor and layout. */
export async function seed(db: Db, start: number, minutes: number): Promise<void> {
  await db.exec(`
    insert into devices (device_id, device_name, location)
    select 'dev-' || lpad(i::text, 2, '0'), 'Board ' || i, 'room ' || i
    from generate_series(1, ${SENSORS}) i;
    insert into sensors (sensor_id, device_id, sensor_type)
    select i, 'dev-' || lpad(i::text, 2, '0'), 'scd30' from generate_series(1, ${SENSORS}) i;`);
  for (let id = 1; id <= SENSORS; id++) {
    // Daily curves with a little noise, as indoor air moves: CO2 crosses 1000 ppm twice a day,
    // temperature and humidity leave their comfort bands twice a day.
    const day = `(2 * pi() * (g + ${id * 97}) / 1440)`;
    const co2 = `round((850 + 450 * sin(${day}) + (g * 7919 % 41) - 20)::numeric, 1)::float8`;
    const temp = `round((21 + 3 * sin(${day} - 1) + (g % 5) * 0.04)::numeric, 2)::float8`;
    const hum = `round((50 + 14 * cos(${day}) + (g * 13 % 7) * 0.1)::numeric, 1)::float8`;
    const time = `timestamptz '${new Date(start).toISOString()}' + g * interval '1 minute'`;
    // In primary key order, so every index entry lands at the right edge of its tree.
    await db.exec(`
      insert into scd30_measurements (time, sensor_id, co2, temperature, humidity)
      select ${time}, ${id}, ${co2}, ${temp}, ${hum} from generate_series(0::bigint, ${
      minutes - 1
    }) g;`);
    await db.exec(`
      insert into measurements (time, sensor_id, metric_type, value)
      select time, sensor_id, m.metric, m.value
      from scd30_measurements
      cross join lateral (values ('co2', co2), ('temperature', temperature),
                                 ('humidity', humidity)) as m(metric, value)
      where sensor_id = ${id}
      order by m.metric, time;`);
  }
}

const ORIGIN = "timestamptz '2000-01-03 00:00:00+00'";

/**
 * The rollups of the seeded readings, one INSERT … SELECT per sensor, layout and resolution, in
 * primary key order: what the triggers would have built reading by reading (a minute row per
 * minute with readings; an hour's `minutes` counts its minute rows, a day's adds its hours').
 */
export async function buildRollups(db: Db): Promise<void> {
  for (let id = 1; id <= SENSORS; id++) {
    await db.transaction(async (tx) => {
      await tx.query("set local work_mem = '256MB'");
      await tx.query(`
        insert into rollup_1m (sensor_id, metric, layout, bucket, count, sum, min, max, minutes)
        select sensor_id, metric, 'columnar', date_bin('1 minute', time, ${ORIGIN}) as b,
               count(*), sum(v), min(v), max(v), 1
        from scd30_measurements
        cross join lateral (values ('co2', co2), ('temperature', temperature),
                                   ('humidity', humidity)) as m(metric, v)
        where sensor_id = ${id} and v is not null
        group by 1, 2, 4 order by 1, 2, 4`);
      await tx.query(`
        insert into rollup_1m (sensor_id, metric, layout, bucket, count, sum, min, max, minutes)
        select sensor_id, metric_type, 'flexible', date_bin('1 minute', time, ${ORIGIN}) as b,
               count(*), sum(value), min(value), max(value), 1
        from measurements where sensor_id = ${id} and value is not null
        group by 1, 2, 4 order by 1, 2, 4`);
      for (const [to, from, width] of [["1h", "1m", "1 hour"], ["1d", "1h", "1 day"]]) {
        await tx.query(`
          insert into rollup_${to} (sensor_id, metric, layout, bucket, count, sum, min, max,
                                    minutes)
          select sensor_id, metric, layout, date_bin('${width}', bucket, ${ORIGIN}) as b,
                 sum(count), sum(sum), min(min), max(max),
                 ${from === "1m" ? "count(*)" : "sum(minutes)"}
          from rollup_${from} where sensor_id = ${id}
          group by 1, 2, 3, 4 order by 1, 2, 3, 4`);
      }
    });
  }
}

/**
 * Compares rollup rows of sampled sensors, metrics and layouts at every resolution with the
 * aggregate of the raw rows they cover; throws on any difference. Returns the rows compared.
 */
async function checkRollups(db: Db, start: number, minutes: number): Promise<number> {
  let compared = 0;
  for (let i = 0; i < 12; i++) {
    const id = 1 + (i * 7) % SENSORS;
    const metric = ["co2", "temperature", "humidity"][i % 3];
    const layout = i % 2 === 0 ? "columnar" : "flexible";
    const [res, width] = [["1m", MINUTE], ["1h", 3_600_000], ["1d", DAY]][i % 3] as [
      string,
      number,
    ];
    // A bucket somewhere inside the seeded period (days: one that is fully seeded or not).
    const at = new Date(Math.floor((start + ((i * 104_729) % minutes) * MINUTE) / width) * width);
    const till = new Date(at.getTime() + width);
    const raw = layout === "columnar"
      ? `select count(${metric}) as count, sum(${metric}) as sum, min(${metric}) as min,
                max(${metric}) as max,
                count(distinct date_bin('1 minute', time, ${ORIGIN})) as minutes
         from scd30_measurements where sensor_id = $1 and time >= $2 and time < $3`
      : `select count(*) as count, sum(value) as sum, min(value) as min, max(value) as max,
                count(distinct date_bin('1 minute', time, ${ORIGIN})) as minutes
         from measurements where sensor_id = $1 and metric_type = '${metric}'
           and time >= $2 and time < $3`;
    const { rows: [r] } = await db.query<Record<string, unknown>>(raw, [id, at, till]);
    const { rows: [u] } = await db.query<Record<string, unknown>>(
      `select count, sum, min, max, minutes from rollup_${res}
       where sensor_id = $1 and metric = $2 and layout = $3 and bucket = $4`,
      [id, metric, layout, at],
    );
    const same = u !== undefined && Number(u.count) === Number(r.count) &&
      Math.abs(Number(u.sum) - Number(r.sum)) <= 1e-9 * Math.abs(Number(r.sum)) &&
      Number(u.min) === Number(r.min) && Number(u.max) === Number(r.max) &&
      Number(u.minutes) === Number(r.minutes);
    if (!same) {
      throw new Error(
        `rollup_${res} of sensor ${id} ${metric} ${layout} at ${at.toISOString()}: ` +
          `${JSON.stringify(u)} differs from raw ${JSON.stringify(r)}`,
      );
    }
    compared++;
  }
  return compared;
}

/**
 * The summary's CO2 and comfort figures computed from raw readings alone (minutes by their
 * average, as `airSummary` counts them), for the comparison.
 */
async function rawAirSummary(db: Queryable, sensorId: number, start: Date, end: Date) {
  const s = new Date(Math.floor(start.getTime() / MINUTE) * MINUTE);
  const e = new Date(Math.ceil(end.getTime() / MINUTE) * MINUTE);
  const rows = await db.sql<
    { metric: string; n: number; min: number; max: number; a: number; b: number; w: number }
  >`
    with m as (
      select date_bin('1 minute', time, timestamptz '2000-01-03T00:00:00Z') as t,
             count(co2) as nc, avg(co2) as co2, min(co2) as lc, max(co2) as hc,
             count(temperature) as nt, avg(temperature) as temp, min(temperature) as lt,
             max(temperature) as ht,
             count(humidity) as nh, avg(humidity) as hum, min(humidity) as lh, max(humidity) as hh
      from scd30_measurements where sensor_id = ${sensorId} and time >= ${s} and time < ${e}
      group by 1
    )
    select 'co2' as metric, sum(nc) as n, min(lc) as min, max(hc) as max,
           count(*) filter (where co2 > 1000) as a, count(*) filter (where co2 > 1400) as b,
           0 as w from m where nc > 0
    union all
    select 'humidity', sum(nh), min(lh), max(hh), count(*) filter (where hum < 40),
           count(*) filter (where hum > 60), count(*) from m where nh > 0
    union all
    select 'temperature', sum(nt), min(lt), max(ht), count(*) filter (where temp < 19),
           count(*) filter (where temp > 23), count(*) from m where nt > 0`;
  return rows.map((r) => {
    const n = Number(r.n), a = Number(r.a), b = Number(r.b), w = Number(r.w);
    if (r.metric === "co2") return [r.metric, n, r.min, r.max, { "1000": a, "1400": b }, undefined];
    const [low, high] = r.metric === "humidity" ? [40, 60] : [19, 23];
    return [r.metric, n, r.min, r.max, undefined, {
      low,
      high,
      below: a,
      within: w - a - b,
      above: b,
    }];
  });
}

/**
 * Messages per second of the batch writer into both layouts with and without the rollup
 * triggers, alternating rounds on one fresh database so both see the same conditions.
 */
async function ingestCost(kind: Db["kind"]): Promise<void> {
  await using db = await withTestDb({ killable: true });
  const writer = createBatchWriter(db, { layouts: ["columnar", "flexible"] });
  const enc = new TextEncoder();
  const batchSize = 5000;
  const rounds = kind === "postgres" ? 6 : 4;
  let next = Date.UTC(2024, 0, 1);
  const batch = () => {
    const out = [];
    for (let i = 0; i < batchSize; i++) {
      const t = next;
      next += 10_000;
      const device = `dev-${i % 20}`;
      out.push(decodeMessage({
        topic: `devices/${device}/sensors/scd30/data`,
        payload: enc.encode(JSON.stringify({
          timestamp: t / 1000,
          value: { co2: 400 + i % 900, temperature: 20 + (i % 50) / 10, humidity: 40 + i % 30 },
        })),
        receivedAt: t + 1000,
      }));
    }
    return out;
  };
  await writer.write(batch()); // creates devices and sensors
  const toggle = (on: boolean) =>
    db.exec(
      ["scd30_measurements", "measurements"].map((t) =>
        `alter table ${t} ${on ? "enable" : "disable"} trigger rollups_after_insert;`
      ).join("\n"),
    );
  const rate = { with: [] as number[], without: [] as number[] };
  for (let r = 0; r < rounds; r++) {
    for (const on of r % 2 === 0 ? [true, false] : [false, true]) {
      await toggle(on);
      const b = batch();
      const t = performance.now();
      await writer.write(b);
      (on ? rate.with : rate.without).push(batchSize / ((performance.now() - t) / 1000));
    }
  }
  await toggle(true);
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const w = median(rate.with), wo = median(rate.without);
  const slower = (1 - w / wo) * 100;
  console.log(
    `ingest (batch writer, both layouts, ${batchSize}-message batches, ${rounds} rounds each): ` +
      `${Math.round(w).toLocaleString("en-US")} msg/s with rollups, ${
        Math.round(wo).toLocaleString("en-US")
      } without → ${slower.toFixed(0)}% slower (target ≤ 15%: ${slower <= 15 ? "met" : "missed"})`,
  );
}

if (import.meta.main) await run(Deno.args);
