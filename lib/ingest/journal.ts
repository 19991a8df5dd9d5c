import { join } from "node:path";
import { logger } from "../log/mod.ts";
import type { RawMessage } from "./types.ts";

/** A message read back from the journal, with its position. */
export interface JournalRecord {
  /** Journal offset where the record starts. */
  offset: number;
  /** Offset just past the record: pass it to `commit()` once the record is stored. */
  end: number;
  message: RawMessage;
}

/** Where the journal lives and how much disk it may use. */
export interface JournalOptions {
  /** Folder of the segment files, e.g. `DATA_DIR/journal`; created when missing. */
  dir: string;
  /** Disk the journal may use (`JOURNAL_MAX_MB`); `hasRoom()` says false beyond it. */
  maxBytes: number;
  /** Size at which a new segment file is started (default: a quarter of `maxBytes`, 64 MiB at most). */
  segmentBytes?: number;
}

/** Payloads above this are journaled cut to this size; they are rejected as oversized anyway. */
export const JOURNAL_MAX_PAYLOAD = 256 * 1024;

const HEADER = 8; // u32 body length, u32 CRC-32 of the body
// The first body byte: the record format, which also tells whether the broker sent the message
// as a retained one (an old message replayed on subscribing).
const VERSION = 1;
const VERSION_RETAINED = 2;
const BODY_FIXED = 1 + 8 + 2; // version, receivedAt (f64), topic length (u16)
const MAX_BODY = BODY_FIXED + 0xffff + JOURNAL_MAX_PAYLOAD;
const SEGMENT_RE = /^(\d{20})\.seg$/;
const CHECKPOINT = "checkpoint";
const log = logger("journal");
const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface Segment {
  start: number;
  path: string;
}

/**
 * The collector's write-ahead journal: every MQTT message is appended here before it is
 * acknowledged, and trimmed once it is committed to the database.
 *
 * Records are length-prefixed and carry a CRC-32, in append-only segment files named by the
 * journal offset they start at. `append()` hands the bytes to the operating system with a
 * `write` system call before it returns, so a process crash (even SIGKILL) cannot lose an
 * appended message: the kernel owns the data from then on. An fsync per message is therefore not
 * needed; `sync()` (called periodically by the collector) narrows what a power loss can take.
 * A record torn by a crash mid-write fails its length or checksum test and is cut off when the
 * journal is reopened. The committed offset lives in a small checkpoint file, replaced atomically.
 */
export class Journal {
  #dir: string;
  #maxBytes: number;
  #segmentBytes: number;
  #segments: Segment[];
  #file: Deno.FsFile;
  #end: number;
  #committed: number;
  #dirty = false;
  #closed = false;

  private constructor(opts: JournalOptions, segments: Segment[], end: number, committed: number) {
    this.#dir = opts.dir;
    this.#maxBytes = opts.maxBytes;
    // Several segments fit in the budget, so committing frees disk while messages keep coming.
    this.#segmentBytes = opts.segmentBytes ??
      Math.max(4096, Math.min(64 * 1024 * 1024, Math.floor(opts.maxBytes / 4)));
    this.#segments = segments;
    this.#end = end;
    this.#committed = committed;
    this.#file = Deno.openSync(segments[segments.length - 1].path, { append: true });
  }

  /**
   * Opens (or creates) the journal in `opts.dir`, cutting off a record torn by a crash and
   * dropping segments that were fully committed.
   */
  static open(opts: JournalOptions): Journal {
    Deno.mkdirSync(opts.dir, { recursive: true });
    const segments: Segment[] = [];
    for (const entry of Deno.readDirSync(opts.dir)) {
      const m = SEGMENT_RE.exec(entry.name);
      if (entry.isFile && m) {
        segments.push({ start: Number(m[1]), path: join(opts.dir, entry.name) });
      }
    }
    segments.sort((a, b) => a.start - b.start);
    let committed = readCheckpoint(opts.dir);
    if (segments.length === 0) {
      segments.push(createSegment(opts.dir, committed));
    }
    // Only the newest segment can end in a torn record: older ones were complete when rotated.
    const last = segments[segments.length - 1];
    const { validLength, size } = scanValidLength(last.path);
    if (validLength < size) Deno.truncateSync(last.path, validLength);
    const end = last.start + validLength;
    // A checkpoint past the end (journal folder replaced by hand) would skip records: restart there.
    if (committed > end || committed < segments[0].start) {
      committed = Math.min(end, segments[0].start);
    }
    const journal = new Journal(opts, segments, end, committed);
    journal.#trim();
    return journal;
  }

  /** Offset just past the newest record. */
  get end(): number {
    return this.#end;
  }

  /** Offset up to which records are stored in the database. */
  get committed(): number {
    return this.#committed;
  }

  /** Bytes of records not yet committed. */
  get pendingBytes(): number {
    return this.#end - this.#committed;
  }

  /** Bytes of segment files on disk. */
  get diskBytes(): number {
    return this.#end - this.#segments[0].start;
  }

  /** The disk budget (`JOURNAL_MAX_MB`). */
  get maxBytes(): number {
    return this.#maxBytes;
  }

  /**
   * True when `message` fits in the disk budget. An empty journal always has room, so even a
   * budget smaller than one record cannot stop the collector for good.
   */
  hasRoom(message: RawMessage): boolean {
    if (this.#end === this.#committed) return true;
    // An upper bound (UTF-8 takes at most 3 bytes per UTF-16 unit) saves encoding the topic twice.
    const size = HEADER + BODY_FIXED + message.topic.length * 3 +
      Math.min(message.payload.length, JOURNAL_MAX_PAYLOAD);
    return this.diskBytes + size <= this.#maxBytes;
  }

  /**
   * Appends one message and returns the offset just past it. When this returns, the record is in
   * the operating system's hands and survives a crash of this process. Throws when closed.
   */
  append(message: RawMessage): number {
    if (this.#closed) throw new Error("The journal is closed");
    const record = encodeRecord(message);
    writeAll(this.#file, record);
    this.#end += record.length;
    this.#dirty = true;
    const active = this.#segments[this.#segments.length - 1];
    if (this.#end - active.start >= this.#segmentBytes) this.#rotate();
    return this.#end;
  }

  /**
   * Reads up to `maxRecords` records, and about `maxBytes` (at least one record), starting at
   * `from` (a record boundary, normally `committed`). Returns them in order; an empty array when
   * nothing is pending.
   */
  read(from: number, maxRecords: number, maxBytes = Infinity): JournalRecord[] {
    const out: JournalRecord[] = [];
    let pos = Math.max(from, this.#segments[0].start);
    const limit = pos + maxBytes;
    while (pos < this.#end && out.length < maxRecords && (pos < limit || out.length === 0)) {
      const segIndex = this.#segmentIndexOf(pos);
      const seg = this.#segments[segIndex];
      const segEnd = segIndex + 1 < this.#segments.length
        ? this.#segments[segIndex + 1].start
        : this.#end;
      const next = readSegment(seg, { pos, segEnd, limit, maxRecords }, out);
      if (next < segEnd && next === pos) {
        // A damaged record inside an older segment (disk error): skip the rest of that segment
        // rather than stall forever.
        log.error("Damaged journal record skipped", {
          segment: seg.path,
          offset: pos,
          bytes: segEnd - pos,
        });
        pos = segEnd;
      } else {
        pos = next;
      }
    }
    return out;
  }

  /** Marks everything before `upTo` as stored; deletes segments that hold nothing else. */
  commit(upTo: number): void {
    if (this.#closed) return;
    if (upTo <= this.#committed) return;
    this.#committed = Math.min(upTo, this.#end);
    const tmp = join(this.#dir, `${CHECKPOINT}.tmp`);
    Deno.writeTextFileSync(tmp, String(this.#committed));
    Deno.renameSync(tmp, join(this.#dir, CHECKPOINT));
    // A drained journal starts a fresh segment once the active one has grown a little, so the
    // disk use falls back to nearly nothing after an outage.
    const active = this.#segments[this.#segments.length - 1];
    if (
      this.#committed === this.#end &&
      this.#end - active.start >= Math.min(this.#segmentBytes, 4 * 1024 * 1024)
    ) {
      this.#rotate();
    }
    this.#trim();
  }

  /** Flushes appended records to the disk itself (fdatasync), for power-loss safety. */
  sync(): void {
    if (this.#closed || !this.#dirty) return;
    this.#file.syncDataSync();
    this.#dirty = false;
  }

  /** Syncs and closes the active segment (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.sync();
    this.#closed = true;
    this.#file.close();
  }

  #rotate(): void {
    this.#file.syncDataSync();
    this.#file.close();
    const seg = createSegment(this.#dir, this.#end);
    this.#segments.push(seg);
    this.#file = Deno.openSync(seg.path, { append: true });
    this.#dirty = false;
  }

  #trim(): void {
    while (this.#segments.length > 1 && this.#segments[1].start <= this.#committed) {
      const old = this.#segments.shift()!;
      try {
        Deno.removeSync(old.path);
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      }
    }
  }

  #segmentIndexOf(pos: number): number {
    for (let i = this.#segments.length - 1; i >= 0; i--) {
      if (this.#segments[i].start <= pos) return i;
    }
    return 0;
  }
}

function createSegment(dir: string, start: number): Segment {
  const path = join(dir, `${String(start).padStart(20, "0")}.seg`);
  Deno.writeFileSync(path, new Uint8Array(0), { create: true });
  return { start, path };
}

function readCheckpoint(dir: string): number {
  try {
    const n = Number(Deno.readTextFileSync(join(dir, CHECKPOINT)).trim());
    return Number.isSafeInteger(n) && n >= 0 ? n : 0;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return 0;
    throw err;
  }
}

function writeAll(file: Deno.FsFile, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += file.writeSync(bytes.subarray(done));
}

function encodeRecord(message: RawMessage): Uint8Array {
  const topic = encoder.encode(message.topic).subarray(0, 0xffff);
  const payload = message.payload.subarray(0, JOURNAL_MAX_PAYLOAD);
  const bodyLength = BODY_FIXED + topic.length + payload.length;
  const buf = new Uint8Array(HEADER + bodyLength);
  const view = new DataView(buf.buffer);
  view.setUint32(0, bodyLength);
  buf[HEADER] = message.retained ? VERSION_RETAINED : VERSION;
  view.setFloat64(HEADER + 1, message.receivedAt);
  view.setUint16(HEADER + 9, topic.length);
  buf.set(topic, HEADER + BODY_FIXED);
  buf.set(payload, HEADER + BODY_FIXED + topic.length);
  view.setUint32(4, crc32(buf.subarray(HEADER)));
  return buf;
}

/** Decodes the record at `at` in `buf`; undefined when it is incomplete or damaged. */
function decodeRecord(
  buf: Uint8Array,
  at: number,
): { message: RawMessage; size: number } | undefined {
  if (buf.length - at < HEADER) return undefined;
  const view = new DataView(buf.buffer, buf.byteOffset + at);
  const bodyLength = view.getUint32(0);
  if (bodyLength < BODY_FIXED || bodyLength > MAX_BODY) return undefined;
  if (buf.length - at < HEADER + bodyLength) return undefined;
  const body = buf.subarray(at + HEADER, at + HEADER + bodyLength);
  if (crc32(body) !== view.getUint32(4)) return undefined;
  if (body[0] !== VERSION && body[0] !== VERSION_RETAINED) return undefined;
  const topicLength = view.getUint16(HEADER + 9);
  if (BODY_FIXED + topicLength > bodyLength) return undefined;
  return {
    size: HEADER + bodyLength,
    message: {
      receivedAt: view.getFloat64(HEADER + 1),
      topic: decoder.decode(body.subarray(BODY_FIXED, BODY_FIXED + topicLength)),
      payload: body.slice(BODY_FIXED + topicLength),
      ...(body[0] === VERSION_RETAINED ? { retained: true } : {}),
    },
  };
}

/** Length of the valid prefix of a segment file, and the file's size. */
function scanValidLength(path: string): { validLength: number; size: number } {
  const buf = Deno.readFileSync(path);
  let at = 0;
  for (;;) {
    const rec = decodeRecord(buf, at);
    if (!rec) return { validLength: at, size: buf.length };
    at += rec.size;
  }
}

/**
 * Reads records of one segment from journal offset `pos` towards `segEnd`, until `out` holds
 * `maxRecords` or the reading passed `limit`; returns where it stopped.
 */
function readSegment(
  seg: Segment,
  opts: { pos: number; segEnd: number; limit: number; maxRecords: number },
  out: JournalRecord[],
): number {
  const { pos, segEnd, limit, maxRecords } = opts;
  using file = Deno.openSync(seg.path, { read: true });
  file.seekSync(pos - seg.start, Deno.SeekMode.Start);
  // Read in chunks sized for the batch (records are typically a few hundred bytes).
  let chunkSize = Math.max(4096, Math.min((maxRecords - out.length) * 256, 4 * 1024 * 1024));
  let buf = new Uint8Array(0);
  let at = 0;
  let fileBase = pos; // journal offset of buf[0]
  while (
    out.length < maxRecords && fileBase + at < segEnd && (fileBase + at < limit || out.length === 0)
  ) {
    const rec = decodeRecord(buf, at);
    if (rec) {
      const offset = fileBase + at;
      at += rec.size;
      out.push({ offset, end: fileBase + at, message: rec.message });
      continue;
    }
    // Not decodable yet: find how many bytes the record needs, or that it is damaged.
    const have = buf.length - at;
    let need = HEADER;
    if (have >= HEADER) {
      const bodyLength = new DataView(buf.buffer, buf.byteOffset + at, HEADER).getUint32(0);
      if (bodyLength < BODY_FIXED || bodyLength > MAX_BODY || have >= HEADER + bodyLength) break;
      need = HEADER + bodyLength;
    }
    const room = Math.min(segEnd - (fileBase + buf.length), Math.max(chunkSize, need - have));
    if (room <= 0) break; // the segment ends inside the record: damaged
    const chunk = new Uint8Array(have + room);
    chunk.set(buf.subarray(at));
    let got = 0;
    while (got < room) {
      const n = file.readSync(chunk.subarray(have + got));
      if (n === null || n === 0) break;
      got += n;
    }
    fileBase += at;
    buf = chunk.subarray(0, have + got);
    at = 0;
    chunkSize = Math.min(chunkSize * 2, 4 * 1024 * 1024);
    if (got === 0) break;
  }
  return fileBase + at;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
