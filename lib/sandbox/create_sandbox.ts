import { join, resolve } from "node:path";
import type { ResolvedServeConfig } from "../config/mod.ts";
import { logger } from "../log/mod.ts";
import { createBwrapSandbox } from "./bwrap.ts";
import { runBounded } from "./_bounded_command.ts";
import { detectCgroups } from "./_cgroup.ts";
import { createDockerSandbox } from "./docker.ts";
import { JobQueue } from "./_run_job.ts";
import type { Sandbox } from "./types.ts";

const log = logger("sandbox");

/** A probe of an engine at start-up (`docker info`, bwrap, python) answers in this time or fails. */
const PROBE_TIMEOUT_MS = 15_000;

async function works(cmd: string, args: string[], env: Record<string, string>): Promise<boolean> {
  try {
    return (await runBounded(cmd, args, { timeoutMs: PROBE_TIMEOUT_MS, env })).success;
  } catch {
    return false;
  }
}

/**
 * Picks the engine for `SANDBOX_ENGINE`: `auto` tries docker (`docker info`), then bwrap with a
 * python3 that imports pandas; `off` or nothing available → undefined (the tools say so).
 * `workDir` is where job folders are prepared (the server passes `DATA_DIR/sandbox`: its
 * permission set may not write to the system temporary folder); folders a crashed server left
 * there are removed.
 */
export async function createSandbox(
  config: ResolvedServeConfig["sandbox"],
  opts: {
    env?: Record<string, string>;
    python?: string;
    maxRunning?: number;
    maxWaiting?: number;
    workDir?: string;
  } = {},
): Promise<Sandbox | undefined> {
  const workDir = opts.workDir === undefined ? undefined : resolve(opts.workDir);
  if (workDir) await removeStaleJobs(workDir, (2 * config.timeoutS + 60) * 1000);
  if (config.engine === "off") return undefined;
  const env = opts.env ?? { PATH: "/usr/local/bin:/usr/bin:/bin" };
  const python = opts.python ?? "/usr/bin/python3";
  const queue = new JobQueue(opts);
  const limits = { memoryMb: config.memoryMb, timeoutS: config.timeoutS };
  if (config.engine === "docker" || config.engine === "auto") {
    if (await works("docker", ["info"], env)) {
      log.info("sandbox engine", { engine: "docker", image: config.image });
      return createDockerSandbox({ ...limits, image: config.image }, {
        queue,
        env,
        workDir,
      });
    }
    if (config.engine === "docker") {
      log.warn("SANDBOX_ENGINE=docker but `docker info` failed; sandbox disabled");
      return undefined;
    }
  }
  const bwrapOk = await works("bwrap", ["--ro-bind", "/", "/", "--unshare-all", "true"], env);
  if (bwrapOk && await works(python, ["-c", "import pandas, matplotlib"], env)) {
    const cgroups = await detectCgroups({ python });
    // Groups of jobs a server killed outright left behind, old enough to be no one's.
    await cgroups?.sweep((2 * config.timeoutS + 60) * 1000).catch((error) =>
      log.warn("cannot sweep old sandbox cgroups", { error: String(error) })
    );
    // What bounds a job as a whole: see README, "Sandbox".
    log.info("sandbox engine", { engine: "bwrap", python, limits: cgroups?.mode ?? "supervisor" });
    return createBwrapSandbox(limits, { python, queue, workDir, cgroups: cgroups ?? null });
  }
  log.warn("no sandbox engine available (install docker, or bubblewrap + python3-pandas)");
  return undefined;
}

/**
 * Removes job folders left in `workDir` by a server that crashed mid-job. Only folders older than
 * `olderThanMs` go, so a job of another server sharing the folder is never touched.
 */
async function removeStaleJobs(workDir: string, olderThanMs: number): Promise<number> {
  let removed = 0;
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(workDir));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return 0;
    throw err;
  }
  for (const e of entries) {
    if (!e.isDirectory || !e.name.startsWith("ambient-sandbox-")) continue;
    const path = join(workDir, e.name);
    try {
      const { mtime } = await Deno.stat(path);
      if (mtime && Date.now() - mtime.getTime() < olderThanMs) continue;
      await Deno.remove(path, { recursive: true });
      removed++;
    } catch (err) {
      log.warn("cannot remove a stale sandbox job folder", { folder: e.name, error: err });
    }
  }
  if (removed > 0) log.info("removed stale sandbox job folders", { count: removed });
  return removed;
}
