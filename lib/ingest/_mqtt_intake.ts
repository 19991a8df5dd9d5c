import mqtt, {
  type DoneCallback,
  type IDisconnectPacket,
  type IPublishPacket,
  type MqttClient,
} from "mqtt";
import type { ResolvedCollectorConfig } from "../config/mod.ts";
import { logger } from "../log/mod.ts";
import type { Duplex } from "node:stream";
import { errorText } from "./_error_text.ts";
import { limitIncomingPackets } from "./_packet_limit.ts";
import { receiveClock } from "./_receive_clock.ts";
import { MAX_PAYLOAD_BYTES } from "./decode_message.ts";
import { type Journal, JournalWriteError } from "./journal.ts";
import type { RawMessage } from "./types.ts";

/** Parts and tuning of the MQTT intake. */
export interface MqttIntakeOptions {
  /** Broker URL (credentials, if any, come from `mqtt`). */
  url: string;
  mqtt: ResolvedCollectorConfig["mqtt"];
  journal: Journal;
  /** First delay before reconnecting to the broker, doubled up to `retryMaxMs`. */
  retryMinMs: number;
  /** Longest delay between reconnect attempts. */
  retryMaxMs: number;
  /** Runs for each message once it is journaled, just before it is acknowledged. */
  onAccepted: () => void;
  /**
   * A connection whose SUBSCRIBE the broker has not answered after this long is dropped and
   * made again (default 10 s): connected but not subscribed, the collector would receive nothing.
   */
  subscribeTimeoutMs?: number;
}

/**
 * The largest MQTT packet the collector accepts: twice the payload cap, so a message somewhat over
 * the cap still arrives and is recorded in `rejected_messages` with the reason. Over MQTT 5 the
 * broker is told (CONNECT `maximumPacketSize`) and drops larger messages for this client instead
 * of sending them.
 */
export const MAX_PACKET_BYTES = 2 * MAX_PAYLOAD_BYTES;

/** QoS 1 messages the broker may have in flight to the collector (MQTT 5 `receiveMaximum`). */
const RECEIVE_MAXIMUM = 100;
/** A connection that stayed up this long resets the reconnect backoff. */
const STABLE_MS = 30_000;
/** A connection closed sooner than this after it was accepted counts as cut short. */
const SHORT_MS = 10_000;
/** MQTT 3.1.1 brokers give no reason: this many short connections in a row suggest a takeover. */
const SHORT_IN_A_ROW = 3;
/** How often a message waiting for journal space is tried again. */
const HELD_RETRY_MS = 200;
/** Append failures closer together than this are one episode, logged once. */
const APPEND_EPISODE_MS = 60_000;
/** MQTT 5 DISCONNECT reason: another client connected with the same client id. */
const SESSION_TAKEN_OVER = 0x8e;

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
 * appends each message to the journal before acknowledging it. While the journal is full (its
 * budget or its disk) or failing, the acknowledgement is held, so the broker keeps the rest
 * queued for this session; the held message is retried until it is journaled.
 *
 * It speaks MQTT 5 (asking the broker for packets of at most `MAX_PACKET_BYTES`) and falls back
 * to MQTT 3.1.1 for brokers that refuse it. Reconnects back off from `retryMinMs` to
 * `retryMaxMs`; only a connection that stayed up resets the delay, so two collectors sharing a
 * client id (which keep taking the session from each other) slow down instead of looping.
 */
export class MqttIntake {
  #o: MqttIntakeOptions;
  #client: MqttClient;
  #subscribed = false;
  #stopping = false;
  #generation = 0; // bumps on every lost connection
  #subscribeTimer: ReturnType<typeof setTimeout> | undefined;
  #held: { message: RawMessage; done: DoneCallback; generation: number } | undefined;
  #heldTimer: ReturnType<typeof setTimeout> | undefined;
  #fullSince = 0;
  #appendFailing = false;
  #failingSince = 0;
  #lastAppendFailure = -Infinity;
  #recoveryLogged = true;
  #receiveClock = receiveClock();
  #backoffMs: number;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #connectedAt = 0;
  #takenOver = false;
  #shortInARow = 0;
  #takeoverReported = false;
  #reconnects = 0;
  #cutLoggedAt = -Infinity;
  /** A CONNACK has arrived once: later timeouts are outages, not a protocol the broker lacks. */
  #everConnected = false;
  #cutSinceLog = 0;

  /** Connects at once; connection problems are logged and retried with backoff. */
  constructor(opts: MqttIntakeOptions) {
    this.#o = opts;
    this.#backoffMs = opts.retryMinMs;
    const { url, mqtt: config } = opts;
    const topics = TOPICS.map((t) => config.sharedGroup ? `$share/${config.sharedGroup}/${t}` : t);
    const client: MqttClient = mqtt.connect(url, {
      clientId: config.clientId,
      clean: false,
      username: config.username,
      password: config.password,
      protocolVersion: config.protocolVersion ?? 5,
      properties: config.protocolVersion === 4 ? undefined : {
        // The session (and the messages queued for it) outlives a disconnect, as in MQTT 3.1.1.
        sessionExpiryInterval: 0xffffffff,
        maximumPacketSize: MAX_PACKET_BYTES,
        // Unacknowledged messages in flight to this client, as Mosquitto's max_inflight_messages
        // bounds them for MQTT 3.1.1 (without it, MQTT 5 allows 65,535).
        receiveMaximum: RECEIVE_MAXIMUM,
      },
      keepalive: 30,
      connectTimeout: 10_000,
      // Reconnects are scheduled below, with a backoff that only a lasting connection resets.
      reconnectPeriod: 0,
      // Subscriptions are renewed on every connect below, not only when the session was lost.
      resubscribe: false,
      manualConnect: true,
      // MQTT.js otherwise pre-builds a 2-byte buffer for each of the 65,536 packet ids (the heap
      // when subscribed: 21 MB with them, 15 MB without), which the collector never needs: it
      // sends only PUBACKs and a few requests.
      writeCache: false,
    });
    this.#client = client;
    // Whatever the broker does with `maximumPacketSize` (a 3.1.1 broker is never told), no larger
    // packet is held in memory: see `limitIncomingPackets()`.
    const internals = client as unknown as { streamBuilder: (c: MqttClient) => Duplex };
    const build = internals.streamBuilder;
    internals.streamBuilder = (c) =>
      limitIncomingPackets(build(c), {
        maxBytes: MAX_PACKET_BYTES,
        keepPayloadBytes: MAX_PAYLOAD_BYTES + 1,
        protocolVersion: () => client.options.protocolVersion ?? 4,
        onCut: (bytes) => {
          // At most one line a minute, however many a publisher sends.
          this.#cutSinceLog++;
          if (Date.now() - this.#cutLoggedAt < 60_000) return;
          log.warn(
            "Messages over the size limit were cut on arrival; they are stored as rejected",
            {
              bytes,
              limit: MAX_PACKET_BYTES,
              messages: this.#cutSinceLog,
            },
          );
          this.#cutLoggedAt = Date.now();
          this.#cutSinceLog = 0;
        },
      });
    client.handleMessage = (packet, done) => this.#onMessage(packet, done);
    const where = brokerName(url);
    let lastError = "";
    client.on("connect", (connack) => {
      lastError = "";
      this.#connectedAt = Date.now();
      this.#everConnected = true;
      log.info("Connected to the MQTT broker", {
        broker: where,
        session: connack.sessionPresent,
        mqtt: client.options.protocolVersion === 5 ? "5" : "3.1.1",
      });
      const wanted = Object.fromEntries(topics.map((t) => [t, { qos: 1 as const }]));
      const timeoutMs = this.#o.subscribeTimeoutMs ?? 10_000;
      // Cleared by the SUBACK, a lost connection and stop(): firing means none came first.
      clearTimeout(this.#subscribeTimer);
      this.#subscribeTimer = setTimeout(() => {
        log.warn("The broker did not answer the subscription; reconnecting", {
          broker: where,
          after_ms: timeoutMs,
        });
        // As if the connection were lost: "close" below schedules the reconnect.
        (client as unknown as { stream?: { destroy(): void } }).stream?.destroy();
      }, timeoutMs);
      client.subscribe(wanted, (err, granted) => {
        clearTimeout(this.#subscribeTimer);
        if (err) {
          if (!this.#stopping) log.warn("Subscribing failed", { error: errorText(err) });
          return;
        }
        const refused = (granted ?? []).filter((g) => g.qos >= 128).map((g) => g.topic);
        if (refused.length > 0) {
          log.error("The broker refused subscriptions (check its ACL)", { topics: refused });
          return;
        }
        this.#subscribed = true;
        log.info("Subscribed", { topics: topics.join(","), qos: 1 });
      });
    });
    client.on("disconnect", (packet: IDisconnectPacket) => {
      if (packet.reasonCode === SESSION_TAKEN_OVER) this.#takenOver = true;
    });
    client.on("close", () => {
      clearTimeout(this.#subscribeTimer);
      this.#generation++;
      const upMs = this.#connectedAt ? Date.now() - this.#connectedAt : -1;
      this.#connectedAt = 0;
      const wasSubscribed = this.#subscribed;
      this.#subscribed = false;
      if (this.#stopping) return;
      const takenOver = this.#takenOver;
      this.#takenOver = false;
      if (upMs >= 0) {
        this.#shortInARow = upMs < SHORT_MS ? this.#shortInARow + 1 : 0;
        if (upMs >= STABLE_MS && !takenOver) this.#backoffMs = this.#o.retryMinMs;
      }
      const short = upMs >= 0 && upMs < SHORT_MS;
      if (takenOver || (short && this.#shortInARow >= SHORT_IN_A_ROW)) {
        this.#reportTakeover(takenOver);
      } else if (wasSubscribed && !(short && this.#takeoverReported)) {
        log.warn("Lost the MQTT connection; reconnecting", {
          broker: where,
          retry_in_ms: this.#backoffMs,
        });
      }
      this.#scheduleReconnect();
    });
    client.on("error", (err) => {
      const code = (err as { code?: number }).code;
      // 1 (MQTT 3.1.1) or 0x84 (MQTT 5): the broker does not speak MQTT 5. Some 3.1.1 brokers
      // (aedes with accounts) never answer an MQTT 5 CONNECT at all: a CONNACK timeout on the
      // first MQTT 5 attempt counts the same. The packet limit holds under 3.1.1 too.
      const noConnack = !this.#everConnected && /connack timeout/i.test(errorText(err));
      if (client.options.protocolVersion === 5 && (code === 1 || code === 0x84 || noConnack)) {
        log.info("The broker does not accept MQTT 5; using MQTT 3.1.1", { broker: where });
        client.options.protocolVersion = 4;
        delete client.options.properties;
        this.#backoffMs = 0; // at once, in the older protocol
        return;
      }
      const text = errorText(err);
      if (text !== lastError && !this.#stopping) {
        lastError = text;
        log.warn("MQTT connection problem; retrying", { broker: where, error: text });
      }
    });
    client.connect();
  }

  /** True while connected to the broker with the subscriptions acknowledged. */
  get connected(): boolean {
    return this.#client.connected && this.#subscribed;
  }

  /** Reconnect attempts since the start. */
  get reconnects(): number {
    return this.#reconnects;
  }

  /**
   * Acknowledges a message that waited for journal space, once it is journaled. The "full" state
   * ends (and is logged) only when half of the budget is free, so a journal that fills as fast as
   * it drains does not log every batch.
   */
  releaseHeld(): void {
    const { journal } = this.#o;
    const h = this.#held;
    if (h) {
      if (h.generation !== this.#generation || this.#stopping) {
        // Its connection is gone: the broker delivers it again on the next one.
        this.#held = undefined;
      } else if (journal.hasRoom(h.message)) {
        // Cleared first: acknowledging may hand over the next message at once, which may be held
        // in its turn. A failed append acknowledges nothing, so then this one is still held.
        this.#held = undefined;
        if (!this.#accept(h.message, h.done)) this.#held = h;
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
    clearTimeout(this.#heldTimer);
    clearTimeout(this.#subscribeTimer);
    clearTimeout(this.#reconnectTimer);
    const client = this.#client;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      client.endAsync(false).catch(() => {}),
      new Promise<void>((resolve) => timer = setTimeout(resolve, 5000)),
    ]);
    clearTimeout(timer);
    if (!client.disconnected) await client.endAsync(true).catch(() => {});
  }

  #scheduleReconnect(): void {
    clearTimeout(this.#reconnectTimer);
    const delay = this.#backoffMs;
    this.#backoffMs = Math.min(
      Math.max(this.#o.retryMinMs, this.#backoffMs * 2),
      this.#o.retryMaxMs,
    );
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      if (this.#stopping) return;
      this.#reconnects++;
      this.#client.reconnect();
    }, delay);
  }

  /** Says once why the broker keeps closing the connection: a second client with this id. */
  #reportTakeover(certain: boolean): void {
    if (this.#takeoverReported) return;
    this.#takeoverReported = true;
    const id = this.#o.mqtt.clientId;
    log.error(
      certain
        ? `Another MQTT client connected with this collector's MQTT_CLIENT_ID (${id}) and took ` +
          "its session over. Give each collector its own MQTT_CLIENT_ID (and MQTT_SHARED_GROUP to " +
          "split the stream); reconnecting with a growing delay meanwhile"
        : `The broker closed the connection right after connecting ${this.#shortInARow} times in ` +
          `a row: another client probably uses the same MQTT_CLIENT_ID (${id}). Give each ` +
          "collector its own MQTT_CLIENT_ID; reconnecting with a growing delay meanwhile",
      { retry_in_ms: this.#backoffMs },
    );
  }

  #accept(message: RawMessage, done: DoneCallback): boolean {
    const { journal } = this.#o;
    try {
      journal.append(message);
    } catch (err) {
      this.#appendFailing = true;
      // One episode per outage: a disk that fills again within a minute (the journal draining
      // as fast as the broker delivers) is not logged again.
      if (Date.now() - this.#lastAppendFailure > APPEND_EPISODE_MS) {
        this.#failingSince = Date.now();
        this.#recoveryLogged = false;
        if (err instanceof JournalWriteError && err.noSpace) {
          log.error(
            "No space left on the journal's disk; holding acknowledgements (the broker keeps " +
              "the messages) until space is freed or the database takes the journal",
            { path: journal.dir, error: errorText(err) },
          );
        } else {
          log.error("Cannot write to the journal; holding acknowledgements", {
            path: journal.dir,
            error: errorText(err),
          });
        }
      }
      this.#lastAppendFailure = Date.now();
      return false;
    }
    if (this.#appendFailing) {
      this.#appendFailing = false;
      if (!this.#recoveryLogged) {
        this.#recoveryLogged = true;
        log.info("Journal writable again; acknowledging", {
          held_for_ms: Date.now() - this.#failingSince,
        });
      }
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
    this.#retryHeld();
  }

  /** Tries the held message again every `HELD_RETRY_MS` until it is journaled or dropped. */
  #retryHeld(): void {
    if (this.#heldTimer) return;
    this.#heldTimer = setTimeout(() => {
      this.#heldTimer = undefined;
      this.releaseHeld();
      if (this.#held) this.#retryHeld();
    }, HELD_RETRY_MS);
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
