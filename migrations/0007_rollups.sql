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

grant select on rollup_1m, rollup_1h, rollup_1d, rollup_sources, raw_retention to sensor_reader;

-- Without TimescaleDB: triggers. With it, hypertables cannot have transition tables, so the
-- rollups are filled by `refresh_rollups` (below) from a TimescaleDB job instead.
do $$
begin
  if not exists (select from pg_extension where extname = 'timescaledb') then
    perform attach_rollups('scd30_measurements');
    perform attach_rollups('bmp280_measurements');
    perform attach_rollups('measurements');
  end if;
end
$$;
