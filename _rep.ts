import mqtt from "mqtt";
import { startEmbeddedBroker } from "./lib/mqtt/embedded_broker.ts";
import { limitIncomingPackets } from "./lib/ingest/_packet_limit.ts";
let fails = 0;
for (let i = 0; i < 150; i++) {
  const broker = await startEmbeddedBroker({ host: "127.0.0.1", port: 0, reservedClientIds: ["col"] });
  const c = mqtt.connect(broker.url, { clientId: "col", clean: false, reconnectPeriod: 0, protocolVersion: 4, manualConnect: true });
  const internals = c as any; const build = internals.streamBuilder;
  internals.streamBuilder = (x: any) => limitIncomingPackets(build(x), { maxBytes: 1 << 20, keepPayloadBytes: 70000, protocolVersion: () => 4, onCut: () => {} });
  c.connect();
  const ok = await new Promise<boolean>((resolve) => {
    const t = setTimeout(() => resolve(false), 3000);
    c.on("connect", () => {
      c.subscribe({ "devices/+/capabilities": { qos: 1 }, "devices/+/sensors/+/data": { qos: 1 }, "devices/+/status": { qos: 1 }, "devices/+/error": { qos: 1 } }, (err) => { clearTimeout(t); resolve(!err); });
    });
  });
  if (!ok) { fails++; console.log("no suback at", i); }
  await c.endAsync(true);
  await broker.close();
}
console.log("fails", fails);
