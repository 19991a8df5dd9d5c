import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { stringify } from "csv-stringify/sync";
import { z } from "zod";
import { isDbUnavailable, QueryTimeout } from "../../db/mod.ts";
import { logger } from "../../log/mod.ts";
import {
  type Cell,
  QueryBusy,
  QueryFailed,
  type QueryRows,
  runQuery,
  SqlRefused,
} from "../../sql/mod.ts";
import type { ToolDeps } from "../deps.ts";
import { errorResult, unavailableResult } from "./_error_result.ts";

const log = logger("mcp");

/** Result data kept per query at most (also capped by QUERY_CACHE_MAX_MB). */
export const MAX_RESULT_BYTES = 50 * 1024 * 1024;
const PREVIEW_ROWS = 20;
const PREVIEW_CHARS = 60;
// A plan is read as a whole: show more and longer lines of EXPLAIN output.
const PLAN_ROWS = 200;
const PLAN_CHARS = 400;

/** Input of `execute_sql_query`. */
export const ExecuteSqlQueryInput = {
  sql: z.string().max(100_000).describe(
    "One PostgreSQL SELECT statement (WITH … SELECT, VALUES, UNION and EXPLAIN also work). No parameters: write values as literals, e.g. time >= now() - interval '1 day'.",
  ),
};

const PreviewCell = z.union([z.string(), z.number(), z.boolean(), z.null()]);

/** Structured output of `execute_sql_query`. */
export const ExecuteSqlQueryOutput = {
  query_id: z.string().describe(
    "Id of the saved result; pass it to analyze_data or create_plot",
  ),
  row_count: z.number().int().describe("Rows in the saved result (after any truncation)"),
  columns: z.array(z.object({
    name: z.string(),
    type: z.string().describe("PostgreSQL type, e.g. timestamptz, float8, text, int8"),
  })),
  truncated: z.boolean().describe(
    "True when the query returned more rows than the row or size limit and the rest was dropped",
  ),
  preview: z.array(z.array(PreviewCell)).describe(
    `The first ${PREVIEW_ROWS} rows (${PLAN_ROWS} for EXPLAIN) as arrays in column order; long values shortened with …`,
  ),
  csv_url: z.string().describe("Signed, expiring download link of the full result as CSV"),
};

/** Registers `execute_sql_query`: one read-only SELECT, saved as CSV, with a preview. */
export function registerExecuteSqlQueryTool(server: McpServer, deps: ToolDeps): void {
  const { timeoutS, maxRows, cacheTtlH, cacheMaxBytes, workMemMb, tempFileMb, maxMemoryMb } =
    deps.config.query;
  const limits = { workMemMb, tempFileMb, maxMemoryMb };
  const maxBytes = Math.min(MAX_RESULT_BYTES, cacheMaxBytes);
  server.registerTool("execute_sql_query", {
    title: "Run a read-only SQL query",
    description: [
      "Runs one read-only PostgreSQL query (SELECT, WITH … SELECT, VALUES or EXPLAIN) on the sensor database and returns a query_id, the columns with their types, the row count, a preview of the first rows and a signed link to the full result as CSV.",
      "Call get_database_schema first for the exact tables, columns and units (co2 in ppm, temperature in °C, humidity in %RH, pressure in hPa) and list_sensors for sensor ids and locations.",
      "Readings are stored twice: per sensor type with one column per metric (scd30_measurements: time, sensor_id, co2, temperature, humidity; bmp280_measurements: time, sensor_id, pressure, temperature, humidity) and in the long table measurements (time, sensor_id, metric_type, value). Join sensors (sensor_id, device_id, sensor_type, location) and devices (device_id, device_name, location) for names. Times are timestamptz in UTC.",
      "For long time ranges aggregate in SQL (date_bin('15 minutes', time, timestamptz '2000-01-01'), avg/min/max, percentile_cont(0.5) WITHIN GROUP (ORDER BY …)) instead of fetching raw rows.",
      `Limits: one statement per call; nothing can be changed; ${timeoutS} s per query; at most ${maxRows} rows (more are dropped and truncated is true). Results are kept ${cacheTtlH} h.`,
      "Pass query_id to analyze_data (pandas) or create_plot (matplotlib) to work on the full result without sending it again.",
    ].join(" "),
    inputSchema: ExecuteSqlQueryInput,
    outputSchema: ExecuteSqlQueryOutput,
    annotations: {
      title: "Run a read-only SQL query",
      readOnlyHint: true,
      destructiveHint: false,
      idempotentHint: false,
      openWorldHint: false,
    },
  }, async ({ sql }: { sql: string }) => {
    let res: QueryRows;
    try {
      res = await runQuery(deps.db, sql, {
        timeoutMs: timeoutS * 1000,
        maxRows,
        maxBytes,
        limits,
      });
    } catch (error) {
      if (isDbUnavailable(error)) return unavailableResult("execute_sql_query", error);
      return errorResult(queryErrorText(error, timeoutS));
    }
    try {
      const saved = await deps.results.saveCsv(res.columns.map((c) => c.name), res.rows);
      const csvUrl = await deps.results.fileUrl(saved.queryId, "csv");
      const structured = {
        query_id: saved.queryId,
        row_count: saved.rowCount,
        columns: res.columns.map((c) => ({ name: c.name, type: c.type })),
        truncated: res.truncated !== false,
        preview: preview(res),
        csv_url: csvUrl,
      };
      return {
        structuredContent: structured,
        content: [
          {
            type: "text" as const,
            text: summary(structured, res, { maxRows, maxBytes, cacheTtlH }),
          },
          {
            type: "resource_link" as const,
            uri: csvUrl,
            name: `${saved.queryId}.csv`,
            title: `Query result (${saved.rowCount} rows)`,
            mimeType: "text/csv",
            description: `Full result of the query as CSV; the link expires in ${cacheTtlH} h`,
          },
        ],
      };
    } catch (error) {
      log.error("saving a query result failed", { error });
      return errorResult(
        "The query ran, but its result could not be saved on the server (see the server log). Try again, or select fewer rows.",
      );
    }
  });
}

function queryErrorText(error: unknown, timeoutS: number): string {
  if (error instanceof SqlRefused) {
    log.debug("query refused", { rule: error.rule });
    return `Query refused (rule: ${error.rule}). ${error.message}`;
  }
  if (error instanceof QueryTimeout) {
    log.warn("query cancelled at the time limit", { timeoutS });
    return `The query ran longer than the ${timeoutS} s limit (QUERY_TIMEOUT_S) and was cancelled; nothing was changed. Make it cheaper: restrict the time range (WHERE time >= now() - interval '1 day'), aggregate into time buckets with date_bin, avoid cross joins, or add LIMIT.`;
  }
  if (error instanceof QueryBusy) {
    log.warn("query refused: too many running", {});
    return error.message;
  }
  if (error instanceof QueryFailed) {
    return `${error.message.replace(/\.?$/, ".")} Fix the query and send it again.`;
  }
  log.error("execute_sql_query failed unexpectedly", { error });
  return "The query could not be run because of a problem on the server (the database may be unavailable; details are in the server log). Try again in a moment.";
}

/** The first rows with scalars as they are and long text or arrays shortened. */
function preview(res: QueryRows): z.infer<typeof PreviewCell>[][] {
  const [rows, chars] = res.kind === "explain"
    ? [PLAN_ROWS, PLAN_CHARS]
    : [PREVIEW_ROWS, PREVIEW_CHARS];
  const shorten = (cell: Cell): z.infer<typeof PreviewCell> => {
    if (cell === null || typeof cell === "number" || typeof cell === "boolean") return cell;
    const text = typeof cell === "string" ? cell : JSON.stringify(cell);
    return text.length > chars ? `${text.slice(0, chars - 1)}…` : text;
  };
  return res.rows.slice(0, rows).map((r) => r.map(shorten));
}

function summary(
  s: { query_id: string; row_count: number; columns: { name: string; type: string }[] } & {
    preview: z.infer<typeof PreviewCell>[][];
    csv_url: string;
  },
  res: QueryRows,
  limits: { maxRows: number; maxBytes: number; cacheTtlH: number },
): string {
  const lines: string[] = [];
  const size = `${s.row_count} row${s.row_count === 1 ? "" : "s"} × ${s.columns.length} column${
    s.columns.length === 1 ? "" : "s"
  } in ${Math.round(res.elapsedMs)} ms`;
  if (res.truncated === "rows") {
    lines.push(
      `${size}. TRUNCATED: the query returned more than ${limits.maxRows} rows (QUERY_MAX_ROWS); only the first ${limits.maxRows} were kept. Aggregate or filter in SQL to see everything.`,
    );
  } else if (res.truncated === "bytes") {
    lines.push(
      `${size}. TRUNCATED: the result passed the ${
        Math.round(limits.maxBytes / 1024 / 1024)
      } MB size limit; only the first ${s.row_count} rows were kept. Select fewer or narrower columns, or aggregate.`,
    );
  } else {
    lines.push(`${size} (complete).`);
  }
  lines.push(
    `query_id: ${s.query_id} (use with analyze_data or create_plot; kept ${limits.cacheTtlH} h)`,
  );
  lines.push(`Columns: ${s.columns.map((c) => `${c.name} (${c.type})`).join(", ")}`);
  if (s.preview.length > 0) {
    const shown = s.preview.length < s.row_count
      ? `First ${s.preview.length} of ${s.row_count} rows`
      : "Rows";
    lines.push(`${shown}:`);
    const table = stringify([s.columns.map((c) => c.name), ...s.preview], {
      cast: { boolean: (b: boolean) => String(b) },
    });
    lines.push(table.trimEnd());
  } else {
    lines.push("No rows.");
  }
  lines.push(`CSV: ${s.csv_url}`);
  return lines.join("\n");
}
