/**
 * Ingest: MQTT messages into the database through a crash-safe journal — topic parsing, payload
 * decoding, batch writing and the collector loop.
 *
 * @module
 */
export {
  type Collector,
  type CollectorOptions,
  type CollectorStats,
  DEFAULT_BATCH_SIZE,
  startCollector,
} from "./collector.ts";
export {
  Journal,
  JOURNAL_MAX_PAYLOAD,
  type JournalOptions,
  type JournalRecord,
} from "./journal.ts";
export { decodeMessage, MAX_PAYLOAD_BYTES } from "./decode_message.ts";
export { type BatchWriterOptions, createBatchWriter } from "./batch_writer.ts";
export { type ParsedTopic, parseTopic } from "./parse_topic.ts";
export type {
  BatchWriter,
  CapabilitiesMessage,
  Decoded,
  ErrorMessage,
  RawMessage,
  ReadingMessage,
  RejectedMessage,
  StatusMessage,
} from "./types.ts";
