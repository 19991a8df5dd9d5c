import { deepStrictEqual, equal, match, ok, rejects } from "node:assert/strict";
import {
  createBwrapSandbox,
  SandboxMemoryExceeded,
  SandboxTimeout,
  SandboxUserError,
} from "../lib/sandbox/mod.ts";
import { sandboxAvailable } from "./fixtures/mcp_sandbox_available.ts";

const available = await sandboxAvailable();
if (!available) console.warn("SKIPPING sandbox bwrap tests: bwrap or python3 with pandas missing");

const dir = await Deno.makeTempDir({ prefix: "sandbox-test-" });
const csv = `${dir}/data.csv`;
await Deno.writeTextFile(
  csv,
  "time,co2,temperature\n" +
    Array.from(
      { length: 50 },
      (_, i) => `2024-01-01T00:${String(i).padStart(2, "0")}:00Z,${400 + i * 2},${20 + i * 0.1}`,
    ).join("\n") +
    "\n",
);
// Generous: on a loaded machine starting Python and pandas alone can take seconds.
const sandbox = createBwrapSandbox({ memoryMb: 128, timeoutS: 60 });
const t = { ignore: !available, sanitizeResources: true, sanitizeOps: true };

Deno.test({
  ...t,
  name: "bwrap sandbox runs describe() and a correlation on a CSV with time parsed",
  async fn() {
    const r = await sandbox.run({
      csvPath: csv,
      code:
        "print(df['time'].dtype)\nprint(df.describe())\nprint(round(df.co2.corr(df.temperature), 3))",
      mode: "analyze",
    });
    match(r.stdout, /datetime64\[ns\]\n/); // UTC, without a zone
    match(r.stdout, /count\s+50\.0/);
    match(r.stdout, /\n1\.0\n/);
  },
});

Deno.test({
  ...t,
  name: "bwrap sandbox saves a plot as a 1000x500 PNG",
  async fn() {
    const png = `${dir}/plot.png`;
    await sandbox.run({
      csvPath: csv,
      code: "df.plot(x='time', y='co2')",
      mode: "plot",
      pngPath: png,
    });
    const bytes = await Deno.readFile(png);
    deepStrictEqual([...bytes.slice(1, 4)], [0x50, 0x4e, 0x47]);
    const view = new DataView(bytes.buffer);
    deepStrictEqual([view.getUint32(16), view.getUint32(20)], [1000, 500]);
  },
});

Deno.test({
  ...t,
  name: "bwrap sandbox explains an empty figure",
  async fn() {
    await rejects(
      sandbox.run({ csvPath: csv, code: "x = 1", mode: "plot", pngPath: `${dir}/e.png` }),
      (e: Error) =>
        e instanceof SandboxUserError &&
        /plt\.plot\(\.\.\.\) or df\.plot/.test(e.message + (e as SandboxUserError).traceback),
    );
  },
});

Deno.test({
  ...t,
  name: "bwrap sandbox reports only the user's traceback frames",
  async fn() {
    const err = await sandbox.run({
      csvPath: csv,
      code: "def f():\n    return df['nope']\nf()",
      mode: "analyze",
    })
      .then(() => undefined, (e) => e);
    ok(err instanceof SandboxUserError);
    match(err.traceback, /File "<analysis>", line 3/);
    match(err.traceback, /KeyError: 'nope'/);
    ok(!err.traceback.includes("pandas/"), err.traceback);
    ok(!err.traceback.includes("runner.py"), err.traceback);
  },
});

Deno.test({
  ...t,
  name: "bwrap sandbox runs as an unprivileged uid without the server environment",
  async fn() {
    Deno.env.set("SANDBOX_TEST_SECRET", "hunter2-secret");
    try {
      const r = await sandbox.run({
        csvPath: csv,
        code: "import os\nprint(os.getuid())\nprint(open('/proc/self/environ','rb').read())",
        mode: "analyze",
      });
      match(r.stdout, /^65534\n/);
      ok(!r.stdout.includes("hunter2"), r.stdout);
      ok(!r.stdout.includes("DATABASE_URL"), r.stdout);
    } finally {
      Deno.env.delete("SANDBOX_TEST_SECRET");
    }
  },
});

Deno.test({
  ...t,
  name: "bwrap sandbox cannot open sockets to 127.0.0.1 or an outside address",
  async fn() {
    const r = await sandbox.run({
      csvPath: csv,
      code: `import socket
for host in ['127.0.0.1', '192.0.2.1']:
    s = socket.socket(); s.settimeout(1)
    try:
        s.connect((host, 5432)); print(host, 'CONNECTED')
    except OSError as e:
        print(host, 'blocked', type(e).__name__)
`,
      mode: "analyze",
    });
    match(r.stdout, /127\.0\.0\.1 blocked/);
    match(r.stdout, /192\.0\.2\.1 blocked/);
    ok(!r.stdout.includes("CONNECTED"));
  },
});

Deno.test({
  ...t,
  name: "bwrap sandbox cannot read the server's files nor write outside its output folder",
  async fn() {
    const secret = `${Deno.cwd()}/deno.json`;
    const r = await sandbox.run({
      csvPath: csv,
      code:
        `for p in ['${secret}', '${dir}/data.csv', '/root/.bashrc', '/etc/shadow', '/etc/passwd']:
    try:
        open(p).read(); print(p, 'READ')
    except OSError as e:
        print(p, 'denied')
for p in ['/job/x', '/usr/x', '${dir}/w']:
    try:
        open(p, 'w').write('x'); print(p, 'WROTE')
    except OSError as e:
        print(p, 'denied')
`,
      mode: "analyze",
    });
    ok(!r.stdout.includes("READ"), r.stdout);
    ok(!r.stdout.includes("WROTE"), r.stdout);
    equal(r.stdout.match(/denied/g)?.length, 8);
  },
});

Deno.test({
  ...t,
  name: "bwrap sandbox stops a 1 GB allocation with a memory error",
  async fn() {
    await rejects(
      sandbox.run({ csvPath: csv, code: "x = bytearray(1024 * 1024 * 1024)", mode: "analyze" }),
      SandboxMemoryExceeded,
    );
  },
});

Deno.test({
  ...t,
  name: "bwrap sandbox kills an infinite loop at the timeout",
  async fn() {
    const quick = createBwrapSandbox({ memoryMb: 128, timeoutS: 2 });
    const started = Date.now();
    await rejects(
      quick.run({ csvPath: csv, code: "while True: pass", mode: "analyze" }),
      SandboxTimeout,
    );
    ok(Date.now() - started < 6000);
  },
});

Deno.test({
  ...t,
  name: "bwrap sandbox contains a fork bomb",
  async fn() {
    const quick = createBwrapSandbox({ memoryMb: 128, timeoutS: 3 });
    const err = await quick.run({
      csvPath: csv,
      code: "import os\nn = 0\nwhile n < 10000:\n    os.fork(); n += 1",
      mode: "analyze",
    }).then(() => undefined, (e) => e);
    ok(err instanceof Error, "a fork bomb must not succeed");
  },
});

Deno.test({
  ...t,
  name: "bwrap sandbox cuts 50 MB of output and keeps working afterwards",
  async fn() {
    const r = await sandbox.run({
      csvPath: csv,
      code: "import sys\nfor _ in range(50):\n    sys.stdout.write('x' * 1024 * 1024)",
      mode: "analyze",
    });
    ok(r.stdout.length < 110 * 1024);
    match(r.stdout, /\[output cut at 100 KB\]/);
    const after = await sandbox.run({ csvPath: csv, code: "print(len(df))", mode: "analyze" });
    equal(after.stdout, "50\n");
  },
});

Deno.test({
  name: "bwrap sandbox tests clean up their temp folder",
  ignore: !available,
  async fn() {
    await Deno.remove(dir, { recursive: true });
    ok(true);
  },
});
