// `make bench`: pgsink against its baselines on the same data, in the same run.
//
//   node bench/run.ts [--quick] [--events N] [--partitions P] [--reps R] [--out file.json] …
//
// Produces N events (schemas/bench-orders.avsc, ~225 B of Avro each) into a fresh topic,
// then measures, each subject in its own child process (bench/pgsink-worker.ts):
//   pgsink  end to end, first fetch → last row committed, checked with count(*)
//   A       kafkajs eachMessage, one INSERT and one offset commit per message (a subset,
//           extrapolated)
//   B       kafkajs eachBatch, one multi-row INSERT transaction per fetched batch, then commit
//   C       consume + decode + COPY-encode with pgsink's own code, rows thrown away
//   K       consume only: pgsink's Kafka source (kafkajs), messages dropped undecoded
//   K₀      the same with kafkajs' own record batch decoder instead of pgsink's
//   K′      (--alt-client) the same with @confluentinc/kafka-javascript, the librdkafka client
//   D       COPY of pre-encoded rows in pgsink's batch size and concurrency
//   D_binary the same rows as COPY binary (written by Postgres from D's table), the same way
// plus Postgres' CPU per row under D, D_binary and pgsink, the one-box bounds (C's and D's, or
// D_binary's, CPU per event added up on this machine's cores),
// produce→commit latency at half the measured maximum (open loop, after a CHECKPOINT), peak
// RSS and CPU seconds of pgsink, postgres and the Kafka broker, and peak RSS while the target
// table is locked and producers keep going (backpressure). Prints one table; writes the same
// as JSON. Every subject but K₀ runs kafkajs with pgsink's record batch decoder.
// KAFKA_BROKERS / DATABASE_URL choose the servers; else the project's stack is started.
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Producer } from 'kafkajs';
import { Admin as PlatformaticAdmin } from '@platformatic/kafka';
import { Kafka, logLevel, Partitioners } from '../src/kafka/kafkajs.ts';
import pg from 'pg';
import { type ConfigInput, type RouteConfig } from '../src/config/schema.ts';
import { hideKafkajsTimeoutWarning } from '../src/kafka/quirks.ts';
import { createTopicAndWait } from '../src/kafka/topics.ts';
import { buildColumnPlan, quoteIdent, quoteQualified } from '../src/sink/columns.ts';
import { createTableSql } from '../src/sink/ddl.ts';
import { benchMessages, benchRoute, benchRouteConfig, benchType } from './data.ts';
import { cmdlineOf, cpuSeconds, cpuSecondsOfAll, listeningPid, machineInfo, memoryOf } from './proc.ts';
import { formatProfile, summariseProfile, type ProfileSummary } from './profile.ts';
import {
  wallNow,
  type CopyJob,
  type FromWorker,
  type Job,
  type RunResult,
  type ToWorker,
} from './protocol.ts';
import { produceAll } from '../src/cli/produce.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const WORKER = fileURLToPath(new URL('./pgsink-worker.ts', import.meta.url));
const MiB = 1024 * 1024;

// ------------------------------------------------------------------ options

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    events: { type: 'string' },
    partitions: { type: 'string' },
    reps: { type: 'string' },
    'naive-events': { type: 'string' },
    'latency-seconds': { type: 'string' },
    'latency-rate': { type: 'string' },
    'stall-events': { type: 'string' },
    'half-bad-events': { type: 'string' },
    'max-rows': { type: 'string' },
    'linger-ms': { type: 'string' },
    concurrency: { type: 'string' },
    out: { type: 'string' },
    'cpu-prof': { type: 'boolean', default: false },
    'alt-client': { type: 'boolean', default: false },
    // No default: unset means "on in a full run, where pgsink knows routes[].copyFormat".
    'text-copy-row': { type: 'boolean' },
    'adaptive-row': { type: 'boolean' },
    'node-flags': { type: 'string' },
    'stall-node-flags': { type: 'string' },
    'max-total-mib': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
  allowNegative: true,
});

if (args.help) {
  process.stdout.write(`usage: node bench/run.ts [options]   (make bench ARGS="…")
  --quick                 smoke run: 20k events, 1 rep, short latency and stall phases
  --events N              events in the main topic (1000000; quick 20000)
  --partitions P          partitions of every bench topic (6)
  --reps R                runs of pgsink, B, C and D; the median is reported (3; quick 1)
  --naive-events N        events baseline A writes before it is extrapolated (20000; quick 500)
  --latency-seconds S     length of the open-loop latency phase (15; quick 2)
  --latency-rate N        events/s of the latency phase instead of half the measured maximum
  --stall-events N        events produced while the target table is locked (300000; quick 10000)
  --half-bad-events N     events of the "half bad" phase, every other one refused by a CHECK (40000; quick 10000)
  --max-rows N            pgsink batch.maxRows (10000)
  --linger-ms N           pgsink batch.lingerMs (200)
  --concurrency N         pgsink backpressure.maxConcurrentFlushes, also B's and D's (3)
  --out FILE              JSON results (bench/results/latest.json)
  --max-total-mib N       pgsink backpressure.maxTotalBytes in MiB (32, the default); per partition a
                          quarter of it (at most 16), per batch at most 8
  --node-flags="…"        Node flags of the measured processes (as deployed:
                          "--max-old-space-size=160 --max-semi-space-size=8"; "" for V8's defaults)
  --stall-node-flags="…"  Node flags of pgsink in the stalled-Postgres phase (as deployed)
  --cpu-prof              one more pgsink run under node --cpu-prof, summarised at the end
  --alt-client            also K′: @confluentinc/kafka-javascript (librdkafka, KafkaJS-compatible API)
                          consuming alone, side by side with K; bench/alt-client/build.sh builds it
                          from source into .cache/alt-client first (about 2 min; needs apt for -dev libs)
  --[no-]text-copy-row    also a pgsink run per rep with routes[].copyFormat: text (default: on in a full
                          run, off with --quick)
  --[no-]adaptive-row     also a pgsink run per rep and a second latency phase with batch.adaptiveRows
                          (default: on in a full run, off with --quick)
`);
  process.exit(0);
}

function intArg(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value.replace(/_/g, ''));
  if (!Number.isInteger(n) || n <= 0) {
    process.stderr.write(`bench: --${name} must be a positive integer, got ${JSON.stringify(value)}\n`);
    process.exit(2);
  }
  return n;
}

const QUICK = args.quick;
const EVENTS = intArg('events', args.events, QUICK ? 20_000 : 1_000_000);
const PARTITIONS = intArg('partitions', args.partitions, 6);
const REPS = intArg('reps', args.reps, QUICK ? 1 : 3);
const NAIVE_EVENTS = Math.min(EVENTS, intArg('naive-events', args['naive-events'], QUICK ? 500 : 20_000));
const NAIVE_MAX_SECONDS = QUICK ? 10 : 60;
const LATENCY_SECONDS = intArg('latency-seconds', args['latency-seconds'], QUICK ? 2 : 15);
const LATENCY_WARMUP_MS = Math.min(QUICK ? 250 : 1_000, LATENCY_SECONDS * 250);
/** The quick run only checks that the phase works; its rate is capped to keep it short. */
const QUICK_LATENCY_RATE_CAP = 10_000;
const STALL_EVENTS = intArg('stall-events', args['stall-events'], QUICK ? 10_000 : 300_000);
const HALF_BAD_EVENTS = intArg('half-bad-events', args['half-bad-events'], QUICK ? 10_000 : 40_000);
const MAX_ROWS = intArg('max-rows', args['max-rows'], 10_000);
const LINGER_MS = intArg('linger-ms', args['linger-ms'], 200);
const CONCURRENCY = intArg('concurrency', args.concurrency, 3);
// As deploy/k8s/base/deployment.yaml runs pgsink (NODE_OPTIONS).
const DEPLOYED_NODE_FLAGS = '--max-old-space-size=160 --max-semi-space-size=8';
const MAX_TOTAL_BYTES = intArg('max-total-mib', args['max-total-mib'], 32) * MiB;
const MAX_PARTITION_BYTES = Math.min(16 * MiB, Math.floor(MAX_TOTAL_BYTES / 4));
const BATCH_MAX_BYTES = Math.min(8 * MiB, MAX_PARTITION_BYTES);
const OUT = resolve(args.out ?? join(root, 'bench/results/latest.json'));
const RSS_TARGET_MIB = 256;
const flags = (v: string) => v.split(/\s+/).filter(Boolean);
/** The measured processes run with V8's defaults: throughput is measured whatever memory it takes. */
const NODE_FLAGS = flags(args['node-flags'] ?? DEPLOYED_NODE_FLAGS);
/** The stall phase is the memory test: pgsink runs with its deployed heap cap there. */
const STALL_NODE_FLAGS = flags(args['stall-node-flags'] ?? DEPLOYED_NODE_FLAGS);

/** routes[].copyFormat: 'auto' (binary where every column has a binary encoder) or 'text'. */
type CopyFormat = RouteConfig['copyFormat'];
/** The extra "pgsink (text COPY)" run: text COPY side by side with pgsink's default format. */
const TEXT_COPY_ROW = args['text-copy-row'] ?? !QUICK;
/** The extra runs with batch.adaptiveRows: throughput per rep, and the latency phase again. */
const ADAPTIVE_ROW = args['adaptive-row'] ?? !QUICK;

const out = (s = '') => process.stdout.write(`${s}\n`);
const note = (s: string) => process.stderr.write(`bench: ${s}\n`);
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;

// ------------------------------------------------------------------ where to run

/**
 * The servers: KAFKA_BROKERS / DATABASE_URL, else the project's stack. The broker gets a state
 * dir of its own (.stack/bench-kafka-<pid>) and is transient: stack/kafka.sh reuses this
 * project's broker of the same version when one is on KAFKA_PORT (19092), else starts one,
 * on free ports when that port is taken, and prints the address. stop() stops what this run
 * started (a broker, a private Postgres cluster) and leaves what it reused.
 */
class StackError extends Error {}

/** Runs a stack script; its own message (on stderr, inherited) says what to fix. */
function stackScript(script: string, args: string[], env: NodeJS.ProcessEnv = process.env): string {
  try {
    return execFileSync(`${root}stack/${script}`, args, {
      env,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    }).trim();
  } catch {
    throw new StackError(`stack/${script} ${args.join(' ')} failed (its message is above)`);
  }
}

function stack(): { brokers: string[]; databaseUrl: string; stop(): void } {
  const stops: Array<() => void> = [];
  let brokers = process.env['KAFKA_BROKERS'];
  if (!brokers) {
    const env = {
      ...process.env,
      KAFKA_STACK_DIR: join(root, '.stack', `bench-kafka-${process.pid}`),
      KAFKA_TRANSIENT: '1',
    };
    brokers = stackScript('kafka.sh', ['start'], env);
    stops.push(() => {
      stackScript('kafka.sh', ['stop'], env);
      rmSync(env.KAFKA_STACK_DIR, { recursive: true, force: true });
    });
  }
  let databaseUrl = process.env['DATABASE_URL'];
  if (!databaseUrl) {
    const pgOwned = () => {
      try {
        execFileSync(`${root}stack/postgres.sh`, ['owned'], { stdio: 'ignore' });
        return true;
      } catch {
        return false;
      }
    };
    const ownedBefore = pgOwned();
    try {
      databaseUrl = stackScript('postgres.sh', ['url']);
    } catch (err) {
      for (const s of stops) s();
      throw err;
    }
    if (!ownedBefore && pgOwned()) stops.push(() => stackScript('postgres.sh', ['stop']));
  }
  let stopped = false;
  return {
    brokers: brokers.split(',').map((b) => b.trim()),
    databaseUrl,
    stop: () => {
      if (stopped) return;
      stopped = true;
      for (const s of stops.reverse()) {
        try {
          s();
        } catch (err) {
          note(`could not stop the stack: ${(err as Error).message.split('\n')[0]}`);
        }
      }
    },
  };
}

const isLocal = (host: string) => ['127.0.0.1', 'localhost', '::1', '[::1]', ''].includes(host);

// ------------------------------------------------------------------ workers

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

class Worker {
  readonly child: ChildProcess;
  readonly pid: number;
  private readonly seen = new Map<string, FromWorker>();
  private readonly waiters: Array<{
    type: string;
    resolve: (m: FromWorker) => void;
    reject: (e: Error) => void;
  }> = [];
  private failed: Error | undefined;
  readonly exited: Promise<number | null>;

  constructor(
    job: Job,
    onMessage?: (m: FromWorker) => void,
    execArgv: string[] = NODE_FLAGS,
    // The same Kafka client for every subject: kafkajs with pgsink's record batch decoder
    // (K₀ alone asks for kafkajs' own), whatever the caller's environment says.
    env: NodeJS.ProcessEnv = { ...process.env, PGSINK_KAFKAJS_DECODER: 'fast' },
  ) {
    this.child = fork(WORKER, [], {
      cwd: root,
      execArgv,
      env,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.pid = this.child.pid!;
    live.add(this.child);
    this.exited = new Promise((res) =>
      this.child.on('exit', (code, signal) => {
        live.delete(this.child);
        if (!this.seen.has('stopped')) {
          const how = signal ? `signal ${signal}` : `code ${code}`;
          const hint = signal === 'SIGABRT' ? ': V8 out of heap? (its last GCs are printed above)' : '';
          this.fail(new Error(`${job.mode} worker exited (${how}) before it was stopped${hint}`));
        }
        res(code);
      }),
    );
    this.child.on('message', (m: FromWorker) => {
      if (m.type === 'error') {
        this.fail(new Error(`${job.mode} worker failed: ${m.message}`));
        return;
      }
      this.seen.set(m.type, m);
      onMessage?.(m);
      for (const w of this.waiters.filter((x) => x.type === m.type)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(m);
      }
    });
    this.child.send({ type: 'job', job });
  }

  private fail(err: Error): void {
    this.failed ??= err;
    for (const w of this.waiters.splice(0)) w.reject(this.failed);
  }

  waitFor<T extends FromWorker['type']>(
    type: T,
    timeoutMs: number,
  ): Promise<Extract<FromWorker, { type: T }>> {
    const have = this.seen.get(type);
    if (have) return Promise.resolve(have as Extract<FromWorker, { type: T }>);
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((res, rej) => {
      const t = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(entry), 1);
        rej(
          new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for the worker's '${type}'`),
        );
      }, timeoutMs);
      const entry = {
        type,
        resolve: (m: FromWorker) => {
          clearTimeout(t);
          res(m as Extract<FromWorker, { type: T }>);
        },
        reject: (e: Error) => {
          clearTimeout(t);
          rej(e);
        },
      };
      this.waiters.push(entry);
    });
  }

  send(msg: ToWorker): void {
    this.child.send(msg);
  }

  /** Asks the worker to clean up and exit; kills it after 30 s. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.send({ type: 'stop' });
    const killer = setTimeout(() => this.child.kill('SIGKILL'), 30_000);
    await this.exited;
    clearTimeout(killer);
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }
}

/** Runs a worker until `type`, then stops it, whatever happens. */
async function withWorker<T>(worker: Worker, body: (w: Worker) => Promise<T>): Promise<T> {
  try {
    const r = await body(worker);
    await worker.stop();
    return r;
  } catch (err) {
    worker.kill();
    await worker.exited;
    throw err;
  }
}

// ------------------------------------------------------------------ the run

interface Ctx {
  brokers: string[];
  databaseUrl: string;
  kafka: Kafka;
  db: pg.Pool;
  runId: string;
  pgSchema: string;
  topic: string;
  topics: string[];
  groups: string[];
  brokerPid: number | undefined;
  postgresLocal: boolean;
}

function phaseTimeoutMs(events: number): number {
  return 120_000 + (events / 2_000) * 1000;
}

/** The Kafka client under pgsink's source (kafka.client) and its group protocol. */
interface ClientSpec {
  client: 'kafkajs' | 'platformatic';
  groupProtocol: 'classic' | 'consumer';
}
const KAFKAJS: ClientSpec = { client: 'kafkajs', groupProtocol: 'classic' };
const PLATFORMATIC: ClientSpec = { client: 'platformatic', groupProtocol: 'classic' };
const PLATFORMATIC_848: ClientSpec = { client: 'platformatic', groupProtocol: 'consumer' };
const specName = (s: ClientSpec): string =>
  s.client === 'kafkajs'
    ? 'kafkajs (eager)'
    : s.groupProtocol === 'consumer'
      ? 'platformatic (KIP-848)'
      : 'platformatic (cooperative)';
const specKey = (s: ClientSpec): string =>
  s.client === 'kafkajs'
    ? 'kafkajs'
    : s.groupProtocol === 'consumer'
      ? 'platformatic-kip848'
      : 'platformatic';

function pgsinkConfig(
  c: Ctx,
  topic: string,
  table: string,
  groupId: string,
  spec: ClientSpec = KAFKAJS,
  copyFormat?: CopyFormat,
  adaptiveRows = false,
): ConfigInput {
  // routes[].copyFormat only when asked for: the config schema is strict, and a pgsink without
  // the setting refuses to start on a key it does not know.
  const route =
    copyFormat === undefined ? benchRoute(topic, table) : { ...benchRoute(topic, table), copyFormat };
  return {
    kafka: {
      brokers: c.brokers,
      groupId,
      client: spec.client,
      groupProtocol: spec.groupProtocol,
      clientId: 'pgsink-bench',
      sessionTimeoutMs: 10_000,
      heartbeatIntervalMs: 1_000,
    },
    postgres: { url: c.databaseUrl, schema: c.pgSchema },
    batch: {
      maxRows: MAX_ROWS,
      maxBytes: BATCH_MAX_BYTES,
      lingerMs: LINGER_MS,
      ...(adaptiveRows ? { adaptiveRows } : {}),
    },
    backpressure: {
      maxPartitionBytes: MAX_PARTITION_BYTES,
      maxTotalBytes: MAX_TOTAL_BYTES,
      maxConcurrentFlushes: CONCURRENCY,
    },
    shutdown: { deadlineMs: 20_000 },
    log: { level: 'error' },
    routes: [route],
  };
}

async function createTable(c: Ctx, name: string): Promise<{ table: string; quoted: string }> {
  const table = `${c.pgSchema}.${name}`;
  const plan = buildColumnPlan(benchType(), benchRouteConfig('unused', table));
  await c.db.query(createTableSql(table, plan.columns, plan.pgTypes));
  return { table, quoted: quoteQualified(table) };
}

async function countAndDrop(
  c: Ctx,
  quoted: string,
  expect: number,
  what: string,
  drop = true,
): Promise<void> {
  const { rows } = await c.db.query<{ n: string }>(`SELECT count(*) AS n FROM ${quoted}`);
  const n = Number(rows[0]!.n);
  if (drop) await c.db.query(`DROP TABLE ${quoted}`);
  if (n !== expect) throw new Error(`${what}: ${fmt(n)} rows in Postgres, expected ${fmt(expect)}`);
}

async function createTopic(c: Ctx, topic: string): Promise<void> {
  const admin = c.kafka.admin();
  await admin.connect();
  try {
    await createTopicAndWait(admin, topic, PARTITIONS);
    c.topics.push(topic);
  } finally {
    await admin.disconnect();
  }
}

function group(c: Ctx, label: string): string {
  const g = `pgsink-bench-${c.runId}-${label}`;
  c.groups.push(g);
  return g;
}

async function connectedProducer(c: Ctx): Promise<Producer> {
  const p = c.kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await p.connect();
  return p;
}

/** Produces events [0, count) as fast as the producer goes; explicit partitions. */
async function produce(c: Ctx, topic: string, count: number): Promise<{ seconds: number; avgBytes: number }> {
  const producer = await connectedProducer(c);
  const type = benchType();
  const t0 = performance.now();
  let bytes: number;
  try {
    const messages = (function* () {
      for (const m of benchMessages(type, 0, count, PARTITIONS))
        yield { key: m.key, value: m.value, partition: m.partition };
    })();
    bytes = (await produceAll(producer, topic, messages, { chunk: 4_000 })).bytes;
  } finally {
    await producer.disconnect();
  }
  return { seconds: (performance.now() - t0) / 1000, avgBytes: bytes / count };
}

interface CpuSnapshot {
  pgsink: number;
  postgres: number | undefined;
  kafka: number | undefined;
}

function cpuSnapshot(c: Ctx, workerPid: number): CpuSnapshot {
  return {
    pgsink: cpuSeconds(workerPid) ?? NaN,
    postgres: c.postgresLocal ? cpuSecondsOfAll('postgres').seconds : undefined,
    kafka: c.brokerPid !== undefined ? cpuSeconds(c.brokerPid) : undefined,
  };
}

const cpuDelta = (a: CpuSnapshot, b: CpuSnapshot) => ({
  pgsink: b.pgsink - a.pgsink,
  postgres: a.postgres !== undefined && b.postgres !== undefined ? b.postgres - a.postgres : undefined,
  kafka: a.kafka !== undefined && b.kafka !== undefined ? b.kafka - a.kafka : undefined,
});

interface PgsinkRun {
  result: RunResult;
  cpu: ReturnType<typeof cpuDelta>;
  peakRssMiB: number;
}

async function pgsinkRun(
  c: Ctx,
  label: string,
  execArgv: string[] = NODE_FLAGS,
  spec: ClientSpec = KAFKAJS,
  copyFormat?: CopyFormat,
  adaptiveRows = false,
): Promise<PgsinkRun> {
  const { table, quoted } = await createTable(c, `pgsink_${label.replaceAll('-', '_')}`);
  const job: Job = {
    mode: 'pgsink',
    config: pgsinkConfig(c, c.topic, table, group(c, label), spec, copyFormat, adaptiveRows),
    expect: EVENTS,
    reportFlushes: false,
    statsEveryMs: 0,
  };
  let start: CpuSnapshot | undefined;
  let pid = 0;
  const worker = new Worker(
    job,
    (m) => {
      if (m.type === 'first') start = cpuSnapshot(c, pid);
    },
    execArgv,
  );
  pid = worker.pid;
  const run = await withWorker(worker, async (w) => {
    const { result } = await w.waitFor('done', phaseTimeoutMs(EVENTS));
    const end = cpuSnapshot(c, w.pid);
    const peakRssMiB = Math.max(result.maxRssMiB, memoryOf(w.pid)?.peakMiB ?? 0);
    return { result, cpu: cpuDelta(start ?? end, end), peakRssMiB };
  });
  await countAndDrop(c, quoted, EVENTS, `pgsink run ${label}`);
  return run;
}

async function batchRun(c: Ctx, label: string): Promise<RunResult> {
  const { table, quoted } = await createTable(c, `b_${label}`);
  const job: Job = {
    mode: 'batch',
    config: pgsinkConfig(c, c.topic, table, group(c, `b-${label}`)),
    expect: EVENTS,
    concurrency: CONCURRENCY,
  };
  const result = await withWorker(
    new Worker(job),
    async (w) => (await w.waitFor('done', phaseTimeoutMs(EVENTS))).result,
  );
  await countAndDrop(c, quoted, EVENTS, `baseline B run ${label}`);
  return result;
}

/**
 * C (decode) or K (fetch only); `stockDecoder` runs K with kafkajs' own record batch decoder
 * instead of pgsink's (src/kafka/record-batch-decoder.ts), to show what that one costs.
 */
async function decodeRun(
  c: Ctx,
  label: string,
  decode = true,
  stockDecoder = false,
  spec: ClientSpec = KAFKAJS,
): Promise<RunResult> {
  const kind = decode ? 'c' : stockDecoder ? 'k0' : 'k';
  const job: Job = {
    mode: 'decode',
    config: pgsinkConfig(c, c.topic, `${c.pgSchema}.unused`, group(c, `${kind}-${label}`), spec),
    expect: EVENTS,
    decode,
  };
  const want = stockDecoder ? 'stock' : 'fast';
  const env = { ...process.env, PGSINK_KAFKAJS_DECODER: want };
  const result = await withWorker(
    new Worker(job, undefined, NODE_FLAGS, env),
    async (w) => (await w.waitFor('done', phaseTimeoutMs(EVENTS))).result,
  );
  const used = result.extra?.['kafkajsDecoder'];
  // The record decoder is kafkajs' business only; the platformatic source decodes its own.
  if (spec.client === 'kafkajs' && used !== want)
    throw new Error(`the ${kind} run used the ${String(used)} record decoder, not ${want}`);
  return result;
}

const ALT_CLIENT_DIR = join(root, '.cache', 'alt-client');

/** Builds the alternative client once (bench/alt-client/build.sh is idempotent). */
function buildAltClient(): void {
  note('building @confluentinc/kafka-javascript from source (bench/alt-client/build.sh)');
  execFileSync('bash', [join(root, 'bench', 'alt-client', 'build.sh')], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, ALT_CLIENT_DIR },
  });
}

async function altFetchRun(c: Ctx, label: string): Promise<RunResult> {
  const job: Job = {
    mode: 'alt-fetch',
    config: pgsinkConfig(c, c.topic, `${c.pgSchema}.unused`, group(c, `k2-${label}`)),
    expect: EVENTS,
    dir: ALT_CLIENT_DIR,
  };
  // V8's default heap: under the deployed 160 MiB old space this client runs out of heap (its
  // KafkaJS layer holds every message of a fetch as JS objects with copied buffers).
  return withWorker(
    new Worker(job, undefined, []),
    async (w) => (await w.waitFor('done', phaseTimeoutMs(EVENTS))).result,
  );
}

function altClientVersion(): string {
  const pkg = join(ALT_CLIENT_DIR, 'node_modules', '@confluentinc', 'kafka-javascript', 'package.json');
  return `@confluentinc/kafka-javascript ${(JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version}`;
}

interface CopyRuns {
  runs: RunResult[];
  /** The CPU seconds Postgres spent over all the runs (undefined when it is not local). */
  postgresCpu: number | undefined;
}

/**
 * D's runs (rows text), or D_binary's (rows binary, read back from D's first table, which D
 * keeps for it: `keepFirst`; the caller drops it).
 */
async function copyRuns(
  c: Ctx,
  name: 'd' | 'd_binary',
  rows: CopyJob['rows'],
  keepFirst = false,
): Promise<CopyRuns & { tables: Array<{ table: string; quoted: string }> }> {
  const what = name === 'd' ? 'ceiling D' : 'ceiling D_binary';
  const tables = [];
  for (let r = 1; r <= REPS; r++) tables.push(await createTable(c, `${name}_${r}`));
  const job: Job = {
    mode: 'copy',
    config: pgsinkConfig(c, c.topic, tables[0]!.table, group(c, name.replace('_', '-'))),
    events: EVENTS,
    partitions: PARTITIONS,
    batchRows: MAX_ROWS,
    concurrency: CONCURRENCY,
    tables: tables.map((t) => t.quoted),
    rows,
  };
  // Postgres' CPU from the worker's 'prepared' (rows ready, clients connected) to its results:
  // the COPYs alone. D's encoding leaves Postgres idle anyway; D_binary's COPY … TO, which reads
  // its rows, does not, and neither does a backend's start.
  let pg0: number | undefined;
  const worker: Worker = new Worker(job, (m) => {
    if (m.type !== 'prepared') return;
    if (c.postgresLocal) pg0 = cpuSecondsOfAll('postgres').seconds;
    worker.send({ type: 'go' });
  });
  const results = await withWorker(
    worker,
    async (w) => (await w.waitFor('results', phaseTimeoutMs(EVENTS * (1 + REPS)))).results,
  );
  const postgresCpu = pg0 === undefined ? undefined : cpuSecondsOfAll('postgres').seconds - pg0;
  for (const [i, t] of tables.entries())
    await countAndDrop(c, t.quoted, EVENTS, what, !(keepFirst && i === 0));
  return { runs: results, postgresCpu, tables };
}

async function naiveRun(c: Ctx): Promise<RunResult> {
  const { table, quoted } = await createTable(c, 'a');
  const job: Job = {
    mode: 'naive',
    config: pgsinkConfig(c, c.topic, table, group(c, 'a')),
    events: NAIVE_EVENTS,
    maxSeconds: NAIVE_MAX_SECONDS,
  };
  const result = await withWorker(
    new Worker(job),
    async (w) => (await w.waitFor('done', 120_000 + NAIVE_MAX_SECONDS * 1000)).result,
  );
  await countAndDrop(c, quoted, result.events, 'baseline A');
  return result;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/**
 * The throughput phases write millions of rows within minutes; with Postgres' default
 * max_wal_size that keeps a WAL-triggered checkpoint running almost all the time, and one
 * lands in the latency phase. A CHECKPOINT first flushes what those phases left, so the latency
 * phase pays for its own writes only. Needs superuser or pg_checkpoint; without, it is said.
 */
async function checkpointBeforeLatency(c: Ctx): Promise<string> {
  try {
    const t0 = performance.now();
    await c.db.query('CHECKPOINT');
    return `CHECKPOINT before the phase took ${((performance.now() - t0) / 1000).toFixed(1)} s`;
  } catch (err) {
    return `no CHECKPOINT before the phase (${(err as Error).message})`;
  }
}

interface LatencyResult {
  targetRate: number;
  achievedRate: number;
  seconds: number;
  events: number;
  samples: number;
  warmupMs: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  producerMaxBehindMs: number;
  /** CPU in use while sending, in cores: pgsink, Postgres, the broker, the producer. */
  cores: { pgsink: number; postgres: number | null; kafka: number | null; generator: number };
  /** Which open-loop producer sent the events. */
  generator: string;
}

/** What an open-loop producer reports: when each (partition, offset) was due, how late it ran. */
interface Sent {
  /** When event 0 was due (wall clock, ms); event i is due at start + i × 1000 / rate. */
  start: number;
  /** Event index by partition and offset, -1 where unknown. */
  indexAt: Int32Array[];
  behindMs: number;
  lastSendAt: number;
  cpuSeconds: number;
}

const JAVA_GEN_SRC = join(root, 'bench', 'latency-producer', 'LatencyProducer.java');
const JAVA_GEN_DIR = join(root, '.cache', 'bench-java');

/**
 * The Java generator's class path, compiled once per Kafka version from bench/latency-producer/
 * against the client jars of the broker's version (`stack/kafka.sh libs`, KAFKA_VERSION);
 * undefined (with the reason noted) where that is not possible, and the latency phase then
 * sends with kafkajs.
 */
function javaGenerator(): { classPath: string } | { unavailable: string } {
  let libs: string;
  try {
    libs = execFileSync(`${root}stack/kafka.sh`, ['libs'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    }).trim();
    readdirSync(libs);
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    return { unavailable: `no Kafka client jars (stack/kafka.sh libs: ${(e.stderr || e.message).trim()})` };
  }
  // One build per version: .cache/kafka-<version>/libs → .cache/bench-java/kafka-<version>.
  const classes = join(JAVA_GEN_DIR, basename(dirname(libs)));
  const classPath = `${classes}:${libs}/*`;
  try {
    const built = join(classes, 'LatencyProducer.class');
    const stale = !existsSync(built) || statSync(built).mtimeMs < statSync(JAVA_GEN_SRC).mtimeMs;
    if (stale) {
      mkdirSync(classes, { recursive: true });
      // Found on the class path by log4j2 (the 4.x jars): errors to stderr, never into stdout's
      // protocol lines. The 3.9 jars' log4j 1 reads -Dlog4j.configuration (below) instead.
      writeFileSync(
        join(classes, 'log4j2.properties'),
        'appender.err.type=Console\nappender.err.name=ERR\nappender.err.target=SYSTEM_ERR\n' +
          'appender.err.layout.type=PatternLayout\nappender.err.layout.pattern=%p %m (%c)%n\n' +
          'rootLogger.level=ERROR\nrootLogger.appenderRef.err.ref=ERR\n',
      );
      execFileSync('javac', ['-cp', `${libs}/*`, '-d', classes, JAVA_GEN_SRC], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
    }
    return { classPath };
  } catch (err) {
    return { unavailable: `javac failed: ${(err as Error).message.split('\n')[0]}` };
  }
}

/** Sends with the Java client (bench/latency-producer/LatencyProducer.java). */
async function sendWithJava(
  c: Ctx,
  classPath: string,
  topic: string,
  rate: number,
  total: number,
  ring: Buffer[],
  onStart: () => void,
): Promise<Sent> {
  const tmp = join(JAVA_GEN_DIR, `run-${process.pid}-${Date.now()}`);
  const ringFile = `${tmp}.ring`;
  const outFile = `${tmp}.out`;
  const head = Buffer.alloc(4);
  head.writeInt32BE(ring.length);
  const parts: Buffer[] = [head];
  for (const v of ring) {
    const len = Buffer.alloc(4);
    len.writeInt32BE(v.length);
    parts.push(len, v);
  }
  writeFileSync(ringFile, Buffer.concat(parts));
  const child = spawn(
    'java',
    [
      '-Xms64m',
      '-Xmx256m',
      '-XX:+UseSerialGC',
      // C1 only: C2's compile threads would take CPU from pgsink during the phase.
      '-XX:TieredStopAtLevel=1',
      '-Dlog4j.configuration=file:/dev/null',
      '-cp',
      classPath,
      'LatencyProducer',
      c.brokers.join(','),
      topic,
      String(PARTITIONS),
      String(rate),
      String(total),
      ringFile,
      outFile,
    ],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  live.add(child);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const lines: string[] = [];
  let wake: (() => void) | undefined;
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, nl).trim());
      buf = buf.slice(nl + 1);
      wake?.();
    }
  });
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  const line = async (prefix: string, timeoutMs: number): Promise<string> => {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const i = lines.findIndex((l) => l.startsWith(prefix));
      if (i >= 0) return lines.splice(i, 1)[0]!;
      if (child.exitCode !== null || Date.now() > until)
        throw new Error(
          `the Java latency producer stopped before '${prefix}': ${stderr.trim() || `exit ${child.exitCode}`}`,
        );
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 200);
      });
    }
  };
  try {
    await line('ready', 60_000);
    // Connected: start on a schedule a moment ahead.
    const start = wallNow() + 200;
    child.stdin!.write(`go ${start}\n`);
    while (wallNow() < start) await sleep(1);
    onStart();
    const cpu0 = cpuSeconds(child.pid!) ?? 0;
    const done = await line('done', 120_000 + (total / rate) * 2000);
    const cpuSecondsUsed = (cpuSeconds(child.pid!) ?? cpu0) - cpu0;
    const [, behind, errors, last] = done.split(' ');
    if (Number(errors) > 0) throw new Error(`the Java latency producer had ${errors} failed sends`);
    await exited;
    const out = readFileSync(outFile);
    const indexAt: Int32Array[] = [];
    let o = 0;
    for (let part = 0; part < PARTITIONS; part++) {
      const n = out.readInt32BE(o);
      o += 4;
      const a = new Int32Array(n);
      for (let k = 0; k < n; k++, o += 4) a[k] = out.readInt32BE(o);
      indexAt.push(a);
    }
    return { start, indexAt, behindMs: Number(behind), lastSendAt: Number(last), cpuSeconds: cpuSecondsUsed };
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    live.delete(child);
    rmSync(ringFile, { force: true });
    rmSync(outFile, { force: true });
  }
}

/** Sends with kafkajs from this process (where the Java client cannot run). */
async function sendWithKafkajs(
  c: Ctx,
  topic: string,
  rate: number,
  total: number,
  ring: Buffer[],
  onStart: () => void,
): Promise<Sent> {
  const perPartition = Math.ceil(total / PARTITIONS) + 2;
  const indexAt = Array.from({ length: PARTITIONS }, () => new Int32Array(perPartition).fill(-1));
  const producer = await connectedProducer(c);
  try {
    const start = wallNow() + 200;
    while (wallNow() < start) await sleep(1);
    onStart();
    const self0 = process.cpuUsage();
    const inflight = new Set<Promise<void>>();
    const gap = 1000 / rate;
    let sent = 0;
    let behind = 0;
    let lastSendAt = start;
    while (sent < total) {
      const now = wallNow();
      const due = Math.min(total, Math.floor(((now - start) * rate) / 1000));
      if (due > sent) {
        behind = Math.max(behind, now - (start + sent * gap));
        const from = sent;
        const messages = [];
        for (let i = from; i < due; i++)
          messages.push({ key: String(i), value: ring[i % ring.length]!, partition: i % PARTITIONS });
        sent = due;
        lastSendAt = now;
        const p: Promise<void> = producer.send({ topic, messages, acks: 1 }).then((meta) => {
          for (const r of meta) {
            const part = r.partition;
            let offset = Number(r.baseOffset);
            let i = from + ((part - (from % PARTITIONS) + PARTITIONS) % PARTITIONS);
            for (; i < due; i += PARTITIONS) {
              if (offset < perPartition) indexAt[part]![offset] = i;
              offset++;
            }
          }
        });
        inflight.add(p);
        void p.finally(() => inflight.delete(p));
      }
      await sleep(5);
    }
    const self = process.cpuUsage(self0);
    await Promise.all(inflight);
    return { start, indexAt, behindMs: behind, lastSendAt, cpuSeconds: (self.user + self.system) / 1e6 };
  } finally {
    await producer.disconnect();
  }
}

/**
 * Open loop: every 5 ms the producer sends what the schedule says is due, without waiting
 * for earlier sends. Each event's send time is its scheduled time (start + i / rate), so a
 * producer or broker that falls behind shows up as latency instead of hiding it. The worker
 * reports every flush's partition, offset range and commit time; the offsets of each event
 * come from the produce acknowledgements.
 */
async function latencyPhase(c: Ctx, rate: number, adaptiveRows = false): Promise<LatencyResult> {
  const name = adaptiveRows ? 'lat_adaptive' : 'lat';
  const topic = `${c.topic}-${name}`;
  await createTopic(c, topic);
  const { table, quoted } = await createTable(c, name);
  const total = Math.max(PARTITIONS, Math.round(rate * LATENCY_SECONDS));
  const flushes: Array<{ partition: number; first: number; last: number; at: number }> = [];
  const job: Job = {
    mode: 'pgsink',
    config: pgsinkConfig(c, topic, table, group(c, name), KAFKAJS, undefined, adaptiveRows),
    expect: total,
    reportFlushes: true,
    statsEveryMs: 0,
  };
  const type = benchType();
  const ring = [...benchMessages(type, 0, Math.min(total, 20_000), PARTITIONS)].map((m) => m.value);
  const java = javaGenerator();
  const generator =
    'classPath' in java
      ? 'the Java client (bench/latency-producer)'
      : `kafkajs in the harness (${java.unavailable})`;
  let sent: Sent | undefined;
  let cpu0: CpuSnapshot | undefined;
  let cpu1: CpuSnapshot | undefined;
  await withWorker(
    new Worker(job, (m) => {
      if (m.type === 'flush') flushes.push(m);
    }),
    async (w) => {
      await w.waitFor('assigned', 60_000);
      await sleep(1_000); // the first fetch requests are out
      const onStart = () => (cpu0 = cpuSnapshot(c, w.pid));
      sent =
        'classPath' in java
          ? await sendWithJava(c, java.classPath, topic, rate, total, ring, onStart)
          : await sendWithKafkajs(c, topic, rate, total, ring, onStart);
      cpu1 = cpuSnapshot(c, w.pid);
      await w.waitFor('done', 120_000 + LATENCY_SECONDS * 2000);
    },
  );
  const gap = 1000 / rate;
  await countAndDrop(c, quoted, total, 'latency phase');
  const lat: number[] = [];
  const { start, indexAt, behindMs, lastSendAt } = sent!;
  for (const f of flushes) {
    const index = indexAt[f.partition]!;
    for (let o = f.first; o <= f.last && o < index.length; o++) {
      const i = index[o]!;
      if (i < 0) continue;
      const t = start + i * gap;
      if (t >= start + LATENCY_WARMUP_MS) lat.push(f.at - t);
    }
  }
  const sorted = Float64Array.from(lat).sort();
  return {
    targetRate: rate,
    achievedRate: total / Math.max(0.001, (lastSendAt - start) / 1000),
    seconds: LATENCY_SECONDS,
    events: total,
    samples: sorted.length,
    warmupMs: LATENCY_WARMUP_MS,
    p50Ms: percentile(sorted, 50),
    p90Ms: percentile(sorted, 90),
    p99Ms: percentile(sorted, 99),
    p999Ms: percentile(sorted, 99.9),
    maxMs: sorted.length ? sorted[sorted.length - 1]! : NaN,
    producerMaxBehindMs: behindMs,
    cores: (() => {
      const secs = Math.max(0.001, (lastSendAt - start) / 1000);
      const d = cpu0 && cpu1 ? cpuDelta(cpu0, cpu1) : undefined;
      return {
        pgsink: d ? d.pgsink / secs : NaN,
        postgres: d?.postgres === undefined ? null : d.postgres / secs,
        kafka: d?.kafka === undefined ? null : d.kafka / secs,
        generator: sent!.cpuSeconds / secs,
      };
    })(),
    generator,
  };
}

// ------------------------------------------------------------------ rebalance phase

const REB_WARM_MS = QUICK ? 2_000 : 5_000;
const REB_GAP_MS = QUICK ? 4_000 : 12_000;
/** After the kill: the killed member's partitions wait for its session to time out. */
const REB_TAIL_MS = QUICK ? 7_000 : 15_000;
const REB_SESSION_MS = QUICK ? 6_000 : 10_000;

interface RebalanceEvent {
  event: 'join' | 'leave (SIGTERM)' | 'kill -9';
  /** ms after the producer started. */
  atMs: number;
  /** Per partition: the longest time without a committed flush around the event. */
  stallMsByPartition: number[];
  stallMaxMs: number;
  stallMedianMs: number;
  /** produce → row committed for the events sent between this event and the next. */
  samples: number;
  p99Ms: number;
  /** Records the client handed over (and pgsink took) a second time in that window. */
  fetchedTwice: number;
}

interface RebalanceResult {
  client: string;
  key: string;
  rate: number;
  events: number;
  sessionTimeoutMs: number;
  /** Before the first event: the longest gap between committed flushes (the linger rhythm). */
  steadyMaxGapMs: number;
  steadyP99Ms: number;
  fetchedTwiceTotal: number;
  seconds: number;
  timeline: RebalanceEvent[];
}

/**
 * Two pgsink processes consume an open-loop stream; a third joins, then the first leaves
 * (SIGTERM: drain, commit, leave the group), then the second is killed (-9: its partitions
 * wait for its session to time out). Each member reports its committed flushes and the
 * offsets of every batch it took; from them, per event: each partition's longest stretch
 * without a committed flush, the p99 produce → commit latency of what was sent until the next
 * event, and the records fetched a second time (dropped buffers read again).
 */
async function rebalancePhase(c: Ctx, spec: ClientSpec, rate: number): Promise<RebalanceResult> {
  const label = `reb-${specKey(spec)}`;
  const topic = `${c.topic}-${label}`;
  await createTopic(c, topic);
  const { table, quoted } = await createTable(c, label.replaceAll('-', '_'));
  const config = pgsinkConfig(c, topic, table, group(c, label), spec);
  config.kafka!.sessionTimeoutMs = REB_SESSION_MS;
  config.kafka!.heartbeatIntervalMs = 1_000;
  const total = Math.max(
    PARTITIONS,
    Math.round((rate * (REB_WARM_MS + 2 * REB_GAP_MS + REB_TAIL_MS)) / 1000),
  );
  const flushes: Array<{ partition: number; first: number; last: number; rows: number; at: number }> = [];
  const batches: Array<{ partition: number; first: number; last: number; at: number }> = [];
  const job: Job = {
    mode: 'pgsink',
    config,
    expect: Number.MAX_SAFE_INTEGER,
    reportFlushes: true,
    reportBatches: true,
    statsEveryMs: 0,
  };
  const workers: Worker[] = [];
  const member = () => {
    const w = new Worker(job, (m) => {
      if (m.type === 'flush') flushes.push(m);
      else if (m.type === 'batch') batches.push(m);
    });
    // A member that is killed or stops rejects nothing here: the phase waits for rows.
    w.exited.catch(() => undefined);
    workers.push(w);
    return w;
  };
  const type = benchType();
  const ring = [...benchMessages(type, 0, Math.min(total, 20_000), PARTITIONS)].map((m) => m.value);
  const java = javaGenerator();
  const marks: Array<{ event: RebalanceEvent['event']; at: number }> = [];
  const timers: NodeJS.Timeout[] = [];
  let sent: Sent | undefined;
  const t0 = performance.now();
  try {
    const a = member();
    const b = member();
    await a.waitFor('assigned', 60_000);
    await b.waitFor('assigned', 60_000);
    // Both members in, the group settled (kafkajs' second member may rebalance it twice).
    await sleep(QUICK ? 2_000 : 4_000);
    const onStart = () => {
      timers.push(
        setTimeout(() => {
          marks.push({ event: 'join', at: wallNow() });
          member();
        }, REB_WARM_MS),
        setTimeout(() => {
          marks.push({ event: 'leave (SIGTERM)', at: wallNow() });
          a.child.kill('SIGTERM');
        }, REB_WARM_MS + REB_GAP_MS),
        setTimeout(
          () => {
            marks.push({ event: 'kill -9', at: wallNow() });
            b.child.kill('SIGKILL');
          },
          REB_WARM_MS + 2 * REB_GAP_MS,
        ),
      );
    };
    sent =
      'classPath' in java
        ? await sendWithJava(c, java.classPath, topic, rate, total, ring, onStart)
        : await sendWithKafkajs(c, topic, rate, total, ring, onStart);
    // Every row lands (a KIP-848 member's session is the broker's: 45 s by default).
    const until = Date.now() + 180_000;
    for (;;) {
      const { rows } = await c.db.query<{ n: string }>(`SELECT count(*) AS n FROM ${quoted}`);
      if (Number(rows[0]!.n) >= total) break;
      if (Date.now() > until)
        throw new Error(
          `rebalance phase (${specName(spec)}): ${rows[0]!.n} of ${fmt(total)} rows after 180 s`,
        );
      await sleep(250);
    }
  } finally {
    for (const t of timers) clearTimeout(t);
    await Promise.all(workers.map((w) => w.stop().catch(() => w.kill())));
  }
  await countAndDrop(c, quoted, total, `rebalance phase (${specName(spec)})`);
  const { start, indexAt } = sent!;
  const gap = 1000 / rate;
  const end = Math.max(...flushes.map((f) => f.at));
  const bounds = [...marks.map((m) => m.at), end];
  // Commit time of each offset: its first committed flush.
  const commitAt = indexAt.map((idx) => new Float64Array(idx.length).fill(NaN));
  const byPartition = Array.from({ length: PARTITIONS }, () => [] as number[]);
  for (const f of flushes) {
    if (f.rows === 0) continue;
    byPartition[f.partition]!.push(f.at);
    const ca = commitAt[f.partition]!;
    for (let o = f.first; o <= f.last && o < ca.length; o++) if (!(ca[o]! <= f.at)) ca[o] = f.at;
  }
  for (const t of byPartition) t.sort((x, y) => x - y);
  /**
   * Longest gap between committed flushes of a partition that starts in [from − 1 s, to − 1 s):
   * the last flush before an event opens the gap it causes (a gap is the event's whose window
   * it starts in, so the kill's wait is not billed to the leave before it).
   */
  const stall = (times: readonly number[], from: number, to: number): number => {
    let worst = 0;
    for (let k = 0; k + 1 < times.length; k++) {
      const t = times[k]!;
      if (t >= from - 1_000 && t < to - 1_000) worst = Math.max(worst, times[k + 1]! - t);
    }
    return worst;
  };
  const latencies = (from: number, to: number): Float64Array => {
    const out: number[] = [];
    for (let p = 0; p < PARTITIONS; p++) {
      const idx = indexAt[p]!;
      const ca = commitAt[p]!;
      for (let o = 0; o < idx.length; o++) {
        const i = idx[o]!;
        if (i < 0) continue;
        const t = start + i * gap;
        if (t > from && t <= to && !Number.isNaN(ca[o]!)) out.push(ca[o]! - t);
      }
    }
    return Float64Array.from(out).sort();
  };
  // Offsets handed over a second time, attributed to the window the second delivery fell in.
  const seen = indexAt.map((idx) => new Uint8Array(idx.length + 1));
  const twice = new Array<number>(bounds.length).fill(0);
  let steadyTwice = 0;
  for (const b of [...batches].sort((x, y) => x.at - y.at)) {
    const bits = seen[b.partition]!;
    let n = 0;
    for (let o = b.first; o <= b.last && o < bits.length; o++) {
      if (bits[o]) n++;
      else bits[o] = 1;
    }
    const w = bounds.findIndex((t, k) => b.at > (k === 0 ? -Infinity : bounds[k - 1]!) && b.at <= t);
    if (b.at <= bounds[0]!) steadyTwice += n;
    else if (w >= 1) twice[w - 1]! += n;
    else twice[twice.length - 2]! += n;
  }
  const steadyFrom = start + REB_WARM_MS / 2;
  const timeline: RebalanceEvent[] = marks.map((m, k) => {
    const to = bounds[k + 1]!;
    const stalls = byPartition.map((times) => stall(times, m.at, to));
    const lat = latencies(m.at, to);
    return {
      event: m.event,
      atMs: Math.round(m.at - start),
      stallMsByPartition: stalls.map((x) => Math.round(x)),
      stallMaxMs: Math.max(...stalls),
      stallMedianMs: median(stalls),
      samples: lat.length,
      p99Ms: percentile(lat, 99),
      fetchedTwice: twice[k]!,
    };
  });
  return {
    client: specName(spec),
    key: specKey(spec),
    rate,
    events: total,
    sessionTimeoutMs: spec.groupProtocol === 'consumer' ? 45_000 : REB_SESSION_MS,
    steadyMaxGapMs: Math.max(...byPartition.map((times) => stall(times, steadyFrom, bounds[0]!))),
    steadyP99Ms: percentile(latencies(steadyFrom, bounds[0]!), 99),
    fetchedTwiceTotal: steadyTwice + twice.reduce((x, y) => x + y, 0),
    seconds: (performance.now() - t0) / 1000,
    timeline,
  };
}

/** Whether the broker speaks the KIP-848 consumer protocol (ConsumerGroupHeartbeat, API 68). */
async function supportsKip848(c: Ctx): Promise<boolean> {
  const admin = new PlatformaticAdmin({ clientId: 'pgsink-bench-probe', bootstrapBrokers: c.brokers });
  try {
    const apis = await admin.listApis();
    return apis.some((a) => a.apiKey === 68);
  } catch {
    return false;
  } finally {
    await admin.close().catch(() => undefined);
  }
}

interface StallResult {
  events: number;
  lockHeldSeconds: number;
  peakRssStalledMiB: number;
  peakRssMiB: number;
  maxBufferedMiB: number;
  pausedPartitionsAtUnlock: number;
  /** The worker's own memory view when the buffer was fullest: V8 heap used and outside it. */
  heapUsedMiB: number;
  externalMiB: number;
  drainSeconds: number;
  /** Set when pgsink died in this phase (e.g. out of memory): the phase's finding. */
  crashed: string | null;
}

interface HalfBadResult {
  events: number;
  recordsPerSec: number;
  seconds: number;
  rows: number;
  deadLetters: number;
  peakRssMiB: number;
}

/**
 * Every other event is refused by a CHECK constraint (order_id is the event's index): the bad
 * rows are isolated and dead-lettered, the good ones written. pgsink runs with its deployed
 * heap; records/s counts rows and dead letters, first fetch to last commit.
 */
async function halfBadPhase(c: Ctx): Promise<HalfBadResult> {
  const topic = `${c.topic}-halfbad`;
  await createTopic(c, topic);
  const { table, quoted } = await createTable(c, 'halfbad');
  await c.db.query(`ALTER TABLE ${quoted} ADD CONSTRAINT even_orders CHECK (order_id % 2 = 0)`);
  await produce(c, topic, HALF_BAD_EVENTS);
  const job: Job = {
    mode: 'pgsink',
    config: pgsinkConfig(c, topic, table, group(c, 'halfbad')),
    expect: HALF_BAD_EVENTS,
    deadLetters: 'expected',
    reportFlushes: false,
    statsEveryMs: 0,
  };
  const run = await withWorker(new Worker(job, () => undefined, STALL_NODE_FLAGS), async (w) => {
    const { result } = await w.waitFor('done', phaseTimeoutMs(HALF_BAD_EVENTS * 4));
    return { result, peakRssMiB: Math.max(result.maxRssMiB, memoryOf(w.pid)?.peakMiB ?? 0) };
  });
  const { rows: dead } = await c.db.query<{ n: string }>(
    `SELECT count(*) AS n FROM ${quoteIdent(c.pgSchema)}.dead_letters WHERE topic = $1 AND error_code = '23514'`,
    [topic],
  );
  const deadLetters = Number(dead[0]!.n);
  const rows = Math.floor(HALF_BAD_EVENTS / 2) + (HALF_BAD_EVENTS % 2);
  await countAndDrop(c, quoted, rows, 'half-bad phase');
  if (deadLetters !== HALF_BAD_EVENTS - rows)
    throw new Error(
      `half-bad phase: ${fmt(deadLetters)} dead letters, expected ${fmt(HALF_BAD_EVENTS - rows)}`,
    );
  return {
    events: HALF_BAD_EVENTS,
    recordsPerSec: run.result.eventsPerSec,
    seconds: run.result.seconds,
    rows,
    deadLetters,
    peakRssMiB: run.peakRssMiB,
  };
}

/** The target table is locked while STALL_EVENTS are produced; backpressure must hold memory. */
async function stallPhase(c: Ctx): Promise<StallResult> {
  const topic = `${c.topic}-stall`;
  await createTopic(c, topic);
  const { table, quoted } = await createTable(c, 'stall');
  let stats: Extract<FromWorker, { type: 'stats' }> | undefined;
  let maxBuffered = 0;
  const job: Job = {
    mode: 'pgsink',
    config: pgsinkConfig(c, topic, table, group(c, 'stall')),
    expect: STALL_EVENTS,
    reportFlushes: false,
    statsEveryMs: 100,
  };
  const worker = new Worker(
    job,
    (m) => {
      if (m.type === 'stats') {
        stats = m;
        if (m.bufferedBytes >= maxBuffered) fullest = m;
        maxBuffered = Math.max(maxBuffered, m.bufferedBytes);
      }
    },
    STALL_NODE_FLAGS,
  );
  let fullest: Extract<FromWorker, { type: 'stats' }> | undefined;
  let peakStalled = 0;
  let peakAll = 0;
  const sample = setInterval(() => {
    const mem = memoryOf(worker.pid);
    if (!mem) return;
    peakAll = Math.max(peakAll, mem.peakMiB);
    if (unlocked === undefined) peakStalled = Math.max(peakStalled, mem.rssMiB);
  }, 100);
  const locker = new pg.Client({ connectionString: c.databaseUrl });
  let locked: number | undefined;
  let unlocked: number | undefined;
  let paused = 0;
  let result: RunResult | undefined;
  let crashed: string | null = null;
  try {
    await locker.connect();
    result = await withWorker(worker, async (w) => {
      await w.waitFor('assigned', 60_000);
      await locker.query('BEGIN');
      await locker.query(`LOCK TABLE ${quoted} IN ACCESS EXCLUSIVE MODE`);
      locked = wallNow();
      await produce(c, topic, STALL_EVENTS);
      // Hold the lock until the worker's buffer stops growing (it is paused) or 30 s.
      const stableMs = QUICK ? 1_000 : 3_000;
      let lastGrowth = wallNow();
      let seen = maxBuffered;
      while (wallNow() - lastGrowth < stableMs && wallNow() - locked < 30_000) {
        await sleep(100);
        if (maxBuffered > seen) {
          seen = maxBuffered;
          lastGrowth = wallNow();
        }
      }
      peakStalled = Math.max(peakStalled, memoryOf(w.pid)?.peakMiB ?? 0);
      paused = stats?.paused ?? 0;
      unlocked = wallNow();
      await locker.query('COMMIT');
      const { result: r } = await w.waitFor('done', phaseTimeoutMs(STALL_EVENTS));
      peakAll = Math.max(peakAll, r.maxRssMiB, memoryOf(w.pid)?.peakMiB ?? 0);
      return r;
    });
  } catch (err) {
    // A worker that dies here (out of memory while stalled) is the result, not a bench failure.
    if (!(err instanceof Error && /worker (failed|exited)/.test(err.message))) throw err;
    crashed = err.message.split('\n').slice(0, 3).join(' ');
    note(`stall phase: pgsink died: ${crashed}`);
  } finally {
    clearInterval(sample);
    unlocked ??= wallNow();
    await locker.end().catch(() => undefined);
  }
  if (result) await countAndDrop(c, quoted, STALL_EVENTS, 'stall phase');
  return {
    events: STALL_EVENTS,
    lockHeldSeconds: ((unlocked ?? wallNow()) - (locked ?? unlocked)) / 1000,
    peakRssStalledMiB: peakStalled,
    peakRssMiB: Math.max(peakStalled, peakAll),
    maxBufferedMiB: maxBuffered / MiB,
    pausedPartitionsAtUnlock: paused,
    heapUsedMiB: fullest?.heapUsedMiB ?? NaN,
    externalMiB: fullest?.externalMiB ?? NaN,
    drainSeconds: result ? (result.doneAt - unlocked) / 1000 : NaN,
    crashed,
  };
}

async function profileRun(c: Ctx): Promise<{ file: string; summary: ProfileSummary }> {
  const dir = join(dirname(OUT), `cpu-profile-${c.runId}`);
  mkdirSync(dir, { recursive: true });
  await pgsinkRun(c, 'prof', [...NODE_FLAGS, '--cpu-prof', `--cpu-prof-dir=${dir}`]);
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error(`no .cpuprofile written in ${dir}`);
  return { file: join(dir, file), summary: summariseProfile(join(dir, file)) };
}

// ------------------------------------------------------------------ versions

async function versions(c: Ctx): Promise<{ node: string; postgres: string; kafka: string; kafkajs: string }> {
  const { rows } = await c.db.query<{ v: string }>(`SELECT current_setting('server_version') AS v`);
  const cmd = c.brokerPid !== undefined ? cmdlineOf(c.brokerPid) : '';
  const kafka =
    /kafka_\d+\.\d+-(\d+\.\d+\.\d+)/.exec(cmd)?.[1] ??
    /kafka-(\d+\.\d+\.\d+)/.exec(cmd)?.[1] ??
    (c.brokerPid ? 'unknown' : 'unknown (remote broker)');
  const kafkajs = (
    JSON.parse(readFileSync(join(root, 'node_modules/kafkajs/package.json'), 'utf8')) as { version: string }
  ).version;
  return { node: process.version, postgres: rows[0]!.v, kafka, kafkajs };
}

// ------------------------------------------------------------------ report

interface Target {
  what: string;
  value: string;
  met: boolean;
}

function pad(s: string, n: number, right = false): string {
  return right ? s.padStart(n) : s.padEnd(n);
}

async function main(): Promise<void> {
  hideKafkajsTimeoutWarning();
  const startedAt = new Date();
  const load0 = loadavg();
  const servers = stack();
  process.once('exit', servers.stop);
  try {
    await benchmark(servers, startedAt, load0);
  } finally {
    servers.stop();
  }
}

async function benchmark(
  { brokers, databaseUrl }: { brokers: string[]; databaseUrl: string },
  startedAt: Date,
  load0: number[],
): Promise<void> {
  const runId = `${Date.now().toString(36)}${Math.floor(Math.random() * 1296).toString(36)}`;
  const db = new pg.Pool({ connectionString: databaseUrl, max: 2 });
  const [bhost, bport] = brokers[0]!.split(':');
  const c: Ctx = {
    brokers,
    databaseUrl,
    kafka: new Kafka({ clientId: 'pgsink-bench', brokers, logLevel: logLevel.NOTHING }),
    db,
    runId,
    pgSchema: `pgsink_bench_${runId}`,
    topic: `pgsink-bench-${runId}`,
    topics: [],
    groups: [],
    brokerPid: isLocal(bhost ?? '') ? listeningPid(Number(bport)) : undefined,
    postgresLocal: isLocal(new URL(databaseUrl).hostname),
  };
  const machine = machineInfo();
  const ver = await versions(c);
  out(
    `pgsink benchmark${QUICK ? ' (--quick: a smoke run, the figures mean little)' : ''} — ${startedAt.toISOString()}`,
  );
  out(
    `machine   ${machine.nproc} × ${machine.cpuModel}, ${machine.memoryGiB.toFixed(1)} GiB RAM, Linux ${machine.kernel}; load average ${load0.map((l) => l.toFixed(2)).join(' ')} at start`,
  );
  out(`software  Node ${ver.node}, PostgreSQL ${ver.postgres}, Kafka ${ver.kafka} (kafkajs ${ver.kafkajs})`);

  await db.query(`CREATE SCHEMA "${c.pgSchema}"`);
  const interrupted = new Promise<never>((_, reject) => {
    process.once('SIGINT', () => {
      for (const ch of live) ch.kill('SIGKILL');
      reject(new Error('interrupted'));
    });
  });
  interrupted.catch(() => undefined);
  try {
    await Promise.race([interrupted, measure(c, machine, ver, startedAt, load0)]);
  } finally {
    await cleanup(c);
  }
}

async function cleanup(c: Ctx): Promise<void> {
  await c.db
    .query(`DROP SCHEMA IF EXISTS "${c.pgSchema}" CASCADE`)
    .catch((err: unknown) => note(`could not drop schema ${c.pgSchema}: ${String(err)}`));
  await c.db.end().catch(() => undefined);
  const admin = c.kafka.admin();
  try {
    await admin.connect();
    if (c.groups.length) await admin.deleteGroups(c.groups).catch(() => undefined);
    if (c.topics.length) await admin.deleteTopics({ topics: c.topics, timeout: 10_000 });
  } catch (err) {
    note(`could not delete topics ${c.topics.join(', ')}: ${String(err)}`);
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

async function measure(
  c: Ctx,
  machine: ReturnType<typeof machineInfo>,
  ver: Awaited<ReturnType<typeof versions>>,
  startedAt: Date,
  load0: number[],
): Promise<void> {
  const t0 = performance.now();
  await createTopic(c, c.topic);
  note(`producing ${fmt(EVENTS)} events into ${c.topic} (${PARTITIONS} partitions)`);
  const produced = await produce(c, c.topic, EVENTS);
  out(
    `data      ${fmt(EVENTS)} events, ${produced.avgBytes.toFixed(0)} B of Avro each (schemas/bench-orders.avsc, 13 fields + 2 metadata columns), ${PARTITIONS} partitions; produced at ${fmt(EVENTS / produced.seconds)} events/s`,
  );
  out(
    `pgsink    batch.maxRows ${MAX_ROWS}, lingerMs ${LINGER_MS}, maxConcurrentFlushes ${CONCURRENCY}, backpressure ${MAX_PARTITION_BYTES / MiB}/${MAX_TOTAL_BYTES / MiB} MiB (partition/total); median of ${REPS} run${REPS > 1 ? 's' : ''}`,
  );

  const pgsinkRuns: PgsinkRun[] = [];
  const bRuns: RunResult[] = [];
  const cRuns: RunResult[] = [];
  const kRuns: RunResult[] = [];
  const k0Runs: RunResult[] = [];
  const altRuns: RunResult[] = [];
  const textCopyRuns: PgsinkRun[] = [];
  const adaptiveRuns: PgsinkRun[] = [];
  if (args['alt-client']) buildAltClient();
  // The second client, behind the same source interface: pgsink, C and K again, with the
  // classic protocol (cooperative-sticky) and, where the broker speaks it, KIP-848 (the
  // protocol changes rebalancing, not fetching: the quick run measures the classic one only).
  const kip848 = await supportsKip848(c);
  const otherSpecs = QUICK || !kip848 ? [PLATFORMATIC] : [PLATFORMATIC, PLATFORMATIC_848];
  const other = new Map(
    otherSpecs.map((spec) => [
      specKey(spec),
      { spec, pgsink: [] as PgsinkRun[], c: [] as RunResult[], k: [] as RunResult[] },
    ]),
  );
  for (let r = 1; r <= REPS; r++) {
    note(`rep ${r}/${REPS}: pgsink`);
    pgsinkRuns.push(await pgsinkRun(c, String(r)));
    // --text-copy-row: the only place routes[].copyFormat goes into a config (see TEXT_COPY_ROW).
    if (TEXT_COPY_ROW) {
      note(`rep ${r}/${REPS}: pgsink (text COPY: routes[].copyFormat text)`);
      textCopyRuns.push(await pgsinkRun(c, `text-${r}`, NODE_FLAGS, KAFKAJS, 'text'));
    }
    if (ADAPTIVE_ROW) {
      note(`rep ${r}/${REPS}: pgsink (batch.adaptiveRows)`);
      adaptiveRuns.push(await pgsinkRun(c, `adaptive-${r}`, NODE_FLAGS, KAFKAJS, undefined, true));
    }
    note(`rep ${r}/${REPS}: baseline B (eachBatch + multi-row INSERT)`);
    bRuns.push(await batchRun(c, String(r)));
    note(`rep ${r}/${REPS}: ceiling C (consume + decode + encode)`);
    cRuns.push(await decodeRun(c, String(r)));
    note(`rep ${r}/${REPS}: ceiling K (the Kafka client alone)`);
    kRuns.push(await decodeRun(c, String(r), false));
    note(`rep ${r}/${REPS}: K₀ (the Kafka client alone, kafkajs' own record decoder)`);
    k0Runs.push(await decodeRun(c, String(r), false, true));
    if (args['alt-client']) {
      note(`rep ${r}/${REPS}: K′ (@confluentinc/kafka-javascript alone)`);
      altRuns.push(await altFetchRun(c, String(r)));
    }
    for (const o of other.values()) {
      const name = specName(o.spec);
      const key = specKey(o.spec);
      note(`rep ${r}/${REPS}: pgsink, C and K on ${name}`);
      o.pgsink.push(await pgsinkRun(c, `${key}-${r}`, NODE_FLAGS, o.spec));
      o.c.push(await decodeRun(c, `${key}-${r}`, true, false, o.spec));
      o.k.push(await decodeRun(c, `${key}-${r}`, false, false, o.spec));
    }
  }
  note(`ceiling D (COPY of pre-encoded rows), ${REPS} run${REPS > 1 ? 's' : ''}`);
  const d = await copyRuns(c, 'd', { format: 'text' }, true);
  const { runs: dRuns, postgresCpu: dPostgresCpu } = d;
  note(`ceiling D_binary (the same rows as COPY binary), ${REPS} run${REPS > 1 ? 's' : ''}`);
  const source = d.tables[0]!.quoted;
  const { runs: dBinRuns, postgresCpu: dBinPostgresCpu } = await copyRuns(c, 'd_binary', {
    format: 'binary',
    from: source,
  });
  await c.db.query(`DROP TABLE ${source}`);
  note(`baseline A (eachMessage + INSERT + commit per message) on ${fmt(NAIVE_EVENTS)} events`);
  const aRun = await naiveRun(c);

  const eps = (runs: readonly RunResult[]) => median(runs.map((x) => x.eventsPerSec));
  const pgsinkEps = median(pgsinkRuns.map((x) => x.result.eventsPerSec));
  const textCopyEps = textCopyRuns.length
    ? median(textCopyRuns.map((x) => x.result.eventsPerSec))
    : undefined;
  const adaptiveEps = adaptiveRuns.length
    ? median(adaptiveRuns.map((x) => x.result.eventsPerSec))
    : undefined;
  const bEps = eps(bRuns);
  const cEps = eps(cRuns);
  const kEps = eps(kRuns);
  const k0Eps = eps(k0Runs);
  const altEps = altRuns.length ? eps(altRuns) : undefined;
  const dEps = eps(dRuns);
  const dBinEps = eps(dBinRuns);
  const aEps = aRun.eventsPerSec;

  let rate = Math.max(100, Math.round(pgsinkEps / 2 / 100) * 100);
  if (QUICK) rate = Math.min(rate, QUICK_LATENCY_RATE_CAP);
  if (args['latency-rate'] !== undefined) rate = intArg('latency-rate', args['latency-rate'], rate);
  const checkpoint = await checkpointBeforeLatency(c);
  note(`latency: open loop at ${fmt(rate)} events/s for ${LATENCY_SECONDS} s`);
  const latency = await latencyPhase(c, rate);
  let latencyAdaptive: LatencyResult | undefined;
  if (ADAPTIVE_ROW) {
    await checkpointBeforeLatency(c);
    note(`latency: the same with batch.adaptiveRows`);
    latencyAdaptive = await latencyPhase(c, rate, true);
  }
  note(`stall: table locked while ${fmt(STALL_EVENTS)} events are produced`);
  const stall = await stallPhase(c);
  note(`half bad: ${fmt(HALF_BAD_EVENTS)} events, every other one refused by a CHECK constraint`);
  const halfBad = await halfBadPhase(c);
  // A steady stream well below the maximum: three pgsink processes, the producer, Postgres and
  // the broker share the cores.
  const rebRate = QUICK ? 2_000 : Math.max(1_000, Math.min(25_000, Math.round(pgsinkEps / 6 / 100) * 100));
  const rebSpecs = QUICK ? [PLATFORMATIC] : [KAFKAJS, PLATFORMATIC, ...(kip848 ? [PLATFORMATIC_848] : [])];
  const rebalance: RebalanceResult[] = [];
  for (const spec of rebSpecs) {
    note(`rebalance: ${specName(spec)}, 2 members at ${fmt(rebRate)} events/s, then join, SIGTERM, kill -9`);
    rebalance.push(await rebalancePhase(c, spec, rebRate));
  }
  let profile: { file: string; summary: ProfileSummary } | undefined;
  if (args['cpu-prof']) {
    note('profile: one more pgsink run under --cpu-prof');
    profile = await profileRun(c);
  }

  const cpu = {
    pgsink: median(pgsinkRuns.map((x) => x.cpu.pgsink)),
    postgres: c.postgresLocal ? median(pgsinkRuns.map((x) => x.cpu.postgres ?? NaN)) : null,
    kafka: c.brokerPid !== undefined ? median(pgsinkRuns.map((x) => x.cpu.kafka ?? NaN)) : null,
  };
  const peakRss = Math.max(...pgsinkRuns.map((x) => x.peakRssMiB));
  // pgsink does C's work (fetch, decode, encode) and D's (COPY into Postgres) on the same cores.
  // Their CPU per event added up bounds what any sink can do here, however well it overlaps.
  const perEvent = (runs: readonly RunResult[]) => median(runs.map((x) => x.cpuSeconds / x.events));
  const oneBox = (copy: readonly RunResult[], copyPostgresCpu: number | undefined) => {
    if (copyPostgresCpu === undefined) return undefined;
    const cUs = perEvent(cRuns) * 1e6;
    const dClientUs = perEvent(copy) * 1e6;
    const dPostgresUs = (copyPostgresCpu / (EVENTS * copy.length)) * 1e6;
    const cores = availableParallelism();
    const eps = (cores * 1e6) / (cUs + dClientUs + dPostgresUs);
    return { cUs, dClientUs, dPostgresUs, cores, eps };
  };
  const cpuBound = oneBox(dRuns, dPostgresCpu);
  // The same with D_binary's COPY client and Postgres CPU. C still encodes COPY text: this is
  // the bound of a sink that writes binary at the cost of encoding text.
  const cpuBoundBinary = oneBox(dBinRuns, dBinPostgresCpu);
  // Postgres' CPU per row written: over D's runs, D_binary's, and pgsink's (median of its runs;
  // that includes its fence and offset writes, which D has not).
  const pgPerRow = (seconds: number | null | undefined, runs = 1) =>
    seconds === null || seconds === undefined ? null : (seconds / (EVENTS * runs)) * 1e6;
  const pgMedian = (runs: readonly PgsinkRun[]) =>
    c.postgresLocal ? median(runs.map((x) => x.cpu.postgres ?? NaN)) : null;
  const postgresUs = {
    dText: pgPerRow(dPostgresCpu, dRuns.length),
    dBinary: pgPerRow(dBinPostgresCpu, dBinRuns.length),
    pgsink: pgPerRow(pgMedian(pgsinkRuns)),
    ...(textCopyRuns.length ? { pgsinkTextCopy: pgPerRow(pgMedian(textCopyRuns)) } : {}),
  };
  const ratio = (x: number) => pgsinkEps / x;

  // ---------------------------------------------------------------- table
  const runsOf = (xs: readonly number[]) => xs.map(fmt).join(' / ');
  const rows: Array<[string, number, string, string]> = [
    [
      'pgsink  end to end: first fetch → last row committed',
      pgsinkEps,
      runsOf(pgsinkRuns.map((x) => x.result.eventsPerSec)),
      '—',
    ],
    ...(textCopyEps === undefined
      ? []
      : ([
          [
            'pgsink (text COPY)  routes[].copyFormat: text',
            textCopyEps,
            runsOf(textCopyRuns.map((x) => x.result.eventsPerSec)),
            `${ratio(textCopyEps).toFixed(2)}`,
          ],
        ] as Array<[string, number, string, string]>)),
    ...(adaptiveEps === undefined
      ? []
      : ([
          [
            'pgsink (adaptive rows)  batch.adaptiveRows: true',
            adaptiveEps,
            runsOf(adaptiveRuns.map((x) => x.result.eventsPerSec)),
            `${ratio(adaptiveEps).toFixed(2)}`,
          ],
        ] as Array<[string, number, string, string]>)),
    [
      'A  eachMessage: INSERT + offset commit per message',
      aEps,
      `${fmt(aRun.events)} events in ${aRun.seconds.toFixed(1)} s, extrapolated: ${fmt(EVENTS / aEps)} s for ${fmt(EVENTS)}`,
      `${ratio(aEps).toFixed(0)}×`,
    ],
    [
      `B  eachBatch: multi-row INSERT txn per fetch, ${CONCURRENCY} conc.`,
      bEps,
      runsOf(bRuns.map((x) => x.eventsPerSec)),
      `${ratio(bEps).toFixed(2)}×`,
    ],
    [
      'C  consume + decode + encode, rows thrown away',
      cEps,
      runsOf(cRuns.map((x) => x.eventsPerSec)),
      `${ratio(cEps).toFixed(2)} (${(ratio(cEps) * 100).toFixed(0)}%)`,
    ],
    [
      "K  consume only, no decode (kafkajs: pgsink's source)",
      kEps,
      runsOf(kRuns.map((x) => x.eventsPerSec)),
      `${ratio(kEps).toFixed(2)} (${(ratio(kEps) * 100).toFixed(0)}%)`,
    ],
    [
      "K₀ the same with kafkajs' own record decoder",
      k0Eps,
      runsOf(k0Runs.map((x) => x.eventsPerSec)),
      `${ratio(k0Eps).toFixed(2)} (${(ratio(k0Eps) * 100).toFixed(0)}%)`,
    ],
    ...(altEps === undefined
      ? []
      : ([
          [
            'K′ consume only (@confluentinc/kafka-javascript) ¹',
            altEps,
            runsOf(altRuns.map((x) => x.eventsPerSec)),
            `${ratio(altEps).toFixed(2)} (${(ratio(altEps) * 100).toFixed(0)}%)`,
          ],
        ] as Array<[string, number, string, string]>)),
    ...[...other.values()].flatMap((o): Array<[string, number, string, string]> => {
      const n = o.spec.groupProtocol === 'consumer' ? 'platformatic, KIP-848' : 'platformatic';
      const pe = median(o.pgsink.map((x) => x.result.eventsPerSec));
      return [
        [`pgsink on ${n}`, pe, runsOf(o.pgsink.map((x) => x.result.eventsPerSec)), `${ratio(pe).toFixed(2)}`],
        [`C  on ${n}`, eps(o.c), runsOf(o.c.map((x) => x.eventsPerSec)), `${ratio(eps(o.c)).toFixed(2)}`],
        [`K  on ${n}`, eps(o.k), runsOf(o.k.map((x) => x.eventsPerSec)), `${ratio(eps(o.k)).toFixed(2)}`],
      ];
    }),
    [
      `D  COPY pre-encoded rows, ${fmt(MAX_ROWS)}/txn, ${CONCURRENCY} conc.`,
      dEps,
      runsOf(dRuns.map((x) => x.eventsPerSec)),
      `${ratio(dEps).toFixed(2)} (${(ratio(dEps) * 100).toFixed(0)}%)`,
    ],
    [
      `D_binary  the same rows as COPY binary, ${fmt(MAX_ROWS)}/txn`,
      dBinEps,
      runsOf(dBinRuns.map((x) => x.eventsPerSec)),
      `${ratio(dBinEps).toFixed(2)} (${(ratio(dBinEps) * 100).toFixed(0)}%)`,
    ],
  ];
  out('');
  out(`  ${pad('', 56)}${pad('events/s', 10, true)}   ${pad('pgsink ÷ it', 12)}  runs`);
  for (const [what, v, runs, r] of rows)
    out(`  ${pad(what, 56)}${pad(fmt(v), 10, true)}   ${pad(r, 12)}  ${runs}`);
  if (altEps !== undefined) {
    out(
      `  ¹ ${altClientVersion()} (librdkafka, built by bench/alt-client/build.sh), js.consumer.max.batch.size 1000, with V8's default heap (it runs out of the deployed 160 MiB)`,
    );
  }
  out('');
  out(
    `  latency   open loop at ${fmt(latency.targetRate)} events/s (${args['latency-rate'] !== undefined ? 'set by --latency-rate' : `half the max${QUICK ? `, quick: capped at ${fmt(QUICK_LATENCY_RATE_CAP)}` : ''}`}) for ${latency.seconds} s, ${fmt(latency.samples)} events after ${latency.warmupMs} ms warm-up:`,
  );
  out(
    `            produce → row committed  p50 ${latency.p50Ms.toFixed(0)} ms, p90 ${latency.p90Ms.toFixed(0)} ms, p99 ${latency.p99Ms.toFixed(0)} ms, p99.9 ${latency.p999Ms.toFixed(0)} ms, max ${latency.maxMs.toFixed(0)} ms (producer at most ${latency.producerMaxBehindMs.toFixed(0)} ms behind schedule; ${checkpoint})`,
  );
  if (latencyAdaptive) {
    const l = latencyAdaptive;
    out(
      `            with batch.adaptiveRows  p50 ${l.p50Ms.toFixed(0)} ms, p90 ${l.p90Ms.toFixed(0)} ms, p99 ${l.p99Ms.toFixed(0)} ms, p99.9 ${l.p999Ms.toFixed(0)} ms, max ${l.maxMs.toFixed(0)} ms at ${fmt(l.achievedRate)} events/s (producer at most ${l.producerMaxBehindMs.toFixed(0)} ms behind)`,
    );
  }
  const coresText = (v: number | null) => (v === null ? 'n/a' : v.toFixed(2));
  out(
    `            sent by ${latency.generator}; CPU in use while sending, in cores of ${availableParallelism()}: pgsink ${coresText(latency.cores.pgsink)}, postgres ${coresText(latency.cores.postgres)}, broker ${coresText(latency.cores.kafka)}, producer ${coresText(latency.cores.generator)}`,
  );
  const cpuText = (v: number | null, what: string) =>
    v === null ? `${what} n/a (not local)` : `${what} ${v.toFixed(1)}`;
  out(
    `  pgsink    peak RSS ${peakRss.toFixed(0)} MiB (node ${NODE_FLAGS.join(' ') || 'with V8 defaults'}); CPU seconds during a run (median): ${cpuText(cpu.pgsink, 'pgsink')}, ${cpuText(cpu.postgres, 'postgres')}, ${cpuText(cpu.kafka, 'kafka (java)')}`,
  );
  out(
    `  stalled   (node ${STALL_NODE_FLAGS.join(' ') || 'with V8 defaults'}) table locked ${stall.lockHeldSeconds.toFixed(1)} s while ${fmt(stall.events)} events were produced: peak RSS ${stall.peakRssStalledMiB.toFixed(0)} MiB (${stall.peakRssMiB.toFixed(0)} MiB incl. the drain), buffered (as pgsink counts it) ≤ ${stall.maxBufferedMiB.toFixed(1)} MiB while its V8 heap held ${stall.heapUsedMiB.toFixed(0)} MiB (+ ${stall.externalMiB.toFixed(0)} MiB outside), ${stall.pausedPartitionsAtUnlock}/${PARTITIONS} partitions paused; ${stall.crashed ? `pgsink DIED: ${stall.crashed}` : `drained in ${stall.drainSeconds.toFixed(1)} s after unlock`}`,
  );

  out(
    `  half bad  (node ${STALL_NODE_FLAGS.join(' ') || 'with V8 defaults'}) ${fmt(halfBad.events)} events, every other one refused by a CHECK: ${fmt(halfBad.recordsPerSec)} records/s (${fmt(halfBad.rows)} rows + ${fmt(halfBad.deadLetters)} dead letters in ${halfBad.seconds.toFixed(1)} s), peak RSS ${halfBad.peakRssMiB.toFixed(0)} MiB`,
  );

  // Per client: CPU per event (pgsink's own process, C's and K's workers) and peak RSS.
  const clientSummary = (spec: ClientSpec, runs: PgsinkRun[], cR: RunResult[], kR: RunResult[]) => ({
    client: specName(spec),
    pgsinkEventsPerSec: round(median(runs.map((x) => x.result.eventsPerSec)), 1),
    pgsinkCpuMicrosPerEvent: round((median(runs.map((x) => x.cpu.pgsink)) / EVENTS) * 1e6, 2),
    peakRssMiB: round(Math.max(...runs.map((x) => x.peakRssMiB)), 1),
    C: { eventsPerSec: round(eps(cR), 1), cpuMicrosPerEvent: round(perEvent(cR) * 1e6, 2) },
    K: { eventsPerSec: round(eps(kR), 1), cpuMicrosPerEvent: round(perEvent(kR) * 1e6, 2) },
  });
  const clients = [
    clientSummary(KAFKAJS, pgsinkRuns, cRuns, kRuns),
    ...[...other.values()].map((o) => clientSummary(o.spec, o.pgsink, o.c, o.k)),
  ];
  out('');
  out('  clients   pgsink events/s, its CPU µs/event, peak RSS; C and K events/s (CPU µs/event)');
  for (const x of clients)
    out(
      `            ${pad(x.client, 28)}${pad(fmt(x.pgsinkEventsPerSec), 9, true)}  ${x.pgsinkCpuMicrosPerEvent.toFixed(2)} µs  ${x.peakRssMiB.toFixed(0)} MiB   C ${fmt(x.C.eventsPerSec)} (${x.C.cpuMicrosPerEvent.toFixed(2)})   K ${fmt(x.K.eventsPerSec)} (${x.K.cpuMicrosPerEvent.toFixed(2)})`,
    );
  if (!kip848)
    out('            (KIP-848 not measured: the broker does not offer the consumer group protocol)');
  out('');
  out(
    `  rebalance ${PARTITIONS} partitions, 2 members at ${fmt(rebRate)} events/s; a third joins, the first leaves (SIGTERM), the second is killed (-9)`,
  );
  out(
    '            per event: stall = longest time a partition went without a committed flush (max / median over partitions), p99 produce → commit until the next event, records fetched twice',
  );
  for (const r of rebalance) {
    out(
      `            ${r.client}: steady max gap ${fmt(r.steadyMaxGapMs)} ms, p99 ${fmt(r.steadyP99Ms)} ms; session timeout ${fmt(r.sessionTimeoutMs)} ms; ${fmt(r.fetchedTwiceTotal)} fetched twice in all`,
    );
    for (const e of r.timeline)
      out(
        `              ${pad(e.event, 16)} at ${pad(`${(e.atMs / 1000).toFixed(1)} s`, 7, true)}  stall ${pad(fmt(e.stallMaxMs), 7, true)} / ${pad(fmt(e.stallMedianMs), 7, true)} ms   p99 ${pad(fmt(e.p99Ms), 7, true)} ms   fetched twice ${pad(fmt(e.fetchedTwice), 8, true)}`,
      );
  }

  const minCD = Math.min(cEps, dEps);
  const targets: Record<string, Target> = {
    throughput: { what: '≥ 100,000 events/s', value: fmt(pgsinkEps), met: pgsinkEps >= 100_000 },
    ceiling: {
      what: '≥ 90% of min(C, D)',
      value: `${((pgsinkEps / minCD) * 100).toFixed(0)}%`,
      met: pgsinkEps >= 0.9 * minCD,
    },
    vsB: { what: '≥ 2× B', value: `${ratio(bEps).toFixed(2)}×`, met: ratio(bEps) >= 2 },
    vsA: { what: '≥ 50× A', value: `${ratio(aEps).toFixed(0)}×`, met: ratio(aEps) >= 50 },
    latency: {
      what: `p99 ≤ lingerMs + 100 = ${LINGER_MS + 100} ms`,
      value: `${latency.p99Ms.toFixed(0)} ms`,
      met: latency.p99Ms <= LINGER_MS + 100,
    },
    rss: {
      what: `peak RSS ≤ ${RSS_TARGET_MIB} MiB (run / stalled)`,
      value: `${peakRss.toFixed(0)} / ${stall.peakRssMiB.toFixed(0)} MiB`,
      met: peakRss <= RSS_TARGET_MIB && stall.peakRssMiB <= RSS_TARGET_MIB && !stall.crashed,
    },
    halfBad: {
      what: `half bad ≥ 10k rec/s, ≤ ${RSS_TARGET_MIB} MiB`,
      value: `${fmt(halfBad.recordsPerSec)}/s, ${halfBad.peakRssMiB.toFixed(0)} MiB`,
      met: halfBad.recordsPerSec >= 10_000 && halfBad.peakRssMiB <= RSS_TARGET_MIB,
    },
  };
  if (cpuBound) {
    out(
      `  one box   C needs ${cpuBound.cUs.toFixed(1)} µs of CPU per event, D ${(cpuBound.dClientUs + cpuBound.dPostgresUs).toFixed(1)} µs (COPY client ${cpuBound.dClientUs.toFixed(1)}, postgres ${cpuBound.dPostgresUs.toFixed(1)}); pgsink does both on these ${cpuBound.cores} cores, so even with perfect overlap it cannot pass ${fmt(cpuBound.eps)} events/s = ${((cpuBound.eps / minCD) * 100).toFixed(0)}% of min(C, D); pgsink reached ${((pgsinkEps / cpuBound.eps) * 100).toFixed(0)}% of that bound`,
    );
  }
  if (cpuBoundBinary) {
    out(
      `  one box   binary: C ${cpuBoundBinary.cUs.toFixed(1)} µs + D_binary ${(cpuBoundBinary.dClientUs + cpuBoundBinary.dPostgresUs).toFixed(1)} µs (COPY client ${cpuBoundBinary.dClientUs.toFixed(1)}, postgres ${cpuBoundBinary.dPostgresUs.toFixed(1)}) per event on ${cpuBoundBinary.cores} cores: at most ${fmt(cpuBoundBinary.eps)} events/s = ${((cpuBoundBinary.eps / Math.min(cEps, dBinEps)) * 100).toFixed(0)}% of min(C, D_binary); pgsink reached ${((pgsinkEps / cpuBoundBinary.eps) * 100).toFixed(0)}% of that bound`,
    );
  }
  if (postgresUs.dText !== null) {
    const dText = postgresUs.dText;
    const us = (v: number | null) => (v === null ? 'n/a' : `${v.toFixed(2)} µs`);
    const vs = (v: number | null, of = '') => (v === null ? '' : ` (${(v / dText).toFixed(2)}×${of})`);
    const textCopy =
      postgresUs.pgsinkTextCopy === undefined
        ? ''
        : `, pgsink (text COPY) ${us(postgresUs.pgsinkTextCopy)}${vs(postgresUs.pgsinkTextCopy)}`;
    out(
      `  postgres  CPU per row: D text ${us(dText)}, D_binary ${us(postgresUs.dBinary)}${vs(postgresUs.dBinary)}, pgsink ${us(postgresUs.pgsink)}${vs(postgresUs.pgsink, ' of D text')}${textCopy}`,
    );
  }
  out('');
  out('  targets');
  for (const t of Object.values(targets))
    out(`    ${pad(t.what, 40)}${pad(t.value, 18)}${t.met ? 'met' : 'MISSED'}`);
  if (profile) {
    out('');
    for (const l of formatProfile(profile.summary)) out(`  ${l}`);
    out(`  (${profile.file})`);
  }
  const load1 = loadavg();
  out('');
  out(
    `  ${((performance.now() - t0) / 1000).toFixed(0)} s in all; load average ${load1.map((l) => l.toFixed(2)).join(' ')} at the end`,
  );

  // ---------------------------------------------------------------- JSON
  const summary = (runs: readonly RunResult[]) => ({
    eventsPerSec: round(eps(runs), 1),
    runs: runs.map((x) => round(x.eventsPerSec, 1)),
    seconds: round(median(runs.map((x) => x.seconds)), 3),
    workerCpuSeconds: round(median(runs.map((x) => x.cpuSeconds)), 2),
  });
  const json = {
    version: 1,
    startedAt: startedAt.toISOString(),
    quick: QUICK,
    machine: {
      ...machine,
      memoryGiB: round(machine.memoryGiB, 1),
      loadAverageStart: load0,
      loadAverageEnd: load1,
    },
    software: ver,
    data: {
      schema: 'schemas/bench-orders.avsc',
      events: EVENTS,
      partitions: PARTITIONS,
      avgEventBytes: round(produced.avgBytes, 1),
      produceEventsPerSec: round(EVENTS / produced.seconds, 1),
    },
    config: {
      maxRows: MAX_ROWS,
      maxBytes: BATCH_MAX_BYTES,
      lingerMs: LINGER_MS,
      maxConcurrentFlushes: CONCURRENCY,
      maxPartitionBytes: MAX_PARTITION_BYTES,
      maxTotalBytes: MAX_TOTAL_BYTES,
      nodeFlags: NODE_FLAGS.join(' '),
      stallNodeFlags: STALL_NODE_FLAGS.join(' '),
    },
    reps: REPS,
    pgsink: {
      eventsPerSec: round(pgsinkEps, 1),
      runs: pgsinkRuns.map((x) => round(x.result.eventsPerSec, 1)),
      seconds: round(median(pgsinkRuns.map((x) => x.result.seconds)), 3),
      peakRssMiB: round(peakRss, 1),
      cpuSeconds: {
        pgsink: round(cpu.pgsink),
        postgres: cpu.postgres === null ? null : round(cpu.postgres),
        kafka: cpu.kafka === null ? null : round(cpu.kafka),
      },
      avgBatchRows: Number(pgsinkRuns[0]!.result.extra?.['avgBatchRows'] ?? 0),
    },
    baselines: {
      A: {
        ...summary([aRun]),
        measuredEvents: aRun.events,
        extrapolated: true,
        extrapolatedSeconds: round(EVENTS / aEps, 1),
      },
      B: { ...summary(bRuns), concurrency: CONCURRENCY },
      C: summary(cRuns),
      K: summary(kRuns),
      K0: { ...summary(k0Runs), kafkajsDecoder: 'stock' },
      ...(altRuns.length ? { Kalt: { ...summary(altRuns), client: altClientVersion() } } : {}),
      D: {
        ...summary(dRuns),
        batchRows: MAX_ROWS,
        concurrency: CONCURRENCY,
        postgresCpuSeconds: dPostgresCpu === undefined ? null : round(dPostgresCpu / dRuns.length, 2),
      },
    },
    oneBoxCpuBound: cpuBound
      ? {
          cMicrosPerEvent: round(cpuBound.cUs, 2),
          dClientMicrosPerEvent: round(cpuBound.dClientUs, 2),
          dPostgresMicrosPerEvent: round(cpuBound.dPostgresUs, 2),
          cores: cpuBound.cores,
          eventsPerSec: round(cpuBound.eps, 1),
          shareOfMinCD: round(cpuBound.eps / minCD, 3),
        }
      : null,
    // D_binary: D's rows as COPY binary (written by Postgres from D's table), the same batches.
    ceilingDBinary: {
      ...summary(dBinRuns),
      batchRows: MAX_ROWS,
      concurrency: CONCURRENCY,
      postgresCpuSeconds: dBinPostgresCpu === undefined ? null : round(dBinPostgresCpu / dBinRuns.length, 2),
    },
    // Postgres' CPU (every process named postgres) ÷ rows written × 1e6; null when not local.
    postgresMicrosPerRow: Object.fromEntries(
      Object.entries(postgresUs).map(([k, v]) => [k, v === null ? null : round(v, 3)]),
    ),
    // oneBoxCpuBound's sum with D_binary's COPY client and Postgres CPU in place of D's.
    oneBoxCpuBoundBinary: cpuBoundBinary
      ? {
          cMicrosPerEvent: round(cpuBoundBinary.cUs, 2),
          dBinaryClientMicrosPerEvent: round(cpuBoundBinary.dClientUs, 2),
          dBinaryPostgresMicrosPerEvent: round(cpuBoundBinary.dPostgresUs, 2),
          cores: cpuBoundBinary.cores,
          eventsPerSec: round(cpuBoundBinary.eps, 1),
        }
      : null,
    pgsinkShareOfOneBoxBoundBinary: cpuBoundBinary ? round(pgsinkEps / cpuBoundBinary.eps, 3) : null,
    ...(textCopyRuns.length
      ? {
          pgsinkTextCopy: {
            copyFormat: 'text',
            eventsPerSec: round(textCopyEps ?? NaN, 1),
            runs: textCopyRuns.map((x) => round(x.result.eventsPerSec, 1)),
            seconds: round(median(textCopyRuns.map((x) => x.result.seconds)), 3),
            cpuSeconds: {
              pgsink: round(median(textCopyRuns.map((x) => x.cpu.pgsink))),
              postgres: c.postgresLocal
                ? round(median(textCopyRuns.map((x) => x.cpu.postgres ?? NaN)))
                : null,
            },
          },
        }
      : {}),
    ...(adaptiveRuns.length
      ? {
          pgsinkAdaptiveRows: {
            eventsPerSec: round(adaptiveEps ?? NaN, 1),
            runs: adaptiveRuns.map((x) => round(x.result.eventsPerSec, 1)),
            seconds: round(median(adaptiveRuns.map((x) => x.result.seconds)), 3),
            cpuSeconds: { pgsink: round(median(adaptiveRuns.map((x) => x.cpu.pgsink))) },
          },
        }
      : {}),
    ...(latencyAdaptive
      ? {
          latencyAdaptiveRows: {
            achievedRate: round(latencyAdaptive.achievedRate, 1),
            p50Ms: round(latencyAdaptive.p50Ms, 1),
            p90Ms: round(latencyAdaptive.p90Ms, 1),
            p99Ms: round(latencyAdaptive.p99Ms, 1),
            p999Ms: round(latencyAdaptive.p999Ms, 1),
            maxMs: round(latencyAdaptive.maxMs, 1),
            producerMaxBehindMs: round(latencyAdaptive.producerMaxBehindMs, 1),
          },
        }
      : {}),
    ratios: {
      A: round(ratio(aEps)),
      B: round(ratio(bEps), 3),
      C: round(ratio(cEps), 3),
      K: round(ratio(kEps), 3),
      K0: round(ratio(k0Eps), 3),
      ...(altEps === undefined ? {} : { Kalt: round(ratio(altEps), 3) }),
      D: round(ratio(dEps), 3),
    },
    latency: {
      ...latency,
      checkpoint,
      achievedRate: round(latency.achievedRate, 1),
      p50Ms: round(latency.p50Ms, 1),
      p90Ms: round(latency.p90Ms, 1),
      p99Ms: round(latency.p99Ms, 1),
      p999Ms: round(latency.p999Ms, 1),
      maxMs: round(latency.maxMs, 1),
      producerMaxBehindMs: round(latency.producerMaxBehindMs, 1),
    },
    stall: {
      ...stall,
      lockHeldSeconds: round(stall.lockHeldSeconds),
      peakRssStalledMiB: round(stall.peakRssStalledMiB, 1),
      peakRssMiB: round(stall.peakRssMiB, 1),
      maxBufferedMiB: round(stall.maxBufferedMiB),
      heapUsedMiB: round(stall.heapUsedMiB, 1),
      externalMiB: round(stall.externalMiB, 1),
      drainSeconds: round(stall.drainSeconds),
    },
    halfBad: {
      ...halfBad,
      recordsPerSec: round(halfBad.recordsPerSec),
      seconds: round(halfBad.seconds),
      peakRssMiB: round(halfBad.peakRssMiB, 1),
    },
    targets: Object.fromEntries(
      Object.entries(targets).map(([k, t]) => [k, { target: t.what, value: t.value, met: t.met }]),
    ),
    clients,
    rebalance: rebalance.map((r) => ({
      ...r,
      steadyMaxGapMs: round(r.steadyMaxGapMs),
      steadyP99Ms: round(r.steadyP99Ms, 1),
      seconds: round(r.seconds, 1),
      timeline: r.timeline.map((e) => ({
        ...e,
        stallMaxMs: round(e.stallMaxMs),
        stallMedianMs: round(e.stallMedianMs),
        p99Ms: round(e.p99Ms, 1),
      })),
    })),
    kip848Measured: kip848 && !QUICK,
    ...(profile ? { profile: { file: profile.file, ...profile.summary } } : {}),
  };
  mkdirSync(dirname(OUT), { recursive: true });
  writeFileSync(OUT, `${JSON.stringify(json, null, 2)}\n`);
  out(`  results written to ${OUT}`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    const text =
      err instanceof StackError
        ? err.message
        : err instanceof Error
          ? (err.stack ?? err.message)
          : String(err);
    process.stderr.write(`bench failed: ${text}\n`);
    process.exit(1);
  },
);
