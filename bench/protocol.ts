// Messages between bench/run.ts and bench/pgsink-worker.ts (over the fork IPC channel).
import type { ConfigInput } from '../src/config/schema.ts';

/**
 * Wall-clock milliseconds, comparable across processes. (performance.timeOrigin + now() has
 * finer resolution but each process fixes its origin at start, a few ms apart.)
 */
export const wallNow = (): number => Date.now();

export interface PgsinkJob {
  mode: 'pgsink';
  config: ConfigInput;
  /** Done when this many rows (and dead letters, with deadLetters 'expected') are committed. */
  expect: number;
  /** 'expected': records are meant to be dead-lettered; they count as done. Default: none may be. */
  deadLetters?: 'none' | 'expected';
  /** Send every flush (partition, offsets, commit time): the latency phase needs them. */
  reportFlushes: boolean;
  /** Send a stats message this often (0: never). */
  statsEveryMs: number;
  /** Send the offset range of every batch pgsink took from the client (the rebalance phase). */
  reportBatches?: boolean;
}

/** Baseline A: eachMessage, one INSERT and one offset commit per message. */
export interface NaiveJob {
  mode: 'naive';
  config: ConfigInput;
  /** Stop after this many events or this many seconds, whichever comes first. */
  events: number;
  maxSeconds: number;
}

/** Baseline B: eachBatch, one multi-row INSERT per fetched batch in a transaction, then commit. */
export interface BatchJob {
  mode: 'batch';
  config: ConfigInput;
  expect: number;
  concurrency: number;
}

/** Ceiling C: pgsink's Kafka source, decoder and COPY encoder; the rows are thrown away. */
export interface DecodeJob {
  mode: 'decode';
  config: ConfigInput;
  expect: number;
  /** false: ceiling K, the Kafka client alone (messages fetched and dropped undecoded). */
  decode: boolean;
}

/**
 * K′: the alternative client alone, @confluentinc/kafka-javascript (librdkafka) through its
 * KafkaJS-compatible API, installed by bench/alt-client/build.sh into `dir`.
 */
export interface AltFetchJob {
  mode: 'alt-fetch';
  config: ConfigInput;
  expect: number;
  dir: string;
}

/**
 * Ceiling D: COPY of pre-encoded rows, in pgsink's batch size and concurrency, per table.
 * The worker prepares its rows and connects, says 'prepared', and starts the COPYs on 'go':
 * the parent reads Postgres' CPU in between, so that only the COPYs are billed to it.
 */
export interface CopyJob {
  mode: 'copy';
  config: ConfigInput;
  events: number;
  partitions: number;
  batchRows: number;
  concurrency: number;
  /** One run per table, in order. */
  tables: string[];
  /**
   * text (D): the events encoded by pgsink's COPY text encoder. binary (D_binary): the rows of
   * table `from` (D's, already loaded), as Postgres writes them with COPY … TO STDOUT (FORMAT
   * binary), cut into the same batches; so no encoder of the bench's own is measured.
   */
  rows: { format: 'text' } | { format: 'binary'; from: string };
}

export type Job = PgsinkJob | NaiveJob | BatchJob | DecodeJob | AltFetchJob | CopyJob;

export interface RunResult {
  events: number;
  /** Wall clock of the first fetched batch (or the first COPY) and of the last commit. */
  firstAt: number;
  doneAt: number;
  seconds: number;
  eventsPerSec: number;
  /** The worker's own CPU seconds (user + system) between firstAt and doneAt. */
  cpuSeconds: number;
  /** The worker's peak RSS so far. */
  maxRssMiB: number;
  extra?: Record<string, number | string>;
}

export type ToWorker =
  | { type: 'job'; job: Job }
  /** A CopyJob's worker starts its COPYs (after it said 'prepared'). */
  | { type: 'go' }
  | { type: 'stop' };

export type FromWorker =
  | { type: 'assigned'; partitions: number }
  | { type: 'first'; at: number }
  /** A CopyJob's rows are ready and its clients connected; it waits for 'go'. */
  | { type: 'prepared' }
  | { type: 'flush'; partition: number; first: number; last: number; rows: number; at: number }
  /** A batch the client handed over and pgsink took (resolved): offsets first..last. */
  | { type: 'batch'; partition: number; first: number; last: number; at: number }
  | {
      type: 'stats';
      at: number;
      rows: number;
      /** What pgsink's backpressure counts as buffered (SinkService.bufferedBytes). */
      bufferedBytes: number;
      paused: number;
      rssMiB: number;
      heapUsedMiB: number;
      heapTotalMiB: number;
      /** Buffers and other memory outside the V8 heap. */
      externalMiB: number;
    }
  | { type: 'done'; result: RunResult }
  | { type: 'results'; results: RunResult[] }
  | { type: 'stopped' }
  | { type: 'error'; message: string };
