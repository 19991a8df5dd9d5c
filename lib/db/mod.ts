/**
 * The database: the one place that opens PostgreSQL or PGlite, the migration runner, and the
 * identifier helper for the few names that must be dynamic.
 *
 * @module
 */
export { openDb, type OpenDbOptions } from "./open_db.ts";
export { loadMigrations, migrate, type Migration } from "./migrate.ts";
export { type Ident, ident, isValidIdent } from "./ident.ts";
export { QueryTimeout } from "./query_timeout.ts";
export { openSessionLock, type SessionLock, type SessionLockOptions } from "./session_lock.ts";
export { DB_UNAVAILABLE_TEXT, DbUnavailable, isDbUnavailable } from "./db_unavailable.ts";
export {
  isCanceled,
  isConnectionState,
  isDbAnswer,
  isInvalidParameterValue,
  isLoginRefused,
  isRefusal,
  isRetryable,
  isUndefinedTableOrColumn,
  sqlState,
} from "./sql_state.ts";
export type { Db, Field, Queryable, QueryResult, Row, TransactionOptions } from "./types.ts";
