/** A transaction ran past its `timeoutMs` and was cancelled (the database is unchanged). */
export class QueryTimeout extends Error {
  /** The limit that was exceeded, in milliseconds. */
  readonly timeoutMs: number;
  constructor(timeoutMs: number, options?: ErrorOptions) {
    super(`Query cancelled after ${timeoutMs / 1000} s (time limit)`, options);
    this.name = "QueryTimeout";
    this.timeoutMs = timeoutMs;
  }
}
