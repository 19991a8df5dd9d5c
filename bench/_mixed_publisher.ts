// Worker of the mixed benchmark: offers SCD30 readings at a steady rate (QoS 1) from its own
// thread, as a fleet of devices would, for a fixed time.
import mqtt from "mqtt";
import { benchMessage } from "./_ingest_publisher.ts";

/** What the benchmark asks of the worker. */
export interface PacedJob {
  url: string;
  /** Messages per second offered. */
  rate: number;
  seconds: number;
  devices: number;
  prefix: string;
  /** Epoch seconds of the first reading. */
  baseSec: number;
  /** QoS 1 messages in flight at most; beyond, the offer is not kept up. */
  window: number;
}

async function offer(job: PacedJob): Promise<{ published: number; acked: number }> {
  const client = await mqtt.connectAsync(job.url, {
    clientId: `ambient-bench-mixed-${crypto.randomUUID().slice(0, 8)}`,
    clean: true,
    protocolVersion: 4,
    reconnectPeriod: 0,
  });
  let next = 0;
  let acked = 0;
  const total = Math.round(job.rate * job.seconds);
  const start = performance.now();
  try {
    while (next < total) {
      // Every 10 ms, catch up with the schedule (rate × time elapsed).
      const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * job.rate));
      while (next < due && next - acked < job.window) {
        const m = benchMessage({ ...job, root: "devices" }, next++);
        client.publish(m.topic, m.payload, { qos: 1 }, (err) => {
          if (!err) acked++;
        });
      }
      if (performance.now() - start > job.seconds * 1000 + 5000) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    const until = performance.now() + 10_000;
    while (acked < next && performance.now() < until) await new Promise((r) => setTimeout(r, 10));
  } finally {
    await client.endAsync();
  }
  return { published: next, acked };
}

if ("WorkerGlobalScope" in globalThis) {
  const scope = self as unknown as {
    onmessage: (e: MessageEvent) => void;
    postMessage: (m: unknown) => void;
  };
  scope.onmessage = async (e: MessageEvent) => {
    try {
      scope.postMessage({ ok: true, ...(await offer(e.data as PacedJob)) });
    } catch (err) {
      scope.postMessage({ ok: false, error: err instanceof Error ? err.message : String(err) });
    }
  };
}
