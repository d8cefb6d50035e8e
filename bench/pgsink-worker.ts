// One benchmark subject in its own process, so that its CPU and memory are its own.
// bench/run.ts forks it, sends one job over IPC, and receives progress and the result:
//   pgsink  createPipeline, exactly as `pgsink run` runs it
//   naive   baseline A: kafkajs eachMessage → one INSERT → one offset commit per message
//   batch   baseline B: kafkajs eachBatch → multi-row INSERTs in one transaction → commit
//   decode  ceiling C: pgsink's Kafka source, Avro decoder and COPY encoder, rows thrown away
//           (decode: false → ceiling K: the Kafka source alone, messages dropped undecoded)
//   copy    ceiling D: COPY of pre-encoded rows (encoded before the clock starts); with rows
//           'binary', D_binary: the same rows as COPY binary, as Postgres writes them
// After 'done' (or 'results') the worker waits for 'stop', cleans up, says 'stopped', exits.
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import type { Consumer } from 'kafkajs';
import { Kafka, kafkajsDecoder, logLevel } from '../src/kafka/kafkajs.ts';
import pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { parseConfig } from '../src/config/load.ts';
import type { Config } from '../src/config/schema.ts';
import { hideKafkajsTimeoutWarning } from '../src/kafka/quirks.ts';
import type { KafkaSource } from '../src/kafka/source.ts';
import { createPipeline } from '../src/pipeline/app.ts';
import type { SinkObserver } from '../src/pipeline/observer.ts';
import { buildRoutes, useCopyFormat, type RouteRuntime } from '../src/pipeline/routes.ts';
import { BINARY_HEADER, BINARY_TRAILER, naturalWireType, type WireType } from '../src/sink/copy-binary.ts';
import { assertRecordValue, quoteIdent, type RecordMeta } from '../src/sink/columns.ts';
import { RowArena } from '../src/sink/row-arena.ts';
import { createLogger } from '../src/telemetry/logger.ts';
import { benchMessages, benchType } from './data.ts';
import {
  wallNow,
  type AltFetchJob,
  type BatchJob,
  type CopyJob,
  type DecodeJob,
  type FromWorker,
  type Job,
  type NaiveJob,
  type PgsinkJob,
  type RunResult,
  type ToWorker,
} from './protocol.ts';
import { insertSql, MAX_PARAMS, paramWriter, type Param } from './rows.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const logger = createLogger('error');

function send(msg: FromWorker): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send) resolve();
    else process.send(msg, undefined, {}, () => resolve());
  });
}

let onStop: () => Promise<void> = async () => undefined;
let stopping = false;
/** A CopyJob's COPYs start on the parent's 'go'. */
const go = Promise.withResolvers<undefined>();

process.on('message', (msg: ToWorker) => {
  if (msg.type === 'job') {
    runJob(msg.job).catch((err: unknown) => fail(err));
  } else if (msg.type === 'go') {
    go.resolve(undefined);
  } else if (msg.type === 'stop' && !stopping) {
    stopping = true;
    onStop()
      .catch(() => undefined)
      .then(() => send({ type: 'stopped' }))
      .finally(() => process.exit(0));
  }
});
// SIGTERM (the rebalance phase's "a member leaves"): what `pgsink run` does with it, a clean
// stop (drain, commit, leave the group), then 'stopped'.
process.on('SIGTERM', () => {
  if (stopping) return;
  stopping = true;
  onStop()
    .catch(() => undefined)
    .then(() => send({ type: 'stopped' }))
    .finally(() => process.exit(0));
});
// The parent went away: nothing is listening any more.
process.on('disconnect', () => process.exit(1));

function fail(err: unknown): void {
  const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
  void send({ type: 'error', message }).finally(() => process.exit(1));
}

/** Times a run from its first event to its last commit, with the worker's CPU in between. */
class Clock {
  firstAt: number | undefined;
  private cpu0: NodeJS.CpuUsage | undefined;

  first(): void {
    if (this.firstAt !== undefined) return;
    this.firstAt = wallNow();
    this.cpu0 = process.cpuUsage();
    void send({ type: 'first', at: this.firstAt });
  }

  result(events: number, extra?: Record<string, number | string>): RunResult {
    const doneAt = wallNow();
    const firstAt = this.firstAt ?? doneAt;
    const cpu = process.cpuUsage(this.cpu0);
    const seconds = Math.max(1e-6, (doneAt - firstAt) / 1000);
    return {
      events,
      firstAt,
      doneAt,
      seconds,
      eventsPerSec: events / seconds,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      maxRssMiB: process.resourceUsage().maxRSS / 1024,
      ...(extra ? { extra } : {}),
    };
  }
}

/**
 * The route as pgsink runs it. Its COPY format is chosen as at start-up, from the columns'
 * types; the benchmark's tables have the types `pgsink schema plan` gives them, so those are
 * taken without asking the catalog (ceiling C encodes exactly what pgsink would send).
 */
function routeOf(config: Config): RouteRuntime {
  const route = [...buildRoutes(config).values()][0]!;
  const wire = new Map<string, WireType>();
  for (const [i, c] of route.plan.columns.entries()) {
    const w = naturalWireType(route.plan.pgTypes[i]!);
    if (w) wire.set(c, w);
  }
  const fallback = useCopyFormat(route, wire);
  if (fallback) throw new Error(`bench route has no binary plan: ${fallback.join('; ')}`);
  return route;
}

function kafkaConsumer(config: Config, clientId: string): Consumer {
  const kafka = new Kafka({ clientId, brokers: config.kafka.brokers, logLevel: logLevel.NOTHING });
  // The same fetch sizes and wait as pgsink's source (src/kafka/source.ts).
  return kafka.consumer({
    groupId: config.kafka.groupId,
    sessionTimeout: config.kafka.sessionTimeoutMs,
    heartbeatInterval: config.kafka.heartbeatIntervalMs,
    maxBytesPerPartition: config.kafka.maxBytesPerPartition,
    maxBytes: config.kafka.maxBytesPerPartition * 8,
    maxWaitTimeInMs: 100,
  });
}

async function runJob(job: Job): Promise<void> {
  hideKafkajsTimeoutWarning();
  const config = parseConfig(job.config, 'bench', root);
  switch (job.mode) {
    case 'pgsink':
      return runPgsink(job, config);
    case 'naive':
      return runNaive(job, config);
    case 'batch':
      return runBatch(job, config);
    case 'decode':
      return runDecode(job, config);
    case 'alt-fetch':
      return runAltFetch(job, config);
    case 'copy':
      return runCopy(job, config);
  }
}

// ------------------------------------------------------------------ pgsink

async function runPgsink(job: PgsinkJob, config: Config): Promise<void> {
  const clock = new Clock();
  let rows = 0;
  let dead = 0;
  let finished = false;
  const noop = () => undefined;
  const observer: SinkObserver = {
    recordsConsumed: noop,
    flushFailed: noop,
    committed: noop,
    paused: noop,
    resumed: noop,
    lag: noop,
    buffered: noop,
    notice: noop,
    partitionHealth: noop,
    rebalanced: (assigned) => void send({ type: 'assigned', partitions: assigned }),
    flushed: (r) => {
      rows += r.outcome.rowsWritten;
      dead += r.outcome.deadLettered;
      if (job.reportFlushes) {
        void send({
          type: 'flush',
          partition: r.partition,
          first: r.firstOffset,
          last: r.lastOffset,
          rows: r.outcome.rowsWritten,
          at: wallNow(),
        });
      }
      if (!finished && rows + dead >= job.expect) {
        finished = true;
        const expected = job.deadLetters === 'expected';
        const result = clock.result(expected ? rows + dead : rows, {
          rows,
          deadLettered: dead,
          batches: stats.batches,
          avgBatchRows: Math.round(stats.rowsWritten / Math.max(1, stats.batches)),
        });
        if (dead > 0 && !expected)
          fail(new Error(`${dead} events were dead-lettered; the bench data should all be valid`));
        else void send({ type: 'done', result });
      }
    },
  };
  const wrapSource = (inner: KafkaSource): KafkaSource => ({
    ...inner,
    start: (handlers) =>
      inner.start({
        ...handlers,
        onBatch: (b) => {
          if (b.messages.length > 0) clock.first();
          if (!job.reportBatches || b.messages.length === 0) return handlers.onBatch(b);
          const first = Number(b.messages[0]!.offset);
          return handlers.onBatch({
            ...b,
            resolveOffset: (offset) => {
              b.resolveOffset(offset);
              void send({
                type: 'batch',
                partition: b.partition,
                first,
                last: Number(offset),
                at: wallNow(),
              });
            },
          });
        },
      }),
  });
  const { service, stats } = createPipeline(config, { logger, observer, wrapSource });
  const timer =
    job.statsEveryMs > 0
      ? setInterval(() => {
          const mu = process.memoryUsage();
          void send({
            type: 'stats',
            at: wallNow(),
            rows,
            bufferedBytes: service.bufferedBytes,
            paused: service.pausedPartitions.length,
            rssMiB: mu.rss / 1048576,
            heapUsedMiB: mu.heapUsed / 1048576,
            heapTotalMiB: mu.heapTotal / 1048576,
            externalMiB: mu.external / 1048576,
          });
        }, job.statsEveryMs)
      : undefined;
  const watchdog = setInterval(() => {
    if (service.failure) fail(service.failure);
  }, 200);
  onStop = async () => {
    if (timer) clearInterval(timer);
    clearInterval(watchdog);
    await service.stop();
  };
  await service.start();
}

// ------------------------------------------------------------------ baseline A

async function runNaive(job: NaiveJob, config: Config): Promise<void> {
  const route = routeOf(config);
  const client = new pg.Client({ connectionString: config.postgres.url });
  await client.connect();
  const consumer = kafkaConsumer(config, 'bench-naive');
  const write = paramWriter(route.plan.columns);
  const n = route.plan.columns.length;
  const sql = `INSERT INTO ${route.table} (${route.columnList}) VALUES (${Array.from({ length: n }, (_, i) => `$${i + 1}`).join(',')})`;
  const clock = new Clock();
  let count = 0;
  let finished = false;
  onStop = async () => {
    await consumer.disconnect().catch(() => undefined);
    await client.end().catch(() => undefined);
  };
  consumer.on(consumer.events.GROUP_JOIN, () => void send({ type: 'assigned', partitions: -1 }));
  await consumer.connect();
  await consumer.subscribe({ topics: [route.config.topic], fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ topic, partition, message }) => {
      if (finished || !message.value) return;
      clock.first();
      await route.decoder.prepare([message.value]);
      const record = assertRecordValue(route.decoder.decode(message.value));
      const meta: RecordMeta = {
        topic,
        partition,
        offset: Number(message.offset),
        timestamp: message.timestamp,
        key: message.key,
      };
      const params: Param[] = [];
      write(record, meta, params);
      await client.query(sql, params);
      await consumer.commitOffsets([{ topic, partition, offset: String(Number(message.offset) + 1) }]);
      count++;
      if (count >= job.events || wallNow() - clock.firstAt! > job.maxSeconds * 1000) {
        finished = true;
        consumer.pause([{ topic }]);
        void send({ type: 'done', result: clock.result(count) });
      }
    },
  });
}

// ------------------------------------------------------------------ baseline B

async function runBatch(job: BatchJob, config: Config): Promise<void> {
  const route = routeOf(config);
  const pool = new pg.Pool({ connectionString: config.postgres.url, max: job.concurrency });
  const consumer = kafkaConsumer(config, 'bench-batch');
  const write = paramWriter(route.plan.columns);
  const ncols = route.plan.columns.length;
  const rowsPerStatement = Math.floor(MAX_PARAMS / ncols);
  const sqlFor = insertSql(route.table, route.columnList, ncols);
  const clock = new Clock();
  let count = 0;
  let statements = 0;
  let batches = 0;
  let finished = false;
  onStop = async () => {
    await consumer.disconnect().catch(() => undefined);
    await pool.end().catch(() => undefined);
  };
  consumer.on(consumer.events.GROUP_JOIN, () => void send({ type: 'assigned', partitions: -1 }));
  await consumer.connect();
  await consumer.subscribe({ topics: [route.config.topic], fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    partitionsConsumedConcurrently: job.concurrency,
    eachBatch: async ({ batch, resolveOffset, heartbeat }) => {
      const msgs = batch.messages;
      if (finished || msgs.length === 0) return;
      clock.first();
      await route.decoder.prepare(msgs.map((m) => m.value));
      const chunks: Param[][] = [];
      let params: Param[] = [];
      let rows = 0;
      for (const m of msgs) {
        const record = assertRecordValue(route.decoder.decode(m.value!));
        write(
          record,
          {
            topic: batch.topic,
            partition: batch.partition,
            offset: Number(m.offset),
            timestamp: m.timestamp,
            key: m.key,
          },
          params,
        );
        if (++rows === rowsPerStatement) {
          chunks.push(params);
          params = [];
          rows = 0;
        }
      }
      if (rows > 0) chunks.push(params);
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        for (const p of chunks) await client.query(sqlFor(p.length / ncols), p);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
      statements += chunks.length;
      batches++;
      const last = msgs[msgs.length - 1]!.offset;
      resolveOffset(last);
      await consumer.commitOffsets([
        { topic: batch.topic, partition: batch.partition, offset: String(Number(last) + 1) },
      ]);
      count += msgs.length;
      if (!finished && count >= job.expect) {
        finished = true;
        void send({
          type: 'done',
          result: clock.result(count, { batches, statements, avgBatchRows: Math.round(count / batches) }),
        });
      }
      await heartbeat();
    },
  });
}

// ------------------------------------------------------------------ ceiling C

async function runDecode(job: DecodeJob, config: Config): Promise<void> {
  const route = routeOf(config);
  const { decoder, plan } = route;
  const binary = route.format === 'binary' ? route.binary : undefined;
  const direct = binary ? route.directBinary : route.direct;
  // Lines (or tuples) go to an arena as in pgsink; its chunks are dropped as they fill.
  const arena = new RowArena();
  // pgsink's own Kafka source, built by createPipeline exactly as for a real run; the
  // pipeline itself is never started (its pool never connects).
  let source: KafkaSource | undefined;
  const pipelineForSource = createPipeline(config, {
    logger,
    wrapSource: (s) => {
      source = s;
      return s;
    },
  });
  if (!source) throw new Error('createPipeline did not pass its Kafka source to wrapSource');
  const kafka: KafkaSource = source;
  const clock = new Clock();
  let count = 0;
  let chars = 0;
  let finished = false;
  onStop = async () => {
    await kafka.stop();
    await pipelineForSource.pool.end();
  };
  await kafka.start({
    onAssignment: (c) =>
      void send({
        type: 'assigned',
        partitions: c.kind === 'full' ? c.partitions.length : c.assigned.length,
      }),
    onFatal: (err) => fail(err),
    // The benchmark's own data is never unreadable; if it were, the counts would be wrong.
    onUnreadable: (_tp, err) => fail(err),
    onBatch: async (b) => {
      const msgs = b.messages;
      if (finished || msgs.length === 0) return;
      clock.first();
      if (job.decode) await decoder.prepare(msgs.map((m) => m.value));
      const meta: RecordMeta = {
        topic: b.topic,
        partition: b.partition,
        offset: 0,
        timestamp: '0',
        key: null,
      };
      for (const m of job.decode ? msgs : []) {
        meta.offset = Number(m.offset);
        meta.timestamp = m.timestamp;
        meta.key = m.key;
        const value = m.value!;
        // As SinkService.decodeAll: the direct path for bodies written with the reader schema.
        if (direct && decoder.writtenWithReader(value)) {
          const chunk = arena.reserve(direct.maxBytes(value, m.key));
          const start = arena.position;
          const end = direct.encode(value, chunk, start, meta);
          arena.advanceTo(end);
          chars += end - start;
        } else if (binary) {
          const tuple = binary.encode(assertRecordValue(decoder.decode(value)), meta);
          arena.reserve(tuple.length);
          arena.writeBytes(tuple);
          chars += tuple.length;
        } else {
          const line = plan.encode(assertRecordValue(decoder.decode(value)), meta);
          arena.reserve(line.length * 3);
          const start = arena.writeText(line);
          chars += arena.position - start;
        }
      }
      b.resolveOffset(msgs[msgs.length - 1]!.offset);
      count += msgs.length;
      if (count >= job.expect) {
        finished = true;
        void send({
          type: 'done',
          result: clock.result(count, {
            copyBytesPerRow: Math.round(chars / count),
            kafkajsDecoder,
          }),
        });
      }
    },
  });
}

// ------------------------------------------------------------------ K′ (alternative client)

/** The slice of @confluentinc/kafka-javascript's KafkaJS-compatible API used here. */
interface AltConsumer {
  connect(): Promise<void>;
  subscribe(s: { topics: string[] }): Promise<void>;
  run(r: {
    eachBatchAutoResolve: boolean;
    eachBatch(p: {
      batch: { partition: number; messages: Array<{ offset: string }> };
      resolveOffset(offset: string): void;
    }): Promise<void>;
  }): Promise<void>;
  disconnect(): Promise<void>;
}

interface AltKafkaJs {
  Kafka: new (c: { kafkaJS: Record<string, unknown> }) => {
    consumer(c: Record<string, unknown>): AltConsumer;
  };
  logLevel: { ERROR: number };
}

async function runAltFetch(job: AltFetchJob, config: Config): Promise<void> {
  const require = createRequire(join(job.dir, 'package.json'));
  const { Kafka, logLevel: altLogLevel } = (
    require('@confluentinc/kafka-javascript') as { KafkaJS: AltKafkaJs }
  ).KafkaJS;
  // The same fetch sizes and wait as pgsink's source. js.consumer.max.batch.size: 1000 (the
  // default, 32, was as fast; no cap was about 10 % faster but held over 1 GB).
  const consumer = new Kafka({
    kafkaJS: { brokers: config.kafka.brokers, clientId: 'pgsink-bench-alt', logLevel: altLogLevel.ERROR },
  }).consumer({
    kafkaJS: {
      groupId: config.kafka.groupId,
      fromBeginning: true,
      autoCommit: false,
      maxBytesPerPartition: config.kafka.maxBytesPerPartition,
      maxBytes: config.kafka.maxBytesPerPartition * 8,
      maxWaitTimeInMs: 100,
    },
    'js.consumer.max.batch.size': 1000,
  });
  const clock = new Clock();
  let count = 0;
  let finished = false;
  onStop = () => consumer.disconnect();
  await consumer.connect();
  await consumer.subscribe({ topics: [config.routes[0]!.topic] });
  await consumer.run({
    eachBatchAutoResolve: false,
    eachBatch: async (p) => {
      const msgs = p.batch.messages;
      if (finished || msgs.length === 0) return;
      clock.first();
      p.resolveOffset(msgs[msgs.length - 1]!.offset);
      count += msgs.length;
      if (count >= job.expect) {
        finished = true;
        void send({ type: 'done', result: clock.result(count) });
      }
    },
  });
}

// ------------------------------------------------------------------ ceiling D

const CHUNK_CHARS = 256 * 1024;

/** The COPY input of one batch, in chunks of about 256 KiB like pgsink's. */
function toChunks(lines: string[]): Buffer[] {
  const out: Buffer[] = [];
  let parts: string[] = [];
  let size = 0;
  for (const l of lines) {
    parts.push(l);
    size += l.length;
    if (size >= CHUNK_CHARS) {
      out.push(Buffer.from(parts.join('')));
      parts = [];
      size = 0;
    }
  }
  if (parts.length) out.push(Buffer.from(parts.join('')));
  return out;
}

/** Batches taken from each partition in turn, as pgsink's flushes interleave them. */
function interleave(perPartition: Buffer[][][]): Buffer[][] {
  const batches: Buffer[][] = [];
  for (let i = 0; perPartition.some((b) => i < b.length); i++) {
    for (const b of perPartition) if (i < b.length) batches.push(b[i]!);
  }
  return batches;
}

/** D's rows: partition p's in offset order, encoded by pgsink's COPY text encoder, cut into batches. */
async function textBatches(job: CopyJob, route: RouteRuntime): Promise<Buffer[][]> {
  const type = benchType();
  const perPartition: Buffer[][][] = Array.from({ length: job.partitions }, () => []);
  const pending: string[][] = Array.from({ length: job.partitions }, () => []);
  let prepared = false;
  const meta: RecordMeta = { topic: route.config.topic, partition: 0, offset: 0, timestamp: '0', key: null };
  for (const m of benchMessages(type, 0, job.events, job.partitions)) {
    if (!prepared) {
      await route.decoder.prepare([m.value]);
      prepared = true;
    }
    meta.partition = m.partition;
    meta.offset = Math.floor(m.index / job.partitions);
    meta.key = Buffer.from(m.key);
    const lines = pending[m.partition]!;
    lines.push(route.plan.encode(assertRecordValue(route.decoder.decode(m.value)), meta));
    if (lines.length === job.batchRows) {
      perPartition[m.partition]!.push(toChunks(lines));
      pending[m.partition] = [];
    }
  }
  pending.forEach((lines, p) => {
    if (lines.length) perPartition[p]!.push(toChunks(lines));
  });
  return interleave(perPartition);
}

// COPY binary framing (PostgreSQL's COPY page, "Binary Format"): the 11-byte signature, an
// int32 of flags (bit 16: OIDs included) and an int32 header extension length before the
// tuples; an int16 -1 after them.
const BINARY_SIGNATURE = BINARY_HEADER.subarray(0, 11);

/** The tuples of one COPY … TO STDOUT (FORMAT binary) output: its header and trailer cut off. */
function binaryTuples(out: Buffer): Buffer {
  if (out.length < BINARY_HEADER.length + 2 || !out.subarray(0, 11).equals(BINARY_SIGNATURE))
    throw new Error('COPY TO (FORMAT binary) output does not start with the PGCOPY signature');
  if (out.readInt32BE(11) !== 0) throw new Error('COPY TO (FORMAT binary) output has flags set (OIDs?)');
  const start = BINARY_HEADER.length + out.readInt32BE(15);
  if (out.readInt16BE(out.length - 2) !== -1)
    throw new Error('COPY TO (FORMAT binary) output does not end with the -1 trailer');
  return out.subarray(start, out.length - 2);
}

/**
 * Cuts tuples into batches of batchRows, each as its COPY input: the header, the tuples in
 * chunks of about 256 KiB (as D's text), the trailer. A tuple is an int16 field count, then per
 * field an int32 length (-1: NULL) and that many bytes.
 */
function binaryBatchesOf(
  tuples: Buffer,
  batchRows: number,
  columns: number,
): { batches: Buffer[][]; rows: number } {
  const batches: Buffer[][] = [];
  const cut = (from: number, to: number) => {
    const chunks: Buffer[] = [BINARY_HEADER];
    for (let at = from; at < to; at += CHUNK_CHARS)
      chunks.push(tuples.subarray(at, Math.min(to, at + CHUNK_CHARS)));
    chunks.push(BINARY_TRAILER);
    batches.push(chunks);
  };
  let rows = 0;
  let batchStart = 0;
  let pos = 0;
  while (pos < tuples.length) {
    const fields = tuples.readInt16BE(pos);
    if (fields !== columns)
      throw new Error(`COPY binary tuple at byte ${pos} has ${fields} fields, not ${columns}`);
    pos += 2;
    for (let f = 0; f < fields; f++) {
      const len = tuples.readInt32BE(pos);
      pos += 4 + Math.max(0, len);
    }
    if (++rows % batchRows === 0) {
      cut(batchStart, pos);
      batchStart = pos;
    }
  }
  if (pos !== tuples.length) throw new Error('COPY binary output ends inside a tuple');
  if (batchStart < pos) cut(batchStart, pos);
  return { batches, rows };
}

/**
 * D_binary's rows: the very rows D wrote, read back from `from` one partition at a time in offset
 * order, written by Postgres itself as COPY binary (so the bench needs no binary encoder of its
 * own), cut into the same batches as D's.
 */
async function binaryBatches(
  job: CopyJob,
  route: RouteRuntime,
  client: pg.Client,
  from: string,
): Promise<Buffer[][]> {
  const { partition, offset } = route.config.metadata;
  if (!partition || !offset) throw new Error('D_binary needs the partition and offset metadata columns');
  const perPartition: Buffer[][][] = [];
  let rows = 0;
  for (let p = 0; p < job.partitions; p++) {
    const parts: Buffer[] = [];
    const sql = `COPY (SELECT ${route.columnList} FROM ${from} WHERE ${quoteIdent(partition)} = ${p} ORDER BY ${quoteIdent(offset)}) TO STDOUT (FORMAT binary)`;
    for await (const chunk of client.query(copyTo(sql))) parts.push(chunk as Buffer);
    const cut = binaryBatchesOf(binaryTuples(Buffer.concat(parts)), job.batchRows, route.plan.columns.length);
    perPartition.push(cut.batches);
    rows += cut.rows;
  }
  if (rows !== job.events)
    throw new Error(`D_binary read ${rows} rows back from ${from}, expected ${job.events}`);
  return interleave(perPartition);
}

async function runCopy(job: CopyJob, config: Config): Promise<void> {
  const route = routeOf(config);
  const clients = await Promise.all(
    Array.from({ length: job.concurrency }, async () => {
      const c = new pg.Client({ connectionString: config.postgres.url });
      await c.connect();
      return c;
    }),
  );
  onStop = async () => {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  };
  // Prepared before any clock starts (and before 'prepared', so the parent's reading of Postgres'
  // CPU leaves out D_binary's COPY TO): partition p's rows in offset order, cut into batches of
  // batchRows, then interleaved across partitions as pgsink's flushes are.
  const batches =
    job.rows.format === 'binary'
      ? await binaryBatches(job, route, clients[0]!, job.rows.from)
      : await textBatches(job, route);
  const options = job.rows.format === 'binary' ? ' (FORMAT binary)' : '';
  await send({ type: 'prepared' });
  await go.promise;

  const results: RunResult[] = [];
  for (const table of job.tables) {
    const clock = new Clock();
    clock.first();
    let next = 0;
    await Promise.all(
      clients.map(async (c) => {
        while (next < batches.length) {
          const chunks = batches[next++]!;
          await c.query('BEGIN');
          await pipeline(
            Readable.from(chunks),
            c.query(copyFrom(`COPY ${table} (${route.columnList}) FROM STDIN${options}`)),
          );
          await c.query('COMMIT');
        }
      }),
    );
    results.push(clock.result(job.events, { batches: batches.length, format: job.rows.format }));
  }
  await send({ type: 'results', results });
}
