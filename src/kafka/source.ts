// The narrow interface the pipeline needs from a Kafka consumer, and its kafkajs adapter.
// Nothing outside this folder imports a Kafka client's consumer: the second adapter, on
// @platformatic/kafka, is src/kafka/platformatic-source.ts (kafka.client chooses).
//
// kafkajs facts this adapter is built around:
// - resolveOffset() only moves the fetch position; with autoCommit off, nothing is committed
//   until commit() — and commit() takes the *next* offset to read (last written + 1).
// - A batch that is neither resolved nor seeked past is fetched again, so a paused or failing
//   partition can simply leave its batch unresolved.
// - Every rebalance is eager: all partitions are revoked, fetch positions fall back to the
//   committed offsets, and GROUP_JOIN announces the new assignment before fetching resumes.
// - pause() does not stop batches already fetched from reaching eachBatch.
// - A fetch response is parsed whole before any of it is handed over: an error thrown while
//   parsing one partition's records fails the fetch of all of them (that is why a record
//   batch that cannot be read arrives as a marker message, see onUnreadable).
import type { Admin, Consumer, EachBatchPayload, IHeaders, KafkaConfig, LogEntry } from 'kafkajs';
import { ConfigError, PgsinkError } from '../util/errors.ts';
import { isCertificateError } from '../util/tls.ts';
import type { CodecError } from './codecs.ts';
import { Kafka, logLevel as KafkaLogLevel } from './kafkajs.ts';
import { unreadableOf } from './record-batch-decoder.ts';
import type { Logger } from 'pino';

export interface TopicPartition {
  topic: string;
  partition: number;
}

/** One record as the pipeline reads it (kafkajs' message shape, which both adapters give). */
export interface SourceMessage {
  key: Buffer | null;
  value: Buffer | null;
  /** The offset as a decimal string. */
  offset: string;
  /** Milliseconds since the epoch, as a decimal string. */
  timestamp: string;
  /** Header values byte for byte; a key that repeats holds an array. */
  headers?: IHeaders;
}

/**
 * What a group join changed for this member.
 * - `full` (kafkajs, eager): the whole new assignment. The client revoked everything and reset
 *   every fetch position to the committed offset, so every partition starts over, kept ones too.
 * - `incremental` (cooperative rebalancing, KIP-848): only these partitions changed hands.
 *   Every other partition keeps its fetch position, its buffer and its epoch.
 */
export type AssignmentChange =
  | { kind: 'full'; partitions: TopicPartition[] }
  | { kind: 'incremental'; assigned: TopicPartition[]; revoked: TopicPartition[] };

export interface FetchedBatch extends TopicPartition {
  messages: SourceMessage[];
  highWatermark: string;
  /** The offset this batch was fetched from: the client's position when it asked. */
  fetchedOffset: number;
  /**
   * Where the client goes on once the last message is resolved: past the last message, and
   * past control records or aborted messages it filtered out after it.
   */
  nextOffset: number;
  /** True when a seek is pending for the partition: this batch was fetched before it. */
  isStale(): boolean;
  /** Marks everything up to `offset` as fetched (not committed). */
  resolveOffset(offset: string): void;
}

export interface SourceHandlers {
  /**
   * After each change of this member's partitions (see AssignmentChange). A revoked partition's
   * batches are not handed over after this returns; a newly assigned one's only once it is
   * positioned (its first batch waits, the pipeline seeks it to its fence).
   */
  onAssignment(change: AssignmentChange): void;
  onBatch(batch: FetchedBatch): Promise<void>;
  /** The client gave up (it will not restart by itself). */
  onFatal(err: Error): void;
  /**
   * The partition's next record batch cannot be read (an unknown codec, a payload that does
   * not decompress). Nothing of it or after it is handed over and nothing is resolved, so it
   * is fetched again; what the partition does meanwhile is the pipeline's (it holds it).
   */
  onUnreadable(tp: TopicPartition, err: UnreadableBatchError): void;
  /**
   * The client skipped offsets [first, next) by itself: a fetch of only control records or
   * aborted messages, resolved without being handed over. Optional: without it the pipeline
   * learns of such a skip from the next batch's fetched offset (and checks the log start).
   */
  onFiltered?(tp: TopicPartition, first: number, next: number): void;
}

export interface KafkaSource {
  start(handlers: SourceHandlers): Promise<void>;
  pause(tps: readonly TopicPartition[]): void;
  resume(tps: readonly TopicPartition[]): void;
  seek(tp: TopicPartition, offset: number): void;
  /** Commits `offset` (the next offset to read) as the group's position. */
  commit(tp: TopicPartition, offset: number): Promise<void>;
  /** The group's committed offsets of these partitions, keyed `topic:partition`; -1 where none. */
  committedOffsets(tps: readonly TopicPartition[]): Promise<Map<string, number>>;
  /** Each partition's first offset still in the log (low) and its end (high), by partition. */
  watermarks(topic: string): Promise<Map<number, { low: number; high: number }>>;
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

/** A record batch of one partition that pgsink cannot read; code and retriable as its cause's. */
export class UnreadableBatchError extends PgsinkError {
  readonly topic: string;
  readonly partition: number;
  /** The first offset of the batch that was asked for, and the batch's last. */
  readonly firstOffset: number;
  readonly lastOffset: number;
  readonly codec: string;

  constructor(tp: TopicPartition, firstOffset: number, lastOffset: number, cause: CodecError) {
    super(
      'kafka',
      `cannot read the record batch at offsets ${firstOffset}..${lastOffset} of ${tp.topic}:${tp.partition} ` +
        `(codec ${cause.codec}, ${cause.code}): ${cause.message}`,
      { code: cause.code, retriable: cause.retriable, cause },
    );
    this.topic = tp.topic;
    this.partition = tp.partition;
    this.firstOffset = firstOffset;
    this.lastOffset = lastOffset;
    this.codec = cause.codec;
  }
}

/** The index of the first marker of an unreadable batch among the messages, or -1. */
function firstUnreadable(messages: readonly SourceMessage[]): number {
  for (let i = 0; i < messages.length; i++) if (unreadableOf(messages[i]!)) return i;
  return -1;
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
  /** consumer.run() in progress: it resolves once the first join is done. */
  let running: Promise<void> | undefined;
  // After stop() (or before run()), kafkajs throws on pause/resume/seek; they are no-ops then.
  const live = (): Consumer | undefined => (stopping ? undefined : consumer);
  // Offsets the consumer API does not give (the group's commits, the log start) come from an
  // admin client of the same connection settings, connected on first use. Few retries: the
  // callers have their own fallbacks and backoff.
  let admin: Promise<Admin> | undefined;
  const adminClient = (): Promise<Admin> => {
    if (stopping) return Promise.reject(new Error('the Kafka source is stopped'));
    admin ??= (async () => {
      const a = new Kafka({
        clientId: `${opts.clientId}-admin`,
        ...opts.connection,
        logLevel: KafkaLogLevel.NOTHING,
        retry: { retries: 2, initialRetryTime: 300, maxRetryTime: 2_000 },
      }).admin();
      await a.connect();
      return a;
    })().catch((err: unknown) => {
      admin = undefined;
      throw err;
    });
    return admin;
  };

  /**
   * Before a consumer joins: the brokers answer, they accept the credentials, and every topic
   * exists. kafkajs would otherwise retry a refused connection for about a minute before
   * failing, and treat a missing topic as a crash.
   */
  const probe = async (): Promise<void> => {
    let a: Admin;
    try {
      a = await adminClient();
    } catch (err) {
      throw kafkaStartError(err, opts.connection.brokers as string[]);
    }
    let names: string[];
    try {
      names = await a.listTopics();
    } catch (err) {
      throw kafkaStartError(err, opts.connection.brokers as string[]);
    }
    const have = new Set(names);
    const missing = opts.topics.filter((t) => !have.has(t));
    if (missing.length) {
      // listTopics leaves out topics this user may not describe: tell those from missing ones.
      try {
        await a.fetchTopicMetadata({ topics: missing });
      } catch (err) {
        if ((err as { type?: string }).type !== 'UNKNOWN_TOPIC_OR_PARTITION')
          throw kafkaStartError(err, opts.connection.brokers as string[]);
      }
      throw new PgsinkError(
        'kafka',
        `topic${missing.length > 1 ? 's' : ''} ${missing.map((t) => `'${t}'`).join(', ')} ${missing.length > 1 ? 'do' : 'does'} not exist on ${(opts.connection.brokers as string[]).join(',')}; ` +
          'waiting for it (create it, or fix routes[].topic)',
        { code: 'UNKNOWN_TOPIC', retriable: true },
      );
    }
  };

  return {
    async start(handlers) {
      if (stopping) return;
      await probe();
      if (stopping) return;
      // A consumer of an earlier attempt that failed half-way.
      if (consumer) await consumer.disconnect().catch(() => undefined);
      const c = kafka.consumer({
        allowAutoTopicCreation: false,
        groupId: opts.groupId,
        sessionTimeout: opts.sessionTimeoutMs,
        heartbeatInterval: opts.heartbeatIntervalMs,
        rebalanceTimeout: opts.rebalanceTimeoutMs,
        maxBytesPerPartition: opts.maxBytesPerPartition,
        maxBytes: opts.maxBytesPerPartition * 8,
        maxWaitTimeInMs: 100,
        retry: {
          retries: 10,
          initialRetryTime: 300,
          maxRetryTime: 10_000,
          // After stop(), a crash must not bring the consumer back.
          restartOnFailure: async () => !stopping,
        },
      });
      consumer = c;
      c.on(c.events.GROUP_JOIN, (e) => {
        const assignment = e.payload.memberAssignment as Record<string, number[]>;
        handlers.onAssignment({
          kind: 'full',
          partitions: Object.entries(assignment).flatMap(([topic, parts]) =>
            parts.map((partition) => ({ topic, partition })),
          ),
        });
      });
      // kafkajs resolves a fetch whose records were all filtered (control records, aborted
      // transactions) itself and announces it only through this instrumentation event
      // (runner.js, emitted synchronously, before the next fetch).
      c.on(c.events.START_BATCH_PROCESS, (e) => {
        const b = e.payload;
        if (b.batchSize !== 0) return;
        // No record at or past the fetched offset (a compressed batch that starts below it):
        // kafkajs resolves the fetched offset itself (batch.js lastOffset()).
        const first = b.firstOffset === null || b.firstOffset === undefined ? b.lastOffset : b.firstOffset;
        handlers.onFiltered?.(
          { topic: b.topic, partition: b.partition },
          Number(first),
          Number(b.lastOffset) + 1,
        );
      });
      c.on(c.events.CRASH, (e) => {
        const err = e.payload.error;
        if (!e.payload.restart) handlers.onFatal(err);
        else opts.logger.warn({ err }, 'kafka consumer crashed; kafkajs restarts it');
      });
      try {
        await c.connect();
        if (stopping) return;
        await c.subscribe({ topics: opts.topics, fromBeginning: opts.fromBeginning });
      } catch (err) {
        await c.disconnect().catch(() => undefined);
        throw kafkaStartError(err, opts.connection.brokers as string[]);
      }
      if (stopping) return;
      running = c.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: 1,
        eachBatch: async (p: EachBatchPayload) => {
          const { batch } = p;
          const fetchedOffset = Number((batch as unknown as { fetchedOffset: string }).fetchedOffset);
          const tp = { topic: batch.topic, partition: batch.partition };
          // An unreadable record batch (record-batch-decoder.ts) stands in the messages as one
          // marker. The records before it are handed over as a batch of their own; it and what
          // follows are left unresolved, so the next fetch starts with it and reports it.
          const bad = firstUnreadable(batch.messages);
          if (bad === 0) {
            if (p.isStale()) return;
            const u = unreadableOf(batch.messages[0]!)!;
            handlers.onUnreadable(
              tp,
              new UnreadableBatchError(
                tp,
                Math.max(Number(u.firstOffset), fetchedOffset),
                Number(u.lastOffset),
                u.error,
              ),
            );
            return;
          }
          const messages = bad < 0 ? batch.messages : batch.messages.slice(0, bad);
          await handlers.onBatch({
            ...tp,
            messages,
            highWatermark: batch.highWatermark,
            fetchedOffset,
            // Resolving the last message resolves batch.lastOffset() (kafkajs' runner), which
            // includes the control records and aborted messages it filtered after it. Before an
            // unreadable batch, the batch handed over ends with its last message.
            nextOffset:
              bad < 0 ? Number(batch.lastOffset()) + 1 : Number(messages[messages.length - 1]!.offset) + 1,
            isStale: p.isStale,
            resolveOffset: p.resolveOffset,
          });
        },
      });
      // kafkajs' run() joins the group before it returns, and a disconnect meanwhile does not
      // stop that join: a member that finished joining after stop() leaves at once.
      try {
        await running;
      } finally {
        running = undefined;
      }
      if (stopping) await c.disconnect().catch(() => undefined);
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
    async committedOffsets(tps) {
      const a = await adminClient();
      const topics = [...new Set(tps.map((tp) => tp.topic))];
      const res = await a.fetchOffsets({ groupId: opts.groupId, topics });
      const out = new Map<string, number>();
      for (const t of res)
        for (const p of t.partitions) out.set(`${t.topic}:${p.partition}`, Number(p.offset));
      return out;
    },
    async watermarks(topic) {
      const a = await adminClient();
      const res = await a.fetchTopicOffsets(topic);
      return new Map(res.map((p) => [p.partition, { low: Number(p.low), high: Number(p.high) }]));
    },
    stop() {
      stopping ??= (async () => {
        const closing = admin?.then((a) => a.disconnect()).catch(() => undefined);
        if (consumer) await consumer.disconnect();
        // A join in progress: start() disconnects again when it returns (the caller bounds
        // how long it waits for that).
        if (running) await running.catch(() => undefined);
        await closing;
      })();
      return stopping;
    },
  };
}

/**
 * A start-up failure as a typed error: credentials the brokers refuse are a configuration
 * error (exit 2); anything else about reaching the brokers is waited out (retriable).
 */
export function kafkaStartError(err: unknown, brokers: readonly string[]): PgsinkError {
  if (err instanceof PgsinkError) return err;
  const e = err as { name?: string; message?: string; type?: string };
  const where = brokers.join(',');
  if (isCertificateError(err)) {
    return new ConfigError(
      `Kafka at ${where}: the TLS certificate does not verify (${(err as { code?: string }).code ?? e.message}). Check kafka.ssl (the CA that signs the brokers' certificates).`,
      err,
    );
  }
  if (e.name === 'KafkaJSSASLAuthenticationError' || e.type === 'SASL_AUTHENTICATION_FAILED') {
    return new ConfigError(
      `Kafka at ${where} refused the SASL credentials: ${e.message ?? 'authentication failed'}. Check kafka.sasl (mechanism, username, password).`,
      err,
    );
  }
  if (
    e.type === 'TOPIC_AUTHORIZATION_FAILED' ||
    e.type === 'GROUP_AUTHORIZATION_FAILED' ||
    e.type === 'CLUSTER_AUTHORIZATION_FAILED'
  ) {
    return new ConfigError(
      `Kafka at ${where} refused access (${e.type}): ${e.message ?? e.type}. Check the ACLs of this user.`,
      err,
    );
  }
  return new PgsinkError('kafka', `cannot reach Kafka at ${where}: ${e.message ?? String(err)}`, {
    code: e.type ?? 'KAFKA_UNREACHABLE',
    retriable: true,
    cause: err,
  });
}
