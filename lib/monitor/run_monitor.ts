import { loadMonitorConfig } from "../config/mod.ts";
import { migrate, openDb } from "../db/mod.ts";
import { logger } from "../log/mod.ts";
import { EXIT, type RunOptions, taskSettings } from "../process/mod.ts";
import { startMonitor } from "./start_monitor.ts";

const log = logger("monitor");

/** What `runMonitor` takes from the process. */
export type RunMonitorOptions = RunOptions;

/**
 * `deno task monitor` from settings to exit status: a bad or missing setting → 2, a database
 * that cannot be opened or a failing monitor → 1, a clean stop on the signal → 0.
 */
export async function runMonitor(opts: RunMonitorOptions): Promise<number> {
  const settings = taskSettings("monitor", opts, (env) => loadMonitorConfig(env));
  if (!settings.ok) {
    log.error(settings.message);
    return EXIT.config;
  }
  const { loaded, config } = settings;
  if (!config.databaseUrl) {
    log.error(
      "DATABASE_URL is not set. `deno task monitor` needs PostgreSQL (DATABASE_URL, or DB_HOST, " +
        `DB_USER, DB_PASSWORD, DB_NAME); settings read from ${loaded.source}. With the embedded ` +
        "database (no DATABASE_URL) run `deno task serve`, which runs the monitor in-process.",
    );
    return EXIT.config;
  }

  const stop = new AbortController();
  void opts.stopSignal.then(() => stop.abort());
  let db;
  try {
    db = await openDb({ databaseUrl: config.databaseUrl, dataDir: ".", appName: "monitor" });
  } catch (error) {
    log.error((error as Error).message);
    return EXIT.failure;
  }
  try {
    await migrate(db);
    if (stop.signal.aborted) return EXIT.ok;
    const monitor = await startMonitor(db, config, { signal: stop.signal });
    if (!stop.signal.aborted) {
      await new Promise((resolve) => stop.signal.addEventListener("abort", resolve));
    }
    await monitor.stop();
    return EXIT.ok;
  } catch (error) {
    log.error(`Monitor stopped: ${(error as Error).message}`);
    return EXIT.failure;
  } finally {
    await db.close();
  }
}
