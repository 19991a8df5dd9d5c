-- Rollups: per sensor, metric and table layout, the count, sum, min and max of the readings in
-- each minute, hour and day (buckets aligned to UTC, see docs in README "Rollups and retention").
-- Kept by statement-level AFTER INSERT triggers that read only the rows an INSERT really added
-- (a replay skipped by ON CONFLICT DO NOTHING adds nothing); deleting raw readings never changes
-- them. avg = sum / count; buckets merge exactly by adding count and sum and taking least(min) and
-- greatest(max).
create table rollup_1m (
  sensor_id integer not null,
  metric    text not null,
  layout    text not null check (layout in ('columnar', 'flexible')),
  bucket    timestamptz not null,
  count     bigint not null,
  sum       double precision not null,
  min       double precision not null,
  max       double precision not null,
  -- minutes of the bucket with at least one reading (1 in rollup_1m)
  minutes   integer not null,
  primary key (sensor_id, metric, layout, bucket)
);
create table rollup_1h (like rollup_1m including all);
create table rollup_1d (like rollup_1m including all);

-- Raw readings older than this were removed by retention (RAW_RETENTION_DAYS), per table; rows
-- inserted later for such times are dropped at once, since they cannot be told from replays of
-- readings the rollups already hold.
create table raw_retention (
  table_name text primary key,
  before     timestamptz not null
);

-- Measurement tables whose rollups are kept; readers use rollups only for these.
create table rollup_sources (
  table_name text primary key,
  since      timestamptz not null default now()
);

-- The statement that adds the rows of transition table new_rows to the three rollups. `source`
-- selects (sensor_id, metric, time, v) from new_rows.
create function rollup_statement(source text, layout text) returns text
language sql immutable as $fn$
  select format($q$
    with v as (%s),
    a as (
      select sensor_id, metric,
             date_bin('1 minute', time, timestamptz '2000-01-03 00:00:00+00') as bucket,
             count(*) as count, sum(v) as sum, min(v) as min, max(v) as max
      from v where v is not null group by 1, 2, 3
    ),
    m as (
      insert into rollup_1m as r (sensor_id, metric, layout, bucket, count, sum, min, max, minutes)
      select sensor_id, metric, %2$L, bucket, count, sum, min, max, 1 from a
      on conflict (sensor_id, metric, layout, bucket) do update set
        count = r.count + excluded.count, sum = r.sum + excluded.sum,
        min = least(r.min, excluded.min), max = greatest(r.max, excluded.max)
      returning r.sensor_id, r.metric, r.bucket, (r.xmax = 0)::int as new
    ),
    -- per hour: what the statement adds, and how many of its minutes are new (a join of hours,
    -- not of minutes: CTE scans carry no statistics and could be joined by nested loop)
    ah as (
      select sensor_id, metric,
             date_bin('1 hour', bucket, timestamptz '2000-01-03 00:00:00+00') as bucket,
             sum(count) as count, sum(sum) as sum, min(min) as min, max(max) as max
      from a group by 1, 2, 3
    ),
    mh as (
      select sensor_id, metric,
             date_bin('1 hour', bucket, timestamptz '2000-01-03 00:00:00+00') as bucket,
             sum(new) as new
      from m group by 1, 2, 3
    ),
    b as (select ah.*, mh.new from ah join mh using (sensor_id, metric, bucket)),
    h as (
      insert into rollup_1h as r (sensor_id, metric, layout, bucket, count, sum, min, max, minutes)
      select sensor_id, metric, %2$L, bucket, count, sum, min, max, new from b
      on conflict (sensor_id, metric, layout, bucket) do update set
        count = r.count + excluded.count, sum = r.sum + excluded.sum,
        min = least(r.min, excluded.min), max = greatest(r.max, excluded.max),
        minutes = r.minutes + excluded.minutes
    )
    insert into rollup_1d as r (sensor_id, metric, layout, bucket, count, sum, min, max, minutes)
    select sensor_id, metric, %2$L,
           date_bin('1 day', bucket, timestamptz '2000-01-03 00:00:00+00'),
           sum(count), sum(sum), min(min), max(max), sum(new)
    from b group by 1, 2, 4
    on conflict (sensor_id, metric, layout, bucket) do update set
      count = r.count + excluded.count, sum = r.sum + excluded.sum,
      min = least(r.min, excluded.min), max = greatest(r.max, excluded.max),
      minutes = r.minutes + excluded.minutes
  $q$, source, layout)
$fn$;

-- Trigger function of every measurement table: columnar tables (one double precision column per
-- metric, columns looked up per statement so new metrics are rolled up at once) and the flexible
-- `measurements` table.
create function rollups_after_insert() returns trigger
language plpgsql as $fn$
declare
  cols   text;
  cutoff timestamptz;
begin
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

-- Keeps the rollups of measurement table `tbl` from now on and adds the readings it already
-- holds. Called for the tables below and by the collector for each table it creates.
create function attach_rollups(tbl regclass) returns void
language plpgsql as $fn$
declare
  name text := (select relname from pg_class where oid = tbl);
  cols text;
begin
  if exists (select from rollup_sources where table_name = name) then
    return;
  end if;
  insert into rollup_sources (table_name) values (name);
  if exists (select from pg_extension where extname = 'timescaledb') then
    perform timescale_rollups();
    return;
  end if;
  execute format('create trigger rollups_after_insert after insert on %s
                  referencing new table as new_rows
                  for each statement execute function rollups_after_insert()', tbl);
  if name = 'measurements' then
    execute rollup_statement(
      'select sensor_id, metric_type as metric, time, value as v from measurements', 'flexible');
  else
    select string_agg(format('(%L::text, n.%I)', a.attname, a.attname), ', ' order by a.attnum)
      into cols
    from pg_attribute a
    where a.attrelid = tbl and a.attnum > 0 and not a.attisdropped
      and a.atttypid = 'float8'::regtype;
    if cols is not null then
      execute rollup_statement(format(
        'select n.sensor_id, m.metric, n.time, m.v from %s n
         cross join lateral (values %s) as m (metric, v)', tbl, cols), 'columnar');
    end if;
  end if;
end
$fn$;

-- TimescaleDB: hypertables cannot have transition tables, so there the rollups are continuous
-- aggregates instead: per measurement table `<table>_rollup_1m` (time_bucket, whose origin is
-- the same Monday 2000-01-03), with `_1h` and `_1d` built on it (hierarchical), refreshed every
-- minute over all of history (late readings are picked up from TimescaleDB's invalidation log)
-- and read in real time (materialized_only = false). The tables rollup_1m/1h/1d become views of
-- the same columns over them. (Re)built for every table in rollup_sources; a metric column added
-- later needs `select timescale_rollups()` again.
create function timescale_rollups() returns void
language plpgsql as $fn$
declare
  src  text;
  cols text[];
  col  text;
  lvl  text;
  parts jsonb := '{"1m": [], "1h": [], "1d": []}';
  agg  text;
  sel  text;
begin
  for lvl in select unnest(array['1d', '1h', '1m']) loop
    execute format('drop view if exists rollup_%s', lvl);
  end loop;
  for src in select table_name from rollup_sources order by 1 loop
    if src = 'measurements' then
      cols := array['value'];
    else
      select array_agg(a.attname::text order by a.attnum) into cols
      from pg_attribute a join pg_class c on c.oid = a.attrelid
      where c.relname = src and c.relnamespace = current_schema()::regnamespace
        and a.attnum > 0 and not a.attisdropped and a.atttypid = 'float8'::regtype;
    end if;
    if cols is null then
      continue;
    end if;
    for lvl in select unnest(array['1d', '1h', '1m']) loop
      execute format('drop materialized view if exists %I cascade', src || '_rollup_' || lvl);
    end loop;
    -- minute level, from the raw table
    agg := '';
    foreach col in array cols loop
      agg := agg || format(', count(%1$I) as %2$I, sum(%1$I) as %3$I, min(%1$I) as %4$I,'
                          ' max(%1$I) as %5$I', col, col || '_n', col || '_s', col || '_lo',
                          col || '_hi');
    end loop;
    execute format('create materialized view %I with (timescaledb.continuous,
                      timescaledb.materialized_only = false) as
                    select sensor_id%s, time_bucket(interval ''1 minute'', time) as bucket%s
                    from %I group by 1%s, %s with no data',
                   src || '_rollup_1m', case when src = 'measurements' then ', metric_type' else '' end,
                   agg, src, case when src = 'measurements' then ', 2' else '' end,
                   case when src = 'measurements' then '3' else '2' end);
    -- hours and days, from the level below
    for lvl in select unnest(array['1h', '1d']) loop
      agg := '';
      foreach col in array cols loop
        agg := agg || format(', sum(%1$I) as %1$I, sum(%2$I) as %2$I, min(%3$I) as %3$I,'
                            ' max(%4$I) as %4$I, sum(%5$s) as %6$I',
                            col || '_n', col || '_s', col || '_lo', col || '_hi',
                            case when lvl = '1h' then format('case when %I > 0 then 1 else 0 end', col || '_n')
                                 else quote_ident(col || '_m') end,
                            col || '_m');
      end loop;
      execute format('create materialized view %I with (timescaledb.continuous,
                        timescaledb.materialized_only = false) as
                      select sensor_id%s, time_bucket(interval %L, bucket) as bucket%s
                      from %I group by 1%s, %s with no data',
                     src || '_rollup_' || lvl,
                     case when src = 'measurements' then ', metric_type' else '' end,
                     case when lvl = '1h' then '1 hour' else '1 day' end, agg,
                     src || '_rollup_' || case when lvl = '1h' then '1m' else '1h' end,
                     case when src = 'measurements' then ', 2' else '' end,
                     case when src = 'measurements' then '3' else '2' end);
    end loop;
    for lvl in select unnest(array['1m', '1h', '1d']) loop
      perform add_continuous_aggregate_policy((src || '_rollup_' || lvl)::regclass,
        start_offset => null, end_offset => interval '1 minute',
        schedule_interval => interval '1 minute', if_not_exists => true);
      execute format('grant select on %I to sensor_reader', src || '_rollup_' || lvl);
      foreach col in array cols loop
        sel := format('select sensor_id, %s::text as metric, %L::text as layout, bucket,'
                      ' %I::bigint as count, %I as sum, %I as min, %I as max, %s as minutes'
                      ' from %I where %I > 0',
                      case when src = 'measurements' then 'metric_type' else quote_literal(col) end,
                      case when src = 'measurements' then 'flexible' else 'columnar' end,
                      col || '_n', col || '_s', col || '_lo', col || '_hi',
                      case when lvl = '1m' then '1' else quote_ident(col || '_m') || '::int' end,
                      src || '_rollup_' || lvl, col || '_n');
        parts := jsonb_set(parts, array[lvl], (parts -> lvl) || to_jsonb(sel));
      end loop;
    end loop;
  end loop;
  for lvl in select unnest(array['1m', '1h', '1d']) loop
    execute format('create view rollup_%s as %s', lvl, coalesce(
      (select string_agg(x, ' union all ') from jsonb_array_elements_text(parts -> lvl) x),
      'select null::int as sensor_id, null::text as metric, null::text as layout,
              null::timestamptz as bucket, null::bigint as count, null::float8 as sum,
              null::float8 as min, null::float8 as max, null::int as minutes where false'));
    execute format('grant select on rollup_%s to sensor_reader', lvl);
  end loop;
end
$fn$;

grant select on rollup_1m, rollup_1h, rollup_1d, rollup_sources, raw_retention to sensor_reader;

-- Without TimescaleDB: triggers on the tables. With it: continuous aggregates (above), never
-- tested here (this migration's TimescaleDB branch could not be run without the extension).
do $$
begin
  if exists (select from pg_extension where extname = 'timescaledb') then
    drop table rollup_1m, rollup_1h, rollup_1d;
    insert into rollup_sources (table_name)
    values ('scd30_measurements'), ('bmp280_measurements'), ('measurements');
    perform timescale_rollups();
  else
    perform attach_rollups('scd30_measurements');
    perform attach_rollups('bmp280_measurements');
    perform attach_rollups('measurements');
  end if;
end
$$;
