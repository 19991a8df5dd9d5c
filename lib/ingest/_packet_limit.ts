import { Duplex } from "node:stream";

/** What `limitIncomingPackets()` needs to know. */
export interface PacketLimitOptions {
  /** Largest packet (fixed header included) passed on whole. */
  maxBytes: number;
  /** Payload bytes kept of a PUBLISH over `maxBytes`: more than the payload cap, so it is refused. */
  keepPayloadBytes: number;
  /** The protocol spoken on the connection now (5 has properties in a PUBLISH header). */
  protocolVersion: () => number;
  /** Told about each PUBLISH that was cut: its size as sent. */
  onCut: (bytes: number) => void;
}

/** A stream that can stand in for MQTT.js's connection (`IStream`). */
type Stream = Duplex;

const PUBLISH = 3;

/**
 * Wraps the connection to the broker so that no incoming packet larger than `maxBytes` is held in
 * memory: a larger PUBLISH is passed on with its header intact and its payload cut to
 * `keepPayloadBytes`, the rest dropped as it streams in. The message still arrives (and is
 * acknowledged, so the broker does not send it again); its payload, over the cap, makes it a
 * rejected message. For brokers that ignore (or, speaking MQTT 3.1.1, cannot be told) the maximum
 * packet size the collector asks for. Outgoing bytes pass unchanged.
 */
export function limitIncomingPackets(inner: Stream, opts: PacketLimitOptions): Stream {
  const cutter = new PacketCutter(opts);
  const wrapper: Duplex = new Duplex({
    read() {
      inner.resume();
    },
    write(chunk, encoding, callback) {
      inner.write(chunk, encoding, callback);
    },
    final(callback) {
      inner.end(callback);
    },
    destroy(err, callback) {
      inner.destroy();
      callback(err);
    },
  });
  inner.on("data", (chunk: Uint8Array) => {
    let more = true;
    try {
      for (const out of cutter.feed(chunk)) more = wrapper.push(out) && more;
    } catch (err) {
      wrapper.destroy(err as Error);
      return;
    }
    if (!more) inner.pause();
  });
  inner.on("end", () => wrapper.push(null));
  inner.on("error", (err) => wrapper.destroy(err));
  inner.on("close", () => wrapper.destroy());
  return wrapper;
}

/** The incoming byte stream, packet by packet: whole packets pass, oversized PUBLISHes are cut. */
class PacketCutter {
  #o: PacketLimitOptions;
  #header: number[] = []; // fixed header of the next packet, being read
  #pass = 0; // body bytes of the current packet still to pass on
  #drop = 0; // body bytes of the current packet still to drop
  #cut: { first: number; remaining: number; body: Uint8Array[]; have: number } | undefined;

  constructor(opts: PacketLimitOptions) {
    this.#o = opts;
  }

  *feed(chunk: Uint8Array): Generator<Uint8Array> {
    let at = 0;
    while (at < chunk.length) {
      if (this.#pass > 0) {
        const n = Math.min(this.#pass, chunk.length - at);
        yield chunk.subarray(at, at + n);
        this.#pass -= n;
        at += n;
      } else if (this.#drop > 0) {
        const n = Math.min(this.#drop, chunk.length - at);
        this.#drop -= n;
        at += n;
      } else if (this.#cut) {
        // Collecting the variable header of an oversized PUBLISH.
        const n = Math.min(chunk.length - at, this.#cut.remaining - this.#cut.have);
        this.#cut.body.push(chunk.slice(at, at + n));
        this.#cut.have += n;
        at += n;
        const out = this.#tryCut();
        if (out) yield out;
      } else {
        this.#header.push(chunk[at++]);
        const length = readVarInt(this.#header, 1);
        if (length === undefined) continue;
        const header = Uint8Array.from(this.#header);
        this.#header = [];
        const total = length.end + length.value;
        if (header[0] >> 4 === PUBLISH && total > this.#o.maxBytes) {
          this.#cut = { first: header[0], remaining: length.value, body: [], have: 0 };
          this.#o.onCut(total);
          continue;
        }
        yield header;
        this.#pass = length.value;
      }
    }
  }

  /** Once the variable header is in, the rewritten start of the cut PUBLISH. */
  #tryCut(): Uint8Array | undefined {
    const cut = this.#cut!;
    const body = concat(cut.body);
    cut.body = [body];
    if (body.length < 2) return undefined;
    const qos = (cut.first >> 1) & 3;
    let end = 2 + ((body[0] << 8) | body[1]) + (qos > 0 ? 2 : 0);
    if (this.#o.protocolVersion() === 5) {
      const props = readVarInt(body, end);
      if (props === undefined) {
        if (body.length >= end + 4 || body.length >= cut.remaining) throw tooLarge(cut.remaining);
        return undefined;
      }
      end = props.end + props.value;
    }
    if (end > this.#o.maxBytes) throw tooLarge(cut.remaining);
    if (body.length < end && body.length < cut.remaining) return undefined;
    const keep = Math.min(cut.remaining, end + this.#o.keepPayloadBytes);
    const kept = body.subarray(0, Math.min(body.length, keep));
    this.#cut = undefined;
    // Bytes read past `keep` are dropped already.
    this.#pass = keep - kept.length;
    this.#drop = cut.remaining - Math.max(keep, body.length);
    return concat([Uint8Array.from([cut.first, ...writeVarInt(keep)]), kept]);
  }
}

function tooLarge(bytes: number): Error {
  return new Error(`The broker sent a packet of ${bytes} bytes whose header alone is too large`);
}

/** Reads an MQTT variable byte integer at `at`; undefined while incomplete. */
function readVarInt(
  bytes: ArrayLike<number>,
  at: number,
): { value: number; end: number } | undefined {
  let value = 0;
  for (let i = 0; i < 4; i++) {
    if (at + i >= bytes.length) return undefined;
    const b = bytes[at + i];
    value += (b & 0x7f) * 128 ** i;
    if ((b & 0x80) === 0) return { value, end: at + i + 1 };
  }
  throw new Error("Malformed MQTT packet length from the broker");
}

function writeVarInt(value: number): number[] {
  const out: number[] = [];
  do {
    let b = value % 128;
    value = Math.floor(value / 128);
    if (value > 0) b |= 0x80;
    out.push(b);
  } while (value > 0);
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
