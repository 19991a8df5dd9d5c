import { PGlite, types } from "@electric-sql/pglite";
import { buildQuery } from "./ident.ts";
import type { Db, Queryable, QueryResult, Row } from "./types.ts";

interface PgliteLike {
  query<T>(
    text: string,
    params?: unknown[],
    options?: { blob?: Blob },
  ): Promise<{ rows: T[]; fields: { name: string; dataTypeID: number }[] }>;
  exec(script: string): Promise<unknown>;
}

const PARSERS = {
  [types.INT8]: (x: string) => {
    const n = Number(x);
    return Number.isSafeInteger(n) ? n : x;
  },
  [types.NUMERIC]: (x: string) => x,
};

function queryable(pg: PgliteLike): Queryable {
  const query = async <T = Row>(text: string, params: unknown[] = []): Promise<QueryResult<T>> => {
    const res = await pg.query<T>(text, params);
    return {
      rows: res.rows,
      fields: res.fields.map((f) => ({ name: f.name, typeId: f.dataTypeID })),
    };
  };
  return {
    query,
    sql: async <T = Row>(strings: TemplateStringsArray, ...values: unknown[]) => {
      const { text, params } = buildQuery(strings, values);
      return (await query<T>(text, params)).rows;
    },
    exec: async (script: string) => {
      await pg.exec(script);
    },
    copyIn: async (statement: string, data: string) => {
      await pg.query(fromBlob(statement), [], { blob: new Blob([data]) });
    },
  };
}

/**
 * PGlite has no client side for `COPY … FROM STDIN`; it reads the data of `COPY … FROM
 * '/dev/blob'` from the query's `blob` option instead.
 */
export function fromBlob(statement: string): string {
  const out = statement.replace(/\sfrom\s+stdin\s*$/i, " from '/dev/blob'");
  if (out === statement) throw new RangeError(`not a COPY … FROM STDIN: ${statement}`);
  return out;
}

/**
 * Opens embedded PostgreSQL (PGlite). `dataDir` undefined → in memory. PGlite is a single
 * connection: it belongs to one process, and its queries run one at a time.
 */
export async function openPglite(dataDir?: string): Promise<Db & { pglite: PGlite }> {
  if (dataDir) await Deno.mkdir(dataDir, { recursive: true });
  const pg = await PGlite.create(dataDir ?? "memory://", { parsers: PARSERS });
  let closed = false;
  return {
    kind: "pglite",
    pglite: pg,
    ...queryable(pg as unknown as PgliteLike),
    transaction: <T>(fn: (tx: Queryable) => Promise<T>) =>
      pg.transaction((tx) => fn(queryable(tx as unknown as PgliteLike))),
    close: async () => {
      if (closed) return;
      closed = true;
      await pg.close();
    },
  };
}
