import { runBounded } from "./_bounded_command.ts";
import { Closer, JOB_MAX_PROCESSES, type JobDirs, JobQueue, runJob } from "./_run_job.ts";
import { JOB_CPUS, JOB_TMP_MB } from "./bwrap.ts";
import type { Sandbox, SandboxLimits } from "./types.ts";

/** How long `docker kill` may take before the host stops waiting for it. */
const KILL_TIMEOUT_MS = 10_000;

/**
 * The full `docker run` argument list for one job (exported for tests). Results come back on the
 * container's stdout (nothing is bind-mounted writable); `/tmp` is a size-limited tmpfs; the
 * container's output is not logged to the docker host's disk.
 */
export function dockerArgs(dirs: JobDirs, opts: SandboxLimits & { image: string }): string[] {
  const mem = `${opts.memoryMb}m`;
  return [
    "run",
    "--rm",
    "--name",
    dirs.id,
    "--network",
    "none",
    "--log-driver",
    "none",
    "--memory",
    mem,
    "--memory-swap",
    mem,
    "--cpus",
    String(JOB_CPUS),
    "--pids-limit",
    String(JOB_MAX_PROCESSES),
    "--read-only",
    "--tmpfs",
    `/tmp:rw,nosuid,nodev,size=${JOB_TMP_MB}m`,
    "--ulimit",
    `fsize=${JOB_TMP_MB * 1048576}`,
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
    "--user",
    "65534:65534",
    "-v",
    `${dirs.job}:/job:ro`,
    opts.image,
    "python",
    "/job/runner.py",
    "/job",
  ];
}

/**
 * A sandbox on Docker; on timeout (or server shutdown) the docker client is killed and the named
 * container with `docker kill`. `workDir` holds the job folders (absolute; default: the system
 * temporary folder).
 */
export function createDockerSandbox(
  limits: SandboxLimits & { image: string },
  opts: { queue?: JobQueue; env?: Record<string, string>; workDir?: string } = {},
): Sandbox {
  const queue = opts.queue ?? new JobQueue();
  const env = opts.env;
  const closing = new Closer();
  return {
    engine: "docker",
    run: (job) =>
      queue.run(() =>
        closing.track(runJob(job, {
          limits,
          env,
          workDir: opts.workDir,
          signal: closing.signal,
          spec: {
            launch: (dirs) => ({
              cmd: "docker",
              args: dockerArgs(dirs, limits),
              usage: () => Promise.resolve({ limits: "docker" as const }),
            }),
            kill: async (dirs) => {
              await runBounded("docker", ["kill", dirs.id], { timeoutMs: KILL_TIMEOUT_MS, env });
            },
          },
        }))
      ),
    close: () => closing.close(),
  };
}
