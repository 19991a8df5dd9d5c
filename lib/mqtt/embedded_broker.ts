import { createServer, type Server, type Socket } from "node:net";
import { Aedes } from "aedes";

/** A running in-process MQTT broker. */
export interface EmbeddedBroker {
  /** Where clients connect, e.g. `mqtt://127.0.0.1:1883`. */
  readonly url: string;
  /** The port actually bound (useful when 0 was asked for). */
  readonly port: number;
  /** Disconnects every client and stops listening (idempotent). */
  close(): Promise<void>;
}

/** Where the embedded broker listens. */
export interface EmbeddedBrokerOptions {
  /** Interface to bind, e.g. `127.0.0.1` or `0.0.0.0`. */
  host: string;
  /** TCP port; 0 picks a free one. */
  port: number;
}

/**
 * Starts an MQTT broker (aedes) inside this process, for devices that publish to the box itself
 * when no broker is configured. Sessions and QoS 1 messages are kept in memory: persistent
 * sessions (`clean: false`) survive a client's reconnect, not a restart of this process.
 * Shared subscriptions (`$share/…`) are not supported by aedes.
 */
export async function startEmbeddedBroker(opts: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
  const aedes = await Aedes.createBroker({ heartbeatInterval: 60_000 });
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    aedes.handle(socket);
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(opts.port, opts.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (err) {
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
  return {
    url: `mqtt://${urlHost}:${port}`,
    port,
    close() {
      closing ??= (async () => {
        const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
        await new Promise<void>((resolve) => aedes.close(() => resolve()));
        // Clients that never completed CONNECT are not known to aedes; end their sockets too.
        for (const s of sockets) s.destroy();
        await serverClosed;
      })();
      return closing;
    },
  };
}
