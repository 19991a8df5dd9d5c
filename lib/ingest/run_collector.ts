import { resolve } from "node:path";
import { loadCollectorConfig } from "../config/mod.ts";
import { type Db, isLoginRefused, migrate, openDb } from "../db/mod.ts";
import { logger } from "../log/mod.ts";
import { EXIT, type RunOptions, taskSettings } from "../process/mod.ts";
import { startCollector } from "./collector.ts";

const log = logger("collector");
/** How long start-up keeps trying to reach PostgreSQL before giving up. */
const DB_START_WAIT_MS = 60_000;

/** What `runCollector` takes from the process. */
export type RunCollectorOptions = RunOptions;

/**
 * `deno task collect` from settings to exit status: reads the configuration (a bad or missing
 * setting → 2), connects to PostgreSQL (retrying up to a minute), migrates, starts the collector
 * and, on the stop signal, writes the whole journal to the database before returning 0. A
 * failure at run time returns 1.
 */
export async function runCollector(opts: RunCollectorOptions): Promise<number> {
  const settings = taskSettings("collect", opts, (env) => loadCollectorConfig(env));
  if (!settings.ok) {
    log.error(settings.message);
    return EXIT.config;
  }
  const { loaded, config } = settings;
  if (!config.databaseUrl) {
    log.error(
      "deno task collect needs PostgreSQL: set DATABASE_URL (or DB_HOST, DB_USER, DB_PASSWORD, " +
        `DB_NAME); settings read from ${loaded.source}. The embedded database belongs to one ` +
        "process: deno task serve runs the collector inside it.",
    );
    return EXIT.config;
  }
  if (!config.mqtt.url) {
    log.error(
      "deno task collect needs an MQTT broker: set MQTT_URL (or MQTT_BROKER and MQTT_PORT); " +
        `settings read from ${loaded.source}. Without one, deno task serve starts an embedded ` +
        "broker.",
    );
    return EXIT.config;
  }
  const dataDir = resolve(opts.cwd ?? Deno.cwd(), config.dataDir);

  const stopped = opts.stopSignal.then((signal) => ({ signal }));
  const db = await Promise.race([connect(config.databaseUrl), stopped]);
  if ("signal" in db) return EXIT.ok;
  if (db instanceof Error) {
    log.error(db.message);
    return EXIT.failure;
  }
  let collector;
  try {
    await migrate(db);
    collector = await startCollector(db, { ...config, dataDir });
  } catch (err) {
    await db.close();
    log.error((err as Error).message);
    return EXIT.failure;
  }
  const { signal } = await stopped;
  log.info(`${signal}: stopping; writing the journal to the database`);
  await collector.stop();
  await db.close();
  return EXIT.ok;
}

/** Opens PostgreSQL, retrying for a while so the collector may start before the database. */
async function connect(databaseUrl: string): Promise<Db | Error> {
  const giveUp = Date.now() + DB_START_WAIT_MS;
  let delay = 500;
  for (let attempt = 1;; attempt++) {
    try {
      return await openDb({ databaseUrl, dataDir: ".", max: 4, appName: "ambient-collector" });
    } catch (err) {
      const message = (err as Error).message;
      // A wrong password or database name will not fix itself.
      if (isLoginRefused(err) || Date.now() + delay > giveUp) return new Error(message);
      if (attempt === 1) log.warn(`${message}; retrying for up to ${DB_START_WAIT_MS / 1000} s`);
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 10_000);
    }
  }
}
