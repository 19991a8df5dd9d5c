// Connecting a fleet: one board probes the broker, then the rest connect in waves.
import type { Logger } from "../log/mod.ts";
import { ConnectRefused, type SimDevice } from "./_sim_device.ts";

/** The fleet could not start: broker unreachable or credentials refused. */
export class FleetStartError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "FleetStartError";
  }
}

/** Boards connecting at once; a broker sees at most this many CONNECTs in flight. */
const CONNECT_WAVE = 50;

/**
 * Connects every board. The first one probes the broker: when it cannot connect within
 * `timeoutMs`, or the credentials are refused, nothing else is tried and `FleetStartError` says
 * why. Later boards that are slow keep retrying in the background.
 */
export async function connectAll(
  devices: SimDevice[],
  opts: { timeoutMs: number; url: string; log: Logger },
): Promise<void> {
  try {
    await devices[0].connect({ timeoutMs: opts.timeoutMs, keepTrying: false });
  } catch (err) {
    await devices[0].stop(0);
    if (err instanceof ConnectRefused) throw new FleetStartError(err.message, { cause: err });
    throw new FleetStartError(
      `Cannot connect to the MQTT broker at ${opts.url}: ${(err as Error).message}. ` +
        "Start one (`deno task serve` runs an embedded broker on 127.0.0.1:1883) or set MQTT_URL.",
      { cause: err },
    );
  }
  let late = 0;
  for (let i = 1; i < devices.length; i += CONNECT_WAVE) {
    const wave = devices.slice(i, i + CONNECT_WAVE);
    const results = await Promise.allSettled(
      wave.map((d) => d.connect({ timeoutMs: opts.timeoutMs, keepTrying: true })),
    );
    const refused = results.find((r) =>
      r.status === "rejected" && r.reason instanceof ConnectRefused
    );
    if (refused) {
      await Promise.all(devices.map((d) => d.stop(1000)));
      const reason = (refused as PromiseRejectedResult).reason as Error;
      throw new FleetStartError(reason.message, { cause: reason });
    }
    late += results.filter((r) => r.status === "rejected").length;
  }
  if (late > 0) {
    opts.log.warn("some devices are not connected yet and keep retrying", { devices: late });
  }
}
