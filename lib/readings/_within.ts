import type { Db, Queryable } from "../db/mod.ts";

/**
 * Runs `fn` on `db`, inside a transaction cancelled after `timeoutMs` when one is given (see
 * `Db.transaction`: rejects with `QueryTimeout`).
 */
export function within<T>(
  db: Db,
  timeoutMs: number | undefined,
  fn: (q: Queryable) => Promise<T>,
): Promise<T> {
  return timeoutMs ? db.transaction(fn, { timeoutMs }) : fn(db);
}
