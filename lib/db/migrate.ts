import type { Db } from "./types.ts";

const MIGRATIONS_DIR = new URL("../../migrations/", import.meta.url);
// Any fixed number: all processes migrating the same database serialise on it.
const LOCK_KEY = 0x616d6231;

/** A numbered SQL file from `migrations/`. */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** Reads `migrations/NNNN_name.sql` in version order. */
export async function loadMigrations(dir: URL = MIGRATIONS_DIR): Promise<Migration[]> {
  const out: Migration[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const m = /^(\d{4})_([a-z0-9_]+)\.sql$/.exec(entry.name);
    if (!entry.isFile || !m) continue;
    out.push({
      version: Number(m[1]),
      name: m[2],
      sql: await Deno.readTextFile(new URL(entry.name, dir)),
    });
  }
  out.sort((a, b) => a.version - b.version);
  for (let i = 1; i < out.length; i++) {
    if (out[i].version === out[i - 1].version) {
      throw new Error(`Two migrations share version ${out[i].version}: ${out[i].name}`);
    }
  }
  return out;
}

/**
 * Applies every migration not yet recorded in `schema_migrations`, each in its own transaction
 * under an advisory lock, so two processes starting at once apply each exactly once.
 * Returns the versions applied now.
 */
export async function migrate(db: Db, migrations?: Migration[]): Promise<number[]> {
  const list = migrations ?? await loadMigrations();
  const applied: number[] = [];
  for (const m of list) {
    const did = await db.transaction(async (tx) => {
      await tx.query("select pg_advisory_xact_lock($1)", [LOCK_KEY]);
      await tx.exec(
        `create table if not exists schema_migrations (
           version integer primary key,
           name text not null,
           applied_at timestamptz not null default now())`,
      );
      const done = await tx.sql`select 1 from schema_migrations where version = ${m.version}`;
      if (done.length > 0) return false;
      try {
        await tx.exec(m.sql);
      } catch (err) {
        throw new Error(
          `Migration ${m.version}_${m.name} failed: ${(err as Error).message}`,
          { cause: err },
        );
      }
      await tx.sql`insert into schema_migrations (version, name) values (${m.version}, ${m.name})`;
      return true;
    });
    if (did) applied.push(m.version);
  }
  return applied;
}
