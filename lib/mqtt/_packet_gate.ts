// A stream between a client's socket and the broker that ends the connection as soon as a packet
// header announces more than the allowed size, before any of that packet is buffered.
import { Duplex } from "node:stream";
import type { Socket } from "node:net";

/**
 * Wraps `socket` for the broker. The MQTT fixed header (one type byte, then the remaining length
 * as a variable-length integer of at most four bytes) is read as the bytes pass; a packet longer
 * than `maxBytes`, or a malformed length, destroys the socket and calls `onRefused`. Bytes pass
 * through unchanged otherwise, with backpressure both ways.
 */
export function packetGate(
  socket: Socket,
  maxBytes: number,
  onRefused: (announced: number) => void,
): Duplex {
  // Parser state: 0 = expecting the type byte, 1 = reading the length, 2 = skipping the body.
  let state = 0;
  let length = 0;
  let multiplier = 1;
  let left = 0;
  let refused = false;

  const gate = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Uint8Array, _enc, cb) {
      if (socket.destroyed) return cb();
      // Handed to the socket at once (it buffers; backpressure through "drain"), so that a
      // packet written in pieces is complete in the socket when the broker ends the connection.
      if (socket.write(chunk)) cb();
      else socket.once("drain", () => cb());
    },
    final(cb) {
      socket.end(cb);
    },
    destroy(err, cb) {
      // The broker ends a connection right after writing its answer (a refused CONNACK): end
      // the socket so that the answer is flushed (over TLS too), and destroy it soon after.
      if (!socket.destroyed) {
        socket.pause();
        socket.end();
        const timer = setTimeout(() => socket.destroy(), 2000);
        socket.once("close", () => clearTimeout(timer));
      }
      cb(err);
    },
  });

  function check(chunk: Uint8Array): boolean {
    let i = 0;
    while (i < chunk.length) {
      if (state === 2) {
        const step = Math.min(left, chunk.length - i);
        left -= step;
        i += step;
        if (left === 0) state = 0;
      } else if (state === 0) {
        state = 1;
        length = 0;
        multiplier = 1;
        i++;
      } else {
        const b = chunk[i++];
        length += (b & 0x7f) * multiplier;
        multiplier *= 128;
        if (length > maxBytes || (b & 0x80 && multiplier > 128 ** 3)) {
          refuse(length);
          return false;
        }
        if (!(b & 0x80)) {
          left = length;
          state = left === 0 ? 0 : 2;
        }
      }
    }
    return true;
  }

  function refuse(announced: number) {
    if (refused) return;
    refused = true;
    socket.destroy();
    gate.destroy();
    onRefused(announced);
  }

  socket.on("data", (chunk: Uint8Array) => {
    if (refused || !check(chunk)) return;
    if (!gate.push(chunk)) socket.pause();
  });
  socket.on("end", () => gate.push(null));
  socket.on("close", () => {
    if (!gate.destroyed) gate.destroy();
  });
  socket.on("error", (err) => {
    if (!gate.destroyed) gate.destroy(err);
  });
  socket.pause();
  return gate;
}
