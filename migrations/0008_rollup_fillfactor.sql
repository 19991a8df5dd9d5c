-- Every batch the collector writes updates the hour and day rows of each sensor and metric it
-- holds (and the minute rows of the minutes it spans): room on each page lets such an update stay
-- on its page (HOT), with no new index entry. Applies to new pages. Tables only: under
-- TimescaleDB the rollups are views over continuous aggregates.
do $$
begin
  if exists (select from pg_class where oid = to_regclass('rollup_1h') and relkind = 'r') then
    alter table rollup_1m set (fillfactor = 80);
    alter table rollup_1h set (fillfactor = 50);
    alter table rollup_1d set (fillfactor = 50);
  end if;
end
$$;
