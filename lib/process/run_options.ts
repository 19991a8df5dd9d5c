import { type Env, type LoadedEnv, loadSettings, type Settings } from "../config/mod.ts";

/** What every `run…` function takes from the process (tests pass their own). */
export interface RunOptions {
  /** Command-line arguments after the entrypoint. */
  args: string[];
  /** The process environment; `.env` (or ENV_FILE) in `cwd` is read beneath it. */
  env: Env;
  /** Resolves when the process should stop (see `stopSignal`). */
  stopSignal: Promise<string>;
  /** Folder holding `.env` and against which DATA_DIR is resolved; default the current one. */
  cwd?: string;
}

/**
 * The settings of a task that takes no arguments (`collect`, `monitor`): arguments, or a bad
 * setting, give the message to print before exiting with status 2.
 */
export function taskSettings<T>(
  task: string,
  opts: RunOptions,
  load: (env: Env, loaded: LoadedEnv) => T,
): Settings<T> {
  if (opts.args.length > 0) {
    return {
      ok: false,
      message: `deno task ${task} takes no arguments, got "${opts.args.join(" ")}"; settings ` +
        "come from the environment and .env (see README.md, Configuration)",
    };
  }
  return loadSettings(opts.env, opts.cwd, load);
}
