import mqtt, { type DoneCallback, type IPublishPacket, type MqttClient } from "mqtt";
import type { ResolvedCollectorConfig } from "../config/mod.ts";
import { logger } from "../log/mod.ts";
import { errorText } from "./_error_text.ts";
import { receiveClock } from "./_receive_clock.ts";
import type { Journal } from "./journal.ts";
import type { RawMessage } from "./types.ts";

/** Parts and tuning of the MQTT intake. */
export interface MqttIntakeOptions {
  /** Broker URL (credentials, if any, come from `mqtt`). */
  url: string;
  mqtt: ResolvedCollectorConfig["mqtt"];
  journal: Journal;
  /** Longest delay between reconnect attempts. */
  retryMaxMs: number;
  /** Runs for each message once it is journaled, just before it is acknowledged. */
  onAccepted: () => void;
}

const log = logger("collector");
const encoder = new TextEncoder();
const TOPICS = [
  "devices/+/capabilities",
  "devices/+/sensors/+/data",
  "devices/+/status",
  "devices/+/error",
];

/**
 * The collector's MQTT client: subscribes to the device topics (QoS 1, persistent session) and
 * appends each message to the journal before acknowledging it. While the journal is full (or
 * failing) the acknowledgement is held, so the broker keeps the rest queued for this session.
 */
export class MqttIntake {
  #o: MqttIntakeOptions;
  #client: MqttClient;
  #subscribed = false;
  #stopping = false;
  #generation = 0; // bumps on every lost connection
  #held: { message: RawMessage; done: DoneCallback; generation: number } | undefined;
  #fullSince = 0;
  #appendFailing = false;
  #receiveClock = receiveClock();

  /** Connects at once; connection problems are logged and retried with backoff. */
  constructor(opts: MqttIntakeOptions) {
    this.#o = opts;
    const { url, mqtt: config, retryMaxMs } = opts;
    const topics = TOPICS.map((t) => config.sharedGroup ? `$share/${config.sharedGroup}/${t}` : t);
    const client: MqttClient = mqtt.connect(url, {
      clientId: config.clientId,
      clean: false,
      username: config.username,
      password: config.password,
      protocolVersion: 4,
      keepalive: 30,
      connectTimeout: 10_000,
      reconnectPeriod: 1000,
      reconnectOnConnackError: true,
      // Subscriptions are renewed on every connect below, not only when the session was lost.
      resubscribe: false,
    });
    this.#client = client;
    client.handleMessage = (packet, done) => this.#onMessage(packet, done);
    const where = brokerName(url);
    let lastError = "";
    client.on("connect", (connack) => {
      client.options.reconnectPeriod = 1000;
      lastError = "";
      log.info("Connected to the MQTT broker", { broker: where, session: connack.sessionPresent });
      const wanted = Object.fromEntries(topics.map((t) => [t, { qos: 1 as const }]));
      client.subscribe(wanted, (err, granted) => {
        if (err) {
          if (!this.#stopping) log.warn("Subscribing failed", { error: errorText(err) });
          return;
        }
        const refused = (granted ?? []).filter((g) => g.qos === 128).map((g) => g.topic);
        if (refused.length > 0) {
          log.error("The broker refused subscriptions (check its ACL)", { topics: refused });
          return;
        }
        this.#subscribed = true;
        log.info("Subscribed", { topics: topics.join(","), qos: 1 });
      });
    });
    client.on("close", () => {
      this.#generation++;
      if (this.#subscribed && !this.#stopping) {
        log.warn("Lost the MQTT connection; reconnecting", { broker: where });
      }
      this.#subscribed = false;
    });
    client.on("reconnect", () => {
      client.options.reconnectPeriod = Math.min(
        (client.options.reconnectPeriod ?? 1000) * 2,
        retryMaxMs,
      );
    });
    client.on("error", (err) => {
      const text = errorText(err);
      if (text !== lastError && !this.#stopping) {
        lastError = text;
        log.warn("MQTT connection problem; retrying", { broker: where, error: text });
      }
    });
  }

  /** True while connected to the broker with the subscriptions acknowledged. */
  get connected(): boolean {
    return this.#client.connected && this.#subscribed;
  }

  /**
   * Acknowledges a message that waited for journal space, once there is some. The "full" state
   * ends (and is logged) only when half of the budget is free, so a journal that fills as fast as
   * it drains does not log every batch.
   */
  releaseHeld(): void {
    const { journal } = this.#o;
    if (this.#held) {
      if (this.#held.generation !== this.#generation || this.#stopping) {
        // Its connection is gone: the broker delivers it again on the next one.
        this.#held = undefined;
      } else if (journal.hasRoom(this.#held.message)) {
        const h = this.#held;
        this.#held = undefined;
        this.#accept(h.message, h.done);
      }
    }
    if (this.#fullSince && !this.#held && journal.diskBytes <= journal.maxBytes / 2) {
      log.info("Journal has room again", { full_for_ms: Date.now() - this.#fullSince });
      this.#fullSince = 0;
    }
  }

  /**
   * Stops taking messages (the broker keeps those not acknowledged) and disconnects, forcibly
   * after 5 s.
   */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#held = undefined;
    const client = this.#client;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      client.endAsync(false).catch(() => {}),
      new Promise<void>((resolve) => timer = setTimeout(resolve, 5000)),
    ]);
    clearTimeout(timer);
    if (!client.disconnected) await client.endAsync(true).catch(() => {});
  }

  #accept(message: RawMessage, done: DoneCallback): boolean {
    try {
      this.#o.journal.append(message);
    } catch (err) {
      if (!this.#appendFailing) {
        this.#appendFailing = true;
        log.error("Cannot write to the journal; holding acknowledgements", {
          error: errorText(err),
        });
      }
      return false;
    }
    if (this.#appendFailing) {
      this.#appendFailing = false;
      log.info("Journal writable again");
    }
    this.#o.onAccepted();
    // The record is with the operating system now: acknowledging cannot lose it.
    done();
    return true;
  }

  #onMessage(packet: IPublishPacket, done: DoneCallback): void {
    // Once stopping, messages are neither journaled nor acknowledged: the broker keeps them.
    if (this.#stopping) return;
    const { journal } = this.#o;
    const message: RawMessage = {
      topic: packet.topic,
      payload: typeof packet.payload === "string" ? encoder.encode(packet.payload) : packet.payload,
      receivedAt: this.#receiveClock(),
      ...(packet.retain ? { retained: true } : {}),
    };
    const room = journal.hasRoom(message);
    if (room && this.#accept(message, done)) return;
    // Journal full (or failing): hold the acknowledgement. MQTT.js reads no further packet until
    // `done` runs, so the broker keeps everything else queued for this session.
    if (!room && !this.#fullSince) {
      this.#fullSince = Date.now();
      log.warn(
        "Journal full (JOURNAL_MAX_MB); holding acknowledgements until the database catches up",
        {
          journal_mb: (journal.diskBytes / 1048576).toFixed(1),
        },
      );
    }
    this.#held = { message, done, generation: this.#generation };
  }
}

/** `host:port` of the broker, without credentials. */
function brokerName(url: string): string {
  try {
    const u = new URL(url);
    return u.port ? `${u.hostname}:${u.port}` : u.hostname;
  } catch {
    return "(unparsable MQTT_URL)";
  }
}
