import { deepStrictEqual, equal, match, rejects } from "node:assert/strict";
import { createDockerSandbox, createSandbox, SandboxTimeout } from "../lib/sandbox/mod.ts";

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
  const [run] = await fake.calls();
  const name = run[3];
  match(name, /^ambient-sandbox-[0-9a-f-]{36}$/);
  const job = run[24].replace(/:\/job:ro$/, "");
  const out = run[26].replace(/:\/out$/, "");
  deepStrictEqual(run, [
    "run",
    "--rm",
    "--name",
    name,
    "--network",
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
    "/tmp",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
    "--user",
    "65534:65534",
    "-v",
    `${job}:/job:ro`,
    "-v",
    `${out}:/out`,
    "img:test",
    "python",
    "/runner.py",
    "/job",
    "/out",
  ]);
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
