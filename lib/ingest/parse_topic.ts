import { isValidIdent } from "../db/ident.ts";

/** What a topic says about its message. */
export interface ParsedTopic {
  /** Device id exactly as in the topic (case kept). */
  device: string;
  kind: "capabilities" | "data" | "status" | "error";
  /** Table-safe sensor type of a `data` topic, e.g. `scd30` (see `toSensorType`). */
  sensorType?: string;
}

const SEGMENT_RE = /^[A-Za-z0-9_-]{1,64}$/;
const TABLE_SUFFIX = "_measurements";
/** A sensor type names the table `<type>_measurements`, which must fit in 63 characters. */
const MAX_SENSOR_TYPE_LENGTH = 63 - TABLE_SUFFIX.length;
const EXPECTED =
  "expected devices/{device}/capabilities, devices/{device}/status, devices/{device}/error " +
  "or devices/{device}/sensors/{type}/data";

/**
 * Reads `devices/{device}/capabilities`, `devices/{device}/status`, `devices/{device}/error` and
 * `devices/{device}/sensors/{type}/data`. `{device}` and `{type}` must match
 * `^[A-Za-z0-9_-]{1,64}$`; the sensor type is normalised by `toSensorType()`.
 *
 * @throws {RangeError} naming the topic and what is wrong with it.
 */
export function parseTopic(topic: string): ParsedTopic {
  const fail = (why: string): never => {
    throw new RangeError(`Cannot parse topic ${quote(topic)}: ${why}`);
  };
  const parts = topic.split("/");
  if (parts[0] !== "devices" || parts.length < 3) fail(EXPECTED);
  const device = parts[1];
  if (!SEGMENT_RE.test(device)) {
    fail(`device id ${quote(device)} must match [A-Za-z0-9_-]{1,64}`);
  }
  if (parts.length === 3) {
    const kind = parts[2];
    if (kind === "capabilities" || kind === "status" || kind === "error") return { device, kind };
    fail(EXPECTED);
  }
  if (parts.length === 5 && parts[2] === "sensors" && parts[4] === "data") {
    let sensorType = "";
    try {
      sensorType = toSensorType(parts[3]);
    } catch (err) {
      if (!(err instanceof RangeError)) throw err;
      fail(err.message);
    }
    return { device, kind: "data", sensorType };
  }
  return fail(EXPECTED);
}

/**
 * Turns a sensor type as devices spell it (`SCD30`, `bme-680`) into the name its table is made
 * from: lower-cased, `-` mapped to `_` (so `bme-680` and `bme_680` are the same type). It must
 * then start with a letter or `_` and be at most 50 characters, so that `<type>_measurements` is
 * a valid PostgreSQL identifier.
 *
 * @throws {RangeError} saying why the type cannot name a table.
 */
export function toSensorType(raw: string): string {
  if (!SEGMENT_RE.test(raw)) {
    throw new RangeError(`sensor type ${quote(raw)} must match [A-Za-z0-9_-]{1,64}`);
  }
  const type = raw.toLowerCase().replaceAll("-", "_");
  if (type.length > MAX_SENSOR_TYPE_LENGTH) {
    throw new RangeError(
      `sensor type ${quote(raw)} is longer than ${MAX_SENSOR_TYPE_LENGTH} characters ` +
        `(it names the table <type>${TABLE_SUFFIX})`,
    );
  }
  if (!isValidIdent(type + TABLE_SUFFIX)) {
    throw new RangeError(
      `sensor type ${quote(raw)} must start with a letter or underscore ` +
        `(it names the table <type>${TABLE_SUFFIX})`,
    );
  }
  return type;
}

/** Quotes a value for a message: JSON escapes (control characters visible), capped in length. */
export function quote(value: string, max = 200): string {
  const cut = value.length > max ? value.slice(0, max) + "…" : value;
  return JSON.stringify(cut);
}
