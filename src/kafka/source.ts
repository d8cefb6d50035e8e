// The narrow interface the pipeline needs from a Kafka consumer, and its kafkajs adapter.
// Nothing outside this folder imports kafkajs' consumer, so a client with the same
// semantics could replace it.
//
// kafkajs facts this adapter is built around:
// - resolveOffset() only moves the fetch position; with autoCommit off, nothing is committed
//   until commit() — and commit() takes the *next* offset to read (last written + 1).
// - A batch that is neither resolved nor seeked past is fetched again, so a paused or failing
//   partition can simply leave its batch unresolved.
// - Every rebalance is eager: all partitions are revoked, fetch positions fall back to the
//   committed offsets, and GROUP_JOIN announces the new assignment before fetching resumes.
// - pause() does not stop batches already fetched from reaching eachBatch.
import type { Consumer, EachBatchPayload, KafkaConfig, KafkaMessage, LogEntry } from 'kafkajs';
import { Kafka, logLevel as KafkaLogLevel } from './kafkajs.ts';
import type { Logger } from 'pino';

export interface TopicPartition {
  topic: string;
  partition: number;
}

export interface FetchedBatch extends TopicPartition {
  messages: KafkaMessage[];
  highWatermark: string;
  isStale(): boolean;
  /** Marks everything up to `offset` as fetched (not committed). */
  resolveOffset(offset: string): void;
}

export interface SourceHandlers {
  /** The full new assignment after each group join; everything not in it is revoked. */
  onAssignment(assigned: TopicPartition[]): void;
  onBatch(batch: FetchedBatch): Promise<void>;
  /** The client gave up (it will not restart by itself). */
  onFatal(err: Error): void;
}

export interface KafkaSource {
  start(handlers: SourceHandlers): Promise<void>;
  pause(tps: readonly TopicPartition[]): void;
  resume(tps: readonly TopicPartition[]): void;
  seek(tp: TopicPartition, offset: number): void;
  /** Commits `offset` (the next offset to read) as the group's position. */
  commit(tp: TopicPartition, offset: number): Promise<void>;
  /** Stops fetching, leaves the group and disconnects. Idempotent. */
  stop(): Promise<void>;
}

export interface KafkaSourceOptions {
  /** Brokers, TLS and SASL (src/kafka/client-options.ts). */
  connection: Pick<KafkaConfig, 'brokers' | 'ssl' | 'sasl' | 'connectionTimeout'>;
  clientId: string;
  groupId: string;
  topics: string[];
  fromBeginning: boolean;
  sessionTimeoutMs: number;
  heartbeatIntervalMs: number;
  rebalanceTimeoutMs: number;
  maxBytesPerPartition: number;
  logger: Logger;
}

function group(tps: readonly TopicPartition[]): Array<{ topic: string; partitions: number[] }> {
  const by = new Map<string, number[]>();
  for (const { topic, partition } of tps) {
    const list = by.get(topic) ?? [];
    list.push(partition);
    by.set(topic, list);
  }
  return [...by].map(([topic, partitions]) => ({ topic, partitions }));
}

function kafkaLogger(logger: Logger) {
  return () =>
    ({ level, log }: LogEntry) => {
      const { message, ...extra } = log;
      // kafkajs logs a stack of routine rebalance errors at ERROR; they are retried by it.
      const fields = { ...extra, component: 'kafkajs' };
      if (level === KafkaLogLevel.ERROR) logger.warn(fields, message);
      else if (level === KafkaLogLevel.WARN) logger.warn(fields, message);
      else if (level === KafkaLogLevel.INFO) logger.debug(fields, message);
    };
}

export function createKafkaSource(opts: KafkaSourceOptions): KafkaSource {
  const kafka = new Kafka({
    clientId: opts.clientId,
    ...opts.connection,
    logLevel: KafkaLogLevel.WARN,
    logCreator: kafkaLogger(opts.logger),
    retry: { retries: 10, initialRetryTime: 300, maxRetryTime: 10_000 },
  });
  let consumer: Consumer | undefined;
  let stopping: Promise<void> | undefined;
  // After stop() (or before run()), kafkajs throws on pause/resume/seek; they are no-ops then.
  const live = (): Consumer | undefined => (stopping ? undefined : consumer);

  return {
    async start(handlers) {
      const c = kafka.consumer({
        groupId: opts.groupId,
        sessionTimeout: opts.sessionTimeoutMs,
        heartbeatInterval: opts.heartbeatIntervalMs,
        rebalanceTimeout: opts.rebalanceTimeoutMs,
        maxBytesPerPartition: opts.maxBytesPerPartition,
        maxBytes: opts.maxBytesPerPartition * 8,
        maxWaitTimeInMs: 100,
        retry: { retries: 10, initialRetryTime: 300, maxRetryTime: 10_000 },
      });
      consumer = c;
      c.on(c.events.GROUP_JOIN, (e) => {
        const assignment = e.payload.memberAssignment as Record<string, number[]>;
        handlers.onAssignment(
          Object.entries(assignment).flatMap(([topic, parts]) =>
            parts.map((partition) => ({ topic, partition })),
          ),
        );
      });
      c.on(c.events.CRASH, (e) => {
        const err = e.payload.error;
        if (!e.payload.restart) handlers.onFatal(err);
        else opts.logger.warn({ err }, 'kafka consumer crashed; kafkajs restarts it');
      });
      await c.connect();
      await c.subscribe({ topics: opts.topics, fromBeginning: opts.fromBeginning });
      await c.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: 1,
        eachBatch: async (p: EachBatchPayload) => {
          const { batch } = p;
          await handlers.onBatch({
            topic: batch.topic,
            partition: batch.partition,
            messages: batch.messages,
            highWatermark: batch.highWatermark,
            isStale: p.isStale,
            resolveOffset: p.resolveOffset,
          });
        },
      });
    },
    pause(tps) {
      if (tps.length) live()?.pause(group(tps));
    },
    resume(tps) {
      if (tps.length) live()?.resume(group(tps));
    },
    seek(tp, offset) {
      live()?.seek({ topic: tp.topic, partition: tp.partition, offset: String(offset) });
    },
    async commit(tp, offset) {
      const c = live();
      if (!c) throw new Error('the Kafka consumer has left the group; offset not committed');
      await c.commitOffsets([{ topic: tp.topic, partition: tp.partition, offset: String(offset) }]);
    },
    stop() {
      stopping ??= (async () => {
        if (consumer) await consumer.disconnect();
      })();
      return stopping;
    },
  };
}
