// Per-query resource bounds of the SQL tool: memory for sorts and hashes, temporary-file space,
// and a watch on the database backend's private memory (README "Safe SQL").
import type { Db, Queryable } from "../db/mod.ts";
import { logger } from "../log/mod.ts";
import { MEMORY_WATCH_TOOL } from "./_memory_watch_tool.ts";

const log = logger("sql");

/** Resource bounds of one untrusted query. */
export interface ResourceLimits {
  /** `work_mem` per sort or hash node, in MB (`QUERY_WORK_MEM_MB`). */
  workMemMb: number;
  /** `temp_file_limit` of the query, in MB (`QUERY_TEMP_FILE_MB`). */
  tempFileMb: number;
  /** Private memory the database backend may reach before the query is cancelled, in MB. */
  maxMemoryMb: number;
}

/** Bounds used when the caller gives none. */
export const DEFAULT_LIMITS: ResourceLimits = { workMemMb: 16, tempFileMb: 256, maxMemoryMb: 256 };

interface Capability {
  /** The login role may `SET temp_file_limit` (superuser, or granted SET on the parameter). */
  canSetTempLimit: boolean;
}

const capabilities = new WeakMap<Db, Promise<Capability>>();

async function probe(db: Db): Promise<Capability> {
  // PGlite's temporary files fail with temp_file_limit set ("could not seek to block …" on a
  // 90 MB sort): it is left unset there, and its worker is killed at the timeout instead.
  if (db.kind !== "postgres") return { canSetTempLimit: false };
  const [row] = await db.sql<{ su: boolean; v: number; setting: string; me: string }>`
    select current_user::text as me, coalesce((select rolsuper from pg_catalog.pg_roles where rolname = current_user), false)
             as su,
           current_setting('server_version_num')::int as v,
           current_setting('temp_file_limit') as setting`;
  let can = row.su;
  if (!can && Number(row.v) >= 150000) {
    const [p] = await db.sql<{ ok: boolean }>`
      select has_parameter_privilege('temp_file_limit', 'SET') as ok`;
    can = p.ok;
  }
  if (!can) {
    const bounded = row.setting !== "-1";
    log[bounded ? "info" : "warn"](
      "this database role cannot set temp_file_limit per query; " +
        (bounded
          ? `the server's own limit of ${row.setting} applies`
          : "temporary files of SQL-tool queries are UNLIMITED: run " +
            "GRANT SET ON PARAMETER temp_file_limit TO <role> or " +
            "ALTER ROLE <role> SET temp_file_limit = '256MB' as a superuser (README, Safe SQL)"),
      { role: row.me },
    );
  }
  return { canSetTempLimit: can };
}

/**
 * The `SET LOCAL` statements that bound one query, to run before `SET LOCAL ROLE` (afterwards
 * the role could not set `temp_file_limit`). What the login role may not set is left to the
 * server's settings, logged once per database.
 */
export async function limitStatements(db: Db, limits: ResourceLimits): Promise<string> {
  let cap = capabilities.get(db);
  if (!cap) {
    cap = probe(db);
    capabilities.set(db, cap);
    cap.catch(() => capabilities.delete(db));
  }
  const { canSetTempLimit } = await cap;
  const parts = [
    `set local work_mem = '${Math.max(64, Math.round(limits.workMemMb * 1024))}kB'`,
    "set local hash_mem_multiplier = 1",
  ];
  if (canSetTempLimit) {
    parts.push(
      `set local temp_file_limit = '${Math.max(0, Math.round(limits.tempFileMb * 1024))}kB'`,
    );
  }
  return parts.join("; ");
}

/** A running watch on the memory of the backend that executes one query. */
export interface MemoryWatch {
  /**
   * Stops watching; true when the backend went over the limit and the query was cancelled. Call
   * it before the transaction ends: it waits for a cancel in flight, so that the cancel can never
   * reach a later query on the same connection.
   */
  stop(): Promise<boolean>;
}

const POLL_MS = 50;
/**
 * Queries that end sooner are not watched (starting the watcher costs a python start-up); memory
 * that grows inside one expression takes longer than this to reach hundreds of MB.
 */
const WATCH_AFTER_MS = 100;
/** The python that runs the watcher (the server may run it: it is the bwrap engine's). */
const HOST_PYTHON = "/usr/bin/python3";
let pythonMissing = false;

/**
 * Watches the backend of `tx` while a query runs, when that backend is a process on this machine
 * (the database is local and the backend's command line names the connection's own client
 * port): past `maxMemoryMb` of private memory the query is cancelled with `pg_cancel_backend`.
 * PostgreSQL has no per-backend memory limit; values that grow inside one expression (string or
 * JSON doubling) are bounded by nothing else but the timeout. The backend is read by a python
 * watcher (see `_memory_watch_tool.ts`) started once the query has run `WATCH_AFTER_MS`.
 * Elsewhere (remote server, container, PGlite, no python) this is a no-op and
 * `work_mem`/`temp_file_limit` are the bounds.
 */
export async function watchMemory(
  db: Db,
  tx: Queryable,
  maxMemoryMb: number,
  opts: { python?: string } = {},
): Promise<MemoryWatch> {
  const idle: MemoryWatch = { stop: () => Promise.resolve(false) };
  if (db.kind !== "postgres" || Deno.build.os !== "linux" || pythonMissing) return idle;
  const [me] = await tx.sql<{ pid: number; port: number | null }>`
    select pg_backend_pid() as pid, inet_client_port() as port`;
  const pid = Number(me.pid);
  const limit = maxMemoryMb * 1024 * 1024;
  let exceeded = false;
  let stopped = false;
  let watcher: Deno.ChildProcess | undefined;
  let reading: Promise<void> | undefined;
  let cancelling: Promise<unknown> | undefined;
  const start = () => {
    try {
      watcher = new Deno.Command(opts.python ?? HOST_PYTHON, {
        args: [
          "-I",
          "-S",
          "-c",
          MEMORY_WATCH_TOOL,
          String(pid),
          me.port === null ? "local" : String(me.port),
          String(limit),
          String(POLL_MS),
        ],
        clearEnv: true,
        stdin: "null",
        stdout: "piped",
        stderr: "null",
      }).spawn();
    } catch (error) {
      pythonMissing = true;
      log.warn(
        "cannot start the database memory watch (needs /usr/bin/python3): QUERY_MAX_MEMORY_MB is not enforced",
        { error: String(error) },
      );
      return;
    }
    const child = watcher;
    reading = (async () => {
      let text = "";
      for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
        text += chunk;
        const over = /^over (\d+)$/m.exec(text);
        if (over && !stopped) {
          exceeded = true;
          log.warn("SQL-tool query cancelled: database backend memory over the limit", {
            pid,
            mb: Math.round(Number(over[1]) / 1048576),
            limitMb: maxMemoryMb,
          });
          cancelling = db.sql`select pg_cancel_backend(${pid})`.catch(() => {});
        }
        if (text.length > 1000) break;
      }
    })().catch(() => {});
  };
  const timer = setTimeout(start, WATCH_AFTER_MS);
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      try {
        watcher?.kill("SIGKILL");
      } catch {
        // already exited
      }
      await watcher?.status;
      await reading;
      await cancelling;
      return exceeded;
    },
  };
}
