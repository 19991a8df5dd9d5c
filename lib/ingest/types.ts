/** One MQTT message as received, before decoding. */
export interface RawMessage {
  topic: string;
  payload: Uint8Array;
  /**
   * Receive time, epoch milliseconds; the collector's have a fraction (microseconds) making each
   * message's receive time its own.
   */
  receivedAt: number;
  /**
   * True when the broker sent it as a retained message on subscribing: an old message whose
   * receive time says nothing about when the device was last active.
   */
  retained?: boolean;
}

/** A sensor reading: one message of `devices/{device}/sensors/{type}/data`. */
export interface ReadingMessage {
  kind: "reading";
  device: string;
  /** Lower-case sensor type, a valid identifier (e.g. `scd30`). */
  sensorType: string;
  time: Date;
  /** Metric name (lower-case, valid identifier) → finite value. */
  metrics: Record<string, number>;
  /** True when the device's timestamp was missing or implausible and the receive time was used. */
  timestampReplaced: boolean;
  /**
   * Microseconds (0–999) to add to `time`, which a `Date` cannot hold. Set for receive times:
   * the collector gives each message its own receive time to the microsecond, so a burst of
   * readings without timestamps does not collapse onto one primary key `(sensor_id, time)`.
   */
  micros?: number;
  /**
   * Set when some metrics of the message were bad and left out of `metrics`: why, the payload as
   * text and the receive time. The writer stores the good metrics and records this in
   * `rejected_messages`.
   */
  rejectedMetrics?: { reason: string; payload: string; receivedAt: Date };
  /** When the collector received it (its own clock); activity is judged by this, not `time`. */
  receivedAt?: Date;
  /** The device's own timestamp, also when it was implausible and replaced in `time`. */
  deviceTime?: Date;
}

/** `devices/{device}/capabilities`. */
export interface CapabilitiesMessage {
  kind: "capabilities";
  device: string;
  time: Date;
  deviceName?: string;
  firmwareVersion?: string;
  location?: string;
  /** Lower-case sensor types. */
  sensors: string[];
  /** Per-sensor metadata, e.g. `{ scd30: { location: "desk" } }`. */
  metadata: Record<string, unknown>;
  /** The parsed payload, stored in `device_events`. */
  payload: unknown;
  /** Replayed by the broker as a retained message (see `RawMessage.retained`). */
  retained?: boolean;
}

/** `devices/{device}/status`. */
export interface StatusMessage {
  kind: "status";
  device: string;
  time: Date;
  /** Normalised status word, e.g. `online`, `offline`. */
  status: string;
  payload: unknown;
  /** Replayed by the broker as a retained message (see `RawMessage.retained`). */
  retained?: boolean;
}

/** `devices/{device}/error`. */
export interface ErrorMessage {
  kind: "error";
  device: string;
  time: Date;
  payload: unknown;
  /** Replayed by the broker as a retained message (see `RawMessage.retained`). */
  retained?: boolean;
}

/** Input that cannot be stored as data; it goes to `rejected_messages`. */
export interface RejectedMessage {
  kind: "rejected";
  topic: string;
  /** The payload as text (lossy UTF-8, capped). */
  payload: string;
  /** Why it was refused, for a person. */
  reason: string;
  time: Date;
}

/** What `decodeMessage()` makes of a `RawMessage`. */
export type Decoded =
  | ReadingMessage
  | CapabilitiesMessage
  | StatusMessage
  | ErrorMessage
  | RejectedMessage;

/** Writes decoded messages to the database. */
export interface BatchWriter {
  /**
   * Stores a batch in one transaction (multi-row inserts, `ON CONFLICT DO NOTHING`), creating
   * tables and columns for new sensor types and metrics. Idempotent: writing the same batch twice
   * stores each reading once. Throws when the database is unreachable (nothing is committed).
   */
  write(batch: Decoded[]): Promise<void>;
}
