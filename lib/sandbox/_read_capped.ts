/** What `readCapped` kept of a stream. */
export interface CappedBytes {
  /** The first bytes, at most `cap`. */
  bytes: Uint8Array;
  /** True when the stream carried more than `cap` bytes (reading stopped there). */
  over: boolean;
}

/**
 * Reads `stream` into memory, keeping at most `cap` bytes: past it `onOver` is called once and
 * reading stops. An abort of `signal` cancels the read at once (a job that holds its pipe open
 * after being killed cannot keep the caller waiting).
 */
export async function readCapped(
  stream: ReadableStream<Uint8Array>,
  opts: { cap: number; onOver: () => void; signal: AbortSignal },
): Promise<CappedBytes> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let over = false;
  const cancel = () => reader.cancel().catch(() => {});
  opts.signal.addEventListener("abort", cancel, { once: true });
  try {
    while (!opts.signal.aborted) {
      const { done, value } = await reader.read();
      if (done) break;
      if (size + value.length > opts.cap) {
        chunks.push(value.subarray(0, opts.cap - size));
        size = opts.cap;
        over = true;
        opts.onOver();
        break;
      }
      chunks.push(value);
      size += value.length;
    }
  } catch {
    // Cancelled by the abort: what was read so far is kept.
  } finally {
    opts.signal.removeEventListener("abort", cancel);
    await cancel();
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.length;
  }
  return { bytes, over };
}
