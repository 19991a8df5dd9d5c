/**
 * Read-only SQL from untrusted callers: the parser-based guard and the capped, always rolled back
 * query runner behind `execute_sql_query`.
 *
 * @module
 */
export { type GuardResult, guardSql } from "./guard_sql.ts";
export {
  QUERY_SLOTS,
  type QueryColumn,
  type QueryRows,
  runQuery,
  type RunQueryOptions,
} from "./run_query.ts";
export { QueryBusy } from "./query_busy.ts";
export { type Cell, normalizeValue } from "./normalize_value.ts";
export { QueryFailed } from "./query_failed.ts";
export { SqlRefused, type SqlRule } from "./sql_refused.ts";
export { typeName } from "./type_name.ts";
