import { logger } from "../log/mod.ts";

const log = logger("sandbox");

/** How a job's processes are bounded together on this host. */
export type CgroupMode = "cgroup-v2" | "cgroup-v1";

/** Limits for all processes of one job together. */
export interface GroupLimits {
  memoryBytes: number;
  maxProcesses: number;
  cpus: number;
}

/** What the kernel counted for one job. */
export interface GroupUsage {
  /** Highest memory use of the group (v1: max_usage_in_bytes; v2: memory.peak when present). */
  peakMemoryBytes?: number;
  /** Processes the kernel's OOM killer ended in the group. */
  oomKills: number;
  /** Forks refused at the process limit. */
  forksRefused: number;
  /** Periods in which the group was throttled at its CPU quota. */
  cpuThrottledPeriods?: number;
}

/** One job's control group(s). */
export interface JobGroup {
  /** `cgroup.procs` files the job's first process must join before it forks anything. */
  readonly procs: string[];
  usage(): Promise<GroupUsage>;
  /** Removes the group(s); retries while exiting processes still hold them. */
  remove(): Promise<void>;
}

/** Creates per-job control groups under the server's own ones. */
export interface Cgroups {
  readonly mode: CgroupMode;
  create(name: string, limits: GroupLimits): Promise<JobGroup>;
  /** Removes empty job groups older than `minAgeMs` (left by a server killed mid-job). */
  sweep(minAgeMs: number): Promise<void>;
}

const CPU_PERIOD_US = 100_000;
const V1_CONTROLLERS = ["memory", "pids", "cpu"] as const;

async function readText(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return undefined;
  }
}

/** `key value` lines (memory.oom_control, pids.events, cpu.stat) as numbers. */
function flatKeyed(text: string | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of (text ?? "").split("\n")) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined && /^\d+$/.test(v)) out[k] = Number(v);
  }
  return out;
}

/** Ends processes by pid (the host may lack the permission to signal them itself). */
export type KillTasks = (pids: number[]) => Promise<void>;

/** Pids listed in the `cgroup.procs` files under `dirs`. */
async function tasksOf(dirs: string[]): Promise<number[]> {
  const pids = new Set<number>();
  for (const dir of dirs) {
    for (const line of ((await readText(`${dir}/cgroup.procs`)) ?? "").split("\n")) {
      if (/^\d+$/.test(line.trim())) pids.add(Number(line.trim()));
    }
  }
  return [...pids];
}

/**
 * Removes job groups. A group still holding processes (a job whose processes outlive its killed
 * launcher, slow under load) cannot be removed: its processes are killed (`kill`, or v2's
 * cgroup.kill) and removal is retried for up to 10 s.
 */
async function removeDirs(dirs: string[], kill?: () => Promise<void>): Promise<void> {
  for (const dir of dirs) {
    for (let attempt = 0;; attempt++) {
      try {
        await Deno.remove(dir);
        break;
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) break;
        if (attempt >= 100) {
          log.warn("cannot remove a sandbox cgroup", { dir, error: String(error) });
          break;
        }
        if (attempt % 20 === 0) {
          await kill?.().catch((e) =>
            log.debug("cannot kill a sandbox cgroup's processes", { dir, error: String(e) })
          );
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }
}

/**
 * Removes job groups named `ambient-sandbox-*` under `parents` that no process holds and that
 * are older than `minAgeMs`: left by a server killed outright mid-job.
 */
async function sweepDirs(parents: string[], minAgeMs: number): Promise<void> {
  for (const parent of parents) {
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(parent));
    } catch {
      continue;
    }
    for (const e of entries) {
      if (!e.isDirectory || !e.name.startsWith("ambient-sandbox-")) continue;
      const dir = `${parent}/${e.name}`;
      try {
        const { mtime } = await Deno.stat(dir);
        if (!mtime || Date.now() - mtime.getTime() < minAgeMs) continue;
        if ((await tasksOf([dir])).length > 0) continue;
        await Deno.remove(dir);
        log.info("removed a sandbox cgroup left by an earlier run", { dir });
      } catch {
        // in use again, or gone: left alone
      }
    }
  }
}

interface Mounts {
  v2?: string;
  v1: Map<string, string>;
  /** Controller (v1) or "" (v2) → path of this process's group inside that hierarchy. */
  own: Map<string, string>;
}

async function readMounts(): Promise<Mounts> {
  const mounts: Mounts = { v1: new Map(), own: new Map() };
  for (const line of ((await readText("/proc/self/mounts")) ?? "").split("\n")) {
    const [, dir, type, options] = line.split(" ");
    if (type === "cgroup2") mounts.v2 ??= dir;
    if (type === "cgroup") {
      for (const opt of options.split(",")) {
        if ((V1_CONTROLLERS as readonly string[]).includes(opt)) mounts.v1.set(opt, dir);
      }
    }
  }
  for (const line of ((await readText("/proc/self/cgroup")) ?? "").split("\n")) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    for (const c of m[1].split(",")) mounts.own.set(c, m[2]);
  }
  return mounts;
}

async function v2(mounts: Mounts): Promise<Cgroups | undefined> {
  if (!mounts.v2 || !mounts.own.has("")) return undefined;
  const own = `${mounts.v2}${mounts.own.get("")}`.replace(/\/$/, "");
  const controllers = ((await readText(`${own}/cgroup.controllers`)) ?? "").split(/\s+/);
  if (!["memory", "pids", "cpu"].every((c) => controllers.includes(c))) return undefined;
  const enabled = ((await readText(`${own}/cgroup.subtree_control`)) ?? "").split(/\s+/);
  if (!["memory", "pids", "cpu"].every((c) => enabled.includes(c))) {
    // A group with processes cannot hand controllers to children: move this server into a leaf
    // of its own group first (the layout systemd's Delegate=yes expects).
    try {
      await Deno.mkdir(`${own}/ambient-server`, { recursive: true });
      await Deno.writeTextFile(`${own}/ambient-server/cgroup.procs`, String(Deno.pid));
      await Deno.writeTextFile(`${own}/cgroup.subtree_control`, "+memory +pids +cpu");
    } catch (error) {
      log.debug("cgroup v2 is not delegated to the server", { error: String(error) });
      return undefined;
    }
  }
  return {
    mode: "cgroup-v2",
    sweep: (minAgeMs) => sweepDirs([own], minAgeMs),
    async create(name, limits) {
      const dir = `${own}/${name}`;
      await Deno.mkdir(dir);
      try {
        await Deno.writeTextFile(`${dir}/memory.max`, String(limits.memoryBytes));
        await Deno.writeTextFile(`${dir}/memory.swap.max`, "0").catch(() => {});
        await Deno.writeTextFile(`${dir}/pids.max`, String(limits.maxProcesses));
        await Deno.writeTextFile(
          `${dir}/cpu.max`,
          `${Math.round(limits.cpus * CPU_PERIOD_US)} ${CPU_PERIOD_US}`,
        );
      } catch (error) {
        await removeDirs([dir]);
        throw error;
      }
      return {
        procs: [`${dir}/cgroup.procs`],
        async usage() {
          const peak = await readText(`${dir}/memory.peak`);
          return {
            peakMemoryBytes: peak ? Number(peak.trim()) : undefined,
            oomKills: flatKeyed(await readText(`${dir}/memory.events`)).oom_kill ?? 0,
            forksRefused: flatKeyed(await readText(`${dir}/pids.events`)).max ?? 0,
            cpuThrottledPeriods: flatKeyed(await readText(`${dir}/cpu.stat`)).nr_throttled,
          };
        },
        async remove() {
          const kill = () => Deno.writeTextFile(`${dir}/cgroup.kill`, "1");
          await kill().catch(() => {});
          await removeDirs([dir], kill);
        },
      };
    },
  };
}

function v1(mounts: Mounts, killTasks?: KillTasks): Cgroups | undefined {
  const base = new Map<string, string>();
  for (const c of V1_CONTROLLERS) {
    const mount = mounts.v1.get(c);
    if (!mount) return undefined;
    base.set(c, `${mount}${mounts.own.get(c) ?? "/"}`.replace(/\/$/, ""));
  }
  return {
    mode: "cgroup-v1",
    sweep: (minAgeMs) => sweepDirs([...base.values()], minAgeMs),
    async create(name, limits) {
      const dir = (c: string) => `${base.get(c)}/${name}`;
      const dirs = V1_CONTROLLERS.map(dir);
      try {
        for (const d of dirs) await Deno.mkdir(d);
        const mem = dir("memory");
        await Deno.writeTextFile(`${mem}/memory.limit_in_bytes`, String(limits.memoryBytes));
        // Memory plus swap equal to memory: no swapping past the limit (when swap is accounted).
        await Deno.writeTextFile(`${mem}/memory.memsw.limit_in_bytes`, String(limits.memoryBytes))
          .catch(() => {});
        await Deno.writeTextFile(`${dir("pids")}/pids.max`, String(limits.maxProcesses));
        await Deno.writeTextFile(`${dir("cpu")}/cpu.cfs_period_us`, String(CPU_PERIOD_US));
        await Deno.writeTextFile(
          `${dir("cpu")}/cpu.cfs_quota_us`,
          String(Math.round(limits.cpus * CPU_PERIOD_US)),
        );
      } catch (error) {
        await removeDirs(dirs);
        throw error;
      }
      return {
        procs: dirs.map((d) => `${d}/cgroup.procs`),
        async usage() {
          const peak = await readText(`${dir("memory")}/memory.max_usage_in_bytes`);
          return {
            peakMemoryBytes: peak ? Number(peak.trim()) : undefined,
            oomKills: flatKeyed(await readText(`${dir("memory")}/memory.oom_control`)).oom_kill ??
              0,
            forksRefused: flatKeyed(await readText(`${dir("pids")}/pids.events`)).max ?? 0,
            cpuThrottledPeriods: flatKeyed(await readText(`${dir("cpu")}/cpu.stat`)).nr_throttled,
          };
        },
        // v1 has no cgroup.kill: whatever is left in the groups is killed by pid.
        remove: () =>
          removeDirs(dirs, async () => {
            const pids = await tasksOf(dirs);
            if (pids.length > 0 && killTasks) await killTasks(pids);
          }),
      };
    },
  };
}

/**
 * Finds how this host can bound a job as a whole: cgroup v2 when memory, pids and cpu are
 * delegated to the server's group, else cgroup v1 when those hierarchies are mounted; either is
 * used only when a probe group can really be created (needs write access to /sys/fs/cgroup).
 * Undefined: neither works (the bwrap engine then runs its in-namespace supervisor).
 */
export async function detectCgroups(
  opts: { killTasks?: KillTasks } = {},
): Promise<Cgroups | undefined> {
  const mounts = await readMounts();
  for (const candidate of [await v2(mounts), v1(mounts, opts.killTasks)]) {
    if (!candidate) continue;
    try {
      const probe = await candidate.create(`ambient-probe-${crypto.randomUUID()}`, {
        memoryBytes: 64 * 1024 * 1024,
        maxProcesses: 8,
        cpus: 1,
      });
      await probe.remove();
      return candidate;
    } catch (error) {
      log.debug(`${candidate.mode} is not usable`, { error: String(error) });
    }
  }
  return undefined;
}
