/**
 * Prints the permission flags of one task for `deno task` (see deno.json):
 * `deno run $(deno run … lib/process/print_permission_flags.ts serve) main.ts`. DATA_DIR comes
 * from the environment, else from ENV_FILE or `./.env`, exactly as the entrypoint reads it, so
 * write access is limited to the folder the process will use. A `.env` that cannot be read is
 * left for the entrypoint to report.
 *
 * @module
 */
import { loadEnv } from "../config/load_env.ts";
import { permissionFlags, type TaskName } from "./permission_flags.ts";

const TASKS: TaskName[] = ["serve", "collect", "monitor", "simulate"];

function main(args: string[]): number {
  const task = args[0] as TaskName;
  if (!TASKS.includes(task)) {
    console.error(`Usage: print_permission_flags.ts ${TASKS.join("|")}`);
    return 2;
  }
  let dataDir: string | undefined;
  try {
    dataDir = loadEnv(Deno.env.toObject()).env.DATA_DIR?.trim() || undefined;
  } catch {
    // The entrypoint reads the same file and explains what is wrong with it (exit status 2).
    dataDir = Deno.env.get("DATA_DIR")?.trim() || undefined;
  }
  const flags = permissionFlags(task, { dataDir }).filter((flag) => {
    // `deno task` splits the printed flags on white space.
    if (!/\s/.test(flag)) return true;
    console.error(
      `DATA_DIR must not contain white space for deno task; use deno run ${flag} … directly`,
    );
    return false;
  });
  console.log(flags.join(" "));
  return 0;
}

if (import.meta.main) Deno.exit(main(Deno.args));
