import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import { createBwrapSandbox, SandboxUnavailable } from "../lib/sandbox/mod.ts";
import { detectCgroups } from "../lib/sandbox/_cgroup.ts";
import { sandboxAvailable } from "./fixtures/mcp_sandbox_available.ts";

// A job's control groups never outlive it: not when its processes outlive their launcher, not
// when the server closes mid-job, and not (after a while) when a server was killed outright.

const available = await sandboxAvailable();
const cgroups = available ? await detectCgroups() : undefined;
const ignore = !cgroups;
if (ignore) console.warn("SKIPPING cgroup tests: no usable cgroups (or no bwrap) here");

/** This process's job groups (the memory or unified hierarchy), by name. */
async function ownGroups(): Promise<string[]> {
  const text = await Deno.readTextFile("/proc/self/cgroup");
  const path = cgroups?.mode === "cgroup-v1"
    ? `/sys/fs/cgroup/memory${/^\d+:memory:(.*)$/m.exec(text)![1]}`
    : `/sys/fs/cgroup${/^0::(.*)$/m.exec(text)![1]}`;
  const names: string[] = [];
  for await (const e of Deno.readDir(path.replace(/\/$/, ""))) {
    if (e.isDirectory && e.name.startsWith("ambient-sandbox-")) names.push(e.name);
  }
  return names;
}

/** Starts `sleep` inside `procs` (as the bwrap launcher does) and returns it. */
function sleeperIn(procs: string[]): Deno.ChildProcess {
  const join = "import os,sys\nfor p in sys.argv[1:]:\n" +
    " f=os.open(p,os.O_WRONLY);os.write(f,str(os.getpid()).encode());os.close(f)\n" +
    "os.execv('/bin/sleep',['sleep','30'])";
  return new Deno.Command("/usr/bin/python3", {
    args: ["-I", "-S", "-c", join, ...procs],
    stdin: "null",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
}

async function waitFor(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

Deno.test({
  name: "a job group still holding a process is emptied and removed",
  ignore,
  async fn() {
    const name = `ambient-sandbox-${crypto.randomUUID()}`;
    const group = await cgroups!.create(name, { memoryBytes: 64 << 20, maxProcesses: 8, cpus: 1 });
    const sleeper = sleeperIn(group.procs);
    await waitFor(
      "the sleeper in its group",
      async () => (await Deno.readTextFile(group.procs[0])).trim() !== "",
    );
    const started = Date.now();
    await group.remove();
    const status = await sleeper.status;
    equal(status.signal, "SIGKILL", "the process left in the group was killed");
    ok(!(await ownGroups()).includes(name), "the group was removed");
    ok(Date.now() - started < 10_000);
  },
});

Deno.test({
  name: "sweep() removes an abandoned empty job group and leaves one in use",
  ignore,
  async fn() {
    const limits = { memoryBytes: 64 << 20, maxProcesses: 8, cpus: 1 };
    const abandoned = `ambient-sandbox-${crypto.randomUUID()}`;
    const busy = `ambient-sandbox-${crypto.randomUUID()}`;
    await cgroups!.create(abandoned, limits);
    const inUse = await cgroups!.create(busy, limits);
    const sleeper = sleeperIn(inUse.procs);
    try {
      await waitFor(
        "the sleeper in its group",
        async () => (await Deno.readTextFile(inUse.procs[0])).trim() !== "",
      );
      // Young groups are left alone: they may be another server's, just being joined.
      await cgroups!.sweep(60_000);
      ok((await ownGroups()).includes(abandoned));
      await cgroups!.sweep(0);
      const left = await ownGroups();
      ok(!left.includes(abandoned), "the empty group was removed");
      ok(left.includes(busy), "the group with a process stays");
    } finally {
      await inUse.remove();
      await sleeper.status;
    }
    ok(!(await ownGroups()).includes(busy));
  },
});

Deno.test({
  name: "close() stops a running bwrap job and returns once its group and folder are gone",
  ignore,
  async fn() {
    const workDir = await Deno.makeTempDir({ prefix: "sandbox-close-" });
    const csv = await Deno.makeTempFile({ suffix: ".csv" });
    await Deno.writeTextFile(csv, "x\n1\n");
    try {
      const sandbox = createBwrapSandbox({ memoryMb: 128, timeoutS: 60 }, { cgroups, workDir });
      const before = await ownGroups();
      const job = sandbox.run({
        csvPath: csv,
        mode: "analyze",
        code: "import subprocess\nsubprocess.run(['/bin/sleep', '60'])",
      }).catch((e: Error) => e);
      await waitFor(
        "the job's group",
        async () => (await ownGroups()).some((g) => !before.includes(g)),
      );
      // Give the job's processes time to start inside the group.
      await new Promise((r) => setTimeout(r, 500));
      const started = Date.now();
      await sandbox.close!();
      const closedMs = Date.now() - started;
      deepStrictEqual((await ownGroups()).filter((g) => !before.includes(g)), []);
      deepStrictEqual(await Array.fromAsync(Deno.readDir(workDir)), []);
      const error = await job;
      ok(error instanceof SandboxUnavailable, String(error));
      match(error.message, /stopping/);
      ok(closedMs < 15_000, `close() took ${closedMs} ms`);
    } finally {
      await Deno.remove(workDir, { recursive: true });
      await Deno.remove(csv);
    }
  },
});
