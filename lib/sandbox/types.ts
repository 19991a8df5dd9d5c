/** One job for the sandbox: a CSV, the code to run on it, and what to produce. */
export interface SandboxJob {
  /** Path of the query's CSV on the host; loaded as `df`. */
  csvPath: string;
  /** Python code run with `df`, `pd`, `np`, `plt`. */
  code: string;
  /** `analyze` captures output; `plot` also saves the current figure. */
  mode: "analyze" | "plot";
  /** Where the PNG is written (plot mode). */
  pngPath?: string;
}

/** What a successful job produced. */
export interface SandboxResult {
  /** Captured stdout (capped at 100 KB with a note). */
  stdout: string;
  /** Captured stderr (capped at 100 KB with a note). */
  stderr: string;
  /** Set in plot mode: where the PNG was written. */
  pngPath?: string;
  /** Set in plot mode: the PNG's size in bytes. */
  pngBytes?: number;
  /** Wall-clock milliseconds the job took. */
  elapsedMs: number;
  /** How the job was bounded as a whole and what that accounting saw. */
  usage?: SandboxUsage;
}

/** What bounded a job's processes together, and the kernel's counts where there are some. */
export interface SandboxUsage {
  /** `cgroup-v2`/`cgroup-v1` (bwrap), `supervisor` (bwrap without cgroups), `docker`, `none`. */
  limits: "cgroup-v2" | "cgroup-v1" | "supervisor" | "docker" | "none";
  /** Highest memory use of all the job's processes together, when the kernel counted it. */
  peakMemoryBytes?: number;
  /** Processes the kernel's OOM killer ended. */
  oomKills?: number;
  /** Forks refused at the process limit. */
  forksRefused?: number;
  /** CPU periods in which the job was throttled at its share. */
  cpuThrottledPeriods?: number;
}

/** Runs pandas/matplotlib code isolated from the network, the database and the host. */
export interface Sandbox {
  /** Which engine runs the jobs. */
  readonly engine: "docker" | "bwrap";
  /** Runs one job; throws SandboxTimeout, SandboxMemoryExceeded, SandboxUserError or SandboxUnavailable. */
  run(job: SandboxJob): Promise<SandboxResult>;
  /** Stops running jobs at once and refuses new ones (server shutdown). */
  close?(): Promise<void>;
}

/** Limits shared by both engines. */
export interface SandboxLimits {
  /** Memory of all the job's processes together. */
  memoryMb: number;
  timeoutS: number;
}
