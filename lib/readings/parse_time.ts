/** The forms `parseTime()` accepts, quoted in every error so the caller can fix the input. */
export const TIME_FORMS =
  "ISO 8601 (2024-01-15, 2024-01-15T08:30, 2024-01-15T08:30:00+01:00; a time without a zone is UTC), " +
  'a relative time (-24h, 7d = 7 days ago, -30m, -2w, "3 hours ago", +1h = in one hour; units s, m, h, d, w), ' +
  '"now", "today", "yesterday" (UTC midnight), or unix seconds (1700000000; 13 digits = milliseconds)';

const UNIT_MS: Record<string, number> = {
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

const UNIT_ALIASES: Record<string, string> = {
  s: "s",
  sec: "s",
  secs: "s",
  second: "s",
  seconds: "s",
  m: "m",
  min: "m",
  mins: "m",
  minute: "m",
  minutes: "m",
  h: "h",
  hr: "h",
  hrs: "h",
  hour: "h",
  hours: "h",
  d: "d",
  day: "d",
  days: "d",
  w: "w",
  wk: "w",
  week: "w",
  weeks: "w",
};

const RELATIVE_RE = /^(?:now\s*)?([+-])?\s*(\d+(?:\.\d+)?)\s*([a-z]+)(\s+ago)?$/;
const ISO_RE =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/i;
const UNIX_RE = /^\d{9,11}(?:\.\d+)?$|^\d{13}$/;

// Earliest and latest instants accepted: readings exist from 2020 on, so anything outside these
// bounds is almost certainly a typo (a two-digit year, milliseconds read as seconds …).
const MIN_MS = Date.UTC(1970, 0, 1);
const MAX_MS = Date.UTC(9999, 11, 31, 23, 59, 59);

/**
 * Parses a time an assistant or a person typed: ISO 8601 (a date or a date-time; without a zone
 * it means UTC), a relative time (`-24h`, `7d` = 7 days ago, `-30m`, `-2w`, `+1h`, `3 hours ago`),
 * `now`, `today`, `yesterday` (UTC midnight) or unix seconds. Numbers are unix seconds.
 *
 * @throws {RangeError} quoting the input and listing the accepted forms.
 */
export function parseTime(input: string | number, now: Date): Date {
  if (typeof input === "number") {
    if (!Number.isFinite(input) || input < 0) throw invalid(String(input));
    return checked(String(input), input * 1000);
  }
  const text = input.trim().toLowerCase();
  if (text === "") throw invalid(input);
  if (text === "now") return new Date(now.getTime());
  if (text === "today" || text === "yesterday") {
    const midnight = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
    return new Date(text === "today" ? midnight : midnight - UNIT_MS.d);
  }
  if (UNIX_RE.test(text)) {
    const n = Number(text);
    return checked(input, text.length === 13 ? n : n * 1000);
  }
  const rel = RELATIVE_RE.exec(text);
  if (rel) {
    const [, sign, amount, unitText, ago] = rel;
    const unit = UNIT_ALIASES[unitText];
    if (!unit || (sign === "+" && ago)) throw invalid(input);
    const ms = Number(amount) * UNIT_MS[unit];
    return checked(input, now.getTime() + (sign === "+" ? ms : -ms));
  }
  const iso = ISO_RE.exec(input.trim());
  if (iso) return checked(input, isoMs(input, iso));
  throw invalid(input);
}

function isoMs(input: string, m: RegExpExecArray): number {
  const [, y, mo, d, h = "0", mi = "0", s = "0", frac = "", zone] = m;
  const year = Number(y), month = Number(mo), day = Number(d);
  const hour = Number(h), minute = Number(mi), second = Number(s);
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (
    month < 1 || month > 12 || day < 1 || day > daysInMonth || hour > 23 || minute > 59 ||
    second > 59
  ) {
    throw new RangeError(`Cannot parse time "${input}": not a valid calendar date or time`);
  }
  const ms = Math.floor(Number(`0.${frac || "0"}`) * 1000);
  let t = Date.UTC(year, month - 1, day, hour, minute, second, ms);
  if (year < 100) t = new Date(t).setUTCFullYear(year); // Date.UTC maps 0–99 to 1900–1999
  if (zone && zone.toUpperCase() !== "Z") {
    const digits = zone.slice(1).replace(":", "");
    const offset = Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2) || "0");
    if (Number(digits.slice(0, 2)) > 14 || Number(digits.slice(2) || "0") > 59) {
      throw new RangeError(`Cannot parse time "${input}": time zone offset ${zone} is invalid`);
    }
    t -= (zone[0] === "-" ? -1 : 1) * offset * 60_000;
  }
  return t;
}

function checked(input: string, ms: number): Date {
  if (!Number.isFinite(ms) || ms < MIN_MS || ms > MAX_MS) {
    throw new RangeError(
      `Cannot use time "${input}": it lies outside 1970–9999; expected ${TIME_FORMS}`,
    );
  }
  return new Date(ms);
}

function invalid(input: string): RangeError {
  return new RangeError(`Cannot parse time "${input}": expected ${TIME_FORMS}`);
}
