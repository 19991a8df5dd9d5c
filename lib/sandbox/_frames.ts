/** Largest `result` frame the host accepts (JSON with two 100 KB texts, escaped). */
export const MAX_RESULT_FRAME = 1024 * 1024;
/** Largest `png` frame the host accepts (the runner refuses a bigger figure with a message). */
export const MAX_PNG_FRAME = 16 * 1024 * 1024;
/** Everything a job may send on its result channel. */
export const MAX_CHANNEL_BYTES = MAX_RESULT_FRAME + MAX_PNG_FRAME + 64;

const LIMITS: Record<string, number> = { result: MAX_RESULT_FRAME, png: MAX_PNG_FRAME };

/** The frames of one job's result channel; `malformed` says why parsing stopped, if it did. */
export interface Frames {
  result?: Uint8Array;
  png?: Uint8Array;
  malformed?: string;
}

/**
 * Parses `<kind> <length>\n<bytes>` frames as the runner sends them (`sandbox/runner.py`). The
 * bytes come from the job and are untrusted: unknown kinds, repeated kinds, lengths over the
 * per-kind limit and truncated frames end parsing with `malformed` set.
 */
export function parseFrames(bytes: Uint8Array): Frames {
  const frames: Frames = {};
  let at = 0;
  while (at < bytes.length) {
    const nl = bytes.indexOf(0x0a, at);
    if (nl < 0 || nl - at > 32) return { ...frames, malformed: "frame header" };
    const m = /^(result|png) (\d{1,9})$/.exec(new TextDecoder().decode(bytes.subarray(at, nl)));
    if (!m) return { ...frames, malformed: "frame header" };
    const kind = m[1] as "result" | "png";
    const length = Number(m[2]);
    if (length > LIMITS[kind] || frames[kind]) return { ...frames, malformed: `${kind} frame` };
    if (nl + 1 + length > bytes.length) return { ...frames, malformed: "truncated frame" };
    frames[kind] = bytes.slice(nl + 1, nl + 1 + length);
    at = nl + 1 + length;
  }
  return frames;
}
