// The one builder of `rejected_messages` rows and the one cleaner of the text they hold, for every
// part that refuses input: the decoder, the batch writer's limits and the isolation of a record
// the database refuses.
import { json } from "./_statements.ts";
import { topicOf } from "./_topic_of.ts";
import type { Decoded, RejectedMessage } from "./types.ts";

/**
 * Most characters kept of a rejected message's topic, payload and reason (the payload: the
 * decoder's first 8 KiB of the device's bytes and a note of the full size).
 */
export const REJECTED_MAX = { topic: 1024, payload: 8192 + 64, reason: 1000 } as const;

/**
 * Text as PostgreSQL can store it: NUL and unpaired surrogates (which `text` refuses) become
 * U+FFFD, and the text is cut to `max` characters (default: not cut), marked with `…` when cut.
 */
export function storableText(s: string, max = Infinity): string {
  const clean = s.replaceAll("\0", "\uFFFD").toWellFormed();
  return clean.length <= max ? clean : clean.slice(0, max - 1).toWellFormed() + "…";
}

/** A `rejected_messages` row, its texts made storable and bounded. */
export function rejection(
  parts: { topic: string; payload: string; reason: string; time: Date },
): RejectedMessage {
  return {
    kind: "rejected",
    topic: storableText(parts.topic, REJECTED_MAX.topic),
    payload: storableText(parts.payload, REJECTED_MAX.payload),
    reason: storableText(parts.reason, REJECTED_MAX.reason),
    time: parts.time,
  };
}

/**
 * The rejection of a decoded message that cannot be stored, or only in part. The payload is the
 * device's text when the decoder kept it, else the decoded message as JSON.
 */
export function refusal(msg: Decoded, reason: string): RejectedMessage {
  let payload: string;
  let time = msg.time;
  if (msg.kind === "rejected") payload = msg.payload;
  else if (msg.kind === "reading") {
    payload = msg.rejectedMetrics?.payload ??
      JSON.stringify({ timestamp: msg.time.toISOString(), value: msg.metrics });
    time = msg.rejectedMetrics?.receivedAt ?? msg.time;
  } else payload = json(msg.payload);
  return rejection({ topic: topicOf(msg), payload, reason, time });
}
