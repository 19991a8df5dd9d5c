/**
 * `deno task bench memory`: idle resident memory of each process as a deployment runs it — the
 * embedded all-in-one (`deno task serve` without DATABASE_URL: PGlite, broker, collector,
 * monitor), and with DATABASE_URL the MCP server, `collect` and `monitor` on their own. Each is
 * started with its task's permission flags, left idle for `--memory-settle-s` seconds (default 10)
 * once ready, then its RSS and peak RSS are read from /proc. Linux only.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { migrate, openDb } from "../lib/db/mod.ts";
import { withTestDb } from "../lib/db/testing.ts";
import { startEmbeddedBroker } from "../lib/mqtt/mod.ts";
import type { TaskName } from "../lib/process/mod.ts";
import { clearSession } from "../tests/fixtures/collector_harness.ts";
import { taskArgs } from "../tests/fixtures/task_args.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

interface Sample {
  name: string;
  rssMb: number;
  peakMb: number;
  startS: number;
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = l.addr as Deno.NetAddr;
  l.close();
  return port;
}

function memoryOf(pid: number): { rssMb: number; peakMb: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1]);
  return { rssMb: kb("VmRSS") / 1024, peakMb: kb("VmHWM") / 1024 };
}

/** Starts `task` with `env`, waits for `ready` on stderr, idles, samples, stops it (SIGTERM). */
async function measure(
  name: string,
  task: TaskName,
  env: Record<string, string>,
  ready: RegExp,
  settleS: number,
): Promise<Sample> {
  const t0 = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: taskArgs(task, env.DATA_DIR ?? "./data"),
    cwd: ROOT,
    env: { PATH: Deno.env.get("PATH") ?? "", NO_COLOR: "1", ...env },
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let text = "";
  const reading = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) text += chunk;
  })();
  try {
    const deadline = Date.now() + 180_000;
    while (!ready.test(text)) {
      if (Date.now() > deadline) throw new Error(`${name} not ready:\n${text}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const startS = (performance.now() - t0) / 1000;
    await new Promise((r) => setTimeout(r, settleS * 1000));
    return { name, ...memoryOf(child.pid), startS };
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await reading;
  }
}

/** Runs the part; prints one row per process. */
export async function run(args: string[]): Promise<void> {
  const settleS = Number(
    args.find((a) => a.startsWith("--memory-settle-s="))?.split("=")[1] ?? 10,
  );
  const samples: Sample[] = [];
  const dataDir = await Deno.makeTempDir({ prefix: "bench-memory-" });
  try {
    samples.push(
      await measure(
        "all-in-one (embedded PGlite, broker, collector, monitor)",
        "serve",
        {
          DATA_DIR: `${dataDir}/embedded`,
          PORT: String(freePort()),
          MQTT_LISTEN: `127.0.0.1:${freePort()}`,
          SANDBOX_ENGINE: "off",
        },
        /MCP server ready/,
        settleS,
      ),
    );
    const databaseUrl = Deno.env.get("DATABASE_URL");
    if (!databaseUrl) {
      console.log("(DATABASE_URL unset: the server, collector and monitor alone are not measured)");
    } else {
      await using db = await withTestDb();
      const m = await openDb({ databaseUrl: db.url!, dataDir });
      await migrate(m);
      await m.close();
      const broker = Deno.env.get("MQTT_URL")
        ? undefined
        : await startEmbeddedBroker({ host: "127.0.0.1", port: 0 });
      const mqttUrl = broker?.url ?? Deno.env.get("MQTT_URL")!;
      const clientId = `bench-memory-${crypto.randomUUID().slice(0, 8)}`;
      try {
        const base = { DATABASE_URL: db.url! };
        samples.push(
          await measure(
            "MCP server (PostgreSQL)",
            "serve",
            {
              ...base,
              DATA_DIR: `${dataDir}/serve`,
              PORT: String(freePort()),
              SANDBOX_ENGINE: "off",
            },
            /MCP server ready/,
            settleS,
          ),
        );
        samples.push(
          await measure(
            "collector (deno task collect)",
            "collect",
            {
              ...base,
              DATA_DIR: `${dataDir}/collect`,
              MQTT_URL: mqttUrl,
              MQTT_CLIENT_ID: clientId,
            },
            /Subscribed/,
            settleS,
          ),
        );
        samples.push(
          await measure("monitor (deno task monitor)", "monitor", base, /Monitor started/, settleS),
        );
      } finally {
        await clearSession(mqttUrl, clientId);
        await broker?.close();
      }
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
  console.log(`idle ${settleS} s after start-up; RSS from /proc/<pid>/status`);
  console.table(samples.map((s) => ({
    process: s.name,
    "RSS MB": Math.round(s.rssMb),
    "peak RSS MB": Math.round(s.peakMb),
    "ready after s": Number(s.startS.toFixed(1)),
  })));
  const [embedded, ...apart] = samples;
  if (apart.length === 3) {
    const sum = apart.reduce((n, s) => n + s.rssMb, 0);
    console.log(
      `server + collector + monitor on PostgreSQL: ${Math.round(sum)} MB ` +
        `(all-in-one ÷ separate processes: ${(embedded.rssMb / sum).toFixed(2)}×)`,
    );
  }
}
