// Text that devices send (names, locations, firmware, metadata, error reports) is bounded when it
// is decoded and neutralised again wherever it is shown (README "MQTT contract").

/** Most characters kept of each kind of device text. */
export const DEVICE_TEXT_MAX = {
  /** `device_name`, `device_location`, a sensor's `location`. */
  name: 128,
  firmware: 64,
  /** Each string inside capabilities metadata and payloads. */
  metadata: 256,
  /** An error report as text, and each string inside a JSON one. */
  error: 1024,
} as const;

// C0 and C1 controls, DEL, line and paragraph separators, and the bidirectional controls that
// can make text read differently from what it contains.
// deno-lint-ignore no-control-regex
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]+/g;

/** `s` cut to at most `max` characters (code points), marked with `…` when cut. */
export function cutText(s: string, max: number): string {
  if (s.length <= max) return s;
  const points = Array.from(s);
  return points.length <= max ? s : points.slice(0, Math.max(0, max - 1)).join("") + "…";
}

/**
 * One line of device text: control characters, newlines and bidirectional overrides become a
 * space, runs of spaces one, and the result is cut to `max` characters.
 */
export function deviceText(s: string, max: number): string {
  // Cut first (bounded work on any input), then again after the replacements.
  const head = s.length > max * 4 ? s.slice(0, max * 4) : s;
  return cutText(head.replace(CONTROLS, " ").replace(/\s{2,}/g, " ").trim(), max);
}

/** A JSON value with every string (and key) cut to `max` characters. */
export function cutJsonStrings(value: unknown, max: number): unknown {
  if (typeof value === "string") return cutText(value, max);
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map((v) => cutJsonStrings(v, max));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[cutText(k, max)] = cutJsonStrings(v, max);
  return out;
}
