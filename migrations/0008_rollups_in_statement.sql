-- Rollups kept by the collector's own insert statement. The statement that stores a batch's
-- readings (lib/ingest/_statements.ts) adds the rows it really inserted (RETURNING of
-- ON CONFLICT DO NOTHING) to rollup_1m/1h/1d itself: one upsert per level for both layouts,
-- instead of two statement triggers with three upserts each. It names the tables it keeps this
-- way in the transaction-local setting `ambient.rollups_kept` (comma-separated table names), and
-- the trigger below does nothing for them; every other insert (another client, a person, a
-- collector of an older version) is rolled up by the trigger as before. Same function as in
-- 0007_rollups.sql but for the first test.
create or replace function rollups_after_insert() returns trigger
language plpgsql as $fn$
declare
  cols   text;
  cutoff timestamptz;
begin
  if TG_TABLE_NAME = any(string_to_array(current_setting('ambient.rollups_kept', true), ',')) then
    return null;
  end if;
  select r.before into cutoff from raw_retention r where r.table_name = TG_TABLE_NAME;
  if cutoff is not null and exists (select from new_rows where time < cutoff) then
    if TG_TABLE_NAME = 'measurements' then
      delete from measurements x using new_rows n
      where n.time < cutoff and x.sensor_id = n.sensor_id and x.metric_type = n.metric_type
        and x.time = n.time;
    else
      execute format('delete from %I.%I x using new_rows n
                      where n.time < $1 and x.sensor_id = n.sensor_id and x.time = n.time',
                     TG_TABLE_SCHEMA, TG_TABLE_NAME) using cutoff;
    end if;
  end if;
  if TG_TABLE_NAME = 'measurements' then
    execute rollup_statement(format(
      'select sensor_id, metric_type as metric, time, value as v from new_rows%s',
      case when cutoff is null then '' else ' where time >= ' || quote_literal(cutoff) end),
      'flexible');
    return null;
  end if;
  select string_agg(format('(%L::text, n.%I)', a.attname, a.attname), ', ' order by a.attnum)
    into cols
  from pg_attribute a
  where a.attrelid = TG_RELID and a.attnum > 0 and not a.attisdropped
    and a.atttypid = 'float8'::regtype;
  if cols is null then
    return null;
  end if;
  execute rollup_statement(format(
    'select n.sensor_id, m.metric, n.time, m.v from new_rows n
     cross join lateral (values %s) as m (metric, v)%s',
    cols, case when cutoff is null then '' else ' where n.time >= ' || quote_literal(cutoff) end),
    'columnar');
  return null;
end
$fn$;

-- The hour and day rows of a sensor are updated by every batch: room on each page lets the
-- update stay on the page (HOT), with no new index entry. Only for new pages; tables (not the
-- TimescaleDB views).
do $$
begin
  if exists (select from pg_class where oid = to_regclass('rollup_1h') and relkind = 'r') then
    alter table rollup_1m set (fillfactor = 80);
    alter table rollup_1h set (fillfactor = 50);
    alter table rollup_1d set (fillfactor = 50);
  end if;
end
$$;
