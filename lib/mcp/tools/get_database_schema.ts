import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { ident, isValidIdent, type Queryable } from "../../db/mod.ts";
import type { ToolDeps } from "../deps.ts";
import { databaseErrorResult } from "./_error_result.ts";

/** Tables at or below this many estimated rows are counted exactly. */
const EXACT_COUNT_LIMIT = 20_000;

const Column = z.object({
  name: z.string(),
  type: z.string().describe("PostgreSQL type, e.g. timestamp with time zone"),
  nullable: z.boolean(),
  unit: z.string().nullable().describe("Unit of a metric column (from the metrics table)"),
});

const Table = z.object({
  name: z.string(),
  kind: z.enum(["columnar_readings", "flexible_readings", "reference", "events"]),
  description: z.string(),
  primary_key: z.array(z.string()),
  row_count: z.number().describe("Row count; exact unless row_count_is_estimate"),
  row_count_is_estimate: z.boolean(),
  time_range: z.object({ min: z.string().nullable(), max: z.string().nullable() }).nullable()
    .describe("Oldest and newest `time` (ISO 8601, UTC) of a readings table; null for others"),
  columns: z.array(Column),
});

const Metric = z.object({
  sensor_type: z.string(),
  metric: z.string(),
  unit: z.string().nullable(),
  description: z.string().nullable(),
});

/** Structured output of `get_database_schema`. */
export const DatabaseSchemaOutput = {
  tables: z.array(Table).describe("Every table execute_sql_query can read"),
  metrics: z.array(Metric).describe("Known metrics per sensor type with units"),
  hints: z.array(z.string()).describe("How to write correct SQL against these tables"),
};

/** What `loadDatabaseSchema()` returns. */
export type DatabaseSchema = z.infer<z.ZodObject<typeof DatabaseSchemaOutput>>;

const DESCRIPTIONS: Record<string, string> = {
  devices: "One row per ESP32 board: name, location, firmware, status, first/last seen",
  sensors:
    "One row per sensor on a device (device_id, sensor_type); location overrides the device's",
  measurements: "Flexible layout: one row per reading and metric (metric_type, value)",
  metrics: "Unit and description of each metric per sensor type",
  device_events: "History of status changes, errors and capabilities messages per device",
  device_alerts: "Silence-monitor state per device (state, since, notified_at)",
};

const HINTS = [
  "Join readings to devices: `… from scd30_measurements m join sensors s using (sensor_id) join devices d using (device_id)`; the place of a sensor is `coalesce(s.location, d.location)`.",
  "Columnar layout (`<sensor_type>_measurements`): one row per reading, one column per metric, e.g. `select time, co2 from scd30_measurements where sensor_id = 1`.",
  "Flexible layout (`measurements`): one row per metric, e.g. `select time, value from measurements where metric_type = 'co2'`; pivot with `avg(value) filter (where metric_type = 'co2')`. By default the collector writes both layouts with the same readings: query one of them, never add them up.",
  "`time` is timestamptz (UTC). Bucket with `date_bin('15 minutes', time, timestamptz '2000-01-01')` or `date_trunc('hour', time)`; always filter large tables by time, e.g. `time > now() - interval '1 day'`.",
  "Aggregate in SQL (avg/min/max per bucket, percentile_cont … within group) instead of fetching raw rows: results are capped, and analyze_data/create_plot work on the query's CSV.",
  "Units are in `metrics` (sensor_type, metric, unit); sensor_type matches `sensors.sensor_type` and the columnar table prefix.",
];

interface TableRow {
  name: string;
  reltuples: number;
  pk: string[] | null;
}

interface ColumnRow {
  table_name: string;
  name: string;
  type: string;
  nullable: boolean;
}

/**
 * Reads what an assistant needs to write SQL: the tables the `sensor_reader` role may read,
 * columns and types, units, row counts (estimates on large tables), and the time range of
 * readings tables (found through the primary key, so it stays cheap on millions of rows).
 */
export async function loadDatabaseSchema(db: Queryable): Promise<DatabaseSchema> {
  const tables = await db.sql<TableRow>`
    select c.relname as name, c.reltuples::float8 as reltuples,
      (select array_agg(a.attname::text order by k.ord)
         from pg_index i
         cross join lateral unnest(i.indkey) with ordinality as k(attnum, ord)
         join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
        where i.indrelid = c.oid and i.indisprimary) as pk
    from pg_class c
    join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'public' and c.relkind in ('r', 'p', 'v', 'm')
      and case when exists (select from pg_roles where rolname = 'sensor_reader')
               then has_table_privilege('sensor_reader', c.oid, 'SELECT')
               else c.relname not in ('schema_migrations', 'rejected_messages') end
    order by c.relname`;
  const columns = await db.sql<ColumnRow>`
    select c.relname as table_name, a.attname as name,
      format_type(a.atttypid, a.atttypmod) as type, not a.attnotnull as nullable
    from pg_attribute a
    join pg_class c on c.oid = a.attrelid
    join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'public' and a.attnum > 0 and not a.attisdropped
    order by c.relname, a.attnum`;
  const metrics = await db.sql<z.infer<typeof Metric>>`
    select sensor_type, metric, unit, description from metrics order by sensor_type, metric`;
  const units = new Map(metrics.map((m) => [`${m.sensor_type}.${m.metric}`, m.unit]));

  const out: DatabaseSchema["tables"] = [];
  for (const t of tables) {
    if (!isValidIdent(t.name)) continue; // created outside the product; not addressable safely
    const cols = columns.filter((c) => c.table_name === t.name);
    const names = new Set(cols.map((c) => c.name));
    const readings = names.has("time") && names.has("sensor_id");
    const columnarType = readings && t.name !== "measurements"
      ? t.name.replace(/_measurements$/, "")
      : undefined;
    const kind = !readings
      ? (t.name === "device_events" ? "events" : "reference")
      : t.name === "measurements"
      ? "flexible_readings"
      : "columnar_readings";
    const { count, estimate } = await rowCount(db, t.name, t.reltuples);
    out.push({
      name: t.name,
      kind,
      description: DESCRIPTIONS[t.name] ??
        (columnarType
          ? `Columnar layout for ${columnarType} sensors: one row per reading, one column per metric`
          : `Table ${t.name}`),
      primary_key: t.pk ?? [],
      row_count: count,
      row_count_is_estimate: estimate,
      time_range: readings ? await timeRange(db, t.name, t.pk ?? [], count) : null,
      columns: cols.map((c) => ({
        name: c.name,
        type: c.type,
        nullable: c.nullable,
        unit: columnarType ? units.get(`${columnarType}.${c.name}`) ?? null : null,
      })),
    });
  }
  return { tables: out, metrics, hints: HINTS };
}

async function rowCount(
  db: Queryable,
  table: string,
  reltuples: number,
): Promise<{ count: number; estimate: boolean }> {
  if (reltuples > EXACT_COUNT_LIMIT) return { count: Math.round(reltuples), estimate: true };
  // reltuples is -1 (never analysed) or 0 (fresh table, hypertable parent) until ANALYZE runs,
  // and may be stale: count small tables exactly, and ask the planner about the others.
  const t = ident(table);
  const [r] = await db.sql<{ n: number }>`
    select count(*)::int as n from (select 1 from ${t} limit ${EXACT_COUNT_LIMIT + 1}) x`;
  if (r.n <= EXACT_COUNT_LIMIT) return { count: r.n, estimate: false };
  const [plan] = await db.sql<{ "QUERY PLAN": unknown }>`explain (format json) select 1 from ${t}`;
  let planned = 0;
  try {
    const p = plan["QUERY PLAN"];
    const json = (typeof p === "string" ? JSON.parse(p) : p) as { Plan: { "Plan Rows": number } }[];
    planned = Number(json[0].Plan["Plan Rows"]) || 0;
  } catch {
    // an unexpected plan shape: the capped count below is still a true lower bound
  }
  return { count: Math.max(Math.round(planned), r.n), estimate: true };
}

async function timeRange(
  db: Queryable,
  table: string,
  pk: string[],
  rows: number,
): Promise<{ min: string | null; max: string | null }> {
  if (rows === 0) return { min: null, max: null };
  type Range = { min: Date | string | null; max: Date | string | null };
  const t = ident(table);
  const lead = pk.at(-1) === "time" ? pk.slice(0, -1) : [];
  let r: Range | undefined;
  // Skip scan over the primary key's leading columns: one index probe per sensor (and metric)
  // instead of reading every row, so this stays cheap on millions of readings.
  if (lead.length === 1 && isValidIdent(lead[0])) {
    const a = ident(lead[0]);
    [r] = await db.sql<Range>`
      with recursive k as (
        (select ${a} as k1 from ${t} order by ${a} limit 1)
        union all
        select n.k1 from k cross join lateral (
          select ${a} as k1 from ${t} where ${a} > k.k1 order by ${a} limit 1) n
      )
      select min(x.mn) as min, max(x.mx) as max from k cross join lateral (
        select min(time) as mn, max(time) as mx from ${t} where ${a} = k.k1) x`;
  } else if (lead.length === 2 && lead.every(isValidIdent)) {
    const [a, b] = lead.map((c) => ident(c));
    [r] = await db.sql<Range>`
      with recursive k as (
        (select ${a} as k1, ${b} as k2 from ${t} order by ${a}, ${b} limit 1)
        union all
        select n.k1, n.k2 from k cross join lateral (
          select ${a} as k1, ${b} as k2 from ${t}
          where (${a}, ${b}) > (k.k1, k.k2) order by ${a}, ${b} limit 1) n
      )
      select min(x.mn) as min, max(x.mx) as max from k cross join lateral (
        select min(time) as mn, max(time) as mx from ${t} where ${a} = k.k1 and ${b} = k.k2) x`;
  } else {
    [r] = await db.sql<Range>`select min(time) as min, max(time) as max from ${t}`;
  }
  return { min: iso(r?.min ?? null), max: iso(r?.max ?? null) };
}

function iso(v: Date | string | null): string | null {
  if (v === null) return null;
  const d = v instanceof Date ? v : new Date(v);
  return Number.isNaN(d.getTime()) ? String(v) : d.toISOString();
}

/** Renders the schema as compact markdown for the text block of the tool result. */
export function formatDatabaseSchema(schema: DatabaseSchema): string {
  const lines: string[] = ["# Database schema (PostgreSQL)", ""];
  for (const t of schema.tables) {
    const count = `${t.row_count_is_estimate ? "~" : ""}${t.row_count.toLocaleString("en-US")}`;
    const range = t.time_range?.min ? `, time ${t.time_range.min} → ${t.time_range.max}` : "";
    lines.push(`## ${t.name} (${count} rows${range})`, t.description);
    if (t.primary_key.length) lines.push(`primary key (${t.primary_key.join(", ")})`);
    for (const c of t.columns) {
      lines.push(
        `- ${c.name} ${c.type}${c.nullable ? "" : " not null"}${c.unit ? ` [${c.unit}]` : ""}`,
      );
    }
    lines.push("");
  }
  lines.push("## Metrics and units");
  for (const m of schema.metrics) {
    lines.push(`- ${m.sensor_type}.${m.metric}: ${m.unit ?? "no unit"}`);
  }
  lines.push("", "## Hints", ...schema.hints.map((h) => `- ${h}`));
  return lines.join("\n");
}

/** Registers `get_database_schema`: tables, columns, types, units, row counts, time ranges. */
export function registerGetDatabaseSchemaTool(server: McpServer, deps: ToolDeps): void {
  server.registerTool("get_database_schema", {
    title: "Database schema",
    description:
      "Describes the sensor database before you write SQL: every table execute_sql_query can read, its columns and PostgreSQL types, the unit of each metric column, row counts (estimates for large tables), the time range of the readings tables, and hints for joins and the two storage layouts (columnar `<type>_measurements` tables and the flexible `measurements` table). Call this first; it is cheap.",
    inputSchema: {},
    outputSchema: DatabaseSchemaOutput,
    annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: false },
  }, async () => {
    let schema: DatabaseSchema;
    try {
      schema = await loadDatabaseSchema(deps.db);
    } catch (error) {
      return databaseErrorResult("get_database_schema", "read the database schema", error);
    }
    return {
      structuredContent: schema,
      content: [{ type: "text", text: formatDatabaseSchema(schema) }],
    };
  });
}
