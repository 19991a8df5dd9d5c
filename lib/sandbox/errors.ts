/** The code ran longer than `SANDBOX_TIMEOUT_S` and was killed. */
export class SandboxTimeout extends Error {
  /** Creates the error for a job killed after `seconds`. */
  constructor(seconds: number, options?: ErrorOptions) {
    super(`Sandbox code did not finish within "${seconds}" s and was stopped`, options);
    this.name = "SandboxTimeout";
  }
}

/** The code needed more memory than `SANDBOX_MEMORY_MB` allows. */
export class SandboxMemoryExceeded extends Error {
  /** Creates the error for a job over its memory limit of `mb`. */
  constructor(mb: number, options?: ErrorOptions) {
    super(`Sandbox code needed more than the "${mb}" MB memory limit`, options);
    this.name = "SandboxMemoryExceeded";
  }
}

/** The code hit one of the sandbox's other limits (processes, raw output, result size). */
export class SandboxLimitExceeded extends Error {
  /** Creates the error with a message naming the limit. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "SandboxLimitExceeded";
  }
}

/** No engine can run the job (disabled, not installed, or too many jobs waiting). */
export class SandboxUnavailable extends Error {
  /** Creates the error with a message saying why. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "SandboxUnavailable";
  }
}

/** The user's Python code raised; `traceback` holds only the frames of that code. */
export class SandboxUserError extends Error {
  /** The traceback of the user's code (filename `<analysis>`). */
  readonly traceback: string;
  /** Output printed before the error. */
  readonly stdout: string;
  /** Creates the error from the runner's report. */
  constructor(traceback: string, stdout = "", options?: ErrorOptions) {
    super(traceback.trim().split("\n").at(-1) ?? "Python error", options);
    this.name = "SandboxUserError";
    this.traceback = traceback;
    this.stdout = stdout;
  }
}
