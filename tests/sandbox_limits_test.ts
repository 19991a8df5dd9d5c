import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import {
  createBwrapSandbox,
  type Sandbox,
  SandboxLimitExceeded,
  SandboxMemoryExceeded,
  type SandboxResult,
} from "../lib/sandbox/mod.ts";
import { detectCgroups } from "../lib/sandbox/_cgroup.ts";
import { sandboxAvailable } from "./fixtures/mcp_sandbox_available.ts";

// Hostile jobs against the real bwrap engine, once with the cgroups this host offers (if any)
// and once with the in-namespace supervisor used where there are none. Each asserts the bound.

const available = await sandboxAvailable();
if (!available) console.warn("SKIPPING sandbox limit tests: bwrap or python3 with pandas missing");
const cgroups = available ? await detectCgroups() : undefined;
if (available && !cgroups) console.warn("no usable cgroups here: cgroup cases run the supervisor");

const MEMORY_MB = 128;
const dir = await Deno.makeTempDir({ prefix: "sandbox-limits-" });
const csv = `${dir}/data.csv`;
await Deno.writeTextFile(csv, "x,y\n1,2\n3,4\n");

/** Runs `code`; resolves with the result or the error it was refused with. */
function attempt(sandbox: Sandbox, code: string): Promise<SandboxResult | Error> {
  return sandbox.run({ csvPath: csv, code, mode: "analyze" }).catch((e: Error) => e);
}

const modes = [
  { name: cgroups?.mode ?? "supervisor (no cgroups)", cgroups: cgroups ?? null },
  ...(cgroups ? [{ name: "supervisor", cgroups: null }] : []),
];

for (const mode of modes) {
  const sandbox = createBwrapSandbox({ memoryMb: MEMORY_MB, timeoutS: 60 }, {
    cgroups: mode.cgroups,
  });
  const t = { ignore: !available, sanitizeResources: true, sanitizeOps: true };

  Deno.test({
    ...t,
    name: `[${mode.name}] six forked children allocating 60 MB each stay below the job's memory`,
    async fn() {
      // Each child touches 60 MB, tells the parent, and holds it; six of them would be 360 MB.
      const r = await attempt(
        sandbox,
        `import os, time
r, w = os.pipe()
kids = []
for i in range(6):
    pid = os.fork()
    if pid == 0:
        os.close(r)
        block = b'\\x01' * (60 << 20)
        os.write(w, b'+')
        time.sleep(4)
        os._exit(0)
    kids.append(pid)
os.close(w)
held = 0
end = time.time() + 8
while time.time() < end:
    b = os.read(r, 1)
    if not b:
        break
    held += 1
for k in kids:
    os.waitpid(k, 0)
print('held', held)
`,
      );
      if (r instanceof Error) {
        ok(r instanceof SandboxMemoryExceeded, String(r));
      } else {
        const held = Number(/held (\d+)/.exec(r.stdout)?.[1]);
        ok(held * 60 < MEMORY_MB, `${held} children held 60 MB at once: ${r.stdout}`);
        const peak = r.usage?.peakMemoryBytes;
        if (peak !== undefined) ok(peak <= MEMORY_MB * 1048576, `peak ${peak}`);
      }
    },
  });

  Deno.test({
    ...t,
    name: `[${mode.name}] 300 forks are refused past the job's process limit`,
    async fn() {
      const r = await attempt(
        sandbox,
        `import os, time
n = 0
for i in range(300):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        os.execv('/usr/bin/sleep', ['sleep', '3'])
    n += 1
print('forked', n)
`,
      );
      if (r instanceof Error) {
        ok(r instanceof SandboxLimitExceeded, String(r));
        match(r.message, /more than 64 processes/);
      } else {
        const n = Number(/forked (\d+)/.exec(r.stdout)?.[1]);
        ok(n < 64, `forked ${n}`);
        ok((r.usage?.forksRefused ?? 0) > 0, JSON.stringify(r.usage));
      }
    },
  });

  Deno.test({
    ...t,
    name: `[${mode.name}] four busy children share one CPU`,
    async fn() {
      // Each child spins for 3 s of wall-clock time and reports the CPU time it got.
      const r = await attempt(
        sandbox,
        `import os, time
r, w = os.pipe()
start = time.time()
for i in range(4):
    if os.fork() == 0:
        while time.time() < start + 3:
            pass
        os.write(w, ('%f\\n' % time.process_time()).encode())
        os._exit(0)
os.close(w)
data = b''
while True:
    b = os.read(r, 100)
    if not b:
        break
    data += b
wall = time.time() - start
cpu = sum(float(x) for x in data.split())
print('children', len(data.split()), 'ratio', cpu / wall)
`,
      );
      ok(!(r instanceof Error), String(r));
      const m = /children (\d) ratio ([\d.]+)/.exec(r.stdout);
      ok(m, r.stdout);
      equal(m[1], "4");
      // One CPU (plus scheduling slack); unbounded, four spinners take every core there is.
      ok(Number(m[2]) < 1.3, `CPU/wall ${m[2]}`);
    },
  });

  Deno.test({
    ...t,
    name: `[${mode.name}] 600 MB written to /tmp and to other folders is refused at the limit`,
    async fn() {
      const r = await attempt(
        sandbox,
        `import os
def fill(folder):
    total = 0
    for i in range(10):
        try:
            with open(os.path.join(folder, 'f%d' % i), 'wb') as f:
                for _ in range(60):
                    f.write(b'\\x01' * (1 << 20))
                    f.flush()
                    total += 1 << 20
        except OSError:
            pass
    return total >> 20
for folder in ['/tmp', '/out', '/job', '/', '/dev/shm', '/usr']:
    print(folder, fill(folder))
`,
      );
      if (r instanceof Error) {
        ok(r instanceof SandboxMemoryExceeded, String(r));
        return;
      }
      const written = Object.fromEntries(
        r.stdout.trim().split("\n").map((l) => l.split(" ")).map(([f, n]) => [f, Number(n)]),
      );
      ok(written["/tmp"] <= 32, JSON.stringify(written));
      for (const f of ["/out", "/job", "/", "/dev/shm", "/usr"]) equal(written[f], 0, f);
    },
  });
}

Deno.test({
  ...{ ignore: !available, sanitizeResources: true, sanitizeOps: true },
  name: "bwrap sandbox kills a job writing 200 MB straight to fd 1, and the host stays small",
  async fn() {
    const sandbox = createBwrapSandbox({ memoryMb: MEMORY_MB, timeoutS: 60 });
    const before = Deno.memoryUsage().rss;
    for (
      const code of [
        "import os\nfor _ in range(200):\n    os.write(1, b'x' * (1 << 20))",
        "import os\nfor _ in range(200):\n    os.write(2, b'x' * (1 << 20))",
        "import subprocess\nsubprocess.run(['/usr/bin/yes'])",
      ]
    ) {
      const started = Date.now();
      const r = await attempt(sandbox, code);
      ok(r instanceof SandboxLimitExceeded, String(r));
      match(r.message, /more than 100 KB straight to file descriptor 1 or 2/);
      ok(Date.now() - started < 30_000);
    }
    ok(Deno.memoryUsage().rss - before < 64 * 1048576, "the host buffered the output");
  },
});

Deno.test({
  name: "bwrap sandbox limit tests leave no job cgroup nor temp folder behind",
  ignore: !available,
  async fn() {
    await Deno.remove(dir, { recursive: true });
    if (cgroups?.mode !== "cgroup-v1") return;
    const own = /^\d+:memory:(.*)$/m.exec(await Deno.readTextFile("/proc/self/cgroup"))![1];
    const groups = await Array.fromAsync(Deno.readDir(`/sys/fs/cgroup/memory${own}`));
    // Only this process's jobs: other test processes have cgroups of their own.
    deepStrictEqual(groups.filter((e) => e.name.startsWith("ambient-")), []);
  },
});
