import { logger } from "../log/mod.ts";
import {
  SandboxMemoryExceeded,
  SandboxTimeout,
  SandboxUnavailable,
  SandboxUserError,
} from "./errors.ts";
import type { SandboxJob, SandboxLimits, SandboxResult } from "./types.ts";

const log = logger("sandbox");
const RUNNER = new URL("../../sandbox/runner.py", import.meta.url);

/** Host folders of one job: `job` is mounted read-only, `out` writable. */
export interface JobDirs {
  id: string;
  job: string;
  out: string;
}

/** How an engine turns a prepared job into a process, and how it kills one. */
export interface EngineSpec {
  command(dirs: JobDirs): { cmd: string; args: string[] };
  kill?(dirs: JobDirs): Promise<void>;
}

/**
 * Prepares a job folder (under `workDir`, default the system temporary folder), runs the engine's
 * command with a wall-clock limit, reads result.json.
 */
export async function runJob(
  job: SandboxJob,
  opts: {
    spec: EngineSpec;
    limits: SandboxLimits;
    env?: Record<string, string>;
    workDir?: string;
  },
): Promise<SandboxResult> {
  const started = performance.now();
  if (opts.workDir) await Deno.mkdir(opts.workDir, { recursive: true });
  const root = await Deno.makeTempDir({ dir: opts.workDir, prefix: "ambient-sandbox-" });
  const id = `ambient-sandbox-${crypto.randomUUID()}`;
  const dirs: JobDirs = { id, job: `${root}/job`, out: `${root}/out` };
  try {
    await Deno.mkdir(dirs.job);
    await Deno.mkdir(dirs.out);
    // The sandbox user (65534) must be able to read the job and write the output.
    await Deno.chmod(root, 0o755);
    await Deno.chmod(dirs.job, 0o755);
    await Deno.chmod(dirs.out, 0o777);
    await Deno.copyFile(job.csvPath, `${dirs.job}/data.csv`);
    await Deno.writeTextFile(`${dirs.job}/code.py`, job.code);
    await Deno.writeTextFile(`${dirs.job}/job.json`, JSON.stringify({ mode: job.mode }));
    await Deno.writeTextFile(`${dirs.job}/runner.py`, await Deno.readTextFile(RUNNER));
    for (const f of ["data.csv", "code.py", "job.json", "runner.py"]) {
      await Deno.chmod(`${dirs.job}/${f}`, 0o644);
    }
    const { cmd, args } = opts.spec.command(dirs);
    const child = new Deno.Command(cmd, {
      args,
      clearEnv: true,
      env: opts.env ?? { PATH: "/usr/local/bin:/usr/bin:/bin" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let timedOut = false;
    const timer = setTimeout(async () => {
      timedOut = true;
      try {
        await opts.spec.kill?.(dirs);
      } catch (error) {
        log.warn("could not kill sandbox job", { id, error: String(error) });
      }
      try {
        child.kill("SIGKILL");
      } catch {
        // already exited
      }
    }, opts.limits.timeoutS * 1000);
    const output = await child.output().finally(() => clearTimeout(timer));
    if (timedOut) throw new SandboxTimeout(opts.limits.timeoutS);
    let report: { status: string; stdout: string; stderr: string; error: string | null };
    try {
      report = JSON.parse(await Deno.readTextFile(`${dirs.out}/result.json`));
    } catch (cause) {
      const tail = new TextDecoder().decode(output.stderr.slice(-2000));
      if (
        output.signal === "SIGKILL" || output.code === 137 ||
        /MemoryError|Cannot allocate/.test(tail)
      ) {
        throw new SandboxMemoryExceeded(opts.limits.memoryMb, { cause });
      }
      log.warn("sandbox job produced no result", { id, code: output.code, stderr: tail });
      throw new SandboxUnavailable(
        `The sandbox process exited with code "${output.code}" without a result`,
        { cause },
      );
    }
    if (report.status === "setup") {
      throw new SandboxUnavailable(report.error ?? "The sandbox could not load the job");
    }
    if (report.status === "memory") throw new SandboxMemoryExceeded(opts.limits.memoryMb);
    if (report.status === "error") {
      throw new SandboxUserError(report.error ?? "Python error", report.stdout);
    }
    const result: SandboxResult = {
      stdout: report.stdout,
      stderr: report.stderr,
      elapsedMs: performance.now() - started,
    };
    if (job.mode === "plot") {
      const png = `${dirs.out}/plot.png`;
      if (job.pngPath) {
        await Deno.copyFile(png, job.pngPath);
        result.pngPath = job.pngPath;
      } else {
        result.pngPath = png;
      }
    }
    return result;
  } finally {
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
}

/** Runs at most `maxRunning` jobs at once; up to `maxWaiting` more wait, the rest are refused. */
export class JobQueue {
  #running = 0;
  #waiting: (() => void)[] = [];
  #maxRunning: number;
  #maxWaiting: number;

  /** Creates a queue (defaults: 2 running, 8 waiting). */
  constructor(opts: { maxRunning?: number; maxWaiting?: number } = {}) {
    this.#maxRunning = opts.maxRunning ?? 2;
    this.#maxWaiting = opts.maxWaiting ?? 8;
  }

  /** Runs `fn` when a slot is free; throws SandboxUnavailable when the queue is full. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#running >= this.#maxRunning) {
      if (this.#waiting.length >= this.#maxWaiting) {
        throw new SandboxUnavailable(
          `The sandbox is busy ("${this.#running}" jobs running, "${this.#waiting.length}" waiting); try again in a moment`,
        );
      }
      // A finishing job hands its slot straight to the first waiter.
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    } else {
      this.#running++;
    }
    try {
      return await fn();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#running--;
    }
  }
}
