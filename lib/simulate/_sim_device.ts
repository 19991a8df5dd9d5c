// One simulated ESP32 board: its own MQTT connection, last will, announcements and readings.
import mqtt, { type MqttClient } from "mqtt";
import type { RoomKind } from "./_curves.ts";
import { capabilitiesPayload, dataPayloads, errorPayload, SENSOR_FAULTS } from "./_payloads.ts";
import type { Random } from "./_random.ts";
import { DeviceModel } from "./device_model.ts";

/** Counters a fleet shares with its devices. */
export interface Counters {
  /** Reading rounds taken (one per device per interval). */
  readings: number;
  /** Messages handed to MQTT (data, errors, announcements). */
  published: number;
  /** Messages the broker acknowledged (QoS 1 PUBACK). */
  acked: number;
  /** Messages that failed (connection lost before the PUBACK). */
  failed: number;
  /** Error messages sent on `devices/{id}/error`. */
  errors: number;
  /** Rounds not taken: device offline, or the fleet too far behind its schedule. */
  skipped: number;
  /** Connections lost after being established. */
  disconnects: number;
}

/** How a device connects and what it reports. */
export interface SimDeviceOptions {
  id: string;
  room: RoomKind;
  url: string;
  username: string | undefined;
  password: string | undefined;
  seed: string;
  /** Simulated time at the fleet's start, epoch ms. */
  startSimMs: number;
  /** Seconds between readings, announced in the capabilities. */
  intervalS: number;
  /** Timestamps in milliseconds instead of seconds (readings closer than a second apart). */
  millisecondTimestamps: boolean;
  /** Chance that a round reports a sensor fault instead of that sensor's data. */
  errorRate: number;
  random: Random;
  counters: Counters;
  /** Called when an established connection drops (`up` false) and when it is back (`up` true). */
  onConnectionChange: (id: string, up: boolean, reason?: string) => void;
}

const QOS1 = { qos: 1 } as const;
const RETAINED = { qos: 1, retain: true } as const;

/** Codes of a CONNACK that refuses the credentials (MQTT 3.1.1 and 5). */
const AUTH_REFUSED = new Set([4, 5, 134, 135]);

/** A connection attempt that cannot succeed by retrying: wrong credentials, not allowed. */
export class ConnectRefused extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ConnectRefused";
  }
}

/** A simulated board. */
export class SimDevice {
  readonly id: string;
  readonly room: RoomKind;
  #opts: SimDeviceOptions;
  #model: DeviceModel;
  #client: MqttClient | undefined;
  #everConnected = false;
  /** Connected now, as far as the announcements go (false between a drop and the reconnect). */
  #up = false;
  #lastError: Error | undefined;
  #stopped = false;

  constructor(opts: SimDeviceOptions) {
    this.id = opts.id;
    this.room = opts.room;
    this.#opts = opts;
    this.#model = new DeviceModel({
      room: opts.room,
      seed: opts.seed,
      deviceKey: opts.id,
      startMs: opts.startSimMs,
    });
  }

  /** True while the MQTT connection is up. */
  get connected(): boolean {
    return this.#client?.connected ?? false;
  }

  /**
   * Opens the connection (client id `sim-<id>`, last will `offline` retained) and resolves once it
   * is up and announced. Rejects with `ConnectRefused` when the broker refuses the credentials, and
   * with the last network error after `timeoutMs`; the client keeps retrying in the background
   * when `keepTrying` is set, otherwise it is closed.
   */
  connect(opts: { timeoutMs: number; keepTrying: boolean }): Promise<void> {
    const o = this.#opts;
    const client = mqtt.connect(o.url, {
      clientId: `sim-${o.id}`,
      username: o.username,
      password: o.password,
      clean: true,
      keepalive: 60,
      reconnectPeriod: 2000,
      connectTimeout: Math.min(opts.timeoutMs, 10_000),
      will: {
        topic: `devices/${o.id}/status`,
        payload: new TextEncoder().encode("offline") as Buffer,
        qos: 1,
        retain: true,
      },
    });
    this.#client = client;
    client.on("connect", () => {
      if (this.#everConnected) this.#opts.onConnectionChange(this.id, true);
      this.#everConnected = true;
      this.#up = true;
      this.#lastError = undefined;
      this.announce();
    });
    client.on("error", (err) => {
      this.#lastError = err;
    });
    client.on("close", () => {
      if (this.#up && !this.#stopped && !client.disconnecting) {
        this.#up = false;
        this.#opts.counters.disconnects++;
        this.#opts.onConnectionChange(
          this.id,
          false,
          this.#lastError?.message ?? "connection closed",
        );
      }
    });
    return new Promise<void>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        client.off("connect", onConnect);
        client.off("error", onError);
      };
      const onConnect = () => {
        done();
        resolve();
      };
      const onError = (err: Error & { code?: unknown }) => {
        if (typeof err.code === "number" && AUTH_REFUSED.has(err.code)) {
          done();
          client.end(true);
          reject(
            new ConnectRefused(
              `The MQTT broker refused device ${this.id}: ${err.message} ` +
                "(check MQTT_USERNAME and MQTT_PASSWORD)",
              { cause: err },
            ),
          );
        }
      };
      const timer = setTimeout(() => {
        done();
        if (!opts.keepTrying) client.end(true);
        const why = this.#lastError ? describeNetworkError(this.#lastError) : "no answer";
        reject(new Error(why, { cause: this.#lastError }));
      }, opts.timeoutMs);
      client.on("connect", onConnect);
      client.on("error", onError);
    });
  }

  /** Publishes capabilities and `online`, both retained, as a board does after (re)connecting. */
  announce(): void {
    const o = this.#opts;
    this.#publish(
      `devices/${o.id}/capabilities`,
      capabilitiesPayload({ deviceId: o.id, room: o.room, intervalS: o.intervalS }),
      RETAINED,
    );
    this.#publish(`devices/${o.id}/status`, "online", RETAINED);
  }

  /**
   * Takes one round of readings at simulated time `simMs` and publishes it stamped with the real
   * time `atMs`. Rarely a sensor reports a fault instead of its data. Returns false when the
   * device is offline and the round was skipped.
   */
  publishReading(atMs: number, simMs: number): boolean {
    const o = this.#opts;
    if (!this.connected) {
      o.counters.skipped++;
      return false;
    }
    o.counters.readings++;
    const readings = this.#model.read(simMs);
    const timestamp = o.millisecondTimestamps ? Math.floor(atMs) : Math.floor(atMs / 1000);
    const payloads = dataPayloads(readings, timestamp);
    let faulty: keyof typeof SENSOR_FAULTS | undefined;
    if (o.errorRate > 0 && o.random.next() < o.errorRate) {
      faulty = o.random.next() < 0.7 ? "scd30" : "bmp280";
      const faults = SENSOR_FAULTS[faulty];
      const error = faults[Math.floor(o.random.next() * faults.length)];
      o.counters.errors++;
      this.#publish(
        `devices/${o.id}/error`,
        errorPayload({ sensor: faulty, error, timestamp }),
        QOS1,
      );
    }
    for (const sensor of ["scd30", "bmp280"] as const) {
      if (sensor !== faulty) {
        this.#publish(`devices/${o.id}/sensors/${sensor}/data`, payloads[sensor], QOS1);
      }
    }
    return true;
  }

  /**
   * Says `offline` (retained) and disconnects cleanly, so the broker does not fire the will; gives
   * up waiting after `timeoutMs` and closes the socket. Resolves true when `offline` was
   * acknowledged.
   */
  async stop(timeoutMs: number): Promise<boolean> {
    this.#stopped = true;
    const client = this.#client;
    if (!client) return false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), timeoutMs);
    });
    try {
      if (client.connected) {
        const said = this.#publishAsync(`devices/${this.id}/status`, "offline");
        if (await Promise.race([said, deadline]) === "sent") {
          const ended = client.endAsync().then(() => "ended" as const);
          if (await Promise.race([ended, deadline]) === "ended") return true;
          await client.endAsync(true);
          return true;
        }
      }
      await client.endAsync(true);
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  #publishAsync(topic: string, payload: string): Promise<"sent" | "failed"> {
    return new Promise((resolve) => {
      this.#publish(topic, payload, RETAINED, (ok) => resolve(ok ? "sent" : "failed"));
    });
  }

  #publish(
    topic: string,
    payload: string,
    options: { qos: 1; retain?: boolean },
    then?: (ok: boolean) => void,
  ): void {
    const c = this.#opts.counters;
    c.published++;
    this.#client!.publish(topic, payload, options, (err) => {
      if (err) c.failed++;
      else c.acked++;
      then?.(!err);
    });
  }
}

function describeNetworkError(err: Error & { code?: unknown }): string {
  switch (err.code) {
    case "ECONNREFUSED":
      return "connection refused (nothing listens there)";
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return "the host name does not resolve";
    case "ETIMEDOUT":
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return "the host does not answer";
    default:
      return err.message;
  }
}
