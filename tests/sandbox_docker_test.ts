import { deepStrictEqual, equal, match, ok, rejects } from "node:assert/strict";
import {
  createDockerSandbox,
  createSandbox,
  SandboxLimitExceeded,
  SandboxTimeout,
  SandboxUnavailable,
} from "../lib/sandbox/mod.ts";

async function fakeDocker() {
  const bin = await Deno.makeTempDir({ prefix: "fake-docker-" });
  await Deno.copyFile(
    new URL("./fixtures/sandbox_fake_docker.sh", import.meta.url),
    `${bin}/docker`,
  );
  await Deno.chmod(`${bin}/docker`, 0o755);
  const csv = `${bin}/data.csv`;
  await Deno.writeTextFile(csv, "time,co2\n2024-01-01T00:00:00Z,400\n");
  const calls = async () =>
    (await Deno.readTextFile(`${bin}/calls.log`)).trim().split("\n").map((l) => l.split(" "));
  return {
    bin,
    csv,
    calls,
    env: { PATH: `${bin}:/usr/bin:/bin` },
    async [Symbol.asyncDispose]() {
      await Deno.remove(bin, { recursive: true });
    },
  };
}

Deno.test("docker sandbox runs the exact hardened docker run command", async () => {
  await using fake = await fakeDocker();
  const sandbox = createDockerSandbox({ memoryMb: 128, timeoutS: 5, image: "img:test" }, {
    env: fake.env,
  });
  const r = await sandbox.run({ csvPath: fake.csv, code: "print(1)", mode: "analyze" });
  equal(r.stdout, "fake docker ran\n");
  equal(r.usage?.limits, "docker");
  const [run] = await fake.calls();
  const name = run[3];
  match(name, /^ambient-sandbox-[0-9a-f-]{36}$/);
  const job = run[28].replace(/:\/job:ro$/, "");
  match(job, /\/ambient-sandbox-[^/]+\/job$/);
  deepStrictEqual(run, [
    "run",
    "--rm",
    "--name",
    name,
    "--network",
    "none",
    "--log-driver",
    "none",
    "--memory",
    "128m",
    "--memory-swap",
    "128m",
    "--cpus",
    "1",
    "--pids-limit",
    "64",
    "--read-only",
    "--tmpfs",
    "/tmp:rw,nosuid,nodev,size=32m",
    "--ulimit",
    `fsize=${32 * 1048576}`,
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
    "--user",
    "65534:65534",
    "-v",
    `${job}:/job:ro`,
    "img:test",
    "python",
    "/job/runner.py",
    "/job",
  ]);
  // The only mount is the job folder, read-only: nothing the container writes reaches the host.
  equal(run.filter((a) => a === "-v" || a === "--mount" || a.startsWith("--volume")).length, 1);
});

Deno.test("docker sandbox kills the named container on timeout", async () => {
  await using fake = await fakeDocker();
  await Deno.writeTextFile(`${fake.bin}/sleep`, "1");
  const sandbox = createDockerSandbox({ memoryMb: 64, timeoutS: 1, image: "img" }, {
    env: fake.env,
  });
  await rejects(
    sandbox.run({ csvPath: fake.csv, code: "while True: pass", mode: "analyze" }),
    SandboxTimeout,
  );
  const calls = await fake.calls();
  equal(calls.length, 2);
  deepStrictEqual(calls[1], ["kill", calls[0][3]]);
});

Deno.test("docker sandbox gives up on a client that keeps its output open after the kill", async () => {
  await using fake = await fakeDocker();
  await Deno.writeTextFile(`${fake.bin}/hold`, "1");
  const sandbox = createDockerSandbox({ memoryMb: 64, timeoutS: 1, image: "img" }, {
    env: fake.env,
  });
  const started = Date.now();
  try {
    await rejects(
      sandbox.run({ csvPath: fake.csv, code: "print(1)", mode: "analyze" }),
      SandboxTimeout,
    );
    // The timeout, the kill and a short grace: not the 30 s the held pipe would last.
    ok(Date.now() - started < 8000, `${Date.now() - started} ms`);
    deepStrictEqual((await fake.calls())[1], ["kill", (await fake.calls())[0][3]]);
  } finally {
    const held = Number(await Deno.readTextFile(`${fake.bin}/held.pid`).catch(() => "0"));
    if (held) Deno.kill(held, "SIGKILL");
  }
});

Deno.test("docker sandbox stops a client flooding its output at the cap and kills the container", async () => {
  await using fake = await fakeDocker();
  await Deno.writeTextFile(`${fake.bin}/flood`, "1");
  const sandbox = createDockerSandbox({ memoryMb: 64, timeoutS: 30, image: "img" }, {
    env: fake.env,
  });
  const before = Deno.memoryUsage().rss;
  await rejects(
    sandbox.run({ csvPath: fake.csv, code: "print(1)", mode: "analyze" }),
    (e: Error) => e instanceof SandboxLimitExceeded && /more than 17 MB of results/.test(e.message),
  );
  ok(Deno.memoryUsage().rss - before < 128 * 1048576);
  const calls = await fake.calls();
  deepStrictEqual(calls[1], ["kill", calls[0][3]]);
});

Deno.test("docker sandbox stops running jobs on close and refuses new ones", async () => {
  await using fake = await fakeDocker();
  await Deno.writeTextFile(`${fake.bin}/sleep`, "1");
  const sandbox = createDockerSandbox({ memoryMb: 64, timeoutS: 30, image: "img" }, {
    env: fake.env,
  });
  const started = Date.now();
  const running = sandbox.run({ csvPath: fake.csv, code: "print(1)", mode: "analyze" });
  await new Promise((r) => setTimeout(r, 300));
  await sandbox.close!();
  await rejects(
    running,
    (e: Error) => e instanceof SandboxUnavailable && /stopping/.test(e.message),
  );
  ok(Date.now() - started < 5000);
  await rejects(
    sandbox.run({ csvPath: fake.csv, code: "print(1)", mode: "analyze" }),
    SandboxUnavailable,
  );
});

Deno.test("createSandbox() picks docker when `docker info` works and nothing when off", async () => {
  await using fake = await fakeDocker();
  const config = { engine: "auto" as const, image: "img", memoryMb: 128, timeoutS: 5 };
  equal((await createSandbox(config, { env: fake.env }))?.engine, "docker");
  equal(await createSandbox({ ...config, engine: "off" }, { env: fake.env }), undefined);
});

Deno.test("createSandbox() removes job folders a crashed server left behind, but not fresh ones", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/ambient-sandbox-old/job`, { recursive: true });
    await Deno.mkdir(`${dir}/ambient-sandbox-new/job`, { recursive: true });
    await Deno.mkdir(`${dir}/unrelated`);
    const hourAgo = new Date(Date.now() - 3600_000);
    await Deno.utime(`${dir}/ambient-sandbox-old`, hourAgo, hourAgo);
    const none = await createSandbox(
      { engine: "off", image: "img", memoryMb: 128, timeoutS: 30 },
      { workDir: dir },
    );
    equal(none, undefined);
    const left = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
    deepStrictEqual(left, ["ambient-sandbox-new", "unrelated"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
