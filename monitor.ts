/**
 * `deno task monitor`: watches devices for silence and sends notifications (Pushover, or the log
 * when it is not configured). Needs DATABASE_URL; the embedded database belongs to
 * `deno task serve`, which runs the monitor in-process.
 *
 * @module
 */
import { ConfigError, loadMonitorConfig } from "./lib/config/mod.ts";
import { migrate, openDb } from "./lib/db/mod.ts";
import { logger } from "./lib/log/mod.ts";
import { startMonitor } from "./lib/monitor/mod.ts";

const log = logger("monitor");

/** Runs the monitor until SIGINT or SIGTERM; resolves to the process exit code. */
export async function main(): Promise<number> {
  let config;
  try {
    config = loadMonitorConfig(Deno.env.toObject());
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    log.error(error.message);
    return 2;
  }
  if (!config.databaseUrl) {
    log.error(
      "DATABASE_URL is not set. `deno task monitor` needs PostgreSQL; with the embedded " +
        "database (no DATABASE_URL) run `deno task serve`, which runs the monitor in-process.",
    );
    return 2;
  }

  const stop = new AbortController();
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  const onSignal = () => stop.abort();
  for (const s of signals) Deno.addSignalListener(s, onSignal);
  try {
    let db;
    try {
      db = await openDb({ databaseUrl: config.databaseUrl, dataDir: "./data", appName: "monitor" });
    } catch (error) {
      log.error((error as Error).message);
      return 1;
    }
    try {
      await migrate(db);
      if (stop.signal.aborted) return 0;
      const monitor = await startMonitor(db, config, { signal: stop.signal });
      if (!stop.signal.aborted) {
        await new Promise((resolve) => stop.signal.addEventListener("abort", resolve));
      }
      await monitor.stop();
      return 0;
    } catch (error) {
      log.error(`Monitor stopped: ${(error as Error).message}`);
      return 1;
    } finally {
      await db.close();
    }
  } finally {
    for (const s of signals) Deno.removeSignalListener(s, onSignal);
  }
}

if (import.meta.main) Deno.exitCode = await main();
