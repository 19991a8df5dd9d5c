import { isAbsolute, join, resolve } from "node:path";
import { ConfigError, type Env } from "./_fields.ts";
import { parseDotenv } from "./_parse_dotenv.ts";

/** A `.env` larger than this is refused rather than read into memory. */
const MAX_ENV_FILE_BYTES = 1024 * 1024;

/** The environment an entrypoint runs with: the process environment over its `.env` file. */
export interface LoadedEnv {
  /** Process environment merged over the file's variables (the process wins). */
  env: Env;
  /** Absolute path of the file that was read; undefined when there was none. */
  file: string | undefined;
  /** Names whose value came from the file (not overridden by the process environment). */
  fromFile: ReadonlySet<string>;
  /** Where the settings came from, for messages: "…/.env and the environment". */
  source: string;
}

/**
 * Reads `ENV_FILE` (when set: it must exist) or else `.env` in `cwd` (when present), and merges
 * the process environment over it: a variable set in the process wins over the file. A file
 * that cannot be parsed throws a `ConfigError` naming it and the line.
 */
export function loadEnv(processEnv: Env, opts: { cwd?: string } = {}): LoadedEnv {
  const cwd = opts.cwd ?? Deno.cwd();
  const chosen = processEnv.ENV_FILE?.trim() || undefined;
  const path = chosen ? (isAbsolute(chosen) ? chosen : resolve(cwd, chosen)) : join(cwd, ".env");
  let text: string | undefined;
  try {
    const info = Deno.statSync(path);
    if (!info.isFile) throw new ConfigError("ENV_FILE", `"${path}" is not a file`);
    if (info.size > MAX_ENV_FILE_BYTES) {
      throw new ConfigError("ENV_FILE", `"${path}" is larger than 1 MiB`);
    }
    text = Deno.readTextFileSync(path);
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    if (!(error instanceof Deno.errors.NotFound) || chosen) {
      throw new ConfigError(
        "ENV_FILE",
        `names "${path}", which cannot be read: ${(error as Error).message}`,
      );
    }
  }
  if (text === undefined) {
    return {
      env: { ...processEnv },
      file: undefined,
      fromFile: new Set(),
      source: `the environment (no .env in ${cwd}; ENV_FILE names another file)`,
    };
  }
  let vars: Record<string, string>;
  try {
    vars = parseDotenv(text);
  } catch (error) {
    throw new ConfigError(chosen ? "ENV_FILE" : ".env", `"${path}" ${(error as Error).message}`);
  }
  const env: Env = { ...vars };
  const fromFile = new Set(Object.keys(vars));
  for (const [k, v] of Object.entries(processEnv)) {
    if (v === undefined) continue;
    env[k] = v;
    fromFile.delete(k);
  }
  return { env, file: path, fromFile, source: `${path} and the environment` };
}

/** A `ConfigError`'s message, naming the file when the bad value came from it. */
export function configErrorText(error: ConfigError, loaded: LoadedEnv | undefined): string {
  if (loaded?.file && loaded.fromFile.has(error.variable)) {
    return `${error.message} (set in ${loaded.file})`;
  }
  return error.message;
}

/** What `loadSettings` gives back: the configuration, or the message of why there is none. */
export type Settings<T> =
  | { ok: true; loaded: LoadedEnv; config: T }
  | { ok: false; message: string };

/**
 * The edge of every entrypoint: reads `.env` (or ENV_FILE) in `cwd` beneath `env`, then runs the
 * area's loader on the result. A `ConfigError` — from the file or from a value — becomes its
 * message (naming the file when the value came from it); anything else is rethrown.
 */
export function loadSettings<T>(
  env: Env,
  cwd: string | undefined,
  load: (env: Env, loaded: LoadedEnv) => T,
): Settings<T> {
  let loaded: LoadedEnv | undefined;
  try {
    loaded = loadEnv(env, { cwd });
    return { ok: true, loaded, config: load(loaded.env, loaded) };
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return { ok: false, message: configErrorText(error, loaded) };
  }
}
