import { createServer, type Server, type Socket } from "node:net";
import { createServer as createTlsServer } from "node:tls";
import { Aedes } from "aedes";
import { logger } from "../log/mod.ts";
import {
  BrokerAccess,
  type Identity,
  parseDeviceCredentials,
  RetainedBudget,
} from "./_broker_access.ts";
import { packetGate } from "./_packet_gate.ts";

const log = logger("mqtt");

/** Largest MQTT packet accepted: a 64 KiB payload (the collector's limit) plus topic and header. */
export const MAX_PACKET_BYTES = 65_536 + 1024;

/** A running in-process MQTT broker. */
export interface EmbeddedBroker {
  /** Where clients connect, e.g. `mqtt://127.0.0.1:1883` (`mqtts://…` with TLS). */
  readonly url: string;
  /**
   * Where clients of this process connect: `url`, or with TLS a plain listener on a free
   * loopback port (same accounts and rules), so that no certificate has to be trusted.
   */
  readonly localUrl: string;
  /** The port actually bound (useful when 0 was asked for). */
  readonly port: number;
  /**
   * Stops taking messages before a shutdown: stops listening, disconnects every client but
   * `keep` (their wills are published), then waits at most `timeoutMs` until the `keep` clients
   * have acknowledged every QoS 1 message the broker holds for them. This broker keeps messages
   * in memory only, so what a device had handed over must reach the collector (and its journal)
   * before the process ends. Returns how many messages were still unacknowledged.
   */
  handOver(keep: string[], timeoutMs: number): Promise<number>;
  /**
   * With `firstSubscriber`: resolves true once that client has subscribed and the broker takes
   * other clients, or false after `timeoutMs` (the broker stays closed to them until then).
   * Without it: true at once.
   */
  opened(timeoutMs: number): Promise<boolean>;
  /** Disconnects every client and stops listening (idempotent). */
  close(): Promise<void>;
}

/** The parts of aedes' broker that `handOver()` reads: public at run time, not in its types. */
interface AedesInternals {
  clients: Record<string, { id: string; close(): void }>;
  persistence: { outgoingStream(client: unknown): AsyncIterable<unknown> };
}

/** Where the embedded broker listens. */
export interface EmbeddedBrokerOptions {
  /** Interface to bind, e.g. `127.0.0.1` or `0.0.0.0`. */
  host: string;
  /** TCP port; 0 picks a free one. */
  port: number;
  /** The service account (`MQTT_USERNAME`/`MQTT_PASSWORD`): collector, simulator. */
  username?: string;
  password?: string;
  /** File of per-device accounts, `device_id:password` per line (`MQTT_DEVICE_CREDENTIALS_FILE`). */
  deviceCredentialsFile?: string;
  /** PEM certificate and key files: the listener speaks TLS (`mqtts`). */
  tlsCertFile?: string;
  tlsKeyFile?: string;
  /** Accept a non-loopback `host` without accounts (`ALLOW_INSECURE_NON_LOOPBACK`). */
  allowInsecure?: boolean;
  /** Client ids only the service account may use (the collector's `MQTT_CLIENT_ID`). */
  reservedClientIds?: string[];
  /**
   * A client (the collector's `MQTT_CLIENT_ID`) that must have subscribed before any other
   * client may connect. This broker keeps sessions in memory, so right after a start nobody is
   * subscribed: a device's QoS 1 message taken then would be acknowledged and go nowhere. Until
   * then other clients get CONNACK "server unavailable" and try again, keeping their messages.
   */
  firstSubscriber?: string;
  /** Largest packet accepted, in bytes (default `MAX_PACKET_BYTES`). */
  maxPacketBytes?: number;
  /** Retained messages kept at most: topics and payload bytes (default 10,000 and 16 MiB). */
  maxRetained?: number;
  maxRetainedBytes?: number;
}

function isLoopbackHost(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

async function loadAccess(opts: EmbeddedBrokerOptions): Promise<BrokerAccess> {
  if ((opts.username === undefined) !== (opts.password === undefined)) {
    throw new Error("MQTT_USERNAME and MQTT_PASSWORD must be set together");
  }
  let devices = new Map<string, string>();
  if (opts.deviceCredentialsFile) {
    let text: string;
    try {
      text = await Deno.readTextFile(opts.deviceCredentialsFile);
    } catch (err) {
      throw new Error(
        `MQTT_DEVICE_CREDENTIALS_FILE cannot be read (${opts.deviceCredentialsFile}): ${
          (err as Error).message
        }`,
      );
    }
    devices = parseDeviceCredentials(text, "MQTT_DEVICE_CREDENTIALS_FILE");
    if (devices.size > 0 && opts.username === undefined) {
      throw new Error(
        "MQTT_DEVICE_CREDENTIALS_FILE needs MQTT_USERNAME and MQTT_PASSWORD too: the collector " +
          "logs in with them",
      );
    }
  }
  const service = opts.username !== undefined
    ? { username: opts.username, password: opts.password! }
    : undefined;
  if (service && devices.has(service.username)) {
    throw new Error(
      `MQTT_USERNAME "${service.username}" is also a device in MQTT_DEVICE_CREDENTIALS_FILE`,
    );
  }
  const access = new BrokerAccess({ service, devices }, opts.reservedClientIds);
  if (!access.required && !isLoopbackHost(opts.host) && !opts.allowInsecure) {
    throw new Error(
      `MQTT_LISTEN is "${opts.host}:${opts.port}", which is reachable from other machines: set ` +
        "MQTT_USERNAME and MQTT_PASSWORD (and per device MQTT_DEVICE_CREDENTIALS_FILE), or " +
        "ALLOW_INSECURE_NON_LOOPBACK=true to accept the risk",
    );
  }
  return access;
}

/**
 * Starts an MQTT broker (aedes) inside this process, for devices that publish to the box itself
 * when no broker is configured. Sessions and QoS 1 messages are kept in memory: persistent
 * sessions (`clean: false`) survive a client's reconnect, not a restart of this process.
 * Shared subscriptions (`$share/…`) are not supported by aedes.
 */
export async function startEmbeddedBroker(opts: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
  const access = await loadAccess(opts);
  let tls: { cert: string; key: string } | undefined;
  if (opts.tlsCertFile || opts.tlsKeyFile) {
    if (!opts.tlsCertFile || !opts.tlsKeyFile) {
      throw new Error("MQTT_TLS_CERT_FILE and MQTT_TLS_KEY_FILE must be set together");
    }
    try {
      tls = {
        cert: await Deno.readTextFile(opts.tlsCertFile),
        key: await Deno.readTextFile(opts.tlsKeyFile),
      };
    } catch (err) {
      throw new Error(`The MQTT TLS certificate or key cannot be read: ${(err as Error).message}`);
    }
  }
  const maxPacket = opts.maxPacketBytes ?? MAX_PACKET_BYTES;
  const retained = new RetainedBudget({
    maxTopics: opts.maxRetained ?? 10_000,
    maxBytes: opts.maxRetainedBytes ?? 16 * 1024 * 1024,
  });
  const identities = new WeakMap<object, Identity>();
  let retainWarned = 0;
  /** Set by `handOver()`: the clients still served; everyone else may no longer publish. */
  let handingOver: { keep: Set<string>; closed: WeakSet<object> } | undefined;
  let open = opts.firstSubscriber === undefined;
  const opening = Promise.withResolvers<void>();
  /** CONNACK 3, "server unavailable": the client tries again later, keeping its messages. */
  const unavailable = (why: string) => Object.assign(new Error(why), { returnCode: 3 }) as never;
  const aedes = await Aedes.createBroker({
    heartbeatInterval: 60_000,
    maxClientsIdLength: 128,
    authenticate(client, username, password, done) {
      if (handingOver && !handingOver.keep.has(client.id)) {
        return done(unavailable("the broker is stopping"), false);
      }
      if (!open && client.id !== opts.firstSubscriber) {
        return done(unavailable("the collector is not subscribed yet"), false);
      }
      const who = access.authenticate(client.id, username, password);
      if (typeof who === "string") {
        log.warn("MQTT client refused", { clientId: client.id.slice(0, 64), reason: who });
        const err = Object.assign(new Error(who), { returnCode: who.startsWith("bad") ? 4 : 5 });
        return done(err as never, false);
      }
      identities.set(client, who);
      done(null, true);
    },
    authorizePublish(client, packet, done) {
      // Wills of clients this broker does not know (other brokers' persistence) have no client.
      const who = client ? identities.get(client) : undefined;
      // While handing over, only the wills of the clients it closed still go through.
      const stopping = handingOver && client && !handingOver.keep.has(client.id) &&
          !handingOver.closed.has(client)
        ? "the broker is stopping"
        : undefined;
      const denied = stopping ?? access.publishDenied(who, packet.topic);
      if (denied) {
        log.warn("MQTT publish refused", { clientId: client?.id.slice(0, 64), reason: denied });
        return done(new Error(denied));
      }
      if (packet.retain && !retained.admit(packet.topic, packet.payload.length)) {
        // Delivered, not kept: retained only where the contract uses it, within the caps.
        packet.retain = false;
        if (Date.now() - retainWarned > 60_000) {
          retainWarned = Date.now();
          log.warn("retained message not kept", {
            topic: packet.topic.slice(0, 200),
            ...retained.usage,
          });
        }
      }
      done(null);
    },
    authorizeSubscribe(client, sub, done) {
      if (access.maySubscribe(identities.get(client), sub.topic)) return done(null, sub);
      log.warn("MQTT subscription refused", {
        clientId: client.id.slice(0, 64),
        topic: sub.topic.slice(0, 200),
      });
      done(null, null as never);
    },
  });
  if (!open) {
    aedes.on("subscribe", (_subs, client) => {
      if (open || client?.id !== opts.firstSubscriber) return;
      open = true;
      opening.resolve();
    });
  }
  const sockets = new Set<Socket>();
  const handle = (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    const where = `${socket.remoteAddress}:${socket.remotePort}`;
    aedes.handle(packetGate(socket, maxPacket, (announced) => {
      log.warn("MQTT packet over the size limit: connection closed", {
        client: where,
        bytes: announced,
        limit: maxPacket,
      });
    }));
  };
  const server: Server = tls ? createTlsServer(tls, handle) : createServer(handle);
  const local: Server | undefined = tls ? createServer(handle) : undefined;
  const listen = (srv: Server, port: number, host: string) =>
    new Promise<void>((resolve, reject) => {
      srv.once("error", reject);
      srv.listen(port, host, () => {
        srv.off("error", reject);
        resolve();
      });
    });
  try {
    await listen(server, opts.port, opts.host);
    if (local) await listen(local, 0, "127.0.0.1");
  } catch (err) {
    if (server.listening) server.close();
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    const code = (err as { code?: string }).code;
    const why = code === "EADDRINUSE"
      ? "the address is already in use (another MQTT broker? Set MQTT_URL to use it, or MQTT_LISTEN to listen elsewhere)"
      : (err as Error).message;
    throw new Error(`Cannot start the embedded MQTT broker on ${opts.host}:${opts.port}: ${why}`, {
      cause: err,
    });
  }
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : opts.port;
  const urlHost = opts.host === "0.0.0.0" || opts.host === "::"
    ? "127.0.0.1"
    : opts.host.includes(":")
    ? `[${opts.host}]`
    : opts.host;
  let closing: Promise<void> | undefined;
  let listening = true;
  const stopListening = () => {
    if (!listening) return Promise.resolve();
    listening = false;
    return Promise.all(
      [server, ...(local ? [local] : [])].map((srv) =>
        new Promise<void>((resolve) => srv.close(() => resolve()))
      ),
    ).then(() => {});
  };
  const inner = aedes as unknown as AedesInternals;
  /** QoS 1 messages the broker holds for `clientId`, sent or queued, not yet acknowledged. */
  const unacknowledged = async (clientId: string) => {
    const client = inner.clients[clientId];
    if (!client) return 0;
    let n = 0;
    for await (const _ of inner.persistence.outgoingStream(client)) n++;
    return n;
  };
  const url = `${tls ? "mqtts" : "mqtt"}://${urlHost}:${port}`;
  const localAddress = local?.address();
  return {
    url,
    localUrl: localAddress && typeof localAddress === "object"
      ? `mqtt://127.0.0.1:${localAddress.port}`
      : url,
    port,
    async opened(timeoutMs) {
      if (open) return true;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<boolean>((resolve) =>
        timer = setTimeout(() => resolve(false), timeoutMs)
      );
      const result = await Promise.race([opening.promise.then(() => true), late]);
      clearTimeout(timer);
      return result;
    },
    async handOver(keep, timeoutMs) {
      handingOver ??= { keep: new Set(keep), closed: new WeakSet() };
      // Not awaited: closing a server waits for its connections, and the kept ones stay open.
      void stopListening();
      for (const client of Object.values(inner.clients)) {
        if (handingOver.keep.has(client.id)) continue;
        handingOver.closed.add(client);
        client.close();
      }
      const until = Date.now() + timeoutMs;
      // Twice nothing in a row, 20 ms apart: a will or a publish acknowledged just before is on
      // its way through the broker between the two looks.
      let quiet = 0;
      for (;;) {
        let pending = 0;
        for (const id of handingOver.keep) pending += await unacknowledged(id);
        quiet = pending === 0 ? quiet + 1 : 0;
        if (quiet >= 2 || Date.now() >= until) return pending;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    close() {
      closing ??= (async () => {
        const serverClosed = stopListening();
        await new Promise<void>((resolve) => aedes.close(() => resolve()));
        // Clients that never completed CONNECT are not known to aedes; end their sockets too.
        for (const s of sockets) s.destroy();
        await serverClosed;
      })();
      return closing;
    },
  };
}
