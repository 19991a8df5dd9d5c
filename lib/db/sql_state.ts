/**
 * The one place that reads PostgreSQL's SQLSTATE codes (Appendix A of its manual): what an error
 * of the database says about the statement, the data, the connection or the login. Callers ask
 * these functions instead of matching codes themselves; `isDbUnavailable()` uses them for its
 * SQLSTATE part.
 */

/** The SQLSTATE of a PostgreSQL error in `err` or its `cause` chain, if there is one. */
export function sqlState(err: unknown): string | undefined {
  for (let e = err, depth = 0; e && typeof e === "object" && depth < 8; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * SQLSTATEs of a lost or refused connection: class 08 (connection exception), 57P01
 * admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now (starting up or shutting down),
 * 53300 too_many_connections.
 */
export function isConnectionState(code: string): boolean {
  return /^(08[0-9A-Z]{3}|57P0[1-3]|53300)$/.test(code);
}

/**
 * The database answered a statement with an error: it is reachable, and the error is about the
 * statement, its data or the database's state (as opposed to a lost or closed connection).
 */
export function isDbAnswer(err: unknown): boolean {
  const code = sqlState(err);
  return code !== undefined && !isConnectionState(code);
}

/**
 * The database refused the data of a statement: class 22 data exception, 23 integrity constraint
 * violation (a CHECK someone added), 42 syntax error or access rule (a column or table that
 * went away), 54 program limit exceeded. Another attempt with the same data fails the same way.
 */
export function isRefusal(err: unknown): boolean {
  return /^(22|23|42|54)/.test(sqlState(err) ?? "");
}

/**
 * A statement that lost a race and succeeds when run again: 40001 serialization failure,
 * 40P01 deadlock detected.
 */
export function isRetryable(err: unknown): boolean {
  const code = sqlState(err);
  return code === "40001" || code === "40P01";
}

/** 57014 query_canceled: a `statement_timeout` (or a cancel request) ended the statement. */
export function isCanceled(err: unknown): boolean {
  return sqlState(err) === "57014";
}

/**
 * The login itself was refused — class 28 invalid authorization (wrong password or user) or
 * 3D000 invalid catalog name (no such database): retrying does not help.
 */
export function isLoginRefused(err: unknown): boolean {
  return /^(28|3D)/.test(sqlState(err) ?? "");
}

/**
 * 42P01 undefined_table or 42703 undefined_column: a statement named a table or column that is
 * not (or no longer) there, e.g. one a cached catalog still lists.
 */
export function isUndefinedTableOrColumn(err: unknown): boolean {
  const code = sqlState(err);
  return code === "42P01" || code === "42703";
}

/** 22023 invalid_parameter_value: e.g. a time zone PostgreSQL does not know. */
export function isInvalidParameterValue(err: unknown): boolean {
  return sqlState(err) === "22023";
}
