-- Liveness by the collector's clock, and redundant monitors.
--   devices.last_received   when the collector last received a live message from the device
--                           (its own receive clock; retained copies do not count)
--   devices.clock_offset_s  the device's timestamp minus the receive time, of its newest reading
--                           with a timestamp (positive: the device clock runs ahead)
--   device_alerts.claimed_by / claimed_until
--                           the monitor delivering the pending notification, and until when;
--                           another monitor sends it only after the claim has run out
--   device_alerts.version   every write checks the version it read and moves it on, so a
--                           monitor acting on stale state changes nothing
alter table devices
  add column if not exists last_received timestamptz,
  add column if not exists clock_offset_s double precision;
update devices set last_received = least(last_seen, now())
 where last_received is null and last_seen is not null;

alter table device_alerts
  add column if not exists claimed_by text,
  add column if not exists claimed_until timestamptz,
  add column if not exists version bigint not null default 0;
