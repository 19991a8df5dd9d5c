import { type Db, type Field, type Queryable, QueryTimeout, type Row } from "../db/mod.ts";
import { type GuardResult, guardSql } from "./guard_sql.ts";
import { lineColumn } from "./_line_column.ts";
import { type Cell, normalizeValue } from "./normalize_value.ts";
import { QueryFailed } from "./query_failed.ts";
import { QuerySlots } from "./_query_slots.ts";
import {
  DEFAULT_LIMITS,
  limitStatements,
  type ResourceLimits,
  watchMemory,
} from "./_resource_limits.ts";
import { SqlRefused } from "./sql_refused.ts";
import { typeName } from "./type_name.ts";

/** Limits of `runQuery`. */
export interface RunQueryOptions {
  /** Wall-clock limit for the whole query, in milliseconds (`QUERY_TIMEOUT_S`). */
  timeoutMs: number;
  /** Rows kept at most (`QUERY_MAX_ROWS`); more set `truncated`. */
  maxRows: number;
  /** Approximate bytes of cell data kept at most; more set `truncated`. */
  maxBytes: number;
  /** Memory and temporary-file bounds on the database side (default `DEFAULT_LIMITS`). */
  limits?: Partial<ResourceLimits>;
}

/**
 * Untrusted queries running at once per database, and how many more may wait. The PostgreSQL pool
 * holds 10 connections: runaway queries (each up to QUERY_TIMEOUT_S) must leave most of them to
 * the other tools, the collector and the monitor.
 */
export const QUERY_SLOTS = { maxRunning: 4, maxWaiting: 16 };
const slots = new WeakMap<Db, QuerySlots>();

/** A result column. */
export interface QueryColumn {
  name: string;
  /** PostgreSQL type OID. */
  typeId: number;
  /** Short type name: `timestamptz`, `float8`, `text`, … */
  type: string;
}

/** What `runQuery` read. */
export interface QueryRows {
  /** What ran: a query, or EXPLAIN (one text column "QUERY PLAN"). */
  kind: "select" | "explain";
  columns: QueryColumn[];
  /** Rows as arrays of JSON-safe cells, in column order. */
  rows: Cell[][];
  /** Why rows were left out, or false when the result is complete. */
  truncated: false | "rows" | "bytes";
  elapsedMs: number;
}

const CURSOR = "ambient_result";
// One row first: its width sizes the next batches, so a batch stays near the byte cap and the
// database-side cap (see cursorQuery) only trips on rows far wider than those before them.
const FIRST_FETCH = 1;
const MAX_FETCH = 10_000;
/** Thrown inside the transaction so that it always rolls back. */
const ROLLBACK = Symbol("rollback");
const SQLSTATE = /^([0-9][0-9A-Z]|HV|P0|XX|F0)[0-9A-Z]{3}$/;
/** Running total of the result's size, computed by PostgreSQL next to every row. */
const BYTES_COLUMN = "__ambient_result_bytes";
/** Raised by PostgreSQL (as a failed integer cast) when that total passes the database-side cap. */
const TOO_LARGE = "ambient: result too large";

/**
 * The cursor's query: the statement wrapped so that PostgreSQL keeps a running total of the row
 * sizes and fails as soon as it passes `limit` bytes. Rows keep their order (no sort is added);
 * the row and byte caps in JavaScript still decide what is kept. Without this a single huge value
 * (`repeat('x', 5e8)`) or a batch of wide rows would be loaded into the server's memory whole.
 */
function cursorQuery(limit: number): { head: string; tail: string } {
  return {
    head: `declare ${CURSOR} no scroll cursor for select * from (select ambient_q.*, ` +
      `sum(pg_column_size(ambient_q.*)) over (rows unbounded preceding) as ${BYTES_COLUMN} ` +
      "from (\n",
    tail: `\n) ambient_q) ambient_w where case when ${BYTES_COLUMN} > ${limit} ` +
      `then ('${TOO_LARGE} ' || ${BYTES_COLUMN})::int8 = 0 else true end`,
  };
}

function sizeText(bytes: number): string {
  return bytes >= 1048576 ? `${Math.round(bytes / 1048576)} MB` : `${Math.ceil(bytes / 1024)} KB`;
}

function isTooLarge(error: unknown): boolean {
  const message = (error as { message?: unknown })?.message;
  return typeof message === "string" && message.includes(TOO_LARGE);
}

/**
 * Runs one read-only query from an untrusted source, in layers: (1) `guardSql` (one plain SELECT
 * or EXPLAIN of one, nothing denied anywhere in the tree); (2) the statement goes alone over the
 * extended protocol, which refuses a second statement; (3) a transaction that is `READ ONLY`, runs
 * `SET LOCAL ROLE sensor_reader` with a `statement_timeout` (`Db.transaction`'s `timeoutMs`), and is
 * always rolled back; (4) rows are read through a cursor in batches sized to what is left of the
 * caps, and reading stops at `maxRows` or `maxBytes`, so an oversized result is never loaded whole
 * (PostgreSQL stops producing it when the cursor is dropped at rollback). A SELECT is run as
 * `DECLARE … CURSOR FOR <statement>` (which keeps its ORDER BY and semantics); EXPLAIN output is
 * read directly.
 *
 * At most `QUERY_SLOTS.maxRunning` queries run at once per database; more wait, and past
 * `maxWaiting` waiting ones `QueryBusy` is thrown.
 *
 * Throws `SqlRefused` (guard), `QueryBusy`, `QueryTimeout` (time limit) or `QueryFailed`
 * (PostgreSQL's error with SQLSTATE, position and hint); anything else is unexpected and rethrown.
 */
export async function runQuery(db: Db, sql: string, opts: RunQueryOptions): Promise<QueryRows> {
  const guarded = await guardSql(sql);
  let gate = slots.get(db);
  if (!gate) slots.set(db, gate = new QuerySlots(QUERY_SLOTS));
  const release = await gate.acquire();
  try {
    return await runGuarded(db, sql, guarded, opts);
  } finally {
    release();
  }
}

async function runGuarded(
  db: Db,
  sql: string,
  guarded: GuardResult,
  opts: RunQueryOptions,
): Promise<QueryRows> {
  const started = performance.now();
  // Db.query() always uses the extended protocol, which refuses a second statement.
  // PostgreSQL's own sizes differ a little from the JavaScript estimate: the database-side cap
  // is looser, so the byte cap below normally decides and reports a truncation.
  const wrap = cursorQuery(Math.ceil(opts.maxBytes * 1.5) + 65_536);
  const prefix = guarded.kind === "select" ? wrap.head : "";
  const limits = { ...DEFAULT_LIMITS, ...opts.limits };
  const bounds = await limitStatements(db, limits);
  let result: QueryRows | undefined;
  let overMemory = false;
  try {
    await db.transaction(async (tx) => {
      await tx.exec(
        "set transaction read only; set local standard_conforming_strings = on; " +
          `set local cursor_tuple_fraction = 1; ${bounds}; set local role sensor_reader`,
      );
      const watch = await watchMemory(db, tx, limits.maxMemoryMb);
      let read: Read;
      try {
        read = guarded.kind === "select"
          ? await readCursor(tx, prefix + guarded.text + wrap.tail, opts, started)
          : await readDirect(tx, guarded.text, opts);
      } finally {
        overMemory = await watch.stop();
      }
      const columns = read.columns ?? await describeColumns(tx, read.fields);
      result = {
        kind: guarded.kind,
        columns,
        rows: read.rows,
        truncated: read.truncated,
        elapsedMs: performance.now() - started,
      };
      throw ROLLBACK;
    }, { timeoutMs: opts.timeoutMs });
  } catch (error) {
    if (overMemory && error !== ROLLBACK) {
      throw new QueryFailed(
        `The query used more than ${limits.maxMemoryMb} MB of memory on the database server and was stopped (values that grow without bound, e.g. a recursive CTE doubling a text or JSON value, or huge aggregates). Bound the recursion (WHERE depth < n), aggregate less per row or select less.`,
        "53200",
        { cause: error },
      );
    }
    if (error !== ROLLBACK) {
      throw translate(error, sql, prefix.length - guarded.offset, limits);
    }
  }
  return result!;
}

interface Read {
  fields: Field[];
  /** Described while the transaction could still run queries (see readCursor). */
  columns?: QueryColumn[];
  rows: Cell[][];
  truncated: QueryRows["truncated"];
}

async function readCursor(
  tx: Queryable,
  declare: string,
  opts: RunQueryOptions,
  started: number,
): Promise<Read> {
  await tx.query(declare);
  const acc = new Accumulator(opts);
  let columns: QueryColumn[] | undefined;
  let want = Math.min(opts.maxRows + 1, FIRST_FETCH);
  for (;;) {
    let res;
    try {
      res = await tx.query<Row>(`fetch forward ${want} from ${CURSOR}`);
    } catch (error) {
      if (!isTooLarge(error)) throw error;
      if (!columns) {
        throw new QueryFailed(
          `The first rows of the result are larger than the ${
            sizeText(opts.maxBytes)
          } limit (very long text, arrays or JSON values). Select fewer or narrower columns, shorten values (left(col, 1000)) or aggregate less per row.`,
          "54000",
          { cause: error },
        );
      }
      // The transaction is aborted now; what was read so far is kept as a truncated result.
      acc.truncated = "bytes";
      break;
    }
    if (!acc.fields) {
      acc.setFields(res.fields.filter((f) => f.name !== BYTES_COLUMN));
      columns = await describeColumns(tx, acc.fields!);
    }
    if (!acc.add(res.rows) || res.rows.length < want) break;
    // The statement timeout applies per FETCH; this bounds the sum of them.
    if (performance.now() - started > opts.timeoutMs) throw new QueryTimeout(opts.timeoutMs);
    want = acc.nextBatch();
  }
  return { fields: acc.fields ?? [], columns, rows: acc.rows, truncated: acc.truncated };
}

async function readDirect(
  tx: Queryable,
  text: string,
  opts: RunQueryOptions,
): Promise<Read> {
  const res = await tx.query<Row>(text);
  const acc = new Accumulator(opts);
  acc.setFields(res.fields);
  acc.add(res.rows);
  return { fields: res.fields, rows: acc.rows, truncated: acc.truncated };
}

/** Collects rows as cells up to the row and byte caps. */
class Accumulator {
  fields: Field[] | undefined;
  rows: Cell[][] = [];
  truncated: QueryRows["truncated"] = false;
  #bytes = 0;
  #opts: RunQueryOptions;

  constructor(opts: RunQueryOptions) {
    this.#opts = opts;
  }

  setFields(fields: Field[]) {
    const seen = new Set<string>();
    for (const f of fields) {
      if (seen.has(f.name)) {
        const unnamed = f.name === "?column?"
          ? " (expressions without a name are all called ?column?)"
          : "";
        throw new SqlRefused(
          "column-names",
          `The result has more than one column named "${f.name}"${unnamed}: give each column a distinct name with AS, e.g. \`s.device_id AS sensor_device\`.`,
        );
      }
      seen.add(f.name);
    }
    this.fields = fields;
  }

  /** Adds rows; false once a cap is reached. */
  add(batch: Row[]): boolean {
    const fields = this.fields!;
    for (const row of batch) {
      if (this.rows.length >= this.#opts.maxRows) {
        this.truncated = "rows";
        return false;
      }
      const cells = fields.map((f) => normalizeValue(row[f.name], f.typeId));
      const size = rowBytes(cells);
      if (this.#bytes + size > this.#opts.maxBytes) {
        this.truncated = "bytes";
        return false;
      }
      this.#bytes += size;
      this.rows.push(cells);
    }
    return true;
  }

  /** Rows to fetch next: what is left of the row cap, fewer when rows are wide. */
  nextBatch(): number {
    const left = this.#opts.maxRows + 1 - this.rows.length;
    const perRow = Math.max(1, this.#bytes / Math.max(1, this.rows.length));
    const fit = Math.floor((this.#opts.maxBytes - this.#bytes) / perRow) + 1;
    return Math.max(1, Math.min(left, fit, MAX_FETCH));
  }
}

function rowBytes(cells: Cell[]): number {
  let n = 0;
  for (const c of cells) {
    if (typeof c === "string") n += c.length + 1;
    else if (typeof c === "number") n += 12;
    else if (c === null || typeof c === "boolean") n += 5;
    else n += JSON.stringify(c).length + 1;
  }
  return n;
}

/** Names for the result's type OIDs; unknown ones (enums, domains) are looked up once. */
async function describeColumns(tx: Queryable, fields: Field[]): Promise<QueryColumn[]> {
  const unknown = [...new Set(fields.map((f) => f.typeId).filter((t) => !typeName(t)))];
  const looked = new Map<number, string>();
  if (unknown.length > 0) {
    const rows = await tx.sql<{ oid: number; name: string }>`
      select oid::int4 as oid, format_type(oid, null) as name
      from pg_catalog.pg_type where oid::text = any(string_to_array(${unknown.join(",")}, ','))`;
    for (const r of rows) looked.set(Number(r.oid), r.name);
  }
  return fields.map((f) => ({
    name: f.name,
    typeId: f.typeId,
    type: typeName(f.typeId) ?? looked.get(f.typeId) ?? `oid ${f.typeId}`,
  }));
}

/** PostgreSQL errors become `QueryFailed` with a position in the user's own SQL. */
function translate(
  error: unknown,
  sql: string,
  shift: number,
  limits: ResourceLimits,
): unknown {
  if (error instanceof QueryTimeout || error instanceof SqlRefused) return error;
  const e = error as {
    code?: unknown;
    message?: unknown;
    detail?: unknown;
    hint?: unknown;
    position?: unknown;
  };
  if (typeof e?.code !== "string" || !SQLSTATE.test(e.code)) return error;
  let head = `PostgreSQL error ${e.code}: ${String(e.message ?? "unknown error")}`;
  const position = Number(e.position);
  // `position` is 1-based in the text sent; `shift` maps it back onto the user's SQL.
  if (Number.isInteger(position) && position - 1 - shift >= 0) {
    head += lineColumn(sql, position - 1 - shift);
  }
  const parts = [head];
  if (typeof e.detail === "string" && e.detail) parts.push(`Detail: ${e.detail}`);
  if (typeof e.hint === "string" && e.hint) parts.push(`Hint: ${e.hint}`);
  const advice = e.code === "53400" && /temp_file_limit/.test(String(e.message))
    ? `The query needed more than the ${limits.tempFileMb} MB of temporary disk space allowed per query (large sorts, hashes or recursive CTEs spill to disk): filter by time, aggregate (date_bin, avg) or add LIMIT.`
    : ADVICE[e.code] ?? ADVICE[e.code.slice(0, 2)];
  if (advice) parts.push(advice);
  const text = parts.map((p) => p.replace(/\.$/, "")).join(". ") + ".";
  return new QueryFailed(text, e.code, { cause: error });
}

const ADVICE: Record<string, string> = {
  "42501":
    "Queries run as the read-only role sensor_reader, which can read the tables get_database_schema lists.",
  "25006": "This tool is read-only: only SELECT queries run here.",
  "42P01": "Call get_database_schema to see the tables and their exact names.",
  "42703": "Call get_database_schema to see the columns of each table.",
  "42883": "Check the function's name and argument types (cast arguments, e.g. value::float8).",
  "22": "Check the values and casts in the query.",
};
