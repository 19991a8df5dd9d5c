-- Monitor state: what the user has been told and what is still to be sent.
--   state       online | silent | offline, as of the last check
--   since       when that state began (for silent: the device's last activity)
--   notified_at when the last notification about this device was delivered
--   pending     the notification not yet delivered (jsonb event), null when none
--   last_error  why the last delivery failed, null after a successful one
--   checked_at  time of the check that last wrote the row
alter table device_alerts
  add column if not exists pending jsonb,
  add column if not exists last_error text,
  add column if not exists checked_at timestamptz;

update device_alerts set state = 'online' where state not in ('online', 'silent', 'offline');

alter table device_alerts
  add constraint device_alerts_state_check check (state in ('online', 'silent', 'offline'));
