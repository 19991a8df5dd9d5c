/** A result row. */
export type Row = Record<string, unknown>;

/** A column of a result, with the PostgreSQL type OID. */
export interface Field {
  name: string;
  typeId: number;
}

/** Rows plus column metadata. */
export interface QueryResult<T = Row> {
  rows: T[];
  fields: Field[];
}

/** Anything that runs SQL: the database or a transaction. */
export interface Queryable {
  /**
   * Tagged template; values become parameters (never concatenated) and `ident()` values are
   * inserted as quoted identifiers.
   */
  sql<T = Row>(strings: TemplateStringsArray, ...values: unknown[]): Promise<T[]>;
  /** One parameterised statement over the extended protocol, with column metadata. */
  query<T = Row>(text: string, params?: unknown[]): Promise<QueryResult<T>>;
  /** Runs a trusted multi-statement script (migrations) over the simple protocol. */
  exec(script: string): Promise<void>;
  /**
   * Runs `COPY … FROM STDIN` (`statement`) with `data` in COPY's text format (on PGlite, as
   * `COPY … FROM '/dev/blob'`). Optional: a database that cannot leaves it out, and callers
   * fall back to INSERT.
   */
  copyIn?(statement: string, data: string): Promise<void>;
}

/** Options of `Db.transaction`. */
export interface TransactionOptions {
  /**
   * Cancel the transaction when it runs longer than this, rejecting with `QueryTimeout`.
   * PostgreSQL: `SET LOCAL statement_timeout`. Embedded PGlite: the worker running it is killed
   * and the database reopened. (In-memory PGlite used by tests cannot enforce it.)
   */
  timeoutMs?: number;
}

/** The database every part of the product uses: PostgreSQL (postgres.js) or embedded PGlite. */
export interface Db extends Queryable {
  readonly kind: "postgres" | "pglite";
  /** Runs `fn` in a transaction; commits when it resolves, rolls back when it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>, opts?: TransactionOptions): Promise<T>;
  /** Closes the connections (idempotent). */
  close(): Promise<void>;
}
