import { deepEqual, equal, match, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { withTestDb } from "../lib/db/testing.ts";
import { seedSensors } from "./fixtures/mcp_seed.ts";
import { taskArgs } from "./fixtures/task_args.ts";
import { childEnv, freePort } from "./fixtures/mcp_child.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

Deno.test("main.ts --stdio serves MCP on stdout and logs only to stderr", async () => {
  await using db = await withTestDb();
  await seedSensors(db);
  const dataDir = await Deno.makeTempDir({ prefix: "mcp-stdio-test-" });
  try {
    const env = childEnv({
      DATA_DIR: dataDir,
      PORT: String(await freePort()),
      MQTT_LISTEN: `127.0.0.1:${await freePort()}`,
      SANDBOX_ENGINE: "off",
      ...(db.url ? { DATABASE_URL: db.url } : {}),
    });
    const transport = new StdioClientTransport({
      command: Deno.execPath(),
      args: taskArgs("serve", dataDir, ["--stdio"]),
      cwd: ROOT,
      env,
      stderr: "pipe",
    });
    let stderr = "";
    transport.stderr?.on("data", (chunk: Uint8Array) => stderr += new TextDecoder().decode(chunk));
    const protocolErrors: Error[] = [];
    const client = new Client({ name: "mcp-stdio-test", version: "1.0.0" });
    // Any line on stdout that is not JSON-RPC surfaces here as a parse error.
    client.onerror = (e: Error) => protocolErrors.push(e);
    await client.connect(transport);
    try {
      equal(client.getServerVersion()?.name, "ambient-sensors");
      const { tools } = await client.listTools();
      ok(tools.some((t: { name: string }) => t.name === "get_database_schema"));
      const r = await client.callTool({ name: "get_database_schema", arguments: {} });
      equal(r.isError, undefined);
      const tables = (r.structuredContent as { tables: { name: string }[] }).tables;
      ok(tables.some((t) => t.name === "scd30_measurements"));
      if (db.url) {
        // Same database as the test: the seeded sensors are visible through the child.
        const s = await client.callTool({ name: "list_sensors", arguments: {} });
        deepEqual(
          (s.structuredContent as { sensors: { sensor_id: number }[] }).sensors
            .map((x) => x.sensor_id).sort(),
          [1, 2, 3],
        );
      }
    } finally {
      await client.close();
    }
    deepEqual(protocolErrors.map((e) => e.message), [], "stdout carried only JSON-RPC");
    match(stderr, /serving MCP over stdio/, "logs go to stderr");
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
