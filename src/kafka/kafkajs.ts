// The one place that loads kafkajs' runtime. It first swaps in pgsink's record batch decoder
// (src/kafka/record-batch-decoder.ts), which has to happen before kafkajs is loaded; every
// other module imports kafkajs' values from here (eslint enforces it) and its types from
// 'kafkajs' directly. Then it registers pgsink's codecs (src/kafka/codecs.ts) in kafkajs'
// CompressionCodecs: pgsink's decoder calls them directly, but kafkajs' producer (tests, the
// demo, the benchmark) and its own decoder (PGSINK_KAFKAJS_DECODER=stock, legacy message sets)
// look them up there, and kafkajs 2.2.4 has only gzip.
import { createRequire } from 'node:module';
import { CODEC_IDS, compress, decompress } from './codecs.ts';
import { installRecordBatchDecoder } from './record-batch-decoder.ts';

/** 'fast' (pgsink's record batch decoder) or 'stock' (PGSINK_KAFKAJS_DECODER=stock). */
export const kafkajsDecoder = installRecordBatchDecoder();

const kafkajs = createRequire(import.meta.url)('kafkajs') as typeof import('kafkajs');

for (const id of Object.values(CODEC_IDS)) {
  const codec = {
    compress: async (encoder: { buffer: Buffer }): Promise<Buffer> => compress(id, encoder.buffer),
    decompress: async (buffer: Buffer): Promise<Buffer> => decompress(id, buffer),
  };
  (kafkajs.CompressionCodecs as Record<number, () => typeof codec>)[id] = () => codec;
}

export const { Kafka, logLevel, Partitioners, CompressionTypes } = kafkajs;
export type Kafka = import('kafkajs').Kafka;
export type logLevel = import('kafkajs').logLevel;
export type CompressionTypes = import('kafkajs').CompressionTypes;
