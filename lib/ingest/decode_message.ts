import { z } from "zod";
import { isValidIdent } from "../db/ident.ts";
import { errorText } from "./_error_text.ts";
import { rejection, storableText } from "./_rejection.ts";
import { cutJsonStrings, cutText, DEVICE_TEXT_MAX, deviceText } from "./device_text.ts";
import { parseTopic, quote, toSensorType } from "./parse_topic.ts";
import type {
  CapabilitiesMessage,
  Decoded,
  RawMessage,
  ReadingMessage,
  RejectedMessage,
  StatusMessage,
} from "./types.ts";

/** Payloads above this many bytes are refused (DESIGN.md: 64 KiB). */
export const MAX_PAYLOAD_BYTES = 65536;
/** Device timestamps before this are taken for an unset clock and replaced by the receive time. */
const MIN_DEVICE_TIME = Date.UTC(2020, 0, 1);
/** Device timestamps further ahead of the receive time than this are replaced. */
const MAX_AHEAD_MS = 5 * 60_000;
/** JSON nested deeper than this is refused (PostgreSQL's jsonb parser has a stack limit too). */
const MAX_JSON_DEPTH = 64;
/** How much of a refused payload is kept in `rejected_messages`. */
const MAX_KEPT_PAYLOAD_BYTES = 8192;
/** Names that cannot be metric columns: the key columns and PostgreSQL's system columns. */
export const RESERVED_METRICS: ReadonlySet<string> = new Set([
  "time",
  "sensor_id",
  "tableoid",
  "xmin",
  "xmax",
  "cmin",
  "cmax",
  "ctid",
  "oid",
]);
const STATUS_RE = /^[a-z][a-z0-9_-]{0,31}$/;

const utf8 = new TextDecoder("utf-8", { fatal: true });
const lossyUtf8 = new TextDecoder("utf-8");

/**
 * Turns one MQTT message into what the batch writer stores. Pure and total: it never throws;
 * anything that cannot be stored becomes `{ kind: "rejected", reason }`.
 *
 * Tolerant reader, strict writer: a reading may be `{"reading": 22.5}` or a bare `22.5`; the
 * timestamp may be epoch seconds, milliseconds or microseconds, a numeric string or an ISO 8601
 * string with a zone; a missing or implausible one (before 2020, or more than 5 minutes ahead of
 * the receive time) becomes the receive time with `timestampReplaced: true`. Metric names are
 * lower-cased with `-` mapped to `_` and must then be identifiers (`[a-z_][a-z0-9_]{0,62}`, not
 * `time`, `sensor_id` or a system column name).
 *
 * A data message with some bad metrics keeps its good ones: they are stored, and the bad ones are
 * reported in `rejectedMetrics` (the writer records them in `rejected_messages`). A message with
 * no good metric is rejected whole.
 */
export function decodeMessage(msg: RawMessage): Decoded {
  try {
    const out = decode(msg);
    if (msg.retained && out.kind !== "rejected" && out.kind !== "reading") out.retained = true;
    return out;
  } catch (err) {
    // Unreachable by design; kept so that no input can ever stop the collector.
    return reject(msg, `cannot decode: ${errorText(err)}`);
  }
}

function decode(msg: RawMessage): Decoded {
  let topic;
  try {
    topic = parseTopic(msg.topic);
  } catch (err) {
    if (err instanceof RangeError) return reject(msg, err.message);
    throw err;
  }
  const size = msg.payload.byteLength;
  if (size > MAX_PAYLOAD_BYTES) {
    return reject(msg, `payload is ${size} bytes; the limit is ${MAX_PAYLOAD_BYTES}`);
  }
  let text: string;
  try {
    text = utf8.decode(msg.payload);
  } catch {
    return reject(msg, "payload is not valid UTF-8");
  }
  if (text.trim() === "") return reject(msg, "payload is empty");
  const time = receiveTime(msg);
  const { device } = topic;
  switch (topic.kind) {
    case "data":
      return decodeReading(msg, text, { device, sensorType: topic.sensorType!, time });
    case "capabilities":
      return decodeCapabilities(msg, text, device, time);
    case "status":
      return decodeStatus(msg, text, device, time);
    case "error": {
      const parsed = parseJson(text);
      if (parsed.ok) {
        const clean = cleanJson(parsed.value);
        if (!clean.ok) return reject(msg, clean.reason);
        const payload = cutJsonStrings(clean.value, DEVICE_TEXT_MAX.error);
        return { kind: "error", device, time, payload };
      }
      return {
        kind: "error",
        device,
        time,
        payload: cutText(storableText(text), DEVICE_TEXT_MAX.error),
      };
    }
  }
}

function decodeReading(
  msg: RawMessage,
  text: string,
  at: { device: string; sensorType: string; time: Date },
): ReadingMessage | RejectedMessage {
  const parsed = parseJson(text);
  if (!parsed.ok) return reject(msg, parsed.reason);
  const body = parsed.value;
  if (!isPlainObject(body)) {
    return reject(msg, `data payload must be a JSON object, got ${describe(body)}`);
  }
  const value = body.value;
  if (!isPlainObject(value)) {
    return reject(
      msg,
      `data payload needs a "value" object of metrics, got ${
        value === undefined ? "none" : describe(value)
      }`,
    );
  }
  const metrics: Record<string, number> = {};
  const problems: string[] = [];
  const seen = new Map<string, string>();
  for (const [key, raw] of Object.entries(value)) {
    const name = key.toLowerCase().replaceAll("-", "_");
    if (!isValidIdent(name)) {
      problems.push(
        `metric ${quote(key, 64)} is not a valid name ` +
          `(letters, digits and _, at most 63, not starting with a digit)`,
      );
      continue;
    }
    if (RESERVED_METRICS.has(name)) {
      problems.push(`metric ${quote(key, 64)} uses a reserved name`);
      continue;
    }
    const earlier = seen.get(name);
    if (earlier !== undefined) {
      problems.push(`metric ${quote(key, 64)} duplicates ${quote(earlier, 64)}`);
      continue;
    }
    seen.set(name, key);
    const reading = isPlainObject(raw) ? raw.reading : raw;
    if (typeof reading !== "number") {
      problems.push(
        `metric ${quote(name)}: reading must be a number, got ${describe(reading)}` +
          (isPlainObject(raw) || typeof raw === "number" ? "" : ` (expected {"reading": n} or n)`),
      );
      continue;
    }
    if (!Number.isFinite(reading)) {
      problems.push(`metric ${quote(name)}: reading ${reading} is not a finite number`);
      continue;
    }
    metrics[name] = reading;
  }
  if (seen.size === 0 && problems.length === 0) {
    return reject(msg, `data payload has no metrics in "value"`);
  }
  if (Object.keys(metrics).length === 0) {
    return reject(msg, summarise(problems));
  }
  const deviceMs = deviceTime(body.timestamp);
  const received = at.time.getTime();
  const plausible = deviceMs !== undefined && deviceMs >= MIN_DEVICE_TIME &&
    deviceMs <= received + MAX_AHEAD_MS;
  const out: ReadingMessage = {
    kind: "reading",
    device: at.device,
    sensorType: at.sensorType,
    time: plausible ? new Date(deviceMs) : at.time,
    metrics,
    timestampReplaced: !plausible,
    receivedAt: at.time,
  };
  // One Date for both when the device's time is used (nothing mutates them): a Date is about
  // 100 bytes of heap, and a batch holds thousands of readings.
  if (deviceMs !== undefined) out.deviceTime = plausible ? out.time : new Date(deviceMs);
  if (!plausible && Number.isFinite(msg.receivedAt)) {
    const us = Math.round(msg.receivedAt * 1000);
    out.time = new Date(Math.floor(us / 1000));
    if (us % 1000 > 0) out.micros = us % 1000;
  }
  if (problems.length > 0) {
    out.rejectedMetrics = {
      reason: summarise(problems),
      payload: keptPayload(msg.payload),
      receivedAt: at.time,
    };
  }
  return out;
}

const Capabilities = z.looseObject({
  device_name: z.union([z.string(), z.number()]).nullish(),
  firmware_version: z.union([z.string(), z.number()]).nullish(),
  device_location: z.union([z.string(), z.number()]).nullish(),
  sensors: z.array(z.string()).max(64).nullish(),
  metadata: z.record(z.string(), z.unknown()).nullish(),
});

function decodeCapabilities(
  msg: RawMessage,
  text: string,
  device: string,
  time: Date,
): CapabilitiesMessage | RejectedMessage {
  const parsed = parseJson(text);
  if (!parsed.ok) return reject(msg, parsed.reason);
  const clean = cleanJson(parsed.value);
  if (!clean.ok) return reject(msg, clean.reason);
  const result = Capabilities.safeParse(clean.value);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue.path.length > 0 ? issue.path.join(".") : "payload";
    return reject(msg, `capabilities ${where}: ${issue.message}`);
  }
  const caps = result.data;
  const sensors: string[] = [];
  for (const raw of caps.sensors ?? []) {
    try {
      const type = toSensorType(raw);
      if (!sensors.includes(type)) sensors.push(type);
    } catch (err) {
      if (!(err instanceof RangeError)) throw err;
      return reject(msg, `capabilities sensors: ${err.message}`);
    }
  }
  const metadata: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(caps.metadata ?? {})) {
    let type = key;
    try {
      type = toSensorType(key);
    } catch {
      // Not a sensor type: kept under its own name.
    }
    metadata[cutText(type, DEVICE_TEXT_MAX.metadata)] = cutJsonStrings(
      value,
      DEVICE_TEXT_MAX.metadata,
    );
  }
  // Device text is bounded and kept to one line here; answers neutralise it again when shown.
  const opt = (v: string | number | null | undefined, max: number = DEVICE_TEXT_MAX.name) =>
    v === null || v === undefined ? undefined : deviceText(String(v), max) || undefined;
  return {
    kind: "capabilities",
    device,
    time,
    deviceName: opt(caps.device_name),
    firmwareVersion: opt(caps.firmware_version, DEVICE_TEXT_MAX.firmware),
    location: opt(caps.device_location),
    sensors,
    metadata,
    payload: cutJsonStrings(clean.value, DEVICE_TEXT_MAX.metadata),
  };
}

function decodeStatus(
  msg: RawMessage,
  text: string,
  device: string,
  time: Date,
): StatusMessage | RejectedMessage {
  const parsed = parseJson(text);
  let payload: unknown = storableText(text.trim());
  let word: unknown = text;
  if (parsed.ok) {
    const clean = cleanJson(parsed.value);
    if (!clean.ok) return reject(msg, clean.reason);
    payload = clean.value;
    word = isPlainObject(clean.value) ? clean.value.status : clean.value;
  }
  const status = typeof word === "string" ? word.trim().toLowerCase() : "";
  if (!STATUS_RE.test(status)) {
    return reject(
      msg,
      `status payload must be a status word ("online", "offline") as text, JSON string or ` +
        `{"status": …}, got ${typeof word === "string" ? quote(word, 64) : describe(word)}`,
    );
  }
  return { kind: "status", device, time, status, payload };
}

/** Epoch milliseconds from a device timestamp, or undefined when it is not one. */
function deviceTime(ts: unknown): number | undefined {
  if (typeof ts === "string") {
    const s = ts.trim();
    if (/^\d{1,20}(\.\d+)?$/.test(s)) return deviceTime(Number(s));
    // ISO 8601 with an explicit zone; a zone-less time would be read in the collector's zone.
    if (/^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/i.test(s)) {
      const ms = Date.parse(s.replace(" ", "T"));
      return Number.isFinite(ms) ? ms : undefined;
    }
    return undefined;
  }
  if (typeof ts !== "number" || !Number.isFinite(ts) || ts <= 0) return undefined;
  if (ts >= 1e17) return ts / 1e6; // nanoseconds
  if (ts >= 1e14) return ts / 1e3; // microseconds
  if (ts >= 1e11) return ts; // milliseconds
  return ts * 1000; // seconds
}

function receiveTime(msg: RawMessage): Date {
  const ms = Number.isFinite(msg.receivedAt) ? msg.receivedAt : Date.now();
  return new Date(ms);
}

type Parsed = { ok: true; value: unknown } | { ok: false; reason: string };

function parseJson(text: string): Parsed {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (err) {
    return { ok: false, reason: `payload is not valid JSON: ${(err as Error).message}` };
  }
}

/**
 * Makes parsed JSON storable as jsonb: strings and keys without NUL characters or lone
 * surrogates (PostgreSQL refuses both), nesting at most `MAX_JSON_DEPTH` levels deep.
 */
function cleanJson(value: unknown): Parsed {
  const walk = (v: unknown, depth: number): unknown => {
    if (typeof v === "string") return storableText(v);
    if (v === null || typeof v !== "object") return v;
    if (depth >= MAX_JSON_DEPTH) {
      throw new RangeError(`payload JSON is nested deeper than ${MAX_JSON_DEPTH} levels`);
    }
    if (Array.isArray(v)) return v.map((x) => walk(x, depth + 1));
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[storableText(k)] = walk(x, depth + 1);
    return out;
  };
  try {
    return { ok: true, value: walk(value, 0) };
  } catch (err) {
    if (err instanceof RangeError) return { ok: false, reason: err.message };
    throw err;
  }
}

/** Text PostgreSQL accepts: no NUL characters, no lone surrogates. */
function keptPayload(payload: Uint8Array): string {
  const cut = payload.byteLength > MAX_KEPT_PAYLOAD_BYTES;
  const text = lossyUtf8.decode(cut ? payload.subarray(0, MAX_KEPT_PAYLOAD_BYTES) : payload);
  return cut ? `${text}… (${payload.byteLength} bytes, truncated)` : text;
}

function reject(msg: RawMessage, reason: string): RejectedMessage {
  const topic = typeof msg.topic === "string" ? msg.topic : String(msg.topic);
  const payload = msg.payload instanceof Uint8Array ? keptPayload(msg.payload) : "";
  return rejection({ topic, payload, reason, time: receiveTime(msg) });
}

function summarise(problems: string[]): string {
  const shown = problems.slice(0, 5).join("; ");
  return problems.length > 5 ? `${shown}; and ${problems.length - 5} more` : shown;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "string") return `string ${quote(v, 64)}`;
  if (typeof v === "object") return "an object";
  if (v === undefined) return "nothing";
  return `${typeof v} ${String(v)}`;
}
