import { type Db, type Field, type Queryable, QueryTimeout, type Row } from "../db/mod.ts";
import { guardSql } from "./guard_sql.ts";
import { type Cell, normalizeValue } from "./normalize_value.ts";
import { QueryFailed } from "./query_failed.ts";
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
}

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
const FIRST_FETCH = 1000;
const MAX_FETCH = 10_000;
/** Thrown inside the transaction so that it always rolls back. */
const ROLLBACK = Symbol("rollback");
const SQLSTATE = /^([0-9][0-9A-Z]|HV|P0|XX|F0)[0-9A-Z]{3}$/;

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
 * Throws `SqlRefused` (guard), `QueryTimeout` (time limit) or `QueryFailed` (PostgreSQL's error with
 * SQLSTATE, position and hint); anything else is unexpected and rethrown.
 */
export async function runQuery(db: Db, sql: string, opts: RunQueryOptions): Promise<QueryRows> {
  const guarded = await guardSql(sql);
  const started = performance.now();
  // Db.query() always uses the extended protocol, which refuses a second statement.
  const prefix = guarded.kind === "select" ? `declare ${CURSOR} no scroll cursor for ` : "";
  let result: QueryRows | undefined;
  try {
    await db.transaction(async (tx) => {
      await tx.exec(
        "set transaction read only; set local standard_conforming_strings = on; " +
          "set local cursor_tuple_fraction = 1; set local role sensor_reader",
      );
      const read = guarded.kind === "select"
        ? await readCursor(tx, prefix + guarded.text, opts, started)
        : await readDirect(tx, guarded.text, opts);
      const columns = await describeColumns(tx, read.fields);
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
    if (error !== ROLLBACK) throw translate(error, sql, prefix.length - guarded.offset);
  }
  return result!;
}

interface Read {
  fields: Field[];
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
  let want = Math.min(opts.maxRows + 1, FIRST_FETCH);
  for (;;) {
    const res = await tx.query<Row>(`fetch forward ${want} from ${CURSOR}`);
    if (!acc.fields) acc.setFields(res.fields);
    if (!acc.add(res.rows) || res.rows.length < want) break;
    // The statement timeout applies per FETCH; this bounds the sum of them.
    if (performance.now() - started > opts.timeoutMs) throw new QueryTimeout(opts.timeoutMs);
    want = acc.nextBatch();
  }
  return { fields: acc.fields ?? [], rows: acc.rows, truncated: acc.truncated };
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
function translate(error: unknown, sql: string, shift: number): unknown {
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
    const before = [...sql].slice(0, position - 1 - shift).join("");
    const line = before.split("\n").length;
    const column = before.length - before.lastIndexOf("\n");
    head += ` (line ${line}, column ${column})`;
  }
  const parts = [head];
  if (typeof e.detail === "string" && e.detail) parts.push(`Detail: ${e.detail}`);
  if (typeof e.hint === "string" && e.hint) parts.push(`Hint: ${e.hint}`);
  const advice = ADVICE[e.code] ?? ADVICE[e.code.slice(0, 2)];
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
