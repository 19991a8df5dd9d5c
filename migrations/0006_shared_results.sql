-- Query results (CSV) and plots (PNG) shared by every server instance on this database.
-- The embedded stack (PGlite) keeps its results on disk and leaves these tables empty.
--   state       writing (chunks still arriving) | ready (served) | deleting (being removed)
--   state_at    when the row entered that state (database clock), to finish work of a crashed server
--   created_at  when the result became ready (the server's clock; the TTL counts from it)
create table result_files (
  id         uuid primary key,
  kind       text not null check (kind in ('csv', 'png')),
  state      text not null default 'writing' check (state in ('writing', 'ready', 'deleting')),
  state_at   timestamptz not null default now(),
  row_count  bigint not null default 0,
  bytes      bigint not null default 0,
  chunks     integer not null default 0,
  created_at timestamptz not null
);
create index result_files_ready on result_files (created_at) where state = 'ready';

-- The bytes, in order. No foreign key: a result's row goes to 'deleting' first, so readers stop
-- before any of its chunks disappear, and the chunks are deleted after.
create table result_chunks (
  result_id uuid not null,
  seq       integer not null,
  data      bytea not null,
  primary key (result_id, seq)
);
-- CSV and PNG chunks are stored as they are: compressing PNGs gains nothing and costs CPU.
alter table result_chunks alter column data set storage external;

-- The link-signing secret every instance shares (one row, created by the first server).
create table result_link_secret (
  id         boolean primary key default true check (id),
  secret     bytea not null check (length(secret) = 32),
  created_at timestamptz not null default now()
);

-- Other users' results and the secret are never visible to the SQL tool's role.
revoke all on result_files, result_chunks, result_link_secret from public;
revoke all on result_files, result_chunks, result_link_secret from sensor_reader;

-- One sweep, in one statement: claims (state 'deleting') the results to remove and returns their
-- ids; the caller deletes their chunks, then their rows. Sweeps of all instances take the same
-- advisory lock, and each statement after it sees what the previous sweep committed, so two
-- instances never claim one result twice nor evict more than the budget asks.
create function result_sweep(cutoff timestamptz, max_bytes bigint) returns setof uuid
language plpgsql volatile as $$
begin
  perform pg_advisory_xact_lock(1634558518);
  -- Expired, and past the budget counted from the newest (which is always kept).
  return query
    with ranked as (
      select id, created_at,
             sum(bytes) over w as running,
             row_number() over w as rn
      from result_files where state = 'ready'
      window w as (order by created_at desc, id desc rows unbounded preceding))
    update result_files f set state = 'deleting', state_at = now()
    from ranked r
    where f.id = r.id and f.state = 'ready'
      and (r.created_at <= cutoff or (r.rn > 1 and r.running > max_bytes))
    returning f.id;
  -- Writes a crashed server never finished.
  return query
    update result_files set state = 'deleting', state_at = now()
    where state = 'writing' and state_at < now() - interval '1 hour'
    returning id;
  -- Removals a crashed server never finished.
  return query
    select id from result_files where state = 'deleting' and state_at < now() - interval '1 minute';
end
$$;
revoke all on function result_sweep(timestamptz, bigint) from public;
