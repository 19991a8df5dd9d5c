import { deepStrictEqual as assertEquals, equal, ok, throws } from "node:assert/strict";
import { join } from "node:path";
import { Journal, JOURNAL_MAX_PAYLOAD, JournalWriteError, type SegmentFile } from "./journal.ts";
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

Deno.test("Journal keeps each record whole, small ones built in a reused buffer and large ones not", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const j = Journal.open({ dir, maxBytes: 4 << 20 });
    const sent: RawMessage[] = [
      msg(1),
      // Larger than the shared encoding buffer (64 KiB), with a multi-byte topic.
      {
        topic: "devices/zimmer-ü/sensors/scd30/data",
        payload: enc.encode("y".repeat(100_000)),
        receivedAt: 5,
      },
      msg(2),
      { ...msg(3), topic: `devices/${"é".repeat(300)}/status`, retained: true },
      msg(4, 60_000), // near the buffer's size
      msg(5),
    ];
    for (const m of sent) j.append(m);
    // Read before and after a reopen: a later append never changes an earlier record.
    assertEquals(j.read(0, 100).map((r) => r.message), sent);
    j.close();
    const again = Journal.open({ dir, maxBytes: 4 << 20 });
    assertEquals(again.read(0, 100).map((r) => r.message), sent);
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

Deno.test("Journal keeps a damaged record of an older segment aside and reads every other record", async () => {
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
    const secondLength = new DataView(bytes.buffer).getUint32(firstLength) + 8;
    const damaged = bytes.slice(firstLength, firstLength + secondLength);
    bytes[firstLength + 20] ^= 0xff;
    damaged[20] ^= 0xff;
    Deno.writeFileSync(first, bytes);

    const again = Journal.open({ dir, maxBytes: 1 << 20, segmentBytes: 600 });
    const records = again.read(0, 1000);
    assertEquals(
      records.map((r) => r.message.receivedAt),
      Array.from({ length: 40 }, (_, i) => 1e12 + i).filter((_, i) => i !== 1),
    );
    equal(again.quarantined, 1);
    // The damaged record's bytes, exactly, under quarantine/ (named by its offset).
    const kept = join(dir, "quarantine", `${String(firstLength).padStart(20, "0")}.bad`);
    assertEquals(Deno.readFileSync(kept), damaged);
    // Reading again passes over it without keeping it aside twice.
    equal(again.read(0, 1000).length, 39);
    equal(again.quarantined, 1);
    again.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Journal keeps a record with a bad length in the middle of the newest segment aside, also after a reopen", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const j = Journal.open({ dir, maxBytes: 1 << 20 });
    const ends = Array.from({ length: 20 }, (_, i) => j.append(msg(i)));
    j.close();
    const path = join(dir, segmentFiles(dir)[0]);
    const bytes = Deno.readFileSync(path);
    // Record 10's length field says far more than the segment holds.
    new DataView(bytes.buffer).setUint32(ends[9], 0x00ffffff);
    Deno.writeFileSync(path, bytes);

    const again = Journal.open({ dir, maxBytes: 1 << 20 });
    equal(again.end, ends[19], "the records after the damage are kept");
    const got = again.read(again.committed, 100);
    assertEquals(
      got.map((r) => r.message.receivedAt),
      Array.from({ length: 20 }, (_, i) => 1e12 + i).filter((_, i) => i !== 10),
    );
    equal(again.quarantined, 1);
    equal(
      Deno.statSync(join(dir, "quarantine", `${String(ends[9]).padStart(20, "0")}.bad`)).size,
      ends[10] - ends[9],
    );
    again.commit(got[got.length - 1].end);
    equal(again.pendingBytes, 0);
    again.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * Injected write failure in the journal's file layer: a segment file that takes `room.bytes`
 * more bytes, writes part of a record that does not fit, then fails like a full disk.
 */
function fullDisk(room: { bytes: number }) {
  return (path: string): SegmentFile => {
    const file = Deno.openSync(path, { append: true });
    return {
      writeSync(p: Uint8Array): number {
        if (room.bytes <= 0) {
          throw Object.assign(new Error("No space left on device (os error 28)"), {
            code: "ENOSPC",
          });
        }
        const n = file.writeSync(p.subarray(0, Math.min(p.length, room.bytes)));
        room.bytes -= n;
        return n;
      },
      truncateSync: (len?: number) => file.truncateSync(len),
      syncDataSync: () => file.syncDataSync(),
      close: () => file.close(),
    };
  };
}

Deno.test("Journal on a full disk (injected write failure): a failed append leaves no partial record and appending resumes once there is space", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const room = { bytes: 1000 };
    const j = Journal.open({ dir, maxBytes: 1 << 20, openSegment: fullDisk(room) });
    const appended: number[] = [];
    let failure: unknown;
    for (let i = 0; i < 50 && !failure; i++) {
      try {
        j.append(msg(i));
        appended.push(i);
      } catch (err) {
        failure = err;
      }
    }
    ok(failure instanceof JournalWriteError, String(failure));
    ok(failure.noSpace);
    ok(appended.length > 0 && appended.length < 50);
    // The bytes written of the failed record were cut off again.
    const [seg] = segmentFiles(dir);
    equal(Deno.statSync(join(dir, seg)).size, j.end);
    // Still full: the same message fails again, and nothing grows.
    throws(() => j.append(msg(appended.length)), JournalWriteError);
    equal(Deno.statSync(join(dir, seg)).size, j.end);

    room.bytes = 1 << 20; // space is back
    for (let i = appended.length; i < 50; i++) j.append(msg(i));
    j.close();
    const again = Journal.open({ dir, maxBytes: 1 << 20 });
    assertEquals(
      again.read(0, 100).map((r) => r.message.receivedAt),
      Array.from({ length: 50 }, (_, i) => 1e12 + i),
    );
    equal(again.quarantined, 0);
    again.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Journal after a failed append starts a fresh segment once drained, so the stored records free the disk", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const room = { bytes: 3000 };
    const j = Journal.open({ dir, maxBytes: 1 << 30, openSegment: fullDisk(room) });
    let end = 0;
    for (let i = 0; i < 100; i++) {
      try {
        end = j.append(msg(i));
      } catch {
        break;
      }
    }
    j.commit(end); // everything stored in the database
    room.bytes = 3000; // what the deleted segment gave back
    equal(j.diskBytes, 0);
    ok(j.append(msg(1)) > end);
    equal(j.read(j.committed, 10).length, 1);
    j.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Journal checkpoint: written in place, the older digits-only form is read, an unreadable one replays what is on disk", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const j = Journal.open({ dir, maxBytes: 1 << 20, segmentBytes: 1000 });
    const ends = Array.from({ length: 30 }, (_, i) => j.append(msg(i)));
    j.commit(ends[20]);
    j.close();
    const path = join(dir, "checkpoint");
    const text = Deno.readTextFileSync(path);
    equal(text.length, 30);
    ok(text.startsWith(String(ends[20]).padStart(20, "0") + " "), text);

    Deno.writeTextFileSync(path, String(ends[20]));
    const older = Journal.open({ dir, maxBytes: 1 << 20, segmentBytes: 1000 });
    equal(older.committed, ends[20]);
    const oldest = older.diskBytes;
    older.close();

    Deno.writeTextFileSync(path, String(ends[20]).padStart(20, "0") + " 00000000\n");
    const torn = Journal.open({ dir, maxBytes: 1 << 20, segmentBytes: 1000 });
    equal(torn.committed, torn.end - oldest, "starts at the oldest segment kept");
    torn.close();
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

Deno.test("Journal whose records are all stored frees its segment at once when an append finds the disk full (injected write failure)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const room = { bytes: 2000 };
    const j = Journal.open({ dir, maxBytes: 1 << 30, openSegment: fullDisk(room) });
    let end = 0;
    for (let i = 0; i < 8; i++) end = j.append(msg(i));
    j.commit(end); // stored, but the segment is still on disk
    ok(j.diskBytes > 0);
    // The disk is full: the space of the stored records is what the next append needs.
    room.bytes = 0;
    const deleted = () => {
      room.bytes = end; // the filesystem gets the deleted segment's space back
    };
    const realRemove = Deno.removeSync;
    Deno.removeSync = (path, opts) => {
      realRemove(path, opts);
      deleted();
    };
    try {
      ok(j.append(msg(99)) > end);
    } finally {
      Deno.removeSync = realRemove;
    }
    assertEquals(j.read(j.committed, 10).map((r) => r.message.receivedAt), [1e12 + 99]);
    j.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
