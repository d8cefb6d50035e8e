// The one place that loads kafkajs' runtime. It first swaps in pgsink's record batch decoder
// (src/kafka/record-batch-decoder.ts), which has to happen before kafkajs is loaded; every
// other module imports kafkajs' values from here (eslint enforces it) and its types from
// 'kafkajs' directly.
import { createRequire } from 'node:module';
import { installRecordBatchDecoder } from './record-batch-decoder.ts';

/** 'fast' (pgsink's record batch decoder) or 'stock' (PGSINK_KAFKAJS_DECODER=stock). */
export const kafkajsDecoder = installRecordBatchDecoder();

const kafkajs = createRequire(import.meta.url)('kafkajs') as typeof import('kafkajs');

export const { Kafka, logLevel, Partitioners } = kafkajs;
export type Kafka = import('kafkajs').Kafka;
export type logLevel = import('kafkajs').logLevel;
