import type { Queryable } from "../db/mod.ts";

const PURPOSE: Record<string, string> = {
  devices: "one row per ESP32 board",
  sensors: "one row per sensor of a device; sensor_id is used by the measurement tables",
  measurements: "flexible layout: one row per reading and metric (metric_type, value)",
  metrics: "unit and description of each metric of each sensor type",
  device_events: "status, error and capabilities messages of the devices",
  rejected_messages: "MQTT messages the collector could not store, with the reason",
  device_alerts: "monitor state: which devices are silent and since when",
  schema_migrations: "applied migrations (internal)",
  rollup_1m: "per minute, sensor, metric and layout: count, sum, min, max of the readings " +
    "(avg = sum / count); kept up to date on every insert, kept when raw readings expire",
  rollup_1h: "as rollup_1m per hour; minutes = minutes of the hour with a reading",
  rollup_1d: "as rollup_1m per UTC day; minutes = minutes of the day with a reading",
  rollup_sources: "measurement tables whose rollups are kept",
  raw_retention: "per measurement table: raw readings before `before` were removed " +
    "(RAW_RETENTION_DAYS); their rollups remain",
};

/**
 * A compact markdown description of the database for an assistant: every table with its
 * columns, types, approximate row count and purpose, the unit of every metric column, and how the
 * two measurement layouts relate.
 */
export async function describeSchema(db: Queryable): Promise<string> {
  const [columns, tables, metrics] = await Promise.all([
    db.sql<{ table_name: string; column_name: string; data_type: string; is_nullable: string }>`
      select table_name, column_name, data_type, is_nullable
      from information_schema.columns
      where table_schema = current_schema()
      order by table_name, ordinal_position`,
    db.sql<{ table_name: string; rows: number }>`
      select c.relname as table_name, c.reltuples::bigint as rows
      from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = current_schema() and c.relkind in ('r', 'p')`,
    db.sql<
      { sensor_type: string; metric: string; unit: string | null; description: string | null }
    >`
      select sensor_type, metric, unit, description from metrics order by sensor_type, metric`,
  ]);
  // reltuples is -1 until the table is first vacuumed or analyzed: no estimate then.
  const estimate = new Map(
    tables.filter((t) => Number(t.rows) >= 0).map((t) => [t.table_name, Number(t.rows)]),
  );
  const unitOf = new Map(metrics.map((m) => [`${m.sensor_type}/${m.metric}`, m]));
  const byTable = new Map<string, typeof columns>();
  for (const c of columns) byTable.set(c.table_name, [...(byTable.get(c.table_name) ?? []), c]);

  const lines = [
    "# Database schema",
    "",
    "PostgreSQL. Times are `timestamptz` (stored in UTC). Readings are kept in two layouts that " +
    "may both hold the same data (the collector's STORAGE_LAYOUTS setting decides):",
    "- columnar: one table `<sensor_type>_measurements` per sensor type, one column per metric, " +
    "primary key (sensor_id, time) — best for filtering by sensor and time;",
    "- flexible: `measurements(time, sensor_id, metric_type, value)`, primary key " +
    "(sensor_id, metric_type, time).",
    "Join `sensors` (sensor_id → device_id, sensor_type, location) and `devices` for names and " +
    "locations. Row counts below are planner estimates.",
    "",
    "Rollups: `rollup_1m`, `rollup_1h`, `rollup_1d` (sensor_id, metric, layout, bucket, count, " +
    "sum, min, max, minutes) summarise every reading of both layouts (`layout` is 'columnar' or " +
    "'flexible'; pick one, e.g. `layout = 'columnar'`). Buckets start on whole UTC minutes, hours " +
    "and days. They equal the aggregates of the raw rows they cover, so for long periods query " +
    "them instead of the raw tables: avg over several buckets = sum(sum) / sum(count), " +
    "min(min), max(max). They also hold periods whose raw readings retention removed.",
  ];
  for (const [table, cols] of byTable) {
    const rows = estimate.get(table);
    const type = table.endsWith("_measurements") ? table.slice(0, -"_measurements".length) : "";
    const purpose = PURPOSE[table] ??
      (type ? `columnar readings of ${type} sensors, one column per metric` : "");
    lines.push(
      "",
      `## ${table}${rows !== undefined ? ` (~${rows.toLocaleString("en-US")} rows)` : ""}`,
    );
    if (purpose) lines.push(purpose);
    for (const c of cols) {
      const m = type ? unitOf.get(`${type}/${c.column_name}`) : undefined;
      const note = m ? ` — ${[m.unit, m.description].filter(Boolean).join(", ")}` : "";
      lines.push(
        `- ${c.column_name} ${c.data_type}${c.is_nullable === "NO" ? " not null" : ""}${note}`,
      );
    }
  }
  lines.push("", "## Metrics and units", "", "| sensor_type | metric | unit | description |");
  lines.push("|---|---|---|---|");
  for (const m of metrics) {
    lines.push(`| ${m.sensor_type} | ${m.metric} | ${m.unit ?? ""} | ${m.description ?? ""} |`);
  }
  return lines.join("\n") + "\n";
}
