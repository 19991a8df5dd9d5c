/**
 * Dashboard benchmark: 50 devices (an SCD30 and a BMP280 each) with 10,000,000 readings in the
 * columnar tables (BENCH_DASHBOARD_ROWS to change it), served by the real HTTP handler on a free
 * port. Prints how long seeding took, the p50 of each data endpoint over HTTP (target 30 ms) and
 * the time from navigation to a complete page in headless Chromium (every device drawn, its
 * sparklines and the history chart; target 1 s), cold and warm. PostgreSQL when DATABASE_URL is
 * set (a fresh database, dropped after), else the embedded worker-backed PGlite.
 *
 * @module
 */
import { loadServeConfig } from "../lib/config/mod.ts";
import type { Queryable } from "../lib/db/mod.ts";
import { withTestDb } from "../lib/db/testing.ts";
import { createDashboardHandler } from "../lib/dashboard/mod.ts";
import { createHttpHandler } from "../lib/mcp/mod.ts";
import { Browser, chromiumAvailable } from "../tests/fixtures/cdp_browser.ts";
import { tempResults } from "../tests/fixtures/readings_results.ts";
import { type Timings, timings } from "./_stats.ts";

const DEVICES = 50;
const RUNS = 30;
const WARMUP = 3;
const ENDPOINT_TARGET_MS = 30;
const PAGE_TARGET_MS = 1000;

/** 75 % of the rows in scd30 (every 60 s), 25 % in bmp280 (every 180 s), ending a minute ago. */
export async function seed(db: Queryable, rows: number, now: Date): Promise<void> {
  const t0 = new Date(Math.floor(now.getTime() / 60_000) * 60_000 - 60_000);
  const scdPer = Math.floor(rows * 0.75 / DEVICES);
  const bmpPer = Math.floor(rows * 0.25 / DEVICES);
  await db.sql`
    insert into devices (device_id, device_name, location, firmware_version, status, last_seen)
    select 'bench-' || g, 'Board ' || g, 'Room ' || ((g - 1) / 2 + 1), '2.' || (g % 4) || '.0',
           'online', ${t0}
    from generate_series(1, ${DEVICES}) g`;
  await db.sql`
    insert into sensors (sensor_id, device_id, sensor_type, last_seen)
    select g, 'bench-' || g, 'scd30', ${t0} from generate_series(1, ${DEVICES}) g
    union all
    select ${DEVICES} + g, 'bench-' || g, 'bmp280', ${t0} from generate_series(1, ${DEVICES}) g`;
  for (const t of ["scd30", "bmp280"]) {
    await db.exec(`alter table ${t}_measurements drop constraint ${t}_measurements_pkey`);
  }
  for (let s = 1; s <= DEVICES; s++) {
    await db.sql`
      insert into scd30_measurements (time, sensor_id, co2, temperature, humidity)
      select ${t0}::timestamptz - g * interval '60 s', ${s}, 450 + (g * 7 + ${s}) % 1100,
             18 + (g % 60) / 10.0, 35 + g % 30
      from generate_series(0, ${scdPer - 1}::int) g`;
    await db.sql`
      insert into bmp280_measurements (time, sensor_id, pressure, temperature, humidity)
      select ${t0}::timestamptz - g * interval '180 s', ${DEVICES + s}, 990 + (g % 400) / 10.0,
             19 + (g % 40) / 10.0, null
      from generate_series(0, ${bmpPer - 1}::int) g`;
  }
  for (const t of ["scd30", "bmp280"]) {
    await db.exec(`alter table ${t}_measurements add primary key (sensor_id, time)`);
  }
  await db.exec("analyze");
}

/** Runs the dashboard benchmark. */
export async function run(_args: string[]): Promise<void> {
  const rows = Number(Deno.env.get("BENCH_DASHBOARD_ROWS") ?? 10_000_000);
  await using db = await withTestDb({ killable: true });
  await using results = await tempResults();
  const seedStart = performance.now();
  await seed(db, rows, new Date());
  const [{ n }] = await db.sql<{ n: number }>`
    select (select count(*) from scd30_measurements) + (select count(*) from bmp280_measurements)
      as n`;
  console.log(
    `seeded ${Number(n).toLocaleString("en-US")} readings of ${DEVICES} devices on ${db.kind} ` +
      `in ${((performance.now() - seedStart) / 1000).toFixed(1)} s`,
  );

  const loadavg = async () =>
    (await Deno.readTextFile("/proc/loadavg").catch(() => "? ? ?")).split(" ").slice(0, 3)
      .join(" ");
  console.log(`load average after seeding: ${await loadavg()}`);
  const current: { handler?: (req: Request) => Promise<Response> } = {};
  const http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (req) => current.handler!(req),
  );
  const port = http.addr.port;
  const config = loadServeConfig({ PORT: String(port), SANDBOX_ENGINE: "off" });
  // A new handler is a just-started server: its sparkline cache is empty.
  const restart = () =>
    current.handler = createHttpHandler({ db, config, results }, {
      ports: [port],
      routes: createDashboardHandler({ db, config }),
    });
  restart();
  const base = `http://127.0.0.1:${port}`;
  const get = async (path: string) => {
    const r = await fetch(`${base}${path}`);
    const body = await r.text();
    if (!r.ok) throw new Error(`${path}: ${r.status} ${body}`);
    return body;
  };
  const fmt = (t: Timings, target: number) =>
    `p50 ${t.p50.toFixed(1)} ms (${(t.p50 / target).toFixed(2)}x of ${target} ms target), ` +
    `p90 ${t.p90.toFixed(1)} ms`;
  try {
    // Sparklines: the first request reads 250 series from the hourly rollup, later ones share
    // them for a minute. Measured on fresh handlers (empty caches) five times.
    const first = await timings(async () => {
      restart();
      await get("/dashboard/api/sparklines");
    }, { runs: 5 });
    console.log(
      `/dashboard/api/sparklines, first (${DEVICES * 5} series × 24 h, empty cache): ` +
        `p50 ${first.p50.toFixed(1)} ms, p90 ${first.p90.toFixed(1)} ms (5 fresh servers)`,
    );
    const endpoints: [string, string][] = [
      ["overview (50 devices, latest values, events)", "/dashboard/api/overview"],
      ["sparklines (cached)", "/dashboard/api/sparklines"],
      ["history 24 h, the page's first (server picks)", "/dashboard/api/history?range=24h"],
      ["history 24 h", "/dashboard/api/history?sensor_id=1&metric=co2&range=24h"],
      ["history 7 d", "/dashboard/api/history?sensor_id=1&metric=co2&range=7d"],
      ["history 30 d", "/dashboard/api/history?sensor_id=1&metric=co2&range=30d"],
      ["history 1 y", "/dashboard/api/history?sensor_id=1&metric=co2&range=1y"],
    ];
    for (const [label, path] of endpoints) {
      const r = await timings(() => get(path), { runs: RUNS, warmup: WARMUP });
      console.log(`${label} (${RUNS} runs): ${fmt(r, ENDPOINT_TARGET_MS)}`);
    }

    if (!chromiumAvailable()) {
      console.log("first paint: skipped (no /usr/bin/chromium)");
      return;
    }
    await using browser = await Browser.launch();
    const page = await browser.newPage();
    await page.viewport(1280, 900);
    const complete = `document.querySelectorAll("[data-device]").length === ${DEVICES} &&
      document.querySelectorAll("button.metric .spark svg").length === ${DEVICES * 5} &&
      document.querySelector("#h-chart canvas") !== null`;
    const marks: string[] = [];
    const loads: string[] = [];
    const paint = async () => {
      await page.goto("about:blank");
      const start = performance.now();
      await page.goto(`${base}/`);
      await page.waitFor(complete, 30_000, "the complete page", 20);
      const total = performance.now() - start;
      marks.push(
        await page.eval<string>(`performance.getEntriesByType("mark")
          .map((m) => m.name.replace("ambient:", "") + " " + Math.round(m.startTime) + " ms")
          .join(", ")`),
      );
      // What the load cost: requests, bytes over the wire, the HTML's arrival, DOMContentLoaded.
      loads.push(
        await page.eval<string>(`(() => {
        const n = performance.getEntriesByType("navigation")[0];
        const r = performance.getEntriesByType("resource");
        const kb = (r.reduce((a, e) => a + e.transferSize, n.transferSize) / 1024).toFixed(0);
        return (r.length + 1) + " requests, " + kb + " KB transferred, HTML at " +
          Math.round(n.responseEnd) + " ms, DOMContentLoaded " +
          Math.round(n.domContentLoadedEventEnd) + " ms";
      })()`),
      );
      return total;
    };
    restart();
    const cold = await paint();
    const warm = await timings(paint, { runs: 5 });
    console.log(
      `first paint to a complete page, ${DEVICES} devices: first (just-started server, ` +
        `empty browser cache) ${cold.toFixed(0)} ms; ` +
        `then ${fmt(warm, PAGE_TARGET_MS)} (5 loads; checked every 20 ms)`,
    );
    console.log(
      `  in the page (since navigation start), first load: ${marks[0]}; last: ${marks.at(-1)}`,
    );
    console.log(`  first load: ${loads[0]}; last: ${loads.at(-1)}`);
  } finally {
    console.log(`load average at the end: ${await loadavg()}`);
    await http.shutdown();
  }
}

if (import.meta.main) await run(Deno.args);
