import { parse } from "libpg-query";
import { deniedFunction } from "./_denied_functions.ts";
import { lineColumn } from "./_line_column.ts";
import { SqlRefused } from "./sql_refused.ts";

/** A statement the guard accepted. */
export interface GuardResult {
  /** `select` for SELECT / WITH … SELECT / VALUES / set operations / TABLE; `explain` for EXPLAIN. */
  kind: "select" | "explain";
  /** True for `EXPLAIN ANALYZE`, which executes the query (still read-only and time-limited). */
  analyze: boolean;
  /** The one statement's text exactly as parsed, without a trailing semicolon or comment. */
  text: string;
  /** Where `text` starts in the SQL given, in characters (for error positions). */
  offset: number;
}

const ALLOWED = "Only SELECT (also WITH … SELECT, VALUES, UNION/INTERSECT/EXCEPT, TABLE) and " +
  "EXPLAIN of a SELECT can run here.";

const STATEMENT_ADVICE: Record<string, string> = {
  TransactionStmt:
    "BEGIN/COMMIT/ROLLBACK are not needed: every query runs in its own read-only transaction, which is always rolled back.",
  VariableSetStmt:
    "SET/RESET change session settings and roles, which this tool does not allow. Remove the SET statement.",
  VariableShowStmt: "SHOW is not allowed; use SELECT current_setting('name') instead.",
  DoStmt: "DO blocks run procedural code, which this tool does not allow. Write a SELECT instead.",
  CopyStmt:
    "COPY reads or writes files and programs, which this tool does not allow. Run the SELECT itself; its result is saved as CSV for you.",
  InsertStmt: "INSERT changes data; this tool is read-only.",
  UpdateStmt: "UPDATE changes data; this tool is read-only.",
  DeleteStmt: "DELETE changes data; this tool is read-only.",
  MergeStmt: "MERGE changes data; this tool is read-only.",
  CallStmt: "CALL runs procedures, which this tool does not allow.",
  CreateTableAsStmt:
    "CREATE TABLE AS writes a table; this tool is read-only. Run the SELECT on its own.",
  ExecuteStmt: "EXECUTE runs prepared statements, which this tool does not allow.",
  PrepareStmt: "PREPARE is not allowed; send the SELECT itself.",
  DeclareCursorStmt: "Cursors are not needed: send the SELECT itself (rows are capped for you).",
  LockStmt: "LOCK takes locks, which this tool does not allow.",
};

const LOCK_NAMES: Record<string, string> = {
  LCS_FORKEYSHARE: "FOR KEY SHARE",
  LCS_FORSHARE: "FOR SHARE",
  LCS_FORNOKEYUPDATE: "FOR NO KEY UPDATE",
  LCS_FORUPDATE: "FOR UPDATE",
};

const MODIFYING = new Set(["InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"]);

type Node = Record<string, unknown>;

/**
 * The first layer of read-only SQL: parses `sql` with PostgreSQL's own parser (libpg-query) and
 * accepts exactly one plain SELECT (or WITH … SELECT, VALUES, a set operation, TABLE) or EXPLAIN
 * of one. The whole tree is walked: data-modifying CTEs, SELECT INTO, locking clauses, parameters
 * and calls of denied functions (`pg_sleep`, `pg_read_file`, `lo_*`, `dblink*`, `set_config`, …)
 * are refused wherever they appear, schema-qualified or quoted. `EXPLAIN ANALYZE` is accepted: it
 * executes the query, but inside the same read-only, time-limited, rolled-back transaction as any
 * other query. Throws `SqlRefused` naming the rule and how to rewrite the query.
 */
export async function guardSql(sql: string): Promise<GuardResult> {
  if (sql.trim() === "") {
    throw new SqlRefused("empty", "The query is empty: send one SELECT statement.");
  }
  let tree: { stmts?: { stmt?: Node; stmt_location?: number; stmt_len?: number }[] };
  try {
    tree = await parse(sql) as typeof tree;
  } catch (error) {
    throw syntaxError(sql, error);
  }
  const stmts = tree.stmts ?? [];
  if (stmts.length === 0) {
    throw new SqlRefused("empty", "The query has no statement (only comments): send one SELECT.");
  }
  if (stmts.length > 1) {
    throw new SqlRefused(
      "one-statement",
      `Only one statement per call: send them one at a time (found ${stmts.length}).`,
    );
  }
  const { stmt = {}, stmt_location = 0, stmt_len = 0 } = stmts[0];
  const [kind, body] = Object.entries(stmt)[0] ?? ["unknown", {}];
  let result: GuardResult["kind"];
  let analyze = false;
  if (kind === "SelectStmt") {
    result = "select";
  } else if (kind === "ExplainStmt") {
    const explain = body as Node;
    const inner = Object.keys((explain.query ?? {}) as Node)[0] ?? "unknown";
    if (inner !== "SelectStmt") throw refuseKind(inner, "EXPLAIN of ");
    result = "explain";
    analyze = ((explain.options ?? []) as Node[]).some((o) => {
      const d = o.DefElem as { defname?: string; arg?: { String?: { sval?: string } } };
      const value = d?.arg?.String?.sval?.toLowerCase();
      return d?.defname === "analyze" && !["false", "off", "0"].includes(value ?? "");
    });
  } else {
    throw refuseKind(kind, "");
  }
  try {
    walk(body);
  } catch (error) {
    if (error instanceof RangeError) throw syntaxError(sql, error);
    throw error;
  }
  return { kind: result, analyze, ...statementText(sql, stmt_location, stmt_len) };
}

function refuseKind(kind: string, prefix: string): SqlRefused {
  const advice = STATEMENT_ADVICE[kind] ??
    `${prefix}${kind.replace(/Stmt$/, "").replace(/([a-z])([A-Z])/g, "$1 $2").toUpperCase()} ` +
      "statements are not allowed.";
  const rule = MODIFYING.has(kind) ? "data-modifying" : "statement-kind";
  return new SqlRefused(rule, `${prefix ? `${prefix}this statement: ` : ""}${advice} ${ALLOWED}`);
}

/** Walks every node; throws on the first forbidden construct. */
function walk(node: unknown): void {
  if (Array.isArray(node)) {
    for (const child of node) walk(child);
    return;
  }
  if (typeof node !== "object" || node === null) return;
  for (const [key, value] of Object.entries(node as Node)) {
    if (MODIFYING.has(key)) {
      const verb = key.replace("Stmt", "").toUpperCase();
      throw new SqlRefused(
        "data-modifying",
        `A data-modifying ${verb} inside the query (e.g. in WITH) is not allowed: this tool is read-only. Use only SELECT in WITH clauses.`,
      );
    }
    if (key === "intoClause" && value) {
      throw new SqlRefused(
        "select-into",
        "SELECT … INTO creates a table: remove the INTO clause (the result is saved as CSV for you).",
      );
    }
    if (key === "lockingClause" && Array.isArray(value) && value.length > 0) {
      const strength = ((value[0] as Node).LockingClause as { strength?: string })?.strength;
      const name = LOCK_NAMES[strength ?? ""] ?? "FOR UPDATE/SHARE";
      throw new SqlRefused(
        "locking",
        `SELECT … ${name} locks rows: remove the locking clause.`,
      );
    }
    if (key === "ParamRef") {
      throw new SqlRefused(
        "parameters",
        "Parameters ($1, $2, …) cannot be bound here: write the values into the query as literals.",
      );
    }
    if (key === "FuncCall") checkFunction(value as Node);
    // PostgreSQL also calls f(x) when written x.f or (x).f ("attribute notation").
    if (key === "ColumnRef") checkAttribute((value as Node).fields, 2);
    if (key === "A_Indirection") checkAttribute((value as Node).indirection, 1);
    if (key.endsWith("Stmt") && key !== "SelectStmt") throw refuseKind(key, "");
    walk(value);
  }
}

function checkFunction(call: Node): void {
  const parts = ((call.funcname ?? []) as Node[]).map((p) =>
    String((p.String as { sval?: string })?.sval ?? "")
  );
  const name = parts.at(-1) ?? "";
  const why = deniedFunction(name);
  if (why) {
    throw new SqlRefused(
      "denied-function",
      `${name} is not allowed (it ${why}). Remove the call${
        name.toLowerCase().startsWith("pg_sleep") ? "" : " and compute the result in plain SQL"
      }.`,
    );
  }
}

function checkAttribute(parts: unknown, min: number): void {
  if (!Array.isArray(parts) || parts.length < min) return;
  for (const p of parts.slice(min - 1)) {
    const name = (p as Node)?.String as { sval?: string } | undefined;
    if (name?.sval === undefined) continue;
    const why = deniedFunction(name.sval);
    if (why) {
      throw new SqlRefused(
        "denied-function",
        `.${name.sval} calls the function ${name.sval}, which is not allowed (it ${why}). If it is a column, refer to it without the table or parenthesised prefix.`,
      );
    }
  }
}

/** The statement's own text; libpg-query reports byte offsets into the UTF-8 encoding. */
function statementText(
  sql: string,
  location: number,
  length: number,
): { text: string; offset: number } {
  const bytes = new TextEncoder().encode(sql);
  const end = length > 0 ? location + length : bytes.length;
  const decoder = new TextDecoder();
  return {
    text: decoder.decode(bytes.subarray(location, end)).trimEnd(),
    offset: [...decoder.decode(bytes.subarray(0, location))].length,
  };
}

function syntaxError(sql: string, error: unknown): SqlRefused {
  const details = (error as { sqlDetails?: { message?: string; cursorPosition?: number } })
    ?.sqlDetails;
  const message = details?.message ?? (error instanceof Error ? error.message : String(error));
  if (error instanceof RangeError || /call stack|memory exhausted/i.test(message)) {
    // The parser's stack is bounded: thousands of nested parentheses or chained operators.
    return new SqlRefused(
      "syntax",
      "The query is nested too deeply to parse (thousands of nested parentheses, subqueries or chained operators). Simplify it, e.g. with a CTE or an aggregate.",
      { cause: error },
    );
  }
  const where = typeof details?.cursorPosition === "number" && details.cursorPosition >= 0
    ? lineColumn(sql, details.cursorPosition)
    : "";
  return new SqlRefused(
    "syntax",
    `Syntax error: ${message}${where}. Fix the SQL and send it again.`,
    { cause: error },
  );
}
