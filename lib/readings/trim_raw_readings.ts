import type { Queryable } from "../db/mod.ts";
import { isValidIdent } from "../db/mod.ts";

/** Options of `trimRawReadings`. */
export interface TrimOptions {
  /** Raw readings with a time before this are removed. */
  before: Date;
  /** Rows deleted per statement (default 5000): each batch is short and commits on its own. */
  batchRows?: number;
  /** Most batches per table in this call (default 200); the rest waits for the next call. */
  maxBatches?: number;
  /** Pause between batches in milliseconds (default 0), so other queries get their turn. */
  pauseMs?: number;
  /** Stop early when this says so (checked between batches). */
  stopping?: () => boolean;
}

/** What one call removed from one table. */
export interface TrimmedTable {
  table: string;
  rows: number;
  batches: number;
  /** True when the batch limit stopped it before every old row was gone. */
  more: boolean;
}

/**
 * Removes raw readings older than `before` from every measurement table that keeps rollups
 * (`rollup_sources`; a table without rollups is never trimmed, its readings would be lost), in
 * batches of `batchRows` rows, each the oldest of one sensor (and metric) found on the primary
 * key, each committed on its own. The
 * rollups stay as they are: deleting never subtracts from them. First the table's retention
 * horizon (`raw_retention.before`) moves forward, so a reading for a time before it that arrives
 * later (a replayed journal) is dropped instead of being counted in the rollups twice.
 */
export async function trimRawReadings(db: Queryable, opts: TrimOptions): Promise<TrimmedTable[]> {
  const batchRows = Math.max(1, Math.floor(opts.batchRows ?? 5000));
  const maxBatches = Math.max(1, Math.floor(opts.maxBatches ?? 200));
  const before = opts.before.toISOString();
  const tables = await db.sql<{ table_name: string }>`
    select r.table_name from rollup_sources r
    -- only tables whose rollups a trigger keeps (under TimescaleDB they are continuous
    -- aggregates, which would forget what was deleted when they refresh)
    where exists (select from pg_class c join pg_namespace n on n.oid = c.relnamespace
                  join pg_trigger t on t.tgrelid = c.oid and t.tgname = 'rollups_after_insert'
                  where n.nspname = current_schema() and c.relname = r.table_name)
    order by 1`;
  const out: TrimmedTable[] = [];
  for (const { table_name: table } of tables) {
    if (!isValidIdent(table)) continue;
    await db.sql`
      insert into raw_retention as r (table_name, before) values (${table}, ${before})
      on conflict (table_name) do update set before = greatest(r.before, excluded.before)`;
    const flexible = table === "measurements";
    // The sensors (and, in the flexible table, their metrics) found by a loose index scan of the
    // primary key, one probe each; every batch then walks one of them on its key, oldest first.
    const keys = flexible
      ? (await db.sql<{ s: number; m: string }>`
          with recursive k(s, m) as (
            (select sensor_id, metric_type from measurements order by 1, 2 limit 1)
            union all
            select x.sensor_id, x.metric_type from k cross join lateral (
              select sensor_id, metric_type from measurements
              where (sensor_id, metric_type) > (k.s, k.m) order by 1, 2 limit 1) x
          )
          select s, m from k`)
      : (await db.query<{ s: number; m: null }>(
        `with recursive k(s) as (
           (select sensor_id from "${table}" order by 1 limit 1)
           union all
           select x.sensor_id from k cross join lateral (
             select sensor_id from "${table}" where sensor_id > k.s order by 1 limit 1) x
         )
         select s, null as m from k`,
      )).rows;
    const text = flexible
      ? `with gone as (
           delete from measurements where ctid = any(array(
             select ctid from measurements
             where sensor_id = $1 and metric_type = $2 and time < $3::timestamptz
             order by time limit $4))
           returning 1)
         select count(*)::int as n from gone`
      : `with gone as (
           delete from "${table}" where ctid = any(array(
             select ctid from "${table}" where sensor_id = $1 and time < $3::timestamptz
             and $2::text is null order by time limit $4))
           returning 1)
         select count(*)::int as n from gone`;
    let rows = 0, batches = 0, more = false;
    for (const key of keys) {
      for (;;) {
        if (opts.stopping?.() || batches >= maxBatches) {
          more = true;
          break;
        }
        const { rows: [r] } = await db.query<{ n: number }>(text, [
          Number(key.s),
          key.m,
          before,
          batchRows,
        ]);
        batches++;
        rows += Number(r.n);
        if (Number(r.n) < batchRows) break;
        if (opts.pauseMs) await new Promise((res) => setTimeout(res, opts.pauseMs));
      }
      if (more) break;
    }
    out.push({ table, rows, batches, more });
  }
  return out;
}
