/**
 * One CSV cell as text, or null for SQL NULL: dates as ISO 8601, objects and arrays as JSON,
 * bytes as `\x…` hex, booleans as `true`/`false`, non-finite numbers as `NaN`/`Infinity`.
 */
export function csvCell(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  switch (typeof value) {
    case "string":
      return value;
    case "number":
      return Number.isNaN(value)
        ? "NaN"
        : value === Infinity
        ? "Infinity"
        : value === -Infinity
        ? "-Infinity"
        : String(value);
    case "bigint":
    case "boolean":
      return String(value);
  }
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
  if (value instanceof Uint8Array) {
    return "\\x" + Array.from(value, (b) => b.toString(16).padStart(2, "0")).join("");
  }
  return JSON.stringify(value, (_k, v) => typeof v === "bigint" ? v.toString() : v);
}
