-- Which device introduced each sensor type: one device may introduce only a few, so that it
-- cannot use up the cap on sensor types for everyone (README "MQTT contract").
--   created_by  the device whose reading created the type; null for types the schema came with
create table if not exists sensor_types (
  sensor_type text primary key,
  created_by  text,
  created_at  timestamptz not null default now()
);
insert into sensor_types (sensor_type)
  select distinct sensor_type from metrics
  on conflict do nothing;

-- Operator reset: removes a sensor type with its table, metrics, sensors and readings, which
-- frees its place under the caps. Run as the database owner: select drop_sensor_type('junk');
create or replace function drop_sensor_type(t text) returns void language plpgsql as $$
begin
  if t is null or t !~ '^[a-z_][a-z0-9_]{0,49}$' then
    raise exception 'not a sensor type name: %', t;
  end if;
  delete from measurements where sensor_id in (select sensor_id from sensors where sensor_type = t);
  delete from sensors where sensor_type = t;
  delete from metrics where sensor_type = t;
  delete from sensor_types where sensor_type = t;
  execute format('drop table if exists %I', t || '_measurements');
end
$$;
revoke all on function drop_sensor_type(text) from public;
