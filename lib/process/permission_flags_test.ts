import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { join } from "node:path";
import { permissionFlags } from "./permission_flags.ts";

Deno.test("permissionFlags() lets only serve and collect write, and only to DATA_DIR", () => {
  const serve = permissionFlags("serve", { dataDir: "./state", cwd: "/opt/ambient" });
  assertEquals(serve, [
    "--allow-net",
    "--allow-env",
    "--allow-read",
    "--allow-write=/opt/ambient/state",
    "--allow-sys=hostname,osRelease,networkInterfaces",
    "--allow-run=docker,bwrap,/usr/bin/python3",
  ]);
  assertEquals(
    permissionFlags("collect", { dataDir: "/var/lib/ambient-sensors" }).filter((f) =>
      f.startsWith("--allow-write")
    ),
    ["--allow-write=/var/lib/ambient-sensors"],
  );
  for (const task of ["monitor", "simulate"] as const) {
    const flags = permissionFlags(task, { dataDir: "/x" });
    ok(!flags.some((f) => f.startsWith("--allow-write") || f.startsWith("--allow-run")), task);
  }
  for (const task of ["serve", "collect", "monitor", "simulate"] as const) {
    ok(!permissionFlags(task).some((f) => f === "-A" || f === "--allow-all"), task);
  }
});

Deno.test("permissionFlags() grants a symlinked DATA_DIR by both names and never 'write anywhere'", async () => {
  const dir = await Deno.makeTempDir({ prefix: "perm-flags-" });
  try {
    await Deno.mkdir(join(dir, "real"));
    await Deno.symlink(join(dir, "real"), join(dir, "link"));
    assertEquals(
      permissionFlags("collect", { dataDir: join(dir, "link") }).find((f) =>
        f.startsWith("--allow-write")
      ),
      `--allow-write=${join(dir, "link")},${await Deno.realPath(join(dir, "real"))}`,
    );
    // A comma would split the list; no write flag at all rather than a broken or empty one.
    ok(!permissionFlags("collect", { dataDir: "/a,b" }).some((f) => f.startsWith("--allow-write")));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
