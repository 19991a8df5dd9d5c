/**
 * Sandbox benchmark: p50 latency of an analyze_data-equivalent (`df.describe()` on 100,000 rows)
 * and a create_plot-equivalent (a line plot of 100,000 points) on the bwrap engine, with what
 * bounds the jobs on this host (cgroup v2, v1 or the supervisor).
 *
 * @module
 */
import { createBwrapSandbox } from "../lib/sandbox/mod.ts";
import { timings } from "./_stats.ts";

const RUNS = 5;

async function p50(fn: () => Promise<unknown>): Promise<number> {
  return (await timings(fn, { runs: RUNS })).p50;
}

/** Runs the sandbox benchmark and prints p50 latencies against the 1.5 s target. */
export async function run(_args: string[]): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "bench-sandbox-" });
  try {
    const start = Date.UTC(2024, 0, 1);
    const lines = ["time,co2,temperature"];
    for (let i = 0; i < 100_000; i++) {
      lines.push(
        `${new Date(start + i * 10_000).toISOString()},${400 + (i % 600)},${20 + (i % 50) / 10}`,
      );
    }
    const csv = `${dir}/data.csv`;
    await Deno.writeTextFile(csv, lines.join("\n") + "\n");
    const sandbox = createBwrapSandbox({ memoryMb: 128, timeoutS: 30 });
    let limits = "";
    const analyze = await p50(async () => {
      const r = await sandbox.run({ csvPath: csv, code: "print(df.describe())", mode: "analyze" });
      limits = r.usage?.limits ?? "";
    });
    const plot = await p50(() =>
      sandbox.run({
        csvPath: csv,
        code: "plt.plot(df['time'], df['co2'])",
        mode: "plot",
        pngPath: `${dir}/p.png`,
      })
    );
    const fmt = (ms: number) =>
      `${(ms / 1000).toFixed(2)} s (${(ms / 1500).toFixed(2)}x of 1.5 s target)`;
    console.log(`sandbox bwrap jobs bounded as a whole by: ${limits}`);
    console.log(
      `sandbox bwrap analyze_data p50 (describe, 100k rows, ${RUNS} runs): ${fmt(analyze)}`,
    );
    console.log(
      `sandbox bwrap create_plot p50 (line plot, 100k points, ${RUNS} runs): ${fmt(plot)}`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) await run(Deno.args);
