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
  /** Wall-clock milliseconds the job took. */
  elapsedMs: number;
}

/** Runs pandas/matplotlib code isolated from the network, the database and the host. */
export interface Sandbox {
  /** Which engine runs the jobs. */
  readonly engine: "docker" | "bwrap";
  /** Runs one job; throws SandboxTimeout, SandboxMemoryExceeded, SandboxUserError or SandboxUnavailable. */
  run(job: SandboxJob): Promise<SandboxResult>;
}

/** Limits shared by both engines. */
export interface SandboxLimits {
  memoryMb: number;
  timeoutS: number;
}
