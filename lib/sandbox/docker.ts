import { type JobDirs, JobQueue, runJob } from "./_run_job.ts";
import type { Sandbox, SandboxLimits } from "./types.ts";

/** The full `docker run` argument list for one job (exported for tests). */
export function dockerArgs(dirs: JobDirs, opts: SandboxLimits & { image: string }): string[] {
  const mem = `${opts.memoryMb}m`;
  return [
    "run",
    "--rm",
    "--name",
    dirs.id,
    "--network",
    "none",
    "--memory",
    mem,
    "--memory-swap",
    mem,
    "--cpus",
    "1",
    "--pids-limit",
    "64",
    "--read-only",
    "--tmpfs",
    "/tmp",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
    "--user",
    "65534:65534",
    "-v",
    `${dirs.job}:/job:ro`,
    "-v",
    `${dirs.out}:/out`,
    opts.image,
    "python",
    "/runner.py",
    "/job",
    "/out",
  ];
}

/**
 * A sandbox on Docker; on timeout the named container is killed with `docker kill`. `workDir`
 * holds the job folders (absolute; default: the system temporary folder).
 */
export function createDockerSandbox(
  limits: SandboxLimits & { image: string },
  opts: { queue?: JobQueue; env?: Record<string, string>; workDir?: string } = {},
): Sandbox {
  const queue = opts.queue ?? new JobQueue();
  const env = opts.env;
  return {
    engine: "docker",
    run: (job) =>
      queue.run(() =>
        runJob(job, {
          limits,
          env,
          workDir: opts.workDir,
          spec: {
            command: (dirs) => ({ cmd: "docker", args: dockerArgs(dirs, limits) }),
            kill: async (dirs) => {
              await new Deno.Command("docker", {
                args: ["kill", dirs.id],
                clearEnv: true,
                env,
                stdout: "null",
                stderr: "null",
              }).output();
            },
          },
        })
      ),
  };
}
