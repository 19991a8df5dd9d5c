import { logger } from "../log/mod.ts";
import { runBounded } from "./_bounded_command.ts";
import { CGROUP_TOOL } from "./_cgroup_tool.ts";

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
  /** What the kernel counted, read once the job has ended; the group(s) are removed with it. */
  usage(): Promise<GroupUsage>;
  /** Kills what is left in the group(s) and removes them; retries while processes exit. */
  remove(): Promise<void>;
}

/** Creates per-job control groups under the server's own ones. */
export interface Cgroups {
  readonly mode: CgroupMode;
  create(name: string, limits: GroupLimits): Promise<JobGroup>;
  /** Removes empty job groups older than `minAgeMs` (left by a server killed mid-job). */
  sweep(minAgeMs: number): Promise<void>;
}

/** The longest one call of the tool may take (a removal retries for up to 10 s). */
const TOOL_TIMEOUT_MS = 30_000;

/**
 * Runs the cgroup tool (see `_cgroup_tool.ts`) with `python` and returns its JSON answer: the
 * server's permission set may not touch /proc or /sys itself.
 */
async function tool<T>(python: string, spec: Record<string, unknown>): Promise<T> {
  const out = await runBounded(
    python,
    ["-I", "-S", "-c", CGROUP_TOOL, JSON.stringify(spec)],
    { timeoutMs: TOOL_TIMEOUT_MS, capture: true },
  );
  if (!out.success) {
    const why = new TextDecoder().decode(out.stderr).trim().slice(0, 2000);
    throw new Error(`cgroup ${spec.op} failed: ${why || `status ${out.code}`}`);
  }
  return JSON.parse(new TextDecoder().decode(out.stdout)) as T;
}

/**
 * Finds how this host can bound a job as a whole: cgroup v2 when memory, pids and cpu are
 * delegated to the server's group, else cgroup v1 when those hierarchies are mounted; either is
 * used only when a probe group can really be created (needs root, or a delegated group). The work
 * is done by `python` (default /usr/bin/python3, the one the bwrap engine runs anyway).
 * Undefined: neither works (the bwrap engine then runs its in-namespace supervisor).
 */
export async function detectCgroups(
  opts: { python?: string } = {},
): Promise<Cgroups | undefined> {
  const python = opts.python ?? "/usr/bin/python3";
  let found: { mode: CgroupMode | null; parents?: string[]; why?: string };
  try {
    found = await tool(python, { op: "detect", serverPid: Deno.pid });
  } catch (error) {
    log.debug("cannot run the cgroup tool", { error: String(error) });
    return undefined;
  }
  if (!found.mode || !found.parents) {
    log.debug("no usable cgroups", { why: found.why });
    return undefined;
  }
  const mode = found.mode;
  const place = { mode, parents: found.parents };
  return {
    mode,
    async sweep(minAgeMs) {
      const { removed } = await tool<{ removed: string[] }>(python, {
        op: "sweep",
        ...place,
        minAgeS: minAgeMs / 1000,
      });
      for (const dir of removed) {
        log.info("removed a sandbox cgroup left by an earlier run", { dir });
      }
    },
    async create(name, limits) {
      const { procs } = await tool<{ procs: string[] }>(python, {
        op: "create",
        ...place,
        name,
        ...limits,
      });
      // The usage is read and the groups removed by one run of the tool when the job ended
      // normally; a stopped job's groups are only removed.
      let finished: Promise<GroupUsage> | undefined;
      let removed: Promise<void> | undefined;
      const warnLeft = (left: string[]) => {
        if (left.length > 0) log.warn("cannot remove a sandbox cgroup", { left });
      };
      return {
        procs,
        usage() {
          finished ??= tool<Record<string, number | null> & { left: string[] }>(python, {
            op: "finish",
            ...place,
            name,
          }).then((u) => {
            warnLeft(u.left);
            return {
              peakMemoryBytes: u.peakMemoryBytes ?? undefined,
              oomKills: u.oomKills ?? 0,
              forksRefused: u.forksRefused ?? 0,
              cpuThrottledPeriods: u.cpuThrottledPeriods ?? undefined,
            };
          });
          return finished;
        },
        remove() {
          const removeNow = () =>
            tool<{ left: string[] }>(python, { op: "remove", ...place, name })
              .then(({ left }) => warnLeft(left));
          removed ??= finished ? finished.then(() => {}, removeNow) : removeNow();
          return removed;
        },
      };
    },
  };
}
