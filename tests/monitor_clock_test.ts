// Devices whose clocks are wrong: silence is judged by when the collector received their
// messages, readings keep the device's time, and the clock offset is reported as a data-quality
// finding. Messages go through the real decoder and batch writer with the receive times a
// collector would give them; the monitor runs on a clock the test moves.
import { deepEqual, equal, ok } from "node:assert/strict";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { ResolvedMonitorConfig } from "../lib/config/mod.ts";
import { withTestDb } from "../lib/db/testing.ts";
import { createBatchWriter, decodeMessage } from "../lib/ingest/mod.ts";
import type { ToolDeps } from "../lib/mcp/deps.ts";
import { registerGetDeviceStatusTool } from "../lib/mcp/tools/get_device_status.ts";
import { loadDeviceStatus, startMonitor } from "../lib/monitor/mod.ts";
import type { Logger } from "../lib/log/mod.ts";
import { FakePushover } from "./fixtures/monitor_fake_pushover.ts";

const T0 = Date.parse("2026-03-01T12:00:00Z");
const THRESHOLD_S = 20;
/** Device clock minus the true time, in seconds. */
const OFFSETS = { behind: -600, ahead: 240, "far-ahead": 600 } as const;
type Device = keyof typeof OFFSETS;

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {} };
const encoder = new TextEncoder();

function reading(device: Device, receivedS: number) {
  const deviceTime = new Date(T0 + (receivedS + OFFSETS[device]) * 1000).toISOString();
  return decodeMessage({
    topic: `devices/${device}/sensors/scd30/data`,
    payload: encoder.encode(JSON.stringify({ timestamp: deviceTime, value: { co2: 600 } })),
    receivedAt: T0 + receivedS * 1000,
  });
}

Deno.test("device clocks 10 min behind and 4 min ahead: no false alarm, alert on time", async () => {
  await using db = await withTestDb();
  await using pushover = new FakePushover();
  const writer = createBatchWriter(db, { layouts: ["columnar", "flexible"] });
  const config: ResolvedMonitorConfig = {
    databaseUrl: undefined,
    pushover: { user: "user-key", token: "app-token", apiUrl: pushover.url },
    checkIntervalS: 3600, // checks are driven by checkNow()
    inactivityThresholdS: THRESHOLD_S,
    serverUrl: "https://sensors.example.net",
  };
  let now = T0;
  const m = await startMonitor(db, config, { now: () => new Date(now), log: quiet });
  try {
    await m.firstCheck;
    // All three publish every 5 s for a minute; the far-ahead one never stops.
    for (let t = 0; t <= 60; t += 5) {
      await writer.write([reading("behind", t), reading("ahead", t), reading("far-ahead", t)]);
      now = T0 + t * 1000 + 500;
      await m.checkNow();
    }
    equal(pushover.messages.length, 0, "no alarm while every device publishes");

    const status = await loadDeviceStatus(db, { now: new Date(now), thresholdS: THRESHOLD_S });
    const by = new Map(status.map((s) => [s.deviceId, s]));
    for (const d of Object.keys(OFFSETS) as Device[]) {
      equal(by.get(d)!.health, "online", d);
      deepEqual(by.get(d)!.lastSeen, new Date(T0 + 60_000), `${d}: last seen is the receive time`);
    }
    equal(by.get("behind")!.clockOffsetS, -600);
    equal(by.get("behind")!.clockSkewed, true);
    equal(by.get("ahead")!.clockOffsetS, 240);
    equal(by.get("ahead")!.clockSkewed, false, "4 min is inside the 5 min tolerance");
    equal(by.get("far-ahead")!.clockOffsetS, 600);
    equal(by.get("far-ahead")!.clockSkewed, true);

    // Readings keep the device's own time (within the tolerance); a clock too far ahead is
    // replaced by the receive time, as the decoder documents.
    const times = await db.sql<{ device_id: string; newest: Date }>`
      select s.device_id, max(m.time) as newest from scd30_measurements m
        join sensors s using (sensor_id) group by s.device_id order by s.device_id`;
    deepEqual(
      times.map((r) => [r.device_id, new Date(r.newest).getTime()]),
      [["ahead", T0 + 300_000], ["behind", T0 - 540_000], ["far-ahead", T0 + 60_000]],
    );

    // behind and ahead stop after t = 60; the far-ahead device goes on.
    let alertedAt: number | undefined;
    for (let t = 65; t <= 120; t += 5) {
      await writer.write([reading("far-ahead", t)]);
      now = T0 + t * 1000 + 500;
      await m.checkNow();
      if (alertedAt === undefined && pushover.messages.length > 0) alertedAt = t;
    }
    // Silent once more than 20 s passed since t = 60: the check at 80.5 s.
    equal(alertedAt, 80, "alert at the first check past the threshold");
    deepEqual(pushover.messages.map((x) => x.title).sort(), [
      "ahead is silent",
      "behind is silent",
    ]);

    // They come back: one recovery each, and nothing more.
    for (let t = 125; t <= 140; t += 5) {
      await writer.write([reading("behind", t), reading("ahead", t), reading("far-ahead", t)]);
      now = T0 + t * 1000 + 500;
      await m.checkNow();
    }
    deepEqual(pushover.messages.map((x) => x.title).sort(), [
      "ahead is back",
      "ahead is silent",
      "behind is back",
      "behind is silent",
    ]);
  } finally {
    await m.stop();
  }

  // get_device_status shows the finding, in its data and its text.
  const server = new McpServer({ name: "t", version: "1" });
  registerGetDeviceStatusTool(server, {
    db,
    config: { monitor: { inactivityThresholdS: THRESHOLD_S } },
  } as unknown as ToolDeps);
  const [a, b] = InMemoryTransport.createLinkedPair();
  await server.connect(b);
  const client = new Client({ name: "t", version: "1" });
  await client.connect(a);
  try {
    const r = await client.callTool({ name: "get_device_status", arguments: { device: "behind" } });
    const out = r.structuredContent as {
      devices: { clock_offset_s: number | null; clock_skewed: boolean }[];
    };
    deepEqual(
      [out.devices[0].clock_offset_s, out.devices[0].clock_skewed],
      [-600, true],
    );
    const text = (r.content as { text: string }[])[0].text;
    ok(/clock runs 10 min behind/.test(text), text);
  } finally {
    await client.close();
    await server.close();
  }
});
