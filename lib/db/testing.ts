import { openPglite } from "./_pglite.ts";
import { openPgliteRemote } from "./_pglite_remote.ts";
import { openPostgres } from "./_postgres.ts";
import { migrate } from "./migrate.ts";
import type { Db } from "./types.ts";

/** A migrated, empty database for one test, dropped when disposed. */
export type TestDb = Db & AsyncDisposable & {
  /** Connection string of the test database (real PostgreSQL only). */
  url: string | undefined;
};

/**
 * Gives a test its own database: a fresh database on the PostgreSQL server named by
 * `DATABASE_URL` when set (CI), in-memory PGlite otherwise. Use `await using db = await withTestDb()`.
 * `killable: true` gives, without DATABASE_URL, the embedded worker-backed PGlite on a temporary
 * directory, which honours `transaction(fn, { timeoutMs })` like PostgreSQL does.
 */
export async function withTestDb(
  opts: { migrate?: boolean; killable?: boolean } = {},
): Promise<TestDb> {
  const adminUrl = Deno.env.get("DATABASE_URL");
  let db: Db;
  let url: string | undefined;
  let drop = async () => {};
  if (adminUrl) {
    const name = `test_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
    const admin = openPostgres(adminUrl, { max: 1 });
    await admin.exec(`create database ${name}`);
    const u = new URL(adminUrl);
    u.pathname = `/${name}`;
    url = u.toString();
    db = openPostgres(url, { max: 4, appName: "ambient-test" });
    drop = async () => {
      try {
        await admin.exec(`drop database if exists ${name} with (force)`);
      } finally {
        await admin.close();
      }
    };
  } else if (opts.killable) {
    // The embedded database as `serve` runs it: in a worker, on disk, so timeouts can kill it.
    const dir = await Deno.makeTempDir({ prefix: "ambient-pglite-" });
    db = await openPgliteRemote(dir);
    drop = () => Deno.remove(dir, { recursive: true });
  } else {
    db = await openPglite();
  }
  if (opts.migrate !== false) await migrate(db);
  return Object.assign(db, {
    url,
    [Symbol.asyncDispose]: async () => {
      await db.close();
      await drop();
    },
  });
}
