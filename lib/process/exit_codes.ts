/**
 * Exit statuses shared by every entrypoint (`deno task serve|collect|monitor|simulate`):
 * `ok` after a clean stop, `failure` when something at run time failed (database or broker
 * unreachable, port in use), `config` for a bad flag or setting (fix it and start again),
 * `forced` after a second, deliberate stop signal (what was not written yet is replayed at the
 * next start). See docs/architecture.md.
 */
export const EXIT = { ok: 0, failure: 1, config: 2, forced: 130 } as const;
