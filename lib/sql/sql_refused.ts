/** Which rule of the read-only guard refused a statement. */
export type SqlRule =
  | "empty"
  | "syntax"
  | "one-statement"
  | "statement-kind"
  | "data-modifying"
  | "select-into"
  | "locking"
  | "denied-function"
  | "parameters"
  | "column-names";

/**
 * SQL that the read-only guard will not run. The message names the rule and says how to rewrite
 * the query; it never contains anything but the user's own SQL.
 */
export class SqlRefused extends Error {
  /** The rule that refused the statement. */
  readonly rule: SqlRule;
  constructor(rule: SqlRule, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "SqlRefused";
    this.rule = rule;
  }
}
