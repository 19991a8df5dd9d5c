/**
 * PostgreSQL rejected a query that passed the guard (syntax it cannot run, unknown column,
 * permission denied, division by zero, …). The message carries PostgreSQL's own text, the
 * SQLSTATE, the position and the hint; never a stack, a connection string or a server path.
 */
export class QueryFailed extends Error {
  /** The five-character SQLSTATE, e.g. `42703` (undefined column). */
  readonly sqlstate: string;
  constructor(message: string, sqlstate: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "QueryFailed";
    this.sqlstate = sqlstate;
  }
}
