import { logger } from "../log/mod.ts";
import {
  SandboxLimitExceeded,
  SandboxMemoryExceeded,
  SandboxTimeout,
  SandboxUnavailable,
  SandboxUserError,
} from "./errors.ts";
import { MAX_CHANNEL_BYTES, parseFrames } from "./_frames.ts";
import { readCapped } from "./_read_capped.ts";
import type { SandboxJob, SandboxLimits, SandboxResult, SandboxUsage } from "./types.ts";

const log = logger("sandbox");
const RUNNER = new URL("../../sandbox/runner.py", import.meta.url);

/** The host keeps at most this much of each output text (stdout, stderr) of a job. */
export const OUTPUT_CAP_BYTES = 100 * 1024;
/** After a kill, how long the host waits for the process and its pipes before giving up on them. */
const KILL_GRACE_MS = 2000;
const CUT_NOTE = `\n[output cut at ${OUTPUT_CAP_BYTES / 1024} KB]`;

/** Host folder of one job, mounted read-only into the sandbox; `id` also names its container. */
export interface JobDirs {
  id: string;
  job: string;
}

/** The process one job runs as, and what the engine learns about it afterwards. */
export interface Launch {
  cmd: string;
  args: string[];
  /** Kernel-side accounting of the job (cgroups), read once it has exited. */
  usage?(): Promise<Partial<SandboxUsage>>;
  /** Maps an exit code of the engine's own supervisor to a limit error. */
  limitError?(code: number): Error | undefined;
  /** Frees what `launch` set up on the host (cgroups). */
  release?(): Promise<void>;
}

/** How an engine turns a prepared job into a process, and how it kills one. */
export interface EngineSpec {
  launch(dirs: JobDirs): Launch | Promise<Launch>;
  kill?(dirs: JobDirs): Promise<void>;
}

/** Why the host stopped a job. */
type StopReason = "timeout" | "channel" | "raw" | "closed";

/** `text` as a string of at most OUTPUT_CAP_BYTES UTF-8 bytes, with a note when it was cut. */
function cut(text: unknown): string {
  const s = typeof text === "string" ? text : "";
  const bytes = new TextEncoder().encode(s);
  if (bytes.length <= OUTPUT_CAP_BYTES) return s;
  const kept = new TextDecoder().decode(bytes.subarray(0, OUTPUT_CAP_BYTES)).replace(/\uFFFD$/, "");
  return kept + CUT_NOTE;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/**
 * Prepares a read-only job folder (under `workDir`, default the system temporary folder), runs
 * the engine's process and reads its results from its stdout with a cap (see
 * `sandbox/runner.py`): the host never opens a path the job could write. Everything — start,
 * run, reading the output — is bounded by the wall-clock limit; `signal` (server shutdown) stops
 * the job at once.
 */
export async function runJob(
  job: SandboxJob,
  opts: {
    spec: EngineSpec;
    limits: SandboxLimits;
    env?: Record<string, string>;
    workDir?: string;
    signal?: AbortSignal;
  },
): Promise<SandboxResult> {
  const started = performance.now();
  if (opts.signal?.aborted) throw new SandboxUnavailable("The server is stopping");
  if (opts.workDir) await Deno.mkdir(opts.workDir, { recursive: true });
  const root = await Deno.makeTempDir({ dir: opts.workDir, prefix: "ambient-sandbox-" });
  const id = `ambient-sandbox-${crypto.randomUUID()}`;
  const dirs: JobDirs = { id, job: `${root}/job` };
  let launch: Launch | undefined;
  try {
    await Deno.mkdir(dirs.job);
    // The sandbox user (65534) must be able to read the job.
    await Deno.chmod(root, 0o755);
    await Deno.chmod(dirs.job, 0o755);
    await Deno.copyFile(job.csvPath, `${dirs.job}/data.csv`);
    await Deno.writeTextFile(`${dirs.job}/code.py`, job.code);
    await Deno.writeTextFile(`${dirs.job}/job.json`, JSON.stringify({ mode: job.mode }));
    await Deno.writeTextFile(`${dirs.job}/runner.py`, await Deno.readTextFile(RUNNER));
    for (const f of ["data.csv", "code.py", "job.json", "runner.py"]) {
      await Deno.chmod(`${dirs.job}/${f}`, 0o644);
    }
    launch = await opts.spec.launch(dirs);
    const child = new Deno.Command(launch.cmd, {
      args: launch.args,
      clearEnv: true,
      env: opts.env ?? { PATH: "/usr/local/bin:/usr/bin:/bin" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();

    let stopped: StopReason | undefined;
    const giveUp = new AbortController();
    let graceTimer: ReturnType<typeof setTimeout> | undefined;
    // The engine's own kill (docker kill), awaited before the job's outcome is reported, so a
    // job is never reported ended while its container may still run; bounded by the engine.
    let killing: Promise<void> | undefined;
    const stop = (reason: StopReason) => {
      if (stopped) return;
      stopped = reason;
      try {
        child.kill("SIGKILL");
      } catch {
        // already exited
      }
      killing = opts.spec.kill?.(dirs).catch((error) =>
        log.warn("could not kill sandbox job", { id, error: String(error) })
      );
      // Whatever still holds the pipes (a stuck engine client) is not waited for past this.
      graceTimer = setTimeout(() => giveUp.abort(), KILL_GRACE_MS);
    };
    const timer = setTimeout(() => stop("timeout"), opts.limits.timeoutS * 1000);
    const onClose = () => stop("closed");
    opts.signal?.addEventListener("abort", onClose, { once: true });
    const exited = child.status.then((s) => s, () => undefined);
    let status: Deno.CommandStatus | undefined;
    let channel, raw;
    try {
      [channel, raw] = await Promise.all([
        readCapped(child.stdout, {
          cap: MAX_CHANNEL_BYTES,
          onOver: () => stop("channel"),
          signal: giveUp.signal,
        }),
        readCapped(child.stderr, {
          cap: OUTPUT_CAP_BYTES,
          onOver: () => stop("raw"),
          signal: giveUp.signal,
        }),
      ]);
      status = await Promise.race([
        exited,
        new Promise<undefined>((resolve) => {
          if (giveUp.signal.aborted) resolve(undefined);
          giveUp.signal.addEventListener("abort", () => resolve(undefined), { once: true });
        }),
      ]);
    } finally {
      clearTimeout(timer);
      clearTimeout(graceTimer);
      opts.signal?.removeEventListener("abort", onClose);
    }
    if (!status) {
      log.warn("sandbox job did not exit after being killed", { id });
      // Nothing waits for it any longer, and it cannot keep the server from exiting.
      child.unref();
    }
    await killing;
    if (stopped === "timeout") throw new SandboxTimeout(opts.limits.timeoutS);
    if (stopped === "closed") throw new SandboxUnavailable("The server is stopping");
    if (stopped === "raw") {
      throw new SandboxLimitExceeded(
        `The code wrote more than ${
          OUTPUT_CAP_BYTES / 1024
        } KB straight to file descriptor 1 or 2 (or from a child process) and was stopped; use print(), whose output is kept up to ${
          OUTPUT_CAP_BYTES / 1024
        } KB`,
      );
    }
    if (stopped === "channel") {
      throw new SandboxLimitExceeded(
        `The job sent more than ${
          Math.round(MAX_CHANNEL_BYTES / 1048576)
        } MB of results and was stopped`,
      );
    }
    const usage: SandboxUsage = { limits: "none", ...(await launch.usage?.().catch(() => ({}))) };
    const rawText = new TextDecoder().decode(raw!.bytes);
    const limitError = status?.code !== undefined ? launch.limitError?.(status.code) : undefined;
    if (limitError) throw limitError;
    const frames = parseFrames(channel!.bytes);
    let report: { status?: unknown; stdout?: unknown; stderr?: unknown; error?: unknown } | null =
      null;
    try {
      if (frames.result) report = JSON.parse(new TextDecoder().decode(frames.result));
    } catch {
      frames.malformed ??= "result frame";
    }
    if (!report || typeof report !== "object") {
      const tail = rawText.slice(-2000);
      if (
        (usage.oomKills ?? 0) > 0 || status?.signal === "SIGKILL" || status?.code === 137 ||
        /MemoryError|Cannot allocate/.test(tail)
      ) {
        throw new SandboxMemoryExceeded(opts.limits.memoryMb);
      }
      if ((usage.forksRefused ?? 0) > 0) throw processLimit();
      log.warn("sandbox job produced no result", {
        id,
        code: status?.code,
        malformed: frames.malformed,
        stderr: tail,
      });
      throw new SandboxUnavailable(
        frames.malformed
          ? `The sandbox job sent malformed results (${frames.malformed})`
          : `The sandbox process exited with code "${status?.code}" without a result`,
      );
    }
    const stdout = cut(report.stdout);
    const stderr = cut(String(report.stderr ?? "") + (rawText ? rawText : ""));
    const error = typeof report.error === "string" ? cut(report.error) : undefined;
    if (report.status === "setup") {
      throw new SandboxUnavailable(error ?? "The sandbox could not load the job");
    }
    if (report.status === "memory") throw new SandboxMemoryExceeded(opts.limits.memoryMb);
    if (report.status === "error") {
      if ((usage.forksRefused ?? 0) > 0) throw processLimit();
      throw new SandboxUserError(error ?? "Python error", stdout);
    }
    if (report.status !== "ok") {
      throw new SandboxUnavailable("The sandbox job sent malformed results (status)");
    }
    const result: SandboxResult = {
      stdout,
      stderr,
      elapsedMs: performance.now() - started,
      usage,
    };
    if (job.mode === "plot") {
      const png = frames.png;
      if (!png || !PNG_SIGNATURE.every((b, i) => png[i] === b)) {
        throw new SandboxUnavailable("The sandbox job sent no PNG image for the figure");
      }
      if (job.pngPath) {
        await Deno.writeFile(job.pngPath, png);
        result.pngPath = job.pngPath;
      }
      result.pngBytes = png.length;
    }
    return result;
  } finally {
    await launch?.release?.().catch((error) =>
      log.warn("could not release sandbox limits", { id, error: String(error) })
    );
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
}

/** The error for a job that hit the process limit. */
export function processLimit(): SandboxLimitExceeded {
  return new SandboxLimitExceeded(
    `The code tried to start more than ${JOB_MAX_PROCESSES} processes, the sandbox's limit`,
  );
}

/** Processes one job may run at once (all of them, the runner included). */
export const JOB_MAX_PROCESSES = 64;

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

/** How long `close()` waits for stopped jobs to free their groups and folders. */
const CLOSE_WAIT_MS = 15_000;

/**
 * The stop switch of one sandbox: `run` starts a job under its signal; `close` stops every running
 * job and resolves once each has released what it held on the host (cgroups, its folder), so a
 * server that exits after it leaves nothing behind. Bounded: a job still busy after
 * CLOSE_WAIT_MS is left to the process exit.
 */
export class Closer {
  #controller = new AbortController();
  #running = new Set<Promise<unknown>>();

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Tracks `job` until it settles. */
  track<T>(job: Promise<T>): Promise<T> {
    this.#running.add(job);
    job.then(() => this.#running.delete(job), () => this.#running.delete(job));
    return job;
  }

  async close(): Promise<void> {
    this.#controller.abort();
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.allSettled([...this.#running]),
      new Promise((resolve) => timer = setTimeout(resolve, CLOSE_WAIT_MS)),
    ]);
    clearTimeout(timer);
  }
}
