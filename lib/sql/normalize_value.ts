const DATE = 1082;
const TIMESTAMP = 1114;
const JSON_OID = 114;
const JSONB = 3802;

/** A value that survives JSON and CSV unchanged: what query results hold. */
export type Cell = string | number | boolean | null | Cell[];

/**
 * Turns a value as the database client returns it into a plain, JSON-safe cell:
 * `timestamptz` → ISO 8601 with `Z`; `timestamp` → ISO 8601 without zone; `date` → `YYYY-MM-DD`;
 * ±infinity → `"infinity"`/`"-infinity"`; NaN and infinite floats → `"NaN"`, `"Infinity"`;
 * `json`/`jsonb` → JSON text; `bytea` → `\x…` hex; arrays element by element; numbers, strings,
 * booleans and NULL as they are.
 */
export function normalizeValue(value: unknown, typeId: number): Cell {
  if (value === null || value === undefined) return null;
  if (typeId === JSON_OID || typeId === JSONB) return JSON.stringify(value);
  if (value instanceof Date) return formatDate(value, typeId);
  if (typeof value === "number") {
    if (Number.isFinite(value)) return value;
    // PGlite returns ±Infinity for infinite dates and timestamps.
    if (typeId === DATE || typeId === TIMESTAMP || typeId === 1184) {
      return value > 0 ? "infinity" : value < 0 ? "-infinity" : null;
    }
    return Number.isNaN(value) ? "NaN" : value > 0 ? "Infinity" : "-Infinity";
  }
  if (typeof value === "string" || typeof value === "boolean") return value;
  if (typeof value === "bigint") return value.toString();
  if (value instanceof Uint8Array) {
    return "\\x" + Array.from(value, (b) => b.toString(16).padStart(2, "0")).join("");
  }
  if (Array.isArray(value)) return value.map((v) => normalizeValue(v, elementType(typeId)));
  return JSON.stringify(value);
}

function elementType(arrayType: number): number {
  switch (arrayType) {
    case 1115:
      return TIMESTAMP;
    case 1182:
      return DATE;
    case 1185:
      return 1184;
    case 3807:
      return JSONB;
    case 199:
      return JSON_OID;
    default:
      return 0;
  }
}

function formatDate(d: Date, typeId: number): Cell {
  // postgres.js cannot represent ±infinity as a Date and gives an invalid one.
  if (Number.isNaN(d.getTime())) return null;
  if (typeId === DATE) return d.toISOString().slice(0, 10);
  if (typeId === TIMESTAMP) {
    // Parsed as local time by both clients: read it back in local time to keep the wall clock.
    const local = new Date(d.getTime() - d.getTimezoneOffset() * 60_000);
    return local.toISOString().slice(0, -1);
  }
  return d.toISOString();
}
