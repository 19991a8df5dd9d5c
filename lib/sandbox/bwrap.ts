import { type JobDirs, JobQueue, runJob } from "./_run_job.ts";
import type { Sandbox, SandboxLimits } from "./types.ts";

/** Address space beyond SANDBOX_MEMORY_MB: importing numpy+pandas+matplotlib maps ~350 MB. */
export const BWRAP_AS_HEADROOM_MB = 384;

/** Only the /etc files Python, numpy (BLAS via alternatives) and matplotlib need; no secrets. */
const ETC_FILES = ["/etc/ld.so.cache", "/etc/alternatives", "/etc/fonts", "/etc/matplotlibrc"];

/** The full bwrap argument list for one job (exported for tests). */
export function bwrapArgs(
  dirs: JobDirs,
  opts: SandboxLimits & { python?: string },
): string[] {
  const asKb = (opts.memoryMb + BWRAP_AS_HEADROOM_MB) * 1024;
  const cpu = Math.ceil(opts.timeoutS) + 1;
  const python = opts.python ?? "/usr/bin/python3";
  // dash takes one limit per ulimit call.
  const limits = `ulimit -t ${cpu}; ulimit -p 64; ulimit -f 131072; ulimit -v ${asKb}; ulimit -c 0`;
  return [
    "--unshare-all",
    "--die-with-parent",
    "--new-session",
    "--cap-drop",
    "ALL",
    "--uid",
    "65534",
    "--gid",
    "65534",
    "--ro-bind",
    "/usr",
    "/usr",
    "--symlink",
    "usr/lib",
    "/lib",
    "--symlink",
    "usr/lib64",
    "/lib64",
    "--symlink",
    "usr/bin",
    "/bin",
    ...ETC_FILES.flatMap((f) => ["--ro-bind-try", f, f]),
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    "--tmpfs",
    "/tmp",
    "--ro-bind",
    dirs.job,
    "/job",
    "--bind",
    dirs.out,
    "/out",
    "--chdir",
    "/tmp",
    "--clearenv",
    "--setenv",
    "PATH",
    "/usr/bin:/bin",
    "--setenv",
    "HOME",
    "/tmp",
    "--setenv",
    "MPLBACKEND",
    "Agg",
    "--setenv",
    "MPLCONFIGDIR",
    "/tmp",
    // OpenBLAS spins forever starting its thread pool under RLIMIT_AS; one thread is enough.
    "--setenv",
    "OPENBLAS_NUM_THREADS",
    "1",
    "/bin/sh",
    "-c",
    `${limits}; exec "$0" -I /job/runner.py /job /out`,
    python,
  ];
}

/**
 * A sandbox on bubblewrap: namespaces, no network, rlimits and a wall-clock kill. `workDir` holds
 * the job folders (default: the system temporary folder; the server passes `DATA_DIR/sandbox`, the
 * only place its permission set may write).
 */
export function createBwrapSandbox(
  limits: SandboxLimits,
  opts: { python?: string; queue?: JobQueue; workDir?: string } = {},
): Sandbox {
  const queue = opts.queue ?? new JobQueue();
  return {
    engine: "bwrap",
    run: (job) =>
      queue.run(() =>
        runJob(job, {
          limits,
          workDir: opts.workDir,
          spec: {
            command: (dirs) => ({
              cmd: "bwrap",
              args: bwrapArgs(dirs, { ...limits, python: opts.python }),
            }),
          },
        })
      ),
  };
}
