import { resolve } from "node:path";

/** The processes the project starts, by task name. */
export type TaskName = "serve" | "collect" | "monitor" | "simulate";

/** Programs the sandbox of `serve` may start (see lib/sandbox). */
const SANDBOX_PROGRAMS = ["docker", "bwrap", "/usr/bin/python3"];

/**
 * The `deno run` / `deno compile` permission flags of one task. Everything may read files (the
 * `.env`, TLS files, the project) and use the network; only `serve` and `collect` may write, and
 * only below `dataDir` (made absolute against `cwd`; a symlinked folder is allowed by both
 * names). `serve` may also start the sandbox programs; its python does the work on /proc and /sys
 * that Deno allows only with --allow-all (job cgroups, the database memory watch). Never
 * `--allow-all`.
 */
export function permissionFlags(
  task: TaskName,
  opts: { dataDir?: string; cwd?: string } = {},
): string[] {
  const flags = ["--allow-net", "--allow-env", "--allow-read"];
  if (task === "serve" || task === "collect") {
    const paths = writablePaths(opts.dataDir ?? "./data", opts.cwd);
    // An empty list would mean "write anywhere": then no write access at all.
    if (paths.length > 0) flags.push(`--allow-write=${paths.join(",")}`);
  }
  if (task === "serve") {
    flags.push("--allow-sys=hostname,osRelease,networkInterfaces");
    flags.push(`--allow-run=${SANDBOX_PROGRAMS.join(",")}`);
  } else {
    flags.push("--allow-sys=hostname");
  }
  return flags;
}

function writablePaths(dataDir: string, cwd = Deno.cwd()): string[] {
  const abs = resolve(cwd, dataDir);
  const paths = [abs];
  try {
    const real = Deno.realPathSync(abs);
    if (real !== abs) paths.push(real);
  } catch {
    // Not created yet: the entrypoint creates it under the name given.
  }
  // A comma would split the list: such a folder name cannot be granted.
  return paths.filter((p) => !p.includes(","));
}
