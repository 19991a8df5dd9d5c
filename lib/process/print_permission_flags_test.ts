import { deepStrictEqual as assertEquals, equal, match } from "node:assert/strict";
import { join } from "node:path";

const SCRIPT = new URL("./print_permission_flags.ts", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;

async function print(task: string, cwd: string, env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-q", "--allow-read", "--allow-env", "--config", CONFIG, SCRIPT, task],
    cwd,
    env: { PATH: Deno.env.get("PATH") ?? "", ...env },
    clearEnv: true,
  }).output();
  const d = new TextDecoder();
  return { code: out.code, stdout: d.decode(out.stdout).trim(), stderr: d.decode(out.stderr) };
}

Deno.test("print_permission_flags.ts takes DATA_DIR from ./.env, the environment winning", async () => {
  const dir = await Deno.makeTempDir({ prefix: "print-flags-" });
  try {
    await Deno.writeTextFile(join(dir, ".env"), "DATA_DIR=./state\nDB_HOST=db.local\n");
    const fromFile = await print("collect", dir);
    equal(fromFile.code, 0, fromFile.stderr);
    match(fromFile.stdout, new RegExp(`--allow-write=${join(dir, "state")}( |$)`));
    const fromEnv = await print("serve", dir, { DATA_DIR: "/var/lib/ambient-sensors" });
    match(fromEnv.stdout, /--allow-write=\/var\/lib\/ambient-sensors /);
    const other = join(dir, "other.env");
    await Deno.writeTextFile(other, "DATA_DIR=/srv/sensors\n");
    match(
      (await print("collect", dir, { ENV_FILE: other })).stdout,
      /--allow-write=\/srv\/sensors/,
    );
    assertEquals(
      (await print("monitor", dir)).stdout,
      "--allow-net --allow-env --allow-read --allow-sys=hostname",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("print_permission_flags.ts leaves a broken .env to the entrypoint; a DATA_DIR with a space gets no write flag", async () => {
  const dir = await Deno.makeTempDir({ prefix: "print-flags-" });
  try {
    await Deno.writeTextFile(join(dir, ".env"), "not a setting\n");
    const r = await print("collect", dir);
    equal(r.code, 0);
    equal(
      r.stdout,
      `--allow-net --allow-env --allow-read --allow-write=${
        join(dir, "data")
      } --allow-sys=hostname`,
    );
    await Deno.remove(join(dir, ".env"));
    const spaced = await print("collect", dir, { DATA_DIR: "/tmp/with space" });
    equal(spaced.stdout, "--allow-net --allow-env --allow-read --allow-sys=hostname");
    match(spaced.stderr, /DATA_DIR must not contain white space/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
