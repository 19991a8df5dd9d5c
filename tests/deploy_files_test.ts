// The deployment files: systemd units and the compose file are valid for their tools, and the
// units grant exactly the permissions `deno task` computes for their DATA_DIR.
import { deepStrictEqual as assertEquals, equal, match, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { permissionFlags, type TaskName } from "../lib/process/mod.ts";
import { taskArgs } from "./fixtures/task_args.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const UNITS: Record<string, TaskName> = {
  "ambient-sensors.service": "serve",
  "ambient-sensors-serve.service": "serve",
  "ambient-sensors-collect.service": "collect",
  "ambient-sensors-monitor.service": "monitor",
};

async function has(command: string): Promise<boolean> {
  try {
    const out = await new Deno.Command(command, {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    })
      .output();
    return out.success;
  } catch {
    return false;
  }
}

function settings(text: string, key: string): string[] {
  return [...text.matchAll(new RegExp(`^${key}=(.*)$`, "gm"))].map((m) => m[1]);
}

Deno.test("every systemd unit passes systemd-analyze verify", async () => {
  if (!await has("systemd-analyze")) {
    console.log("  (skipped: systemd-analyze is not installed; .ci/run installs it)");
    return;
  }
  const files = Object.keys(UNITS).map((u) => `${ROOT}deploy/systemd/${u}`);
  const out = await new Deno.Command("systemd-analyze", { args: ["verify", ...files] }).output();
  const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
  equal(out.code, 0, text);
  // verify reports some problems as warnings without failing: none may mention these units.
  ok(!/ambient-sensors[\w-]*\.service:/.test(text), text);
});

Deno.test("the units run the task's own permission flags for their DATA_DIR, hardened", async () => {
  for (const [unit, task] of Object.entries(UNITS)) {
    const text = await Deno.readTextFile(`${ROOT}deploy/systemd/${unit}`);
    const dataDir = settings(text, "Environment").find((e) => e.startsWith("DATA_DIR="))
      ?.slice("DATA_DIR=".length);
    const [exec] = settings(text, "ExecStart");
    const words = exec.split(" ");
    const flags = words.filter((w) => /^--allow-/.test(w));
    assertEquals(flags, permissionFlags(task, { dataDir: dataDir ?? "/nonexistent" }), unit);
    // The same V8 flags and entrypoint as `deno task <task>`.
    const task_ = taskArgs(task, dataDir ?? "./data");
    assertEquals(
      words.filter((w) => w.startsWith("--v8-flags")),
      task_.filter((w) => w.startsWith("--v8-flags")),
    );
    equal(words.at(-1), `/opt/ambient-sensors/${task_.at(-1)}`);
    if (dataDir) {
      equal(dataDir, `/var/lib/${settings(text, "StateDirectory")[0]}`, unit);
    }
    for (
      const key of [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
      ]
    ) {
      ok(text.includes(`\n${key}\n`), `${unit}: ${key}`);
    }
    match(text, /^User=ambient-sensors$/m);
    match(text, /^EnvironmentFile=/m);
    match(text, /^Restart=on-failure$/m);
    match(text, /^KillMode=mixed$/m);
    match(text, /^TimeoutStopSec=\d+$/m);
    ok(!words.includes("-A") && !words.includes("--allow-all"), unit);
  }
});

Deno.test("deploy/compose.yaml passes docker-compose config", async () => {
  if (!await has("docker-compose")) {
    console.log("  (skipped: docker-compose is not installed; .ci/run installs it)");
    return;
  }
  const run = (env: Record<string, string>) =>
    new Deno.Command("docker-compose", {
      args: ["-f", `${ROOT}deploy/compose.yaml`, "--profile", "build", "config"],
      env,
      stdout: "piped",
      stderr: "piped",
    }).output();
  const out = await run({ POSTGRES_PASSWORD: "placeholder", MCP_AUTH_TOKEN: "placeholder-token" });
  const text = new TextDecoder().decode(out.stdout);
  equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const services = [
    "mosquitto",
    "db",
    "collector-1",
    "collector-2",
    "monitor-1",
    "monitor-2",
    "mcp-1",
    "mcp-2",
    "proxy",
    "sandbox",
  ];
  for (const service of services) match(text, new RegExp(`^  ${service}:$`, "m"));
  match(text, /timescale\/timescaledb/);
  equal([...text.matchAll(/MQTT_SHARED_GROUP: collectors/g)].length, 2);
  // Two of everything: both servers on the same database, each with a DATA_DIR of its own; the
  // proxy alone is published and balances over both.
  equal([...text.matchAll(/DATA_DIR: \/var\/lib\/ambient-sensors\/mcp-[12]$/gm)].length, 2);
  equal([...text.matchAll(/command:\n\s+- monitor$/gm)].length, 2);
  equal([...text.matchAll(/published: "?8000"?$/gm)].length, 1);
  const caddy = await Deno.readTextFile(`${ROOT}deploy/caddy/Caddyfile`);
  match(caddy, /reverse_proxy mcp-1:8000 mcp-2:8000/);
  match(caddy, /health_uri \/healthz/);
  // No default secrets: without them the file is refused.
  const bare = await run({});
  ok(!bare.success);
  match(new TextDecoder().decode(bare.stderr), /POSTGRES_PASSWORD/);
});
