// Worker of the ingest benchmark: publishes SCD30 readings with QoS 1 from its own thread, so the
// load generator does not take event-loop time from the collector it measures.
import mqtt, { type MqttClient } from "mqtt";

/** What the benchmark asks the publisher to do. */
export interface PublishJob {
  url: string;
  username?: string;
  password?: string;
  /** Messages to publish. */
  n: number;
  /** Distinct devices (one SCD30 sensor each) the messages rotate over. */
  devices: number;
  /** Device id prefix, e.g. `bench` → `bench-0001`. */
  prefix: string;
  /** Topic prefix; `devices` for the collector, anything else for a topic nobody reads. */
  root: string;
  /** Epoch seconds of the first reading; each device's readings are a second apart. */
  baseSec: number;
  /** QoS 1 messages allowed in flight (published, PUBACK not yet received). */
  window: number;
  /**
   * Most messages published ahead of what the subscriber has taken (see `credit` messages), so
   * that a broker's per-client queue (Mosquitto's `max_queued_messages`, default 1000) never
   * overflows and drops messages. Unset: no limit.
   */
  ahead?: number;
}

/** A reading of the benchmark's fleet: the i-th message of `job`. */
export function benchMessage(
  job: Pick<PublishJob, "devices" | "prefix" | "root" | "baseSec">,
  i: number,
) {
  const device = `${job.prefix}-${String(i % job.devices).padStart(4, "0")}`;
  const ts = job.baseSec + Math.floor(i / job.devices);
  const co2 = 400 + (i % 1600);
  const temperature = 18 + (i % 70) / 10;
  const humidity = 30 + (i % 400) / 10;
  return {
    device,
    ts,
    co2,
    temperature,
    humidity,
    topic: `${job.root}/${device}/sensors/scd30/data`,
    payload: `{"timestamp":${ts},"value":{"co2":{"reading":${co2}},` +
      `"temperature":{"reading":${temperature}},"humidity":{"reading":${humidity}}}}`,
  };
}

/** How many messages the subscriber has taken so far, updated by the benchmark. */
let taken = 0;
let onCredit: (() => void) | undefined;

async function publishAll(client: MqttClient, job: PublishJob): Promise<void> {
  let next = 0;
  let acked = 0;
  taken = 0;
  const ahead = job.ahead ?? Infinity;
  await new Promise<void>((resolve, reject) => {
    onCredit = () => pump();
    const pump = () => {
      while (next < job.n && next - acked < job.window && next - taken < ahead) {
        const m = benchMessage(job, next++);
        client.publish(m.topic, m.payload, { qos: 1 }, (err) => {
          if (err) return reject(err);
          if (++acked === job.n) resolve();
          else pump();
        });
      }
    };
    pump();
  });
}

/** Runs in the worker only: the benchmark also imports `benchMessage` from here. */
function serve() {
  const scope = self as unknown as {
    onmessage: (e: MessageEvent) => void;
    postMessage: (m: unknown) => void;
  };
  let client: MqttClient | undefined;
  scope.onmessage = async (e: MessageEvent) => {
    const { op, job, n } = e.data as {
      op: "connect" | "publish" | "close" | "credit";
      job: PublishJob;
      n: number;
    };
    if (op === "credit") {
      taken = n;
      onCredit?.();
      return;
    }
    try {
      if (op === "connect") {
        client = await mqtt.connectAsync(job.url, {
          clientId: `ambient-bench-publisher-${crypto.randomUUID().slice(0, 8)}`,
          clean: true,
          username: job.username,
          password: job.password,
          protocolVersion: 4,
          reconnectPeriod: 0,
        });
        scope.postMessage({ ok: true });
      } else if (op === "publish") {
        const start = performance.now();
        await publishAll(client!, job);
        scope.postMessage({ ok: true, ms: performance.now() - start });
      } else {
        await client?.endAsync();
        scope.postMessage({ ok: true });
      }
    } catch (err) {
      scope.postMessage({ ok: false, error: err instanceof Error ? err.message : String(err) });
    }
  };
}

if ("WorkerGlobalScope" in globalThis) serve();
