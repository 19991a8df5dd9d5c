/**
 * `deno task collect`: stores every reading devices publish over MQTT in PostgreSQL, through a
 * crash-safe journal in `DATA_DIR/journal`. Stops cleanly (everything journaled is written) on
 * SIGINT or SIGTERM.
 *
 * @module
 */
import { ConfigError, loadCollectorConfig } from "./lib/config/mod.ts";
import { type Db, migrate, openDb } from "./lib/db/mod.ts";
import { startCollector } from "./lib/ingest/mod.ts";
import { logger } from "./lib/log/mod.ts";

const log = logger("collector");
/** How long start-up keeps trying to reach PostgreSQL before giving up. */
const DB_START_WAIT_MS = 60_000;

async function main(): Promise<void> {
  let config;
  try {
    config = loadCollectorConfig(Deno.env.toObject());
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message);
    throw err;
  }
  if (!config.databaseUrl) {
    fail(
      "deno task collect needs PostgreSQL: set DATABASE_URL (or DB_HOST, DB_USER, DB_PASSWORD, " +
        "DB_NAME). The embedded database belongs to one process: deno task serve runs the " +
        "collector inside it.",
    );
  }
  if (!config.mqtt.url) {
    fail(
      "deno task collect needs an MQTT broker: set MQTT_URL (or MQTT_BROKER and MQTT_PORT). " +
        "Without one, deno task serve starts an embedded broker.",
    );
  }

  const db = await connect(config.databaseUrl);
  let collector;
  try {
    await migrate(db);
    collector = await startCollector(db, config);
  } catch (err) {
    await db.close();
    fail((err as Error).message);
  }

  const signal = await new Promise<Deno.Signal>((resolve) => {
    for (const sig of ["SIGINT", "SIGTERM"] as const) {
      Deno.addSignalListener(sig, () => resolve(sig));
    }
  });
  log.info(`${signal}: stopping; writing the journal to the database`);
  // A second signal while stopping ends the process at once; the journal keeps what is left.
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(sig, () => {
      log.warn("Stopped before the journal was written; it is replayed at the next start");
      Deno.exit(130);
    });
  }
  await collector.stop();
  await db.close();
  Deno.exit(0);
}

/** Opens PostgreSQL, retrying for a while so the collector may start before the database. */
async function connect(databaseUrl: string): Promise<Db> {
  const giveUp = Date.now() + DB_START_WAIT_MS;
  let delay = 500;
  for (let attempt = 1;; attempt++) {
    try {
      return await openDb({ databaseUrl, dataDir: ".", max: 4, appName: "ambient-collector" });
    } catch (err) {
      const message = (err as Error).message;
      // Wrong password or database name (SQLSTATE 28…, 3D000) will not fix itself.
      const code = String(((err as Error).cause as { code?: string } | undefined)?.code ?? "");
      if (/^(28|3D)/.test(code) || Date.now() + delay > giveUp) fail(message);
      if (attempt === 1) log.warn(`${message}; retrying for up to ${DB_START_WAIT_MS / 1000} s`);
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 10_000);
    }
  }
}

function fail(message: string): never {
  log.error(message);
  Deno.exit(1);
}

if (import.meta.main) await main();
