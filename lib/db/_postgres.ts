import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import postgres from "postgres";
import { buildQuery } from "./ident.ts";
import { QueryTimeout } from "./query_timeout.ts";
import { isCanceled } from "./sql_state.ts";
import { logger } from "../log/mod.ts";
import type { Db, Field, Queryable, QueryResult, Row, TransactionOptions } from "./types.ts";

const log = logger("db");

type PgSql = postgres.Sql | postgres.TransactionSql;

// int8 as number when exact, string otherwise; numeric stays a string (postgres.js default).
const INT8 = {
  to: 20,
  from: [20],
  serialize: (x: unknown) => String(x),
  parse: (x: string) => {
    const n = Number(x);
    return Number.isSafeInteger(n) ? n : x;
  },
};

function queryable(sql: PgSql): Queryable {
  const query = async <T = Row>(text: string, params: unknown[] = []): Promise<QueryResult<T>> => {
    // `simple: false` keeps the extended protocol (one statement per call) even without
    // parameters; postgres.js would otherwise switch to the simple protocol. `prepare: false`
    // (unnamed statements) describes every result afresh: a cached description goes stale when
    // the same text returns other columns (`FETCH` from a cursor, `select *` after a new metric
    // column), and ad-hoc SQL would pile up as prepared statements on every connection.
    const opts = { prepare: false, simple: false } as postgres.UnsafeQueryOptions;
    // deno-lint-ignore no-explicit-any
    const res = await sql.unsafe(text, params as any[], opts);
    const fields: Field[] = (res.columns ?? []).map((c) => ({ name: c.name, typeId: c.type }));
    return { rows: [...res] as T[], fields };
  };
  return {
    query,
    sql: async <T = Row>(strings: TemplateStringsArray, ...values: unknown[]) => {
      const { text, params } = buildQuery(strings, values);
      return (await query<T>(text, params)).rows;
    },
    exec: async (script: string) => {
      await sql.unsafe(script).simple();
    },
    copyIn: async (statement: string, data: string) => {
      const query = sql.unsafe(statement);
      const writable = await query.writable();
      // postgres.js 3.4.9 never settles the writable of a COPY the server refuses once all data
      // is sent (porsager/postgres#1173): its error goes to the query's reject(), which is a
      // no-op by then (the query resolved with the stream). Taking that reject() over makes the
      // refusal reach the caller; the connection itself goes on normally.
      const refused = new Promise<never>((_, reject) => {
        (query as unknown as { reject: (err: unknown) => void }).reject = reject;
      });
      await Promise.race([pipeline(Readable.from([data]), writable), refused]);
    },
  };
}

let guarded = false;

/**
 * postgres.js 3.4.9 can throw an uncaught TypeError from a queued write when the server closes
 * the connection under it (porsager/postgres#1154, #1208; denoland/deno#34667). That would end
 * the process at every database restart. The query concerned has already been rejected with
 * CONNECTION_CLOSED (or is bounded by the caller's own timeouts), so exactly that error is
 * logged and swallowed; every other uncaught error still ends the process.
 */
function guardPostgresWriteRace(): void {
  if (guarded) return;
  guarded = true;
  globalThis.addEventListener("error", (event) => {
    const err = event.error;
    if (
      err instanceof TypeError &&
      err.message === "Cannot read properties of null (reading 'write')" &&
      /nextWrite/.test(err.stack ?? "") && /postgres/.test(err.stack ?? "")
    ) {
      event.preventDefault();
      log.warn("PostgreSQL connection closed during a write; retrying on a new connection");
    }
  });
}

/**
 * Seconds before a connection is opened again after `retries` failed attempts of the pool.
 * postgres.js waits 3^retries / 100 s, up to 20 s, counted over the whole pool: after an outage
 * with many callers, calls kept failing for many seconds once the database was back. Failed
 * connection attempts are cheap, so this stays at a quarter second at most (with jitter).
 */
export function reconnectDelayS(retries: number): number {
  return Math.min(0.01 * 2 ** Math.min(retries, 10), 0.25) * (0.5 + Math.random() / 2);
}

/** Opens PostgreSQL through postgres.js. */
export function openPostgres(url: string, opts: { max?: number; appName?: string } = {}): Db {
  guardPostgresWriteRace();
  const sql = postgres(url, {
    max: opts.max ?? 10,
    onnotice: () => {},
    connection: { application_name: opts.appName ?? "ambient-sensors" },
    types: { int8: INT8 },
    idle_timeout: 60,
    connect_timeout: 10,
    backoff: reconnectDelayS,
  });
  let closed = false;
  return {
    kind: "postgres",
    ...queryable(sql),
    transaction: async <T>(fn: (tx: Queryable) => Promise<T>, opts: TransactionOptions = {}) => {
      try {
        return await sql.begin(async (tx) => {
          if (opts.timeoutMs) {
            const ms = Math.max(1, Math.round(opts.timeoutMs));
            await tx.unsafe(`set local statement_timeout = ${ms}`);
          }
          return await fn(queryable(tx));
        }) as T;
      } catch (err) {
        // The statement_timeout fired.
        if (opts.timeoutMs && isCanceled(err)) {
          throw new QueryTimeout(opts.timeoutMs, { cause: err });
        }
        throw err;
      }
    },
    close: async () => {
      if (closed) return;
      closed = true;
      await sql.end({ timeout: 5 });
    },
  };
}
