import { type Cgroups, detectCgroups } from "./_cgroup.ts";
import {
  Closer,
  JOB_MAX_PROCESSES,
  type JobDirs,
  JobQueue,
  processLimit,
  runJob,
} from "./_run_job.ts";
import { SandboxMemoryExceeded } from "./errors.ts";
import type { Sandbox, SandboxLimits } from "./types.ts";

/** Address space beyond SANDBOX_MEMORY_MB: importing numpy+pandas+matplotlib maps ~350 MB. */
export const BWRAP_AS_HEADROOM_MB = 384;
/**
 * Size of the job's only writable folder, `/tmp`: a tmpfs, so with cgroups its files count
 * against the job's memory too (kept well below SANDBOX_MEMORY_MB minus what Python needs).
 */
export const JOB_TMP_MB = 32;
/** CPUs one job may use (all its processes together). */
export const JOB_CPUS = 1;

/** Exit codes of the in-namespace supervisor (`sandbox/runner.py supervise`). */
const EXIT_MEMORY = 90;
const EXIT_PROCESSES = 91;

/** Only the /etc files Python, numpy (BLAS via alternatives) and matplotlib need; no secrets. */
const ETC_FILES = ["/etc/ld.so.cache", "/etc/alternatives", "/etc/fonts", "/etc/matplotlibrc"];

/**
 * Joins the job's cgroups, then execs bwrap: run with the allowed python before anything forks,
 * so every process of the job starts inside its groups.
 */
const JOIN_CGROUPS = "import os,sys\n" +
  "a=sys.argv[1:];i=a.index('--')\n" +
  "for p in a[:i]:\n" +
  " f=os.open(p,os.O_WRONLY);os.write(f,str(os.getpid()).encode());os.close(f)\n" +
  "os.execvp(a[i+1],a[i+1:])";

/**
 * The full bwrap argument list for one job (exported for tests). With `supervise`, the runner's
 * supervisor is pid 1 of the job's pid namespace and bounds all its processes together (hosts
 * without usable cgroups); otherwise the caller puts bwrap into the job's cgroups.
 */
export function bwrapArgs(
  dirs: JobDirs,
  opts: SandboxLimits & { python?: string; supervise?: boolean },
): string[] {
  const asKb = (opts.memoryMb + BWRAP_AS_HEADROOM_MB) * 1024;
  const cpu = Math.ceil(opts.timeoutS) + 1;
  const python = opts.python ?? "/usr/bin/python3";
  // dash takes one limit per ulimit call.
  const limits = `ulimit -t ${cpu}; ulimit -p ${JOB_MAX_PROCESSES}; ulimit -f ${
    JOB_TMP_MB * 1024
  }; ulimit -v ${asKb}; ulimit -c 0`;
  const runner = opts.supervise
    ? `supervise ${opts.memoryMb * 1048576} ${JOB_MAX_PROCESSES} ${JOB_CPUS} /job`
    : "/job";
  return [
    "--unshare-all",
    "--die-with-parent",
    "--new-session",
    ...(opts.supervise ? ["--as-pid-1"] : []),
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
    // Nothing writable in /dev (its /dev/shm would be an unbounded tmpfs); the devices still work.
    "--remount-ro",
    "/dev",
    "--size",
    String(JOB_TMP_MB * 1048576),
    "--tmpfs",
    "/tmp",
    "--ro-bind",
    dirs.job,
    "/job",
    "--remount-ro",
    "/",
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
    `${limits}; exec "$0" -I /job/runner.py ${runner}`,
    python,
  ];
}

/**
 * A sandbox on bubblewrap: namespaces, no network, rlimits, a wall-clock kill, and the job's
 * memory, processes and CPU bounded together — by cgroups (v2, else v1) when the server may
 * create them, else by a supervisor inside the job's pid namespace. `workDir` holds the job
 * folders (default: the system temporary folder; the server passes `DATA_DIR/sandbox`).
 * `cgroups`: undefined detects them at the first job, null forces the supervisor.
 */
export function createBwrapSandbox(
  limits: SandboxLimits,
  opts: { python?: string; queue?: JobQueue; workDir?: string; cgroups?: Cgroups | null } = {},
): Sandbox {
  const queue = opts.queue ?? new JobQueue();
  const python = opts.python ?? "/usr/bin/python3";
  const closing = new Closer();
  let cgroups: Promise<Cgroups | undefined> | undefined = opts.cgroups === null
    ? Promise.resolve(undefined)
    : opts.cgroups
    ? Promise.resolve(opts.cgroups)
    : undefined;
  return {
    engine: "bwrap",
    run: (job) =>
      queue.run(() =>
        closing.track(runJob(job, {
          limits,
          workDir: opts.workDir,
          signal: closing.signal,
          spec: {
            async launch(dirs) {
              const groups = await (cgroups ??= detectCgroups({ python }));
              if (!groups) {
                return {
                  cmd: "bwrap",
                  args: bwrapArgs(dirs, { ...limits, python, supervise: true }),
                  usage: () => Promise.resolve({ limits: "supervisor" as const }),
                  limitError: (code) =>
                    code === EXIT_MEMORY
                      ? new SandboxMemoryExceeded(limits.memoryMb)
                      : code === EXIT_PROCESSES
                      ? processLimit()
                      : undefined,
                };
              }
              const group = await groups.create(dirs.id, {
                memoryBytes: limits.memoryMb * 1048576,
                // bwrap itself and its reaper are in the group too.
                maxProcesses: JOB_MAX_PROCESSES + 2,
                cpus: JOB_CPUS,
              });
              return {
                cmd: python,
                args: [
                  "-I",
                  "-S",
                  "-c",
                  JOIN_CGROUPS,
                  ...group.procs,
                  "--",
                  "bwrap",
                  ...bwrapArgs(dirs, { ...limits, python }),
                ],
                usage: async () => ({ limits: groups.mode, ...(await group.usage()) }),
                release: () => group.remove(),
              };
            },
          },
        }))
      ),
    close: () => closing.close(),
  };
}
