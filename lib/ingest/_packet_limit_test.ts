import { deepStrictEqual as assertEquals, equal, ok } from "node:assert/strict";
import { PassThrough } from "node:stream";
import { limitIncomingPackets } from "./_packet_limit.ts";

const enc = new TextEncoder();

function varInt(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

/** A PUBLISH packet (QoS 1 when `id` is given); `props` makes it an MQTT 5 one. */
function publish(topic: string, payload: Uint8Array, id?: number, props?: Uint8Array): Uint8Array {
  const t = enc.encode(topic);
  const head = [t.length >> 8, t.length & 0xff, ...t];
  if (id !== undefined) head.push(id >> 8, id & 0xff);
  if (props) head.push(...varInt(props.length), ...props);
  const body = new Uint8Array(head.length + payload.length);
  body.set(head);
  body.set(payload, head.length);
  const first = 0x30 | (id !== undefined ? 0x02 : 0);
  return Uint8Array.from([first, ...varInt(body.length), ...body]);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Feeds `input` through the limiter in chunks of varying size; returns what came out. */
async function run(
  input: Uint8Array,
  protocolVersion: number,
): Promise<{ out: Uint8Array; cuts: number[] }> {
  const inner = new PassThrough();
  const cuts: number[] = [];
  const limited = limitIncomingPackets(inner, {
    maxBytes: 128 * 1024,
    keepPayloadBytes: 65537,
    protocolVersion: () => protocolVersion,
    onCut: (n) => cuts.push(n),
  });
  const got: Uint8Array[] = [];
  limited.on("data", (c: Uint8Array) => got.push(new Uint8Array(c)));
  const ended = new Promise((resolve) => limited.on("end", resolve));
  let seed = 7;
  for (let at = 0; at < input.length;) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    const n = 1 + (seed % 90_000);
    inner.write(input.subarray(at, at + n));
    at += n;
  }
  inner.end();
  await ended;
  limited.destroy();
  return { out: concat(got), cuts };
}

Deno.test("limitIncomingPackets() passes packets under the limit unchanged and cuts an oversized PUBLISH to a rejectable size", async () => {
  const topic = "devices/a/sensors/scd30/data";
  const small = publish(topic, enc.encode('{"value":{"co2":1}}'), 7);
  const big = new Uint8Array(3 << 20).fill(0x41);
  const ping = Uint8Array.from([0xd0, 0x00]);
  const atTheLimit = publish(topic, new Uint8Array(128 * 1024 - 40).fill(0x42), 9);
  const qos0 = publish(topic, enc.encode("x"));
  const input = concat([small, publish(topic, big, 8), ping, atTheLimit, qos0]);
  const { out, cuts } = await run(input, 4);
  assertEquals(cuts, [publish(topic, big, 8).length]);
  const cut = publish(topic, big.subarray(0, 65537), 8);
  assertEquals(out, concat([small, cut, ping, atTheLimit, qos0]));
});

Deno.test("limitIncomingPackets() keeps the properties of an MQTT 5 PUBLISH it cuts", async () => {
  const topic = "devices/b/status";
  const props = Uint8Array.from([0x01, 0x01, 0x03, 0x00, 0x04, ...enc.encode("json")]);
  const big = new Uint8Array(1 << 20).fill(0x43);
  const { out, cuts } = await run(
    concat([publish(topic, big, 3, props), Uint8Array.from([0xd0, 0])]),
    5,
  );
  equal(cuts.length, 1);
  assertEquals(
    out,
    concat([publish(topic, big.subarray(0, 65537), 3, props), Uint8Array.from([0xd0, 0])]),
  );
  ok(out.length < 70_000);
});
