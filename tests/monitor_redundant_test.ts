// Two `deno task monitor` processes (their real permission set) against one PostgreSQL database
// and a stand-in Pushover: one is active, the other stands by; the active one is SIGKILLed while a
// device is silent, the other takes over, and the user hears of the outage and of the recovery
// exactly once each.
import { equal, match, ok } from "node:assert/strict";
import type { ResolvedMonitorConfig } from "../lib/config/mod.ts";
import { openSessionLock } from "../lib/db/mod.ts";
import { withTestDb } from "../lib/db/testing.ts";
import type { Logger } from "../lib/log/mod.ts";
import { MONITOR_LOCK_KEY, startMonitor } from "../lib/monitor/mod.ts";
import { FakePushover } from "./fixtures/monitor_fake_pushover.ts";
import { taskArgs } from "./fixtures/task_args.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const realDb = Deno.env.get("DATABASE_URL") !== undefined;
const CHECK_INTERVAL_S = 1;
const THRESHOLD_S = 3;

/** A monitor process whose stderr lines are collected as they come. */
class MonitorProcess {
  readonly lines: string[] = [];
  readonly child: Deno.ChildProcess;
  readonly done: Promise<void>;

  constructor(env: Record<string, string>) {
    // `deno task monitor` exactly, run directly: a signal to `deno task` would not reach the
    // monitor itself, and SIGKILL must.
    const child = new Deno.Command(Deno.execPath(), {
      args: taskArgs("monitor"),
      cwd: ROOT,
      env,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.child = child;
    this.done = (async () => {
      let rest = "";
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
        const parts = (rest + chunk).split("\n");
        rest = parts.pop()!;
        this.lines.push(...parts);
      }
      if (rest) this.lines.push(rest);
    })();
  }

  has(re: RegExp): boolean {
    return this.lines.some((l) => re.test(l));
  }

  get log(): string {
    return this.lines.join("\n");
  }
}

/** Polls `cond` every 50 ms for at most `ms`; throws with `what` when it never holds. */
async function waitFor(
  cond: () => boolean | Promise<boolean>,
  ms: number,
  what: () => string,
): Promise<number> {
  const start = performance.now();
  while (!(await cond())) {
    if (performance.now() - start > ms) throw new Error(`timed out: ${what()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return performance.now() - start;
}

const ACTIVE = /now the active one/;

/** Ends a monitor: SIGTERM, then SIGKILL when it has not exited within 10 s. */
async function end(p: MonitorProcess): Promise<Deno.CommandStatus> {
  try {
    p.child.kill("SIGTERM");
  } catch {
    // already gone
  }
  const timer = setTimeout(() => {
    try {
      p.child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }, 10_000);
  try {
    const status = await p.child.status;
    await p.done;
    return status;
  } finally {
    clearTimeout(timer);
  }
}

Deno.test({
  name: "two monitors: the stand-by takes over from a SIGKILLed one; one alert, one recovery",
  ignore: !realDb,
  async fn() {
    await using db = await withTestDb();
    await using pushover = new FakePushover();
    await db.sql`insert into devices (device_id, device_name, status, first_seen, last_seen,
                                      last_received)
                 values ('esp32-attic', 'Attic', 'online', now() - interval '1 day', now(),
                         now())`;
    // The device publishes, as the collector records it: its receive time moves on.
    let publishing = true;
    const publisher = setInterval(() => {
      if (publishing) {
        db.sql`update devices set last_received = now() where device_id = 'esp32-attic'`
          .catch(() => {});
      }
    }, 200);
    const env = {
      DATABASE_URL: db.url!,
      PUSHOVER_USER: "user-key",
      PUSHOVER_TOKEN: "app-token",
      PUSHOVER_API_URL: pushover.url,
      CHECK_INTERVAL: String(CHECK_INTERVAL_S),
      INACTIVITY_THRESHOLD: String(THRESHOLD_S),
      NO_COLOR: "1",
    };
    const a = new MonitorProcess(env);
    let b: MonitorProcess | undefined;
    try {
      await waitFor(() => a.has(ACTIVE), 30_000, () => `first monitor never active:\n${a.log}`);
      b = new MonitorProcess(env);
      const standby = b;
      await waitFor(
        () => standby.has(/Monitor started/),
        30_000,
        () => `second monitor never started:\n${standby.log}`,
      );
      // Several heartbeats: the second one stays a stand-by while the first holds the lease.
      await new Promise((r) => setTimeout(r, 1500));
      ok(!b.has(ACTIVE), `the stand-by became active too:\n${b.log}`);

      publishing = false;
      await waitFor(
        () => pushover.messages.length >= 1,
        30_000,
        () => `no alert:\n${a.log}`,
      );
      equal(pushover.messages[0].title, "Attic is silent");
      // The alert is recorded as sent (a monitor killed between Pushover's answer and this record
      // may repeat the message: README, Monitor).
      await waitFor(
        async () => {
          const [r] = await db.sql<{ recorded: boolean }>`
            select pending is null and claimed_by is null and notified_at is not null as recorded
              from device_alerts where device_id = 'esp32-attic'`;
          return r?.recorded === true;
        },
        15_000,
        () => `the alert was never recorded as sent:\n${a.log}`,
      );

      // The active monitor dies mid-outage, without a chance to clean up.
      a.child.kill("SIGKILL");
      const tookMs = await waitFor(
        () => standby.has(ACTIVE),
        15_000,
        () => `the stand-by never took over:\n${standby.log}`,
      );
      console.log(`the stand-by took over ${Math.round(tookMs)} ms after the SIGKILL`);
      // A few checks of the new monitor during the outage: the alert is not repeated.
      await new Promise((r) => setTimeout(r, 2500));
      equal(pushover.messages.length, 1, JSON.stringify(pushover.messages));

      publishing = true;
      await waitFor(
        () => pushover.messages.length >= 2,
        30_000,
        () => `no recovery:\n${standby.log}`,
      );
      await new Promise((r) => setTimeout(r, 2500));
      equal(pushover.messages.length, 2, JSON.stringify(pushover.messages));
      equal(pushover.messages[1].title, "Attic is back");
      match(b.log, /Notification sent: Attic is back/);
      ok(!b.has(/Notification sent: Attic is silent/), "the stand-by repeated the alert");
    } finally {
      clearInterval(publisher);
      const statuses = await Promise.all([a, b].map((p) => p && end(p)));
      if (b) equal(statuses[1]!.code, 0, `the second monitor did not stop cleanly:\n${b.log}`);
    }
  },
});

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {} };

function monitorConfig(pushover: FakePushover, checkIntervalS: number): ResolvedMonitorConfig {
  return {
    databaseUrl: undefined,
    pushover: { user: "user-key", token: "app-token", apiUrl: pushover.url },
    checkIntervalS,
    inactivityThresholdS: 300,
    serverUrl: "https://sensors.example.net",
  };
}

Deno.test("two monitors that both believe they are active still send each message once", async () => {
  await using db = await withTestDb();
  await using pushover = new FakePushover();
  const t0 = Date.parse("2026-03-01T12:00:00Z");
  await db.sql`insert into devices (device_id, status, first_seen, last_seen, last_received)
               values ('a', 'online', ${new Date(t0 - 86400_000)}, ${new Date(t0)},
                       ${new Date(t0)})`;
  let now = t0 + 400_000;
  const clock = () => new Date(now);
  // No lease: the moment of a hand-over, when the old monitor has not noticed its loss yet.
  const cfg = monitorConfig(pushover, 3600);
  const ms = [
    await startMonitor(db, cfg, { now: clock, log: quiet, lease: null }),
    await startMonitor(db, cfg, { now: clock, log: quiet, lease: null }),
  ];
  try {
    await Promise.all(ms.map((m) => m.firstCheck));
    for (let i = 0; i < 3; i++) {
      now += 10_000;
      await Promise.all(ms.map((m) => m.checkNow()));
    }
    equal(pushover.messages.length, 1, JSON.stringify(pushover.messages));
    equal(pushover.messages[0].title, "a is silent");
    await db.sql`update devices set last_received = ${new Date(now)} where device_id = 'a'`;
    for (let i = 0; i < 3; i++) {
      now += 10_000;
      await Promise.all(ms.map((m) => m.checkNow()));
    }
    equal(pushover.messages.length, 2, JSON.stringify(pushover.messages));
    equal(pushover.messages[1].title, "a is back");
  } finally {
    await Promise.all(ms.map((m) => m.stop()));
  }
});

Deno.test({
  name: "a monitor whose lease connection is cut stands by and the other takes over",
  ignore: !realDb,
  async fn() {
    await using db = await withTestDb();
    await using pushover = new FakePushover();
    const cfg = monitorConfig(pushover, 1);
    const lease = (name: string) =>
      openSessionLock({
        databaseUrl: db.url!,
        key: MONITOR_LOCK_KEY,
        appName: name,
        expireAfterMs: 3000,
      });
    const lines: Record<string, string[]> = { first: [], second: [] };
    const log = (name: string): Logger => {
      const rec = (m: string) => void lines[name].push(m);
      return { debug: rec, info: rec, warn: rec, error: rec };
    };
    const has = (name: string, re: RegExp) => lines[name].some((l) => re.test(l));
    const first = await startMonitor(db, cfg, { log: log("first"), lease: lease("lease-first") });
    await first.firstCheck;
    const second = await startMonitor(db, cfg, {
      log: log("second"),
      lease: lease("lease-second"),
    });
    try {
      await second.firstCheck;
      ok(has("first", ACTIVE), lines.first.join("\n"));
      ok(!has("second", ACTIVE), lines.second.join("\n"));
      // The server drops the active monitor's lease session (as when its connection is lost).
      const [{ n }] = await db.sql<{ n: number }>`
        select count(pg_terminate_backend(pid))::int as n from pg_stat_activity
         where application_name = 'lease-first'`;
      equal(n, 1);
      await waitFor(() => has("second", ACTIVE), 10_000, () => lines.second.join("\n"));
      await waitFor(() => has("first", /Lease lost/), 10_000, () => lines.first.join("\n"));
    } finally {
      await Promise.all([first.stop(), second.stop()]);
    }
  },
});
