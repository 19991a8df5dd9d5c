import { join } from "node:path";
import { logger } from "../log/mod.ts";
import { errorText } from "./_error_text.ts";
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
  /**
   * Opens a segment file for appending (default: `Deno.openSync(path, { append: true })`). Tests
   * pass a file whose writes fail, to check what a full disk does to the journal.
   */
  openSegment?: (path: string) => SegmentFile;
}

/** The file operations the journal appends through (a subset of `Deno.FsFile`). */
export type SegmentFile = Pick<
  Deno.FsFile,
  "writeSync" | "truncateSync" | "syncDataSync" | "close"
>;

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
const QUARANTINE = "quarantine";
/** The largest record: where reading can resume after unreadable bytes lies at most this far. */
const MAX_RECORD = HEADER + MAX_BODY;
const log = logger("journal");
const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface Segment {
  start: number;
  path: string;
}

/** An append that did not reach the journal; nothing of it is left in the segment file. */
export class JournalWriteError extends Error {
  /** True when the disk (or the user's quota) is full: it passes once space is freed. */
  readonly noSpace: boolean;
  /** The segment file the append went to. */
  readonly path: string;

  constructor(path: string, cause: unknown) {
    super(errorText(cause), { cause });
    this.name = "JournalWriteError";
    this.path = path;
    const code = (cause as { code?: unknown } | undefined)?.code;
    this.noSpace = code === "ENOSPC" || code === "EDQUOT" ||
      /No space left|Disk quota exceeded|os error (28|122)\b/.test(this.message);
  }
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
 *
 * A failed append (a full disk) is cut back off the segment at once, so no part of a record is
 * ever followed by another one. A record torn by a crash mid-write (never acknowledged) is cut
 * off when the journal is reopened. A record that cannot be read for another reason (a checksum
 * or length that does not match: a disk error) is copied to `quarantine/<offset>.bad` in the
 * journal folder, logged and counted, and the records after it are read as usual.
 *
 * The committed offset lives in a small checkpoint file, overwritten in place (no new disk space
 * needed, so it can be written on a full disk); segments that hold only stored records are deleted
 * before it is written, which is safe because reopening starts no earlier than the oldest segment
 * kept.
 */
export class Journal {
  #dir: string;
  #maxBytes: number;
  #segmentBytes: number;
  #segments: Segment[];
  #openSegment: (path: string) => SegmentFile;
  #file: SegmentFile;
  #end: number;
  #committed: number;
  #dirty = false;
  #closed = false;
  /** The last append failed: once drained, the journal starts a fresh segment to free the disk. */
  #appendFailed = false;
  /** A failed append could not be cut back off the active segment: retried before the next one. */
  #tornTail = false;
  #checkpoint: Deno.FsFile | undefined;
  #checkpointSized = false;
  #checkpointError = "";
  /** Unreadable ranges kept aside: start offset → offset of the next readable record. */
  #skips = new Map<number, number>();
  #quarantined: number;

  private constructor(
    opts: JournalOptions,
    state: { segments: Segment[]; end: number; committed: number; quarantined: number },
  ) {
    this.#dir = opts.dir;
    this.#maxBytes = opts.maxBytes;
    // Several segments fit in the budget, so committing frees disk while messages keep coming.
    this.#segmentBytes = opts.segmentBytes ??
      Math.max(4096, Math.min(64 * 1024 * 1024, Math.floor(opts.maxBytes / 4)));
    this.#openSegment = opts.openSegment ?? ((path) => Deno.openSync(path, { append: true }));
    this.#segments = state.segments;
    this.#end = state.end;
    this.#committed = state.committed;
    this.#quarantined = state.quarantined;
    this.#file = this.#openSegment(state.segments[state.segments.length - 1].path);
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
    const scan = scanSegment(last.path);
    let validLength = scan.validLength;
    let quarantined = 0;
    if (validLength < scan.size && !scan.torn) {
      // Whole but unreadable bytes at the end (a disk error, not a crash): kept aside first.
      try {
        const file = copyAside(opts.dir, last, last.start + validLength, last.start + scan.size);
        quarantined++;
        log.error("Unreadable record at the end of the journal kept aside", {
          file,
          offset: last.start + validLength,
          bytes: scan.size - validLength,
        });
      } catch (err) {
        // Left in place: once records follow it, reading keeps it aside like any damaged record.
        log.error("Cannot keep an unreadable journal record aside; left in place", {
          error: errorText(err),
        });
        validLength = scan.size;
      }
    }
    if (validLength < scan.size) Deno.truncateSync(last.path, validLength);
    const end = last.start + validLength;
    // A checkpoint past the end (journal folder replaced by hand) would skip records: restart there.
    if (committed > end || committed < segments[0].start) {
      committed = Math.min(end, segments[0].start);
    }
    const journal = new Journal(opts, { segments, end, committed, quarantined });
    journal.#trim();
    journal.#saveCheckpoint();
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

  /** The journal folder. */
  get dir(): string {
    return this.#dir;
  }

  /** Unreadable ranges copied to `quarantine/` since the journal was opened. */
  get quarantined(): number {
    return this.#quarantined;
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
   * the operating system's hands and survives a crash of this process. Throws when closed, and a
   * `JournalWriteError` when the write fails (e.g. a full disk): then nothing of the record is
   * kept, and the same message may be appended again later.
   */
  append(message: RawMessage): number {
    if (this.#closed) throw new Error("The journal is closed");
    const record = encodeRecord(message);
    const active = this.#segments[this.#segments.length - 1];
    try {
      if (this.#tornTail) {
        this.#file.truncateSync(this.#end - active.start);
        this.#tornTail = false;
      }
      writeAll(this.#file, record);
    } catch (err) {
      this.#appendFailed = true;
      const failure = new JournalWriteError(active.path, err);
      if (failure.noSpace) {
        // The disk holds about this much journal: smaller segments let each commit free some.
        this.#segmentBytes = Math.min(this.#segmentBytes, Math.max(4096, this.diskBytes >> 2));
      }
      // Part of the record may have been written: cut it off, so the next record starts at the
      // end the journal knows. Shrinking a file needs no space.
      try {
        this.#file.truncateSync(this.#end - active.start);
      } catch {
        this.#tornTail = true;
      }
      if (failure.noSpace && this.#committed === this.#end && this.#end > active.start) {
        // Everything here is stored already: a fresh segment frees the whole active one.
        this.#rotate();
        if (this.#segments[this.#segments.length - 1] !== active) {
          this.#trim();
          return this.append(message);
        }
      }
      throw failure;
    }
    this.#appendFailed = false;
    this.#end += record.length;
    this.#dirty = true;
    if (this.#end - active.start >= this.#segmentBytes) this.#rotate();
    return this.#end;
  }

  /**
   * Reads up to `maxRecords` records, and about `maxBytes` (at least one record), starting at
   * `from` (a record boundary, normally `committed`). Returns them in order; an empty array when
   * nothing is pending. An unreadable range on the way is kept aside (see the class) and passed
   * over; throws when it cannot be kept aside (a full disk), so nothing is passed over unseen.
   */
  read(from: number, maxRecords: number, maxBytes = Infinity): JournalRecord[] {
    const out: JournalRecord[] = [];
    let pos = Math.max(from, this.#segments[0].start);
    const limit = pos + maxBytes;
    while (pos < this.#end && out.length < maxRecords && (pos < limit || out.length === 0)) {
      const skip = this.#skips.get(pos);
      if (skip !== undefined) {
        pos = skip;
        continue;
      }
      const segIndex = this.#segmentIndexOf(pos);
      const seg = this.#segments[segIndex];
      const segEnd = segIndex + 1 < this.#segments.length
        ? this.#segments[segIndex + 1].start
        : this.#end;
      const next = readSegment(seg, { pos, segEnd, limit, maxRecords }, out);
      pos = next === pos && pos < segEnd ? this.#keepAside(seg, pos, segEnd) : next;
    }
    return out;
  }

  /**
   * Marks everything before `upTo` as stored; deletes segments that hold nothing else, then
   * records the offset in the checkpoint file. A checkpoint that cannot be written (disk error) is
   * logged and retried at the next commit: meanwhile a restart would store some messages again,
   * which the database ignores.
   */
  commit(upTo: number): void {
    if (this.#closed) return;
    if (upTo <= this.#committed) return;
    this.#committed = Math.min(upTo, this.#end);
    for (const [start, resume] of this.#skips) {
      if (resume <= this.#committed) this.#skips.delete(start);
    }
    // A drained journal starts a fresh segment once the active one has grown a little, or at once
    // after an append failed (a full disk), so the disk use falls back to nearly nothing.
    const active = this.#segments[this.#segments.length - 1];
    const size = this.#end - active.start;
    if (
      this.#committed === this.#end && size > 0 &&
      (size >= Math.min(this.#segmentBytes, 4 * 1024 * 1024) || this.#appendFailed)
    ) {
      this.#rotate();
    }
    this.#trim();
    this.#saveCheckpoint();
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
    try {
      this.sync();
    } finally {
      this.#closed = true;
      this.#file.close();
      this.#checkpoint?.close();
    }
  }

  /** Starts a new segment at the end; on failure (a full disk) keeps appending to the active one. */
  #rotate(): void {
    let seg: Segment | undefined;
    let file: SegmentFile;
    try {
      seg = createSegment(this.#dir, this.#end);
      file = this.#openSegment(seg.path);
    } catch (err) {
      if (seg) Deno.removeSync(seg.path);
      log.warn("Cannot start a new journal segment; the active one keeps growing", {
        error: errorText(err),
      });
      return;
    }
    try {
      this.#file.syncDataSync();
    } catch (err) {
      log.warn("Journal fsync failed", { error: errorText(err) });
    }
    this.#file.close();
    this.#segments.push(seg);
    this.#file = file;
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

  /** Overwrites the checkpoint in place: same size every time, so it needs no new disk space. */
  #saveCheckpoint(): void {
    const path = join(this.#dir, CHECKPOINT);
    try {
      this.#checkpoint ??= Deno.openSync(path, { read: true, write: true, create: true });
      this.#checkpoint.seekSync(0, Deno.SeekMode.Start);
      writeAll(this.#checkpoint, encodeCheckpoint(this.#committed));
      if (!this.#checkpointSized) {
        this.#checkpoint.truncateSync(CHECKPOINT_LENGTH);
        this.#checkpointSized = true;
      }
      if (this.#checkpointError) {
        log.info("Journal checkpoint written again", { path });
        this.#checkpointError = "";
      }
    } catch (err) {
      if (!this.#checkpointError) {
        log.warn(
          "Cannot write the journal checkpoint; retried at the next commit (a restart meanwhile " +
            "stores some messages again, which the database ignores)",
          { path, error: errorText(err) },
        );
      }
      this.#checkpointError = errorText(err);
    }
  }

  /**
   * Copies the unreadable bytes from `pos` to the next readable record of `seg` (or `segEnd`)
   * to the quarantine folder and returns where reading goes on.
   */
  #keepAside(seg: Segment, pos: number, segEnd: number): number {
    const resume = findRecordInFile(seg, pos + 1, segEnd);
    let file: string;
    try {
      file = copyAside(this.#dir, seg, pos, resume);
    } catch (err) {
      throw new Error(
        `Cannot keep an unreadable journal record aside in ${join(this.#dir, QUARANTINE)}: ` +
          errorText(err),
        { cause: err },
      );
    }
    this.#skips.set(pos, resume);
    this.#quarantined++;
    log.error("Unreadable journal record kept aside; the records around it are stored", {
      file,
      offset: pos,
      bytes: resume - pos,
    });
    return resume;
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

// The checkpoint: the committed offset (20 digits), a space, the CRC-32 of those digits (8 hex
// digits), a newline. The older form, digits alone, is still read.
const CHECKPOINT_LENGTH = 30;

function encodeCheckpoint(offset: number): Uint8Array {
  const digits = String(offset).padStart(20, "0");
  const crc = crc32(encoder.encode(digits)).toString(16).padStart(8, "0");
  return encoder.encode(`${digits} ${crc}\n`);
}

/** The committed offset; 0 (replay what is on disk) when missing or unreadable. */
function readCheckpoint(dir: string): number {
  let text: string;
  try {
    text = Deno.readTextFileSync(join(dir, CHECKPOINT));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return 0;
    throw err;
  }
  const m = /^(\d{1,20})(?: ([0-9a-f]{8}))?\s*$/.exec(text.split("\n")[0]);
  if (!m || (m[2] && crc32(encoder.encode(m[1])).toString(16).padStart(8, "0") !== m[2])) {
    log.warn(
      "Journal checkpoint unreadable; replaying every record on disk (stored ones are " +
        "ignored by the database)",
    );
    return 0;
  }
  const n = Number(m[1]);
  return Number.isSafeInteger(n) ? n : 0;
}

function writeAll(file: Pick<Deno.FsFile, "writeSync">, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += file.writeSync(bytes.subarray(done));
}

/**
 * Copies journal offsets `[from, to)` of `seg` to `quarantine/<from>.bad` in `dir`, in bounded
 * chunks; returns the file's path. A partial copy is removed.
 */
function copyAside(dir: string, seg: Segment, from: number, to: number): string {
  const folder = join(dir, QUARANTINE);
  Deno.mkdirSync(folder, { recursive: true });
  const path = join(folder, `${String(from).padStart(20, "0")}.bad`);
  using src = Deno.openSync(seg.path, { read: true });
  src.seekSync(from - seg.start, Deno.SeekMode.Start);
  try {
    using dst = Deno.openSync(path, { write: true, create: true, truncate: true });
    const chunk = new Uint8Array(Math.min(1 << 20, Math.max(1, to - from)));
    for (let left = to - from; left > 0;) {
      const n = src.readSync(chunk.subarray(0, Math.min(chunk.length, left)));
      if (n === null || n === 0) break;
      writeAll(dst, chunk.subarray(0, n));
      left -= n;
    }
    dst.syncDataSync();
  } catch (err) {
    try {
      Deno.removeSync(path);
    } catch {
      // Nothing was created, or it cannot be removed either: the error below says why.
    }
    throw err;
  }
  return path;
}

/**
 * Where `encodeRecord()` builds a record that fits (nearly all do): one buffer for every append,
 * written out before the next, instead of two allocations per message at the intake's full rate.
 */
const SCRATCH_BYTES = 64 * 1024;
const scratch = new Uint8Array(SCRATCH_BYTES);

/** The record of `message`, valid until the next call (it may live in `scratch`). */
function encodeRecord(message: RawMessage): Uint8Array {
  const payload = message.payload.subarray(0, JOURNAL_MAX_PAYLOAD);
  // UTF-8 takes at most 3 bytes per UTF-16 unit; a topic has at most 0xffff bytes (MQTT's limit).
  const topicMax = Math.min(message.topic.length * 3, 0xffff);
  const at = HEADER + BODY_FIXED;
  const room = at + topicMax + payload.length;
  const into = room <= SCRATCH_BYTES ? scratch : new Uint8Array(room);
  const { written } = encoder.encodeInto(message.topic, into.subarray(at, at + topicMax));
  const buf = into.subarray(0, at + written + payload.length);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.length);
  view.setUint32(0, buf.length - HEADER);
  buf[HEADER] = message.retained ? VERSION_RETAINED : VERSION;
  view.setFloat64(HEADER + 1, message.receivedAt);
  view.setUint16(HEADER + 9, written);
  buf.set(payload, at + written);
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
  // The cheap tests first: looking for the next record after damage tries every offset.
  if (body[0] !== VERSION && body[0] !== VERSION_RETAINED) return undefined;
  const topicLength = view.getUint16(HEADER + 9);
  if (BODY_FIXED + topicLength > bodyLength) return undefined;
  if (crc32(body) !== view.getUint32(4)) return undefined;
  return {
    size: HEADER + bodyLength,
    message: {
      receivedAt: view.getFloat64(HEADER + 1),
      topic: decoder.decode(body.subarray(BODY_FIXED, BODY_FIXED + topicLength)),
      // A view, not a copy: records live only until their batch is decoded, and one allocation
      // per message would fragment the malloc heap the read chunks come from.
      payload: body.subarray(BODY_FIXED + topicLength),
      ...(body[0] === VERSION_RETAINED ? { retained: true } : {}),
    },
  };
}

/** The first offset in `[from, to)` of `buf` where a whole, valid record starts; -1 if none. */
function findRecord(buf: Uint8Array, from: number, to: number): number {
  for (let at = from; at < to; at++) {
    const version = buf[at + HEADER];
    if (version !== VERSION && version !== VERSION_RETAINED) continue;
    if (decodeRecord(buf, at)) return at;
  }
  return -1;
}

/**
 * The journal offset of the first valid record of `seg` in `[from, segEnd)`, or `segEnd`: read in
 * windows, so memory stays bounded however large the damage.
 */
function findRecordInFile(seg: Segment, from: number, segEnd: number): number {
  const window = 1 << 20;
  using file = Deno.openSync(seg.path, { read: true });
  for (let at = from; at < segEnd; at += window) {
    const buf = new Uint8Array(Math.min(window + MAX_RECORD, segEnd - at));
    file.seekSync(at - seg.start, Deno.SeekMode.Start);
    let got = 0;
    while (got < buf.length) {
      const n = file.readSync(buf.subarray(got));
      if (n === null || n === 0) break;
      got += n;
    }
    const found = findRecord(buf.subarray(0, got), 0, Math.min(window, got));
    if (found >= 0) return at + found;
  }
  return segEnd;
}

/**
 * Scans a segment file: the length up to the end of its last valid record, the file's size, and
 * whether what follows is a record torn by a crash (its length says more bytes than there are)
 * rather than whole but unreadable bytes. Damage followed by valid records is left for `read()`.
 */
function scanSegment(path: string): { validLength: number; size: number; torn: boolean } {
  const buf = Deno.readFileSync(path);
  let validLength = 0;
  let at = 0;
  while (at < buf.length) {
    const rec = decodeRecord(buf, at);
    if (rec) {
      at += rec.size;
      validLength = at;
      continue;
    }
    const next = findRecord(buf, at + 1, buf.length);
    if (next < 0) break;
    at = next;
  }
  if (validLength === buf.length) return { validLength, size: buf.length, torn: true };
  const have = buf.length - validLength;
  const bodyLength = have >= HEADER
    ? new DataView(buf.buffer, buf.byteOffset + validLength).getUint32(0)
    : 0;
  const torn = have < HEADER ||
    (bodyLength >= BODY_FIXED && bodyLength <= MAX_BODY && have < HEADER + bodyLength);
  return { validLength, size: buf.length, torn };
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
