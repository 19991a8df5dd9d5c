// Child process of the ingest benchmark: runs the collector on its own, so that the memory and
// CPU it reports are the collector's. Talks to the benchmark in JSON lines on stdout.
import mqtt from "mqtt";
import { loadCollectorConfig, type MqttSettings, type StorageLayout } from "../lib/config/mod.ts";
import { migrate, openDb } from "../lib/db/mod.ts";
import { type BatchWriter, createBatchWriter, startCollector } from "../lib/ingest/mod.ts";

/** What the benchmark asks of this process (its one argument, as JSON). */
export interface CollectorJob {
  /** PostgreSQL to write to; unset → a fresh embedded PGlite in a temporary folder. */
  databaseUrl?: string;
  mqttUrl: string;
  layouts: StorageLayout[];
  /** Readings of devices named `<prefix>-…` to wait for. */
  n: number;
  prefix: string;
  /** MQTT client id (default: a fresh one, whose session is removed at the end). */
  clientId?: string;
  /**
   * `subscribe`: connect, subscribe with the persistent session and stop at once (the broker
   * then queues messages for it); `drain`: like a normal run, but keep the session's id.
   */
  mode?: "subscribe" | "drain";
  /** Most messages per batch (default: the collector's). */
  batchSize?: number;
}

/** A line this process prints. */
export type CollectorReport =
  | { ready: true; rss: number }
  | { received: number; committed: number }
  | {
    done: true;
    firstCommit: number;
    firstCount: number;
    lastCommit: number;
    peakRss: number;
    writeMs: number;
    batches: number;
  }
  | { rows: { columnar: number; flexible: number } }
  | { error: string };

function report(r: CollectorReport) {
  console.log(JSON.stringify(r));
}

const now = () => performance.timeOrigin + performance.now();

/** Set when the benchmark closes this process's stdin: stop and clean up. */
let aborted = false;

async function watchStdin() {
  try {
    for await (const _ of Deno.stdin.readable) {
      // Nothing is sent; only the end matters.
    }
  } finally {
    aborted = true;
  }
}

async function main() {
  watchStdin();
  const job = JSON.parse(Deno.args[0]) as CollectorJob;
  const dataDir = await Deno.makeTempDir({ prefix: "ambient-bench-collector-" });
  const db = await openDb({ databaseUrl: job.databaseUrl, dataDir, appName: "ambient-bench" });
  try {
    if (!job.databaseUrl) await migrate(db);
    const base = loadCollectorConfig(Deno.env.toObject());
    const config = {
      ...base,
      mqtt: {
        ...base.mqtt,
        url: job.mqttUrl,
        clientId: job.clientId ?? `ambient-bench-collector-${crypto.randomUUID().slice(0, 8)}`,
        sharedGroup: undefined,
      },
      layouts: job.layouts,
      dataDir,
      journalMaxBytes: 1024 * 1024 * 1024,
    };
    // The collector's own writer, counting this run's readings as their batches commit (a shared
    // broker may carry other devices' traffic too).
    const inner = createBatchWriter(db, { layouts: job.layouts });
    let committed = 0;
    let firstCommit = 0;
    let firstCount = 0;
    let lastCommit = 0;
    let writeMs = 0;
    let batches = 0;
    const writer: BatchWriter = {
      async write(batch) {
        const t = performance.now();
        await inner.write(batch);
        writeMs += performance.now() - t;
        batches++;
        for (const d of batch) {
          if (d.kind === "reading" && d.device.startsWith(`${job.prefix}-`)) committed++;
        }
        lastCommit = now();
        if (firstCommit === 0 && committed > 0) {
          firstCommit = lastCommit;
          firstCount = committed;
        }
      },
    };
    const collector = await startCollector(db, config, {
      statsIntervalMs: 3_600_000,
      writer,
      batchSize: job.batchSize,
    });
    try {
      const until = Date.now() + 15_000;
      while (!collector.stats().mqttConnected) {
        if (Date.now() > until) throw new Error("the collector did not subscribe within 15 s");
        await delay(20);
      }
      let peakRss = Deno.memoryUsage().rss;
      report({ ready: true, rss: peakRss });
      if (job.mode === "subscribe") return;
      while (committed < job.n && !aborted) {
        report({ received: collector.stats().received, committed });
        peakRss = Math.max(peakRss, Deno.memoryUsage().rss);
        await delay(5);
      }
      if (aborted) throw new Error("stopped by the benchmark");
      peakRss = Math.max(peakRss, Deno.memoryUsage().rss);
      report({ done: true, firstCommit, firstCount, lastCommit, peakRss, writeMs, batches });
    } finally {
      await collector.stop();
      if (job.mode !== "subscribe") await forgetSession(config.mqtt);
    }
    const [rows] = await db.sql<{ columnar: number; flexible: number }>`
      select
        (select count(*)::int from scd30_measurements m join sensors s using (sensor_id)
         where s.device_id like ${`${job.prefix}-%`}) as columnar,
        (select count(*)::int from measurements m join sensors s using (sensor_id)
         where s.device_id like ${`${job.prefix}-%`}) as flexible`;
    report({ rows });
  } catch (err) {
    report({ error: err instanceof Error ? err.message : String(err) });
  } finally {
    await db.close();
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
}

/** Removes the collector's persistent session from the broker. */
export async function forgetSession(m: MqttSettings): Promise<void> {
  try {
    const client = await mqtt.connectAsync(m.url!, {
      clientId: m.clientId,
      clean: true,
      username: m.username,
      password: m.password,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 5000,
    });
    await client.endAsync();
  } catch {
    // Unreachable broker: its session expires by the broker's own rules.
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

if (import.meta.main) await main();
