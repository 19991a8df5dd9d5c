import { deepStrictEqual as assertEquals, equal, ok } from "node:assert/strict";
import { join } from "node:path";
import { Journal, JOURNAL_MAX_PAYLOAD } from "./journal.ts";
import type { RawMessage } from "./types.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function msg(i: number, size = 0): RawMessage {
  const body = size > 0 ? "x".repeat(size) : `{"timestamp":${1700000000 + i},"value":{"co2":${i}}}`;
  return {
    topic: `devices/d${i % 7}/sensors/scd30/data`,
    payload: enc.encode(body),
    receivedAt: 1e12 + i,
  };
}

function payloads(records: { message: RawMessage }[]): string[] {
  return records.map((r) => dec.decode(r.message.payload));
}

function segmentFiles(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.endsWith(".seg")).sort();
}

Deno.test("Journal replays every appended message, in order, after it is reopened", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const j = Journal.open({ dir, maxBytes: 1 << 20 });
    const sent = Array.from({ length: 50 }, (_, i) => msg(i));
    for (const m of sent) j.append(m);
    j.close();

    const again = Journal.open({ dir, maxBytes: 1 << 20 });
    const got = again.read(again.committed, 1000);
    assertEquals(got.map((r) => r.message), sent);
    equal(got[0].offset, 0);
    equal(got[got.length - 1].end, again.end);
    // Reading in small batches walks the same records.
    const firstTen = again.read(0, 10);
    assertEquals(payloads(firstTen), payloads(got.slice(0, 10)));
    assertEquals(payloads(again.read(firstTen[9].end, 5)), payloads(got.slice(10, 15)));
    again.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Journal drops a record torn by a crash and keeps the ones before it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const j = Journal.open({ dir, maxBytes: 1 << 20 });
    for (let i = 0; i < 3; i++) j.append(msg(i));
    const endOfThird = j.end;
    j.append(msg(3));
    j.close();
    // A crash in the middle of the fourth write leaves only part of it on disk.
    const [seg] = segmentFiles(dir);
    Deno.truncateSync(join(dir, seg), endOfThird + 11);

    const again = Journal.open({ dir, maxBytes: 1 << 20 });
    equal(again.end, endOfThird);
    assertEquals(
      payloads(again.read(0, 100)),
      payloads([0, 1, 2].map((i) => ({ message: msg(i) }))),
    );
    // New records follow the last whole one, not the torn bytes.
    again.append(msg(9));
    again.close();
    const third = Journal.open({ dir, maxBytes: 1 << 20 });
    assertEquals(
      third.read(0, 100).map((r) => r.message.receivedAt),
      [0, 1, 2, 9].map((i) => 1e12 + i),
    );
    third.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Journal detects a flipped byte in the last record by its checksum", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const j = Journal.open({ dir, maxBytes: 1 << 20 });
    j.append(msg(0));
    const second = j.end;
    j.append(msg(1));
    j.close();
    const path = join(dir, segmentFiles(dir)[0]);
    const bytes = Deno.readFileSync(path);
    bytes[bytes.length - 3] ^= 0xff;
    Deno.writeFileSync(path, bytes);

    const again = Journal.open({ dir, maxBytes: 1 << 20 });
    equal(again.end, second);
    equal(again.read(0, 10).length, 1);
    again.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Journal commit() deletes fully stored segments and survives a reopen", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const j = Journal.open({ dir, maxBytes: 1 << 20, segmentBytes: 1000 });
    const ends: number[] = [];
    for (let i = 0; i < 100; i++) ends.push(j.append(msg(i)));
    const before = segmentFiles(dir).length;
    ok(before > 5, `expected several segments, got ${before}`);
    j.commit(ends[59]);
    equal(j.committed, ends[59]);
    const after = segmentFiles(dir).length;
    ok(after < before, `commit kept all ${before} segments`);
    ok(j.diskBytes < ends[99], "disk use did not shrink");
    equal(j.pendingBytes, ends[99] - ends[59]);
    j.close();

    const again = Journal.open({ dir, maxBytes: 1 << 20, segmentBytes: 1000 });
    equal(again.committed, ends[59]);
    const rest = again.read(again.committed, 1000);
    assertEquals(
      rest.map((r) => r.message.receivedAt),
      ends.slice(60).map((_, i) => 1e12 + 60 + i),
    );
    // Everything stored: the files shrink to an empty active segment.
    again.commit(again.end);
    equal(again.pendingBytes, 0);
    equal(again.read(again.committed, 10).length, 0);
    ok(again.diskBytes < 1000, `drained journal still uses ${again.diskBytes} bytes`);
    again.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Journal hasRoom() turns false at the disk budget and true again after a commit", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const j = Journal.open({ dir, maxBytes: 20_000, segmentBytes: 4_000 });
    ok(j.hasRoom(msg(0, 50_000)), "an empty journal must accept even an oversized record");
    let n = 0;
    while (j.hasRoom(msg(n)) && n < 10_000) j.append(msg(n++));
    ok(n > 100 && n < 10_000, `filled after ${n} records`);
    ok(j.diskBytes <= 20_000);
    j.commit(j.end);
    ok(j.hasRoom(msg(n)));
    j.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Journal keeps the first 256 KiB of an oversized payload", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const j = Journal.open({ dir, maxBytes: 4 << 20 });
    j.append(msg(1, JOURNAL_MAX_PAYLOAD + 5000));
    j.append(msg(2));
    const [big, small] = j.read(0, 10);
    equal(big.message.payload.length, JOURNAL_MAX_PAYLOAD);
    equal(dec.decode(small.message.payload), dec.decode(msg(2).payload));
    j.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Journal loses no appended message when its process is killed with SIGKILL", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // The child appends as fast as it can and reports each count it has appended.
    const code = `
      import { Journal } from ${JSON.stringify(new URL("./journal.ts", import.meta.url).href)};
      const j = Journal.open({ dir: ${
      JSON.stringify(dir)
    }, maxBytes: 64 << 20, segmentBytes: 200_000 });
      const enc = new TextEncoder();
      for (let i = 0; ; i++) {
        j.append({ topic: "devices/k/sensors/scd30/data", payload: enc.encode("m" + i), receivedAt: i });
        if (i % 100 === 0) Deno.stdout.writeSync(enc.encode(i + "\\n"));
      }`;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["eval", code],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    let lastReported = -1;
    let text = "";
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    while (lastReported < 20_000) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
      const lines = text.split("\n");
      text = lines.pop()!;
      if (lines.length) lastReported = Number(lines[lines.length - 1]);
    }
    child.kill("SIGKILL");
    await reader.cancel();
    await child.status;

    const j = Journal.open({ dir, maxBytes: 64 << 20, segmentBytes: 200_000 });
    const records = j.read(0, 1_000_000);
    ok(records.length > lastReported, `${records.length} records, ${lastReported} reported`);
    records.forEach((r, i) => equal(dec.decode(r.message.payload), "m" + i));
    j.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Journal skips a damaged older segment and still reads the segments after it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const j = Journal.open({ dir, maxBytes: 1 << 20, segmentBytes: 600 });
    for (let i = 0; i < 40; i++) j.append(msg(i));
    j.close();
    const files = segmentFiles(dir);
    ok(files.length >= 4, `expected several segments, got ${files.length}`);
    // Damage the second record of the first segment (a disk error, not a crash).
    const first = join(dir, files[0]);
    const bytes = Deno.readFileSync(first);
    const firstLength = new DataView(bytes.buffer).getUint32(0) + 8;
    bytes[firstLength + 20] ^= 0xff;
    Deno.writeFileSync(first, bytes);
    const secondStart = Number(files[1].slice(0, 20));

    const again = Journal.open({ dir, maxBytes: 1 << 20, segmentBytes: 600 });
    const records = again.read(0, 1000);
    equal(records[0].message.receivedAt, 1e12);
    ok(records.every((r, i) => i === 0 || r.offset >= secondStart), "read past the damage");
    const after = records.filter((r) => r.offset >= secondStart);
    equal(records.length, after.length + 1); // only the first record of the damaged segment
    // Every record of the later segments, in order, up to the last one appended.
    after.forEach((r, i) => equal(r.message.receivedAt, 1e12 + 40 - after.length + i));
    again.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Journal read() stops near a byte limit but always returns at least one record", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const j = Journal.open({ dir, maxBytes: 4 << 20 });
    for (let i = 0; i < 10; i++) j.append(msg(i, 10_000));
    const some = j.read(0, 1000, 25_000);
    equal(some.length, 3); // the third record starts below the limit and ends past it
    equal(j.read(0, 1000, 1).length, 1);
    equal(j.read(some[2].end, 1000, Infinity).length, 7);
    j.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Journal keeps whether a message was retained and its receive time to the microsecond", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const j = Journal.open({ dir, maxBytes: 1 << 20 });
    const sent: RawMessage[] = [
      { ...msg(1), receivedAt: 1_700_000_000_000.001 },
      { ...msg(2), topic: "devices/d2/status", payload: enc.encode("offline"), retained: true },
    ];
    for (const m of sent) j.append(m);
    j.close();
    const again = Journal.open({ dir, maxBytes: 1 << 20 });
    assertEquals(again.read(again.committed, 10).map((r) => r.message), sent);
    again.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
