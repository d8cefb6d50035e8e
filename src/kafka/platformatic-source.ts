// The KafkaSource on @platformatic/kafka (kafka.client: platformatic): cooperative rebalancing
// (KIP-429, the cooperative-sticky assignor) or the KIP-848 consumer protocol, static
// membership (KIP-345), and its own gzip/snappy/lz4/zstd codecs.
//
// @platformatic/kafka 2.12.1 facts this adapter is built around (pinned exactly in
// package.json; read again before moving it):
// - Its MessagesStream fetches every assigned partition in one loop, message by message, with
//   no per-partition pause or seek, and resets every position to the committed offset on each
//   group join. pgsink needs per-partition pause, seek, "a batch left unresolved is fetched
//   again" and a fetched offset per batch, so this adapter runs its own fetch loop on the
//   Consumer's lower-level fetch() (which keeps KIP-227 fetch sessions, leader look-ups and
//   decompression) and owns every position.
// - Group membership for the KIP-848 protocol can only be had through consume(), which creates
//   a MessagesStream. The stream is kept as the membership token and never read: its
//   readableFlowing is pinned to null, which is the first thing its fetch loop checks (a
//   cooperative rebalance calls resume() on it, which would otherwise start it).
// - consumer.assignments is replaced whenever the assignment changes (classic SyncGroup, each
//   KIP-848 heartbeat that carries one); there is no per-partition event. The loop diffs it
//   with what this adapter owns and announces the difference as an incremental assignment.
//   Revocation is not delayed for the application: a revoked partition's flush that is still
//   running is fenced by Postgres (its fence row lock and check), as with kafkajs.
// - With read_committed it drops aborted batches only when their abort marker is in the same
//   response, and delivers them otherwise; the broker's aborted-transaction list is still in
//   the response, so aborted records are dropped here again, by that list (as the Java client).
// - A static member (groupInstanceId) must not send LeaveGroup when it stops, or the group
//   rebalances twice on every rolling restart; platformatic always sends it from close(), so
//   the member id is cleared first (its leave then has nothing to send).
import type { ConnectionPool, Consumer, MessagesStream, RecordsBatch } from '@platformatic/kafka';
import type { IHeaders } from 'kafkajs';
import { createRequire } from 'node:module';
import type { ConnectionOptions as TlsOptions } from 'node:tls';
import { ConfigError, errorMessage, PgsinkError } from '../util/errors.ts';
import { isCertificateError } from '../util/tls.ts';
import { encodeRawHeaders } from './record-headers.ts';
import type {
  FetchedBatch,
  KafkaSource,
  KafkaSourceOptions,
  SourceHandlers,
  SourceMessage,
  TopicPartition,
} from './source.ts';

export interface PlatformaticSourceOptions extends KafkaSourceOptions {
  /** 'classic' (JoinGroup/SyncGroup, cooperative-sticky) or 'consumer' (KIP-848). */
  groupProtocol: 'classic' | 'consumer';
  /** KIP-345 static membership (classic protocol only; validated by the config schema). */
  groupInstanceId: string | undefined;
}

type FetchResponse = Awaited<ReturnType<Consumer['fetch']>>;
type Platformatic = typeof import('@platformatic/kafka');

/**
 * Loaded on first use: importing it costs about a second of start-up (its validators), which
 * every CLI command would pay with kafka.client: kafkajs. It is ESM without top-level await, so
 * require() loads it synchronously.
 */
let lib: Platformatic | undefined;
const platformatic = (): Platformatic =>
  (lib ??= createRequire(import.meta.url)('@platformatic/kafka') as Platformatic);

/** Record batch attributes (the Kafka protocol's): transactional, control. */
const IS_TRANSACTIONAL = 1 << 4;
/** Record batch attribute: the timestamps are the broker's log-append time (maxTimestamp). */
const TIMESTAMP_TYPE_LOG_APPEND = 1 << 3;
const IS_CONTROL = 1 << 5;
/** READ_COMMITTED; ListOffsetTimestamps. */
const READ_COMMITTED = 1;
const EARLIEST = -2n;
const LATEST = -1n;

/** The Kafka protocol's error codes this loop acts on. */
const OFFSET_OUT_OF_RANGE = 1;
const FETCH_WAIT_MS = 100;
/** A loop with nothing to fetch (all paused, or nothing assigned) looks again this often. */
const IDLE_MS = 20;
const MAX_BACKOFF_MS = 5_000;

interface Owned {
  readonly tp: TopicPartition;
  readonly key: string;
  /** Next offset to fetch; undefined until the committed offset (or the log start/end) is known. */
  position: bigint | undefined;
  paused: boolean;
  /** Bumped by every seek and by a new ownership: a batch fetched before it is stale. */
  gen: number;
}

interface Fetched {
  own: Owned;
  gen: number;
  fetchedOffset: bigint;
  partition: FetchResponse['responses'][number]['partitions'][number];
}

const keyOf = (topic: string, partition: number): string => `${topic}:${partition}`;

export function createPlatformaticSource(opts: PlatformaticSourceOptions): KafkaSource {
  const { Consumer, ConnectionPool, CONSUMER_PROTOCOL_HIGHEST_VERSION } = platformatic();
  const brokers = opts.connection.brokers as string[];
  const conn = connectionOptions(opts);
  let consumer: Consumer | undefined;
  let stream: MessagesStream<Buffer, Buffer, Buffer, Buffer> | undefined;
  let pool: ConnectionPool | undefined;
  let handlers: SourceHandlers | undefined;
  let stopping: Promise<void> | undefined;
  let loop: Promise<void> | undefined;
  const owned = new Map<string, Owned>();
  /** Wakes the loop's idle sleep (a resume, a seek, an assignment). */
  let wake: (() => void) | undefined;
  const poke = () => wake?.();

  const newConsumer = (): Consumer => {
    const common = {
      clientId: opts.clientId,
      bootstrapBrokers: brokers,
      groupId: opts.groupId,
      ...conn,
      autocommit: false,
      rebalanceTimeout: opts.rebalanceTimeoutMs,
      maxBytesPerPartition: opts.maxBytesPerPartition,
      maxBytes: opts.maxBytesPerPartition * 8,
      maxWaitTime: FETCH_WAIT_MS,
      minBytes: 1,
      isolationLevel: READ_COMMITTED,
      retries: 10,
      retryDelay: 300,
      ...(opts.groupInstanceId ? { groupInstanceId: opts.groupInstanceId } : {}),
    };
    // KIP-848: the session and the heartbeat interval are the broker's (group.consumer.*).
    if (opts.groupProtocol === 'consumer') return new Consumer({ ...common, groupProtocol: 'consumer' });
    return new Consumer({
      ...common,
      sessionTimeout: opts.sessionTimeoutMs,
      heartbeatInterval: opts.heartbeatIntervalMs,
      protocols: [{ name: 'cooperative-sticky', version: CONSUMER_PROTOCOL_HIGHEST_VERSION }],
    });
  };

  /**
   * Before joining: the brokers answer, accept the credentials, and every topic exists (the
   * client would otherwise retry for a long while, or fail the join on a missing topic).
   */
  const probe = async (c: Consumer): Promise<void> => {
    try {
      await c.metadata({ topics: [], forceUpdate: true, retries: 2 });
    } catch (err) {
      throw platformaticStartError(err, brokers);
    }
    const missing: string[] = [];
    for (const topic of opts.topics) {
      try {
        await c.metadata({ topics: [topic], forceUpdate: true, autocreateTopics: false, retries: 2 });
      } catch (err) {
        // The client turns UNKNOWN_TOPIC_OR_PARTITION into a UserError "Unknown topic <name>.".
        if (protocolCode(err) === 'UNKNOWN_TOPIC_OR_PARTITION' || /^Unknown topic /.test(errorMessage(err)))
          missing.push(topic);
        else throw platformaticStartError(err, brokers);
      }
    }
    if (missing.length)
      throw new PgsinkError(
        'kafka',
        `topic${missing.length > 1 ? 's' : ''} ${missing.map((t) => `'${t}'`).join(', ')} ${missing.length > 1 ? 'do' : 'does'} not exist on ${brokers.join(',')}; ` +
          'waiting for it (create it, or fix routes[].topic)',
        { code: 'UNKNOWN_TOPIC', retriable: true },
      );
  };

  const closeConsumer = async (c: Consumer, s: typeof stream, leave: boolean): Promise<void> => {
    if (s) await s.close().catch(() => undefined);
    if (!leave) {
      // Static member: no LeaveGroup (see the header); the coordinator keeps its partitions
      // for the session timeout, and the restarted member with the same instance id takes
      // them back without a rebalance.
      c.memberId = null;
      await new Promise<void>((resolve) => c.leaveGroup(true, () => resolve()));
    }
    await c.close(true).catch(() => undefined);
  };

  /** Makes `owned` match consumer.assignments and announces what changed. */
  const syncAssignment = (): void => {
    const c = consumer;
    if (!c || stopping || !handlers) return;
    const now = new Map<string, TopicPartition>();
    for (const a of c.assignments ?? [])
      for (const partition of a.partitions) now.set(keyOf(a.topic, partition), { topic: a.topic, partition });
    const assigned: TopicPartition[] = [];
    const revoked: TopicPartition[] = [];
    for (const [key, own] of owned)
      if (!now.has(key)) {
        owned.delete(key);
        revoked.push(own.tp);
      }
    for (const [key, tp] of now)
      if (!owned.has(key)) {
        const own: Owned = { tp, key, position: undefined, paused: false, gen: 0 };
        owned.set(key, own);
        assigned.push(tp);
      }
    if (!assigned.length && !revoked.length) return;
    handlers.onAssignment({ kind: 'incremental', assigned, revoked });
    if (assigned.length) void initialPositions(assigned);
  };

  /**
   * Where a newly owned partition starts when the pipeline does not seek it (no fence row):
   * the group's committed offset, else the log start or end (kafka.fromBeginning). A seek
   * that comes first wins.
   */
  const initialPositions = async (tps: TopicPartition[]): Promise<void> => {
    const gens = new Map(
      tps.map((tp) => [keyOf(tp.topic, tp.partition), owned.get(keyOf(tp.topic, tp.partition))?.gen]),
    );
    for (let attempt = 0; !stopping; attempt++) {
      try {
        const committed = await committedOffsets(tps);
        const byTopic = new Map<string, Map<number, { low: number; high: number }>>();
        for (const tp of tps) {
          const at = committed.get(keyOf(tp.topic, tp.partition)) ?? -1;
          const own = owned.get(keyOf(tp.topic, tp.partition));
          if (!own || own.gen !== gens.get(own.key) || own.position !== undefined) continue;
          if (at >= 0) {
            own.position = BigInt(at);
            continue;
          }
          let marks = byTopic.get(tp.topic);
          if (!marks) byTopic.set(tp.topic, (marks = await watermarks(tp.topic)));
          const m = marks.get(tp.partition);
          if (!m) throw new Error(`no offsets for ${own.key}`);
          if (own.gen === gens.get(own.key) && own.position === undefined)
            own.position = BigInt(opts.fromBeginning ? m.low : m.high);
        }
        poke();
        return;
      } catch (err) {
        opts.logger.warn({ err: errorMessage(err), attempt }, 'cannot read start offsets; retrying');
        await sleep(Math.min(MAX_BACKOFF_MS, 200 * 2 ** attempt));
      }
    }
  };

  const committedOffsets = async (tps: readonly TopicPartition[]): Promise<Map<string, number>> => {
    const c = consumer;
    if (!c) throw new Error('the Kafka source is not started');
    const by = new Map<string, number[]>();
    for (const tp of tps) by.set(tp.topic, [...(by.get(tp.topic) ?? []), tp.partition]);
    const out = new Map<string, number>();
    if (!by.size) return out;
    const res = await c.listCommittedOffsets({
      topics: [...by].map(([topic, partitions]) => ({ topic, partitions })),
    });
    for (const [topic, parts] of by) {
      const offs = res.get(topic);
      for (const p of parts) {
        const o = offs?.[p];
        out.set(keyOf(topic, p), o === undefined ? -1 : Number(o));
      }
    }
    return out;
  };

  const watermarks = async (topic: string): Promise<Map<number, { low: number; high: number }>> => {
    const c = consumer;
    if (!c) throw new Error('the Kafka source is not started');
    const [low, high] = await Promise.all([
      c.listOffsets({ topics: [topic], timestamp: EARLIEST }),
      c.listOffsets({ topics: [topic], timestamp: LATEST }),
    ]);
    const lows = low.get(topic) ?? [];
    const highs = high.get(topic) ?? [];
    const out = new Map<number, { low: number; high: number }>();
    for (let p = 0; p < lows.length; p++) {
      const l = lows[p];
      const h = highs[p];
      if (l !== undefined && h !== undefined) out.set(p, { low: Number(l), high: Number(h) });
    }
    return out;
  };

  /** One fetch per leader for every owned, positioned, unpaused partition. */
  const fetchOnce = async (c: Consumer, p: ConnectionPool): Promise<Fetched[]> => {
    const ready = [...owned.values()].filter((o) => !o.paused && o.position !== undefined);
    if (!ready.length) return [];
    const metadata = await c.metadata({ topics: opts.topics });
    const byNode = new Map<number, Map<string, Owned[]>>();
    for (const o of ready) {
      const t = metadata.topics.get(o.tp.topic);
      const leader = t?.partitions[o.tp.partition]?.leader;
      if (!t || leader === undefined || leader < 0) continue;
      const topics = byNode.get(leader) ?? new Map<string, Owned[]>();
      byNode.set(leader, topics);
      const list = topics.get(t.id) ?? [];
      topics.set(t.id, list);
      list.push(o);
    }
    const results = await Promise.all(
      [...byNode].map(async ([node, topics]) => {
        const asked = new Map<string, { own: Owned; gen: number; offset: bigint }>();
        const request = [...topics].map(([topicId, list]) => ({
          topicId,
          partitions: list.map((o) => {
            asked.set(o.key, { own: o, gen: o.gen, offset: o.position! });
            return {
              partition: o.tp.partition,
              fetchOffset: o.position!,
              partitionMaxBytes: opts.maxBytesPerPartition,
              currentLeaderEpoch: -1,
              lastFetchedEpoch: -1,
            };
          }),
        }));
        let response: FetchResponse;
        try {
          response = await c.fetch({
            node,
            topics: request,
            maxWaitTime: FETCH_WAIT_MS,
            minBytes: 1,
            maxBytes: opts.maxBytesPerPartition * 8,
            isolationLevel: READ_COMMITTED,
            connectionPool: p,
          });
        } catch (err) {
          // Partition-level errors fail the whole call; the response still holds the other
          // partitions' records, which are taken as usual.
          const r = (err as { response?: FetchResponse }).response;
          if (!r?.responses) throw err;
          response = r;
        }
        const out: Fetched[] = [];
        for (const t of response.responses) {
          const name = [...metadata.topics].find(([, m]) => m.id === t.topicId)?.[0] ?? t.topicId;
          for (const part of t.partitions) {
            const a = asked.get(keyOf(name, part.partitionIndex));
            if (a) out.push({ own: a.own, gen: a.gen, fetchedOffset: a.offset, partition: part });
          }
        }
        return out;
      }),
    );
    return results.flat();
  };

  /** Resets a partition whose position is outside the log, as kafkajs does (fromBeginning). */
  const outOfRange = async (f: Fetched): Promise<void> => {
    const { own, partition } = f;
    let to = opts.fromBeginning ? partition.logStartOffset : partition.highWatermark;
    if (to < 0n) {
      const m = (await watermarks(own.tp.topic)).get(own.tp.partition);
      if (!m) return;
      to = BigInt(opts.fromBeginning ? m.low : m.high);
    }
    if (own.gen !== f.gen || owned.get(own.key) !== own) return;
    opts.logger.warn(
      { ...own.tp, offset: String(f.fetchedOffset), to: String(to) },
      `offset ${f.fetchedOffset} of ${own.key} is out of range; the client goes on from ${to}`,
    );
    own.position = to;
  };

  /** Partitions of the current round whose fetch returned an error code. */
  let partitionErrors = 0;
  const deliver = async (f: Fetched): Promise<void> => {
    const { own, gen, fetchedOffset, partition } = f;
    if (own.gen !== gen || owned.get(own.key) !== own) return;
    if (partition.errorCode === OFFSET_OUT_OF_RANGE) return outOfRange(f);
    if (partition.errorCode !== 0) {
      // A leader moved, a replica is not available, …: the leaders are looked up again and the
      // round ends with a pause (run below), so that the same error is not fetched at once.
      opts.logger.debug(
        { ...own.tp, code: partition.errorCode },
        'fetch error for a partition; fetching again',
      );
      partitionErrors++;
      return;
    }
    const batches = partition.records ?? [];
    if (!batches.length) return;
    const last = batches[batches.length - 1]!;
    const nextOffset = last.firstOffset + BigInt(last.lastOffsetDelta) + 1n;
    if (nextOffset <= fetchedOffset) return;
    const messages = committedMessages(batches, partition.abortedTransactions ?? [], fetchedOffset);
    const isStale = () => own.gen !== gen || owned.get(own.key) !== own || stopping !== undefined;
    if (!messages.length) {
      // Only control records or aborted ones: resolved here, said through onFiltered (the
      // kafkajs adapter does the same for kafkajs' own skip).
      own.position = nextOffset;
      handlers?.onFiltered?.(own.tp, Number(fetchedOffset), Number(nextOffset));
      return;
    }
    const lastMessage = messages[messages.length - 1]!.offset;
    const batch: FetchedBatch = {
      topic: own.tp.topic,
      partition: own.tp.partition,
      messages,
      highWatermark: String(partition.highWatermark),
      fetchedOffset: Number(fetchedOffset),
      nextOffset: Number(nextOffset),
      isStale,
      resolveOffset: (offset) => {
        if (isStale()) return;
        // Resolving the last message resolves what was filtered after it too (as kafkajs).
        const to = offset === lastMessage ? nextOffset : BigInt(offset) + 1n;
        if (own.position === undefined || to > own.position) own.position = to;
      },
    };
    await handlers!.onBatch(batch);
  };

  const run = async (c: Consumer, p: ConnectionPool): Promise<void> => {
    let failures = 0;
    let erring = 0;
    while (!stopping && consumer === c) {
      syncAssignment();
      let fetched: Fetched[];
      try {
        fetched = await fetchOnce(c, p);
        failures = 0;
      } catch (err) {
        if (stopping || consumer !== c) return;
        const fatal = fatalKafkaError(err);
        if (fatal) {
          handlers?.onFatal(fatal);
          return;
        }
        failures++;
        const delay = Math.min(MAX_BACKOFF_MS, 100 * 2 ** Math.min(failures, 6));
        opts.logger.warn(
          { err: errorMessage(err), failures, retryInMs: delay },
          'kafka fetch failed; retrying',
        );
        c.clearMetadata();
        await sleep(delay);
        continue;
      }
      if (!fetched.length) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(done, IDLE_MS);
          function done() {
            clearTimeout(t);
            wake = undefined;
            resolve();
          }
          wake = done;
        });
        continue;
      }
      syncAssignment();
      // One partition at a time, as kafkajs with partitionsConsumedConcurrently 1: the
      // pipeline's onBatch awaits only its own bookkeeping (flushes run outside it).
      partitionErrors = 0;
      for (const f of fetched) {
        if (stopping || consumer !== c) return;
        try {
          await deliver(f);
        } catch (err) {
          handlers?.onFatal(err instanceof Error ? err : new Error(String(err)));
          return;
        }
      }
      if (partitionErrors > 0) {
        erring++;
        c.clearMetadata();
        await sleep(Math.min(MAX_BACKOFF_MS, 100 * 2 ** Math.min(erring, 6)));
      } else {
        erring = 0;
      }
    }
  };

  return {
    async start(h) {
      if (stopping) return;
      handlers = h;
      // A consumer of an earlier attempt that failed half-way.
      if (consumer) {
        const old = consumer;
        consumer = undefined;
        await closeConsumer(old, stream, true);
        stream = undefined;
      }
      const c = newConsumer();
      // Errors of its background work (a heartbeat's rejoin that failed, a connection lost):
      // it retries them itself; an unheard 'error' would end the process.
      c.on('error', (err: Error) =>
        opts.logger.warn({ err: errorMessage(err) }, 'kafka client error (it retries)'),
      );
      consumer = c;
      try {
        await probe(c);
      } catch (err) {
        consumer = undefined;
        await c.close(true).catch(() => undefined);
        throw err;
      }
      if (stopping) return;
      let s: MessagesStream<Buffer, Buffer, Buffer, Buffer>;
      try {
        s = await c.consume({ topics: opts.topics, mode: 'committed', autocommit: false });
      } catch (err) {
        consumer = undefined;
        await c.close(true).catch(() => undefined);
        if (stopping) return;
        throw platformaticStartError(err, brokers);
      }
      // The membership token (see the header): never read, never fetching.
      Object.defineProperty(s, 'readableFlowing', {
        get: () => null,
        set: () => undefined,
        configurable: true,
      });
      s.on('error', (err: Error) => {
        if (stopping || consumer !== c) return;
        handlers?.onFatal(
          new PgsinkError('kafka', `the Kafka consumer lost its group membership: ${err.message}`, {
            code: 'MEMBERSHIP_LOST',
            retriable: false,
            cause: err,
          }),
        );
      });
      stream = s;
      if (stopping) {
        await closeConsumer(c, s, true);
        return;
      }
      for (const ev of ['consumer:group:join', 'consumer:group:rebalance', 'consumer:heartbeat:end'] as const)
        c.on(ev, () =>
          process.nextTick(() => {
            syncAssignment();
            poke();
          }),
        );
      pool = new ConnectionPool(`${opts.clientId}-fetch`, { ...conn });
      const p = pool;
      loop = run(c, p).catch((err: unknown) => {
        if (!stopping) handlers?.onFatal(err instanceof Error ? err : new Error(String(err)));
      });
    },
    pause(tps) {
      for (const tp of tps) {
        const o = owned.get(keyOf(tp.topic, tp.partition));
        if (o) o.paused = true;
      }
    },
    resume(tps) {
      for (const tp of tps) {
        const o = owned.get(keyOf(tp.topic, tp.partition));
        if (o) o.paused = false;
      }
      poke();
    },
    seek(tp, offset) {
      const o = owned.get(keyOf(tp.topic, tp.partition));
      if (!o || stopping) return;
      o.gen++;
      o.position = BigInt(offset);
      poke();
    },
    async commit(tp, offset) {
      const c = consumer;
      if (!c || stopping) throw new Error('the Kafka consumer has left the group; offset not committed');
      await c.commit({
        offsets: [{ topic: tp.topic, partition: tp.partition, offset: BigInt(offset), leaderEpoch: -1 }],
      });
    },
    committedOffsets: (tps) => committedOffsets(tps),
    watermarks: (topic) => watermarks(topic),
    stop() {
      stopping ??= (async () => {
        poke();
        const c = consumer;
        await loop?.catch(() => undefined);
        if (c) await closeConsumer(c, stream, !opts.groupInstanceId || opts.groupProtocol !== 'classic');
        await new Promise<void>((resolve) => (pool ? pool.close(() => resolve()) : resolve()));
      })();
      return stopping;
    },
  };
}

/**
 * The records of a fetch from `from` on, without control batches and without the batches of
 * aborted transactions: a transactional batch of a producer listed as aborted from an offset at
 * or before it, until that producer's control marker.
 */
export function committedMessages(
  batches: readonly RecordsBatch[],
  aborted: ReadonlyArray<{ producerId: bigint; firstOffset: bigint }>,
  from: bigint,
): SourceMessage[] {
  const pending = [...aborted].sort((a, b) =>
    a.firstOffset < b.firstOffset ? -1 : a.firstOffset > b.firstOffset ? 1 : 0,
  );
  const open = new Set<bigint>();
  const out: SourceMessage[] = [];
  for (const b of batches) {
    while (pending.length && pending[0]!.firstOffset <= b.firstOffset) open.add(pending.shift()!.producerId);
    if (b.attributes & IS_CONTROL) {
      open.delete(b.producerId);
      continue;
    }
    if (b.attributes & IS_TRANSACTIONAL && open.has(b.producerId)) continue;
    for (const r of b.records) {
      const offset = b.firstOffset + BigInt(r.offsetDelta);
      if (offset < from) continue;
      out.push({
        key: r.key,
        value: r.value,
        offset: String(offset),
        // Log-append time: the broker's time for every record, in maxTimestamp (as kafkajs).
        timestamp: String(
          b.attributes & TIMESTAMP_TYPE_LOG_APPEND ? b.maxTimestamp : b.firstTimestamp + r.timestampDelta,
        ),
        // The pairs as exact wire bytes too (rawHeadersOf), for dead letters.
        ...(r.headers.length
          ? { headers: headersOf(r.headers), rawHeaders: encodeRawHeaders(r.headers) }
          : {}),
      });
    }
  }
  return out;
}

/** kafkajs' header shape: keys as strings, values as bytes, a repeated key as an array. */
function headersOf(pairs: ReadonlyArray<[Buffer | null, Buffer | null]>): IHeaders {
  const out: IHeaders = {};
  for (const [k, v] of pairs) {
    const key = k ? k.toString() : '';
    const value = v ?? undefined;
    const had = out[key];
    if (had === undefined && !(key in out)) out[key] = value;
    else if (Array.isArray(had)) {
      if (value !== undefined) had.push(value);
    } else out[key] = [had, value].filter((x): x is Buffer | string => x !== undefined);
  }
  return out;
}

/** Brokers, TLS and SASL from the kafkajs-shaped connection settings. */
function connectionOptions(opts: KafkaSourceOptions): {
  tls?: TlsOptions;
  sasl?: { mechanism: 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512'; username: string; password: string };
  connectTimeout: number;
} {
  const c = opts.connection;
  const out: ReturnType<typeof connectionOptions> = { connectTimeout: c.connectionTimeout ?? 10_000 };
  if (c.ssl) out.tls = c.ssl === true ? {} : (c.ssl as TlsOptions);
  if (c.sasl) {
    const s = c.sasl as { mechanism: string; username: string; password: string };
    out.sasl = {
      mechanism: s.mechanism.toUpperCase() as 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512',
      username: s.username,
      password: s.password,
    };
  }
  return out;
}

/** The first Kafka protocol error id in a platformatic error (they nest). */
function protocolCode(err: unknown): string | undefined {
  const seen = new Set<unknown>();
  const walk = (e: unknown): string | undefined => {
    if (!e || typeof e !== 'object' || seen.has(e)) return undefined;
    seen.add(e);
    const o = e as { apiId?: unknown; errors?: unknown[]; cause?: unknown };
    if (typeof o.apiId === 'string') return o.apiId;
    for (const x of o.errors ?? []) {
      const c = walk(x);
      if (c) return c;
    }
    return walk(o.cause);
  };
  return walk(err);
}

const AUTHORIZATION = [
  'TOPIC_AUTHORIZATION_FAILED',
  'GROUP_AUTHORIZATION_FAILED',
  'CLUSTER_AUTHORIZATION_FAILED',
];

/** The innermost message of a platformatic error ("metadata failed 3 times" hides the reason). */
function rootMessage(err: unknown): string {
  let e: unknown = err;
  for (let i = 0; i < 10 && e && typeof e === 'object'; i++) {
    const o = e as { errors?: unknown[]; cause?: unknown };
    const next = o.errors?.[o.errors.length - 1] ?? o.cause;
    if (!next) break;
    e = next;
  }
  return errorMessage(e);
}

function isAuthentication(err: unknown): boolean {
  const seen = new Set<unknown>();
  const walk = (e: unknown): boolean => {
    if (!e || typeof e !== 'object' || seen.has(e)) return false;
    seen.add(e);
    const o = e as { code?: unknown; apiId?: unknown; errors?: unknown[]; cause?: unknown };
    if (o.code === 'PLT_KFK_AUTHENTICATION' || o.apiId === 'SASL_AUTHENTICATION_FAILED') return true;
    return (o.errors ?? []).some(walk) || walk(o.cause);
  };
  return walk(err);
}

/** An error the fetch loop cannot wait out: credentials or ACLs taken away while running. */
function fatalKafkaError(err: unknown): PgsinkError | undefined {
  const code = protocolCode(err);
  if (isAuthentication(err) || (code && AUTHORIZATION.includes(code)))
    return new PgsinkError('kafka', `Kafka refused the consumer: ${errorMessage(err)}`, {
      code: code ?? 'SASL_AUTHENTICATION_FAILED',
      retriable: false,
      cause: err,
    });
  return undefined;
}

/**
 * A start-up failure as a typed error: credentials or ACLs the brokers refuse are a
 * configuration error (exit 2); anything else about reaching the brokers is waited out.
 */
export function platformaticStartError(err: unknown, brokers: readonly string[]): PgsinkError {
  if (err instanceof PgsinkError) return err;
  const where = brokers.join(',');
  const code = protocolCode(err);
  if (isCertificateError(err))
    return new ConfigError(
      `Kafka at ${where}: the TLS certificate does not verify (${rootMessage(err)}). Check kafka.ssl (the CA that signs the brokers' certificates).`,
      err,
    );
  if (isAuthentication(err))
    return new ConfigError(
      `Kafka at ${where} refused the SASL credentials: ${rootMessage(err)}. Check kafka.sasl (mechanism, username, password).`,
      err,
    );
  if (code && AUTHORIZATION.includes(code))
    return new ConfigError(
      `Kafka at ${where} refused access (${code}): ${rootMessage(err)}. Check the ACLs of this user.`,
      err,
    );
  return new PgsinkError('kafka', `cannot reach Kafka at ${where}: ${rootMessage(err)}`, {
    code: code ?? (err as { code?: string }).code ?? 'KAFKA_UNREACHABLE',
    retriable: true,
    cause: err,
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
