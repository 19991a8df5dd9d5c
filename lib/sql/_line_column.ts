/**
 * ` (line L, column C)` for a 0-based index in code points into `sql`, for error messages that
 * point into the user's own SQL.
 */
export function lineColumn(sql: string, index: number): string {
  const before = [...sql].slice(0, index).join("");
  const line = before.split("\n").length;
  const column = before.length - before.lastIndexOf("\n");
  return ` (line ${line}, column ${column})`;
}
