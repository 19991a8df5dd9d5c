import { join } from "node:path";
import { openPgliteRemote } from "./_pglite_remote.ts";
import { openPostgres } from "./_postgres.ts";
import type { Db } from "./types.ts";

/** Where to open the database. */
export interface OpenDbOptions {
  /** PostgreSQL URL; undefined → PGlite in `DATA_DIR/pglite`. */
  databaseUrl: string | undefined;
  /** Used for the PGlite folder. */
  dataDir: string;
  /** Pool size for PostgreSQL (default 10). */
  max?: number;
  /** `application_name` shown in pg_stat_activity. */
  appName?: string;
}

/** The one place that creates a database client. */
export async function openDb(opts: OpenDbOptions): Promise<Db> {
  if (opts.databaseUrl) {
    const db = openPostgres(opts.databaseUrl, { max: opts.max, appName: opts.appName });
    try {
      await db.query("select 1");
    } catch (err) {
      await db.close();
      throw new Error(
        `Cannot connect to PostgreSQL at ${hostOf(opts.databaseUrl)}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    return db;
  }
  return await openPgliteRemote(join(opts.dataDir, "pglite"));
}

function hostOf(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || 5432}${u.pathname}`;
  } catch {
    return "(unparsable URL)";
  }
}
