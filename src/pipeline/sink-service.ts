// The pipeline: Kafka batches → per-partition buffers → flush transactions → Kafka commits.
//
// Invariants kept here (../shared/DESIGN.md):
// - No loss: a partition's Kafka offset is committed only after the Postgres transaction
//   that wrote (or dead-lettered) every record before it has committed.
// - No duplicates: each flush goes through the Postgres fence (src/sink/flush.ts); records
//   below the fence are dropped when fetched and again inside the transaction.
// - Bounded memory: bytes count from buffering until the flush commits; partitions pause
//   above their limit (or all of them above the total) and resume below the low-water mark.
// - Order: one flush in flight per partition; batches are taken in offset order.
// - Outage is not poison: a failing flush puts its batch back, pauses the partition and
//   retries with capped, jittered backoff.
// - Postgres is the source of truth: each partition starts from its fence whichever side is
//   ahead, a flush that finds the fence behind what this process wrote (a failover, a
//   restore) reads the partition again from it, and offsets the client skips are checked
//   against the log start so that a retention gap is recorded, never skipped quietly.
import type pg from 'pg';
import { AdaptiveRows, adaptiveRowsOptions } from '../batch/adaptive-rows.ts';
import { Backpressure } from '../batch/backpressure.ts';
import { PartitionBuffer, type Batch, type FlushReason } from '../batch/partition-buffer.ts';
import type { Config } from '../config/schema.ts';
import { rawHeadersOf } from '../kafka/record-headers.ts';
import type { AssignmentChange, FetchedBatch, KafkaSource, TopicPartition } from '../kafka/source.ts';
import { assertRecordValue, type RecordMeta } from '../sink/columns.ts';
import { readWireTypes } from '../sink/catalog.ts';
import type { WireType } from '../sink/copy-binary.ts';
import type { DirectBinaryEncoder } from '../sink/direct-binary.ts';
import { LineOverflow, type DirectLineEncoder } from '../sink/direct-line.ts';
import { ensureSinkTables, assertTargetTable, sinkTables, type SinkTables } from '../sink/ddl.ts';
import { quoteQualified } from '../sink/columns.ts';
import { planTable } from '../sink/schema-plan.ts';
import { assertUniqueKey, deleteLine, upsertLine } from '../sink/upsert.ts';
import {
  CatalogChanged,
  FenceBehind,
  flushBatch,
  rawSlice,
  readFences,
  type Entry,
  type Failure,
} from '../sink/flush.ts';
import { classifyPgError, describePgError, SinkError, sqlstateOf } from '../sink/pg-errors.ts';
import { RowArena } from '../sink/row-arena.ts';
import type { Logger } from '../telemetry/logger.ts';
import { backoffDelay } from '../util/backoff.ts';
import { isCertificateError } from '../util/tls.ts';
import type { Clock } from '../util/clock.ts';
import { ConfigError, errorMessage, PgsinkError, RecordError } from '../util/errors.ts';
import { MAX_TRACE_LINKS, type FailedFlush, type SinkObserver } from './observer.ts';
import { Progress } from './progress.ts';
import { decideStart } from './start-position.ts';
import { adaptToTable, useCopyFormat, type RouteRuntime } from './routes.ts';

/** Per-record overhead on top of its bytes: the entry object, offsets, strings' headers. */
const ENTRY_OVERHEAD = 96;

interface PartitionState {
  readonly key: string;
  readonly tp: TopicPartition;
  readonly route: RouteRuntime;
  readonly buffer: PartitionBuffer<Entry>;
  /** Where this partition's buffered rows live (src/sink/row-arena.ts). */
  readonly arena: RowArena;
  readonly rawArena: RowArena;
  /**
   * Bumped on every group join and when the partition is read again from its fence: work of
   * an older epoch must not touch this one's state.
   */
  epoch: number;
  assigned: boolean;
  /** Settles once the partition's start position is known (and sought, when it had to be). */
  positioned: Promise<void> | undefined;
  /** The fence as this process last read or wrote it; undefined while there is no fence row. */
  fence: number | undefined;
  /**
   * The offset the client must fetch next: the fence after positioning, then the end of the
   * last buffered batch. Below it, everything is buffered or written; a batch fetched from
   * above it means the client skipped offsets (checked against the log start). Undefined
   * while the client's own start (Kafka's committed offset, else fromBeginning) is accepted.
   */
  next: number | undefined;
  inFlight: Promise<void> | undefined;
  /** Consecutive failures of the sink (flush) or the decoder (registry) for backoff. */
  attempts: number;
  /** While set, the partition stays paused and does not flush before this time. */
  holdUntil: number | undefined;
  holdReason: string | undefined;
  highWatermark: number;
  lastCommitted: number | undefined;
  /** The Kafka commit running for this partition, and the newest offset still to commit. */
  committing: Promise<void> | undefined;
  commitWanted: { offset: number; epoch: number } | undefined;
  /** Whether it advances (src/pipeline/progress.ts), and whether it was reported stuck. */
  progress: Progress;
  reportedStuck: boolean;
  /**
   * Stopped: nothing more is fetched until the partition is assigned again (a retention gap
   * with onRetentionGap: stop, a fence beyond the log's end). What is buffered still flushes.
   */
  stopped: { code: string; reason: string } | undefined;
  /** The offset an unannounced skip was sought back from once (see checkSkip). */
  skipCheckedAt: number | undefined;
  /** The first offset this process wrote after creating the partition's fence row. */
  createdFrom: number | undefined;
  /** Flushes committed in this epoch: a fence read from Postgres meanwhile is stale. */
  flushes: number;
  /** A fetched batch of it is being handled (onBatch awaits). */
  inBatch: boolean;
  /** An error of unknown kind repeating on the same first offset (see runFlush). */
  suspect: { code: string; first: number; count: number } | undefined;
  /** The next flush isolates bad rows from the start (an unknown error proved to be data). */
  isolateNext: boolean;
  /** Rows per flush while a batch keeps exceeding statement_timeout (halved each time). */
  batchLimit: number | undefined;
  /** batch.adaptiveRows: the row limit that follows this partition's flush latency. */
  adaptive: AdaptiveRows | undefined;
}

/** A partition with records to write that has not advanced for longer than http.stuckAfterMs. */
export interface StuckPartition {
  topic: string;
  partition: number;
  /** ISO time since which it has not advanced. */
  since: string;
  stalledSeconds: number;
  /** The last error's code and the stage it came from, when there was one. */
  code?: string;
  stage?: string;
}

export interface Readiness {
  ready: boolean;
  /** Why not, in one line (no secrets: codes, topics, partitions, times). */
  reason?: string;
  consumer: 'ok' | 'starting' | 'not joined' | 'stopping' | 'failed';
  haltedRoutes: string[];
  stuck: StuckPartition[];
  stopped: Array<{ topic: string; partition: number; code: string }>;
}

/** How often stuck partitions are looked for and reported. */
const HEALTH_TICK_MS = 1_000;
/** How often the watermarks of assigned partitions are read (lag while paused or stuck). */
const WATERMARK_POLL_MS = 5_000;
/** An unknown error that repeats this often on the same records while Postgres answers is data. */
const UNKNOWN_REPEATS_AS_DATA = 3;
/** The longest a fetched batch waits for its partition's start position inside the fetch loop. */
const POSITION_WAIT_MS = 1_000;

export interface SinkServiceDeps {
  config: Config;
  routes: Map<string, RouteRuntime>;
  source: KafkaSource;
  pool: pg.Pool;
  clock: Clock;
  logger: Logger;
  observer: SinkObserver;
  random?: () => number;
}

export type ServiceState = 'new' | 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';

export class SinkService {
  private readonly states = new Map<string, PartitionState>();
  /** Routes whose table's column types are being read again (see refreshCatalog). */
  private readonly refreshing = new Map<RouteRuntime, Promise<void>>();
  private readonly bp: Backpressure;
  private readonly tables: SinkTables;
  private readonly kafkaPaused = new Set<string>();
  private readonly waiting = new Set<PartitionState>();
  private readonly activeClients = new Set<pg.PoolClient>();
  private activeFlushes = 0;
  /** Flushes in flight per route (topic): see routeShare(). */
  private readonly activeByRoute = new Map<string, number>();
  private share = 1;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private draining = false;
  private stopPromise: Promise<void> | undefined;
  private joined = false;
  private fatalError: Error | undefined;
  private idleWaiters: Array<() => void> = [];
  private readonly halted = new Map<string, string>();
  private readonly deadLetterWindow = new Map<string, Array<[number, number]>>();
  private healthTimer: NodeJS.Timeout | undefined;
  /** Set by stop(): start-up gives up at its next step, sleeps end at once. */
  private stopRequested = false;
  private readonly sleepers = new Set<() => void>();
  private startPromise: Promise<void> | undefined;
  /** What start-up is waiting for, while it waits (for /readyz and the log). */
  private startWait: { what: string; code: string; since: number } | undefined;
  /** Past the shutdown deadline: no flush starts any more, failures are not retried. */
  private abandoned = false;
  private watermarkPoll: Promise<void> | undefined;
  private lastWatermarkPoll = 0;
  state: ServiceState = 'new';

  private readonly d: SinkServiceDeps;

  constructor(d: SinkServiceDeps) {
    this.d = d;
    this.bp = new Backpressure(d.config.backpressure);
    this.tables = sinkTables(d.config.postgres.schema);
  }

  /** Joined the group, no route stopped by its dead-letter limit, no partition stuck. */
  get ready(): boolean {
    return this.readiness().ready;
  }

  /** What /readyz says, and why: the first failing check names the reason. */
  readiness(): Readiness {
    const now = this.d.clock.now();
    const consumer: Readiness['consumer'] =
      this.state === 'failed'
        ? 'failed'
        : this.state === 'stopping' || this.state === 'stopped'
          ? 'stopping'
          : this.state !== 'running'
            ? 'starting'
            : this.joined
              ? 'ok'
              : 'not joined';
    const stuck = this.stuckPartitions(now);
    const haltedRoutes = [...this.halted.keys()];
    const stopped = [...this.states.values()]
      .filter((st) => st.assigned && st.stopped)
      .map((st) => ({ ...st.tp, code: st.stopped!.code }));
    let reason: string | undefined;
    if (consumer === 'failed') reason = 'the Kafka consumer failed and will not restart (see the log)';
    else if (consumer === 'stopping') reason = 'stopping';
    else if (consumer === 'starting' || (consumer === 'not joined' && this.startWait)) {
      const w = this.startWait;
      reason = w
        ? `starting: waiting for ${w.what} (${w.code}) since ${new Date(w.since).toISOString()}; see the log`
        : 'starting: not consuming yet';
    } else if (consumer === 'not joined') reason = 'the consumer has not joined its group yet';
    else if (haltedRoutes.length)
      reason = `route ${haltedRoutes.join(', ')} stopped by its dead-letter limit (routes[].maxDeadLettersPerMinute)`;
    else if (stopped.length) {
      const s = stopped[0]!;
      reason =
        `partition ${s.topic}:${s.partition} is stopped (${s.code}; see the log)` +
        (stopped.length > 1 ? `, and ${stopped.length - 1} more` : '');
    } else if (stuck.length) {
      const s = stuck[0]!;
      reason =
        `partition ${s.topic}:${s.partition} has had records to write for ${s.stalledSeconds} s without advancing` +
        (s.code ? ` (last error ${s.code} in ${s.stage})` : '') +
        (stuck.length > 1 ? `, and ${stuck.length - 1} more` : '');
    }
    return {
      ready: reason === undefined,
      ...(reason ? { reason } : {}),
      consumer,
      haltedRoutes,
      stuck,
      stopped,
    };
  }

  private hasWork(st: PartitionState): boolean {
    return (
      st.buffer.rows > 0 ||
      st.inFlight !== undefined ||
      st.holdUntil !== undefined ||
      st.stopped !== undefined ||
      // Only against a known position: without one (a start the client chose), the log end
      // says nothing about what is left.
      (st.next !== undefined && st.highWatermark > st.next)
    );
  }

  private stuckPartitions(now: number): StuckPartition[] {
    const after = this.d.config.http.stuckAfterMs;
    const out: StuckPartition[] = [];
    for (const st of this.states.values()) {
      if (!st.assigned) continue;
      const since = st.progress.stuckSince(now, after);
      if (since === undefined) continue;
      const e = st.progress.lastError;
      out.push({
        ...st.tp,
        since: new Date(since).toISOString(),
        stalledSeconds: Math.round((now - since) / 1000),
        ...(e ? { code: e.code, stage: e.stage } : {}),
      });
    }
    return out;
  }

  /**
   * Every second: partitions with nothing to write are idle; stuck ones are logged once (and
   * their recovery); the observer gets each partition's stall time. Every few seconds the
   * watermarks are read, so lag keeps moving while a partition is paused or stuck.
   */
  private healthTick(): void {
    if (this.state !== 'running') return;
    const now = this.d.clock.now();
    const after = this.d.config.http.stuckAfterMs;
    const report = [];
    for (const st of this.states.values()) {
      if (!st.assigned) continue;
      if (!this.hasWork(st)) st.progress.idle();
      const since = st.progress.stuckSince(now, after);
      if (since !== undefined && !st.reportedStuck) {
        st.reportedStuck = true;
        const e = st.progress.lastError;
        this.d.logger.error(
          { ...st.tp, since: new Date(since).toISOString(), code: e?.code, stage: e?.stage },
          `partition ${st.key} is stuck: it has had records to write for ${Math.round((now - since) / 1000)} s without advancing` +
            (e ? ` (last error ${e.code} in ${e.stage}; see the warnings before this one)` : ''),
        );
      } else if (since === undefined && st.reportedStuck) {
        st.reportedStuck = false;
        this.d.logger.info({ ...st.tp }, `partition ${st.key} advances again`);
      }
      report.push({ ...st.tp, stalledMs: st.progress.stalledMs(now), stuck: since !== undefined });
    }
    this.d.observer.partitionHealth(report);
    if (now - this.lastWatermarkPoll >= WATERMARK_POLL_MS && !this.watermarkPoll) {
      this.lastWatermarkPoll = now;
      this.watermarkPoll = this.pollWatermarks().finally(() => (this.watermarkPoll = undefined));
    }
  }

  /**
   * A partition with nothing new to write would not notice that Postgres lost its last
   * commits until its next flush (and retention may take the records meanwhile): its fence is
   * compared with Postgres' now and then too.
   */
  private async checkFences(): Promise<void> {
    const before = new Map<PartitionState, { epoch: number; flushes: number; fence: number }>();
    for (const st of this.states.values()) {
      if (st.assigned && st.fence !== undefined && !st.inFlight && st.next !== undefined)
        before.set(st, { epoch: st.epoch, flushes: st.flushes, fence: st.fence });
    }
    if (before.size === 0) return;
    let rows: Map<string, number>;
    try {
      const client = await this.checkout();
      try {
        rows = await readFences(client, this.tables, this.d.config.kafka.groupId);
      } finally {
        this.checkin(client);
      }
    } catch {
      return; // an outage: the flushes will say so
    }
    for (const [st, was] of before) {
      // A flush in between makes what was read stale.
      if (st.epoch !== was.epoch || st.flushes !== was.flushes || st.inFlight || this.state !== 'running')
        continue;
      const row = rows.get(st.key);
      if (row !== undefined && row >= was.fence) continue;
      this.rewind(st, new FenceBehind(row, was.fence, `fence check ${st.key}`));
    }
  }

  private async pollWatermarks(): Promise<void> {
    // Independent: a Postgres outage must not freeze the lag.
    const fences = this.checkFences();
    const topics = new Set<string>();
    for (const st of this.states.values()) if (st.assigned) topics.add(st.tp.topic);
    for (const topic of topics) {
      let marks: Map<number, { low: number; high: number }>;
      try {
        marks = await this.d.source.watermarks(topic);
      } catch (err) {
        this.d.logger.debug({ topic, err: errorMessage(err) }, 'cannot read watermarks');
        continue;
      }
      const now = this.d.clock.now();
      for (const [partition, { low, high }] of marks) {
        const st = this.states.get(`${topic}:${partition}`);
        if (!st?.assigned) continue;
        st.highWatermark = high;
        if (
          st.next !== undefined &&
          st.next < low &&
          !st.inBatch &&
          !st.stopped &&
          this.state === 'running'
        ) {
          // Retention took records this partition had not fetched yet. The client would find
          // out at its next fetch and, with kafka.fromBeginning false, reset to the end, where
          // nothing may come for a long while: record the gap now and read from the log start.
          const from = st.next;
          this.retentionGap(st, from, low - 1);
          if (!st.stopped) {
            st.next = low;
            this.d.source.seek(st.tp, low);
          }
        }
        this.d.observer.lag(topic, partition, Math.max(0, high - (st.lastCommitted ?? st.fence ?? 0)));
        if (this.hasWork(st)) st.progress.busy(now);
      }
    }
    await fences;
  }

  /** Routes stopped by their dead-letter rate limit, with the reason. */
  get haltedRoutes(): ReadonlyMap<string, string> {
    return this.halted;
  }

  get failure(): Error | undefined {
    return this.fatalError;
  }

  /**
   * Creates pgsink's tables, checks the targets, joins the group and starts consuming. An
   * unreachable Postgres or Kafka (or a topic that does not exist yet) is waited out with
   * backoff, not ready, and said in the log; a configuration error rejects at once. Returns
   * early, without error, when stop() is called meanwhile (start-up honours SIGTERM).
   */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error(`start() called in state ${this.state}`);
    this.state = 'starting';
    this.startPromise = this.doStart();
    return this.startPromise;
  }

  private async doStart(): Promise<void> {
    if (!(await this.retrying('Postgres', () => this.preparePostgres()))) return;
    if (!(await this.retrying('Postgres', () => this.openFlushConnections()))) return;
    this.state = 'running';
    this.healthTimer = setInterval(() => this.healthTick(), HEALTH_TICK_MS);
    this.healthTimer.unref();
    await this.retrying('Kafka', () =>
      this.d.source.start({
        onAssignment: (tps) => this.onAssignment(tps),
        onBatch: (b) => this.onBatch(b),
        onFatal: (err) => this.onFatal(err),
        onUnreadable: (tp, err) => this.onUnreadable(tp, err),
        onFiltered: (tp, first, next) => this.onFiltered(tp, first, next),
      }),
    );
  }

  /**
   * Reads the route's table's column types again after a flush found one changed, and chooses
   * the encoders again (binary or text). Once per route at a time: the partitions that found it
   * too wait for the same read.
   */
  private refreshCatalog(route: RouteRuntime, cause: CatalogChanged): Promise<void> {
    const running = this.refreshing.get(route);
    if (running) return running;
    const refresh = (async () => {
      this.d.logger.warn(
        { route: route.config.topic, table: route.config.table, change: cause.message },
        `${cause.message}: the table was altered while pgsink writes COPY binary into it; reading its column types again, and encoding the buffered records again for them`,
      );
      const client = await this.checkout();
      try {
        const wire = await readWireTypes(client, route.config.table);
        adaptToTable(route, new Map([...wire].map(([name, w]) => [name, w.declared])));
        this.chooseCopyFormat(route, wire);
        route.gen++;
      } finally {
        this.checkin(client);
      }
    })().finally(() => this.refreshing.delete(route));
    this.refreshing.set(route, refresh);
    return refresh;
  }

  /** Encodes `entries` again, in place, from their records, with the route's current encoders. */
  private async reencode(st: PartitionState, entries: Entry[]): Promise<void> {
    await st.route.decoder.prepare(entries.map((e) => rawSlice(e, e.valueStart, e.valueEnd)));
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      if (e.skip) continue;
      const message = {
        key: rawSlice(e, e.keyStart, e.keyEnd),
        value: rawSlice(e, e.valueStart, e.valueEnd),
        offset: String(e.offset),
        timestamp: String(e.timestamp ?? -1),
        ...(e.headers ? { headers: e.headers } : {}),
        ...(e.rawHeaders ? { rawHeaders: e.rawHeaders } : {}),
      };
      entries[i] = this.decodeAll(st, [message], 0)[0]!;
    }
  }

  /** COPY binary where the table's column types allow it (said at start-up either way). */
  private chooseCopyFormat(route: RouteRuntime, wire: ReadonlyMap<string, WireType>): void {
    const why = useCopyFormat(route, wire);
    const table = route.config.table;
    if (why) {
      this.d.logger.warn(
        { route: route.config.topic, table, columns: why },
        `route ${route.config.topic}: COPY text into ${table}, because ${why.length === 1 ? 'a column has' : `${why.length} columns have`} no binary encoder: ${why.join('; ')} (set copyFormat: text on the route to choose text and silence this)`,
      );
    } else {
      this.d.logger.info(
        { route: route.config.topic, table, format: route.format },
        `route ${route.config.topic}: COPY ${route.format} into ${table}`,
      );
    }
  }

  private async preparePostgres(): Promise<void> {
    let client: pg.PoolClient;
    try {
      client = await this.checkout();
    } catch (err) {
      throw connectError(err, this.d.config);
    }
    try {
      await ensureSinkTables(client, this.tables);
      await assertCanIsolate(client);
      for (const route of this.d.routes.values()) {
        await this.prepareTable(client, route);
        adaptToTable(
          route,
          await assertTargetTable(client, route.config.table, route.plan.columns, route.config.topic),
        );
        this.chooseCopyFormat(route, await readWireTypes(client, route.config.table));
        await assertNoRules(client, route.config.table, route.config.topic);
        if (route.upsert)
          await assertUniqueKey(
            client,
            route.config.table,
            route.config.keyColumns ?? [],
            route.config.topic,
          );
      }
    } catch (err) {
      throw startError(err, "preparing pgsink's tables and checking the targets");
    } finally {
      this.checkin(client);
    }
  }

  /**
   * Runs `fn` until it succeeds. Retriable failures are waited out with backoff (logged, and
   * named by /readyz); any other is thrown. False when stop() came first.
   */
  private async retrying(what: string, fn: () => Promise<void>): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      if (this.stopRequested) return false;
      try {
        await fn();
        if (this.startWait) this.d.logger.info({ waited: what }, `${what} answers; going on`);
        this.startWait = undefined;
        return !this.stopRequested;
      } catch (err) {
        if (this.stopRequested) return false;
        if (!(err instanceof PgsinkError) || !err.retriable) throw err;
        const delay = backoffDelay(attempt, this.d.config.retry, this.d.random);
        this.startWait = { what, code: err.code, since: this.startWait?.since ?? this.d.clock.now() };
        this.d.logger.warn(
          { code: err.code, attempt: attempt + 1, retryInMs: delay },
          `${err.message}; retrying (not ready meanwhile)`,
        );
        await this.sleep(delay);
      }
    }
  }

  /** A sleep that stop() ends at once. */
  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.sleepers.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.sleepers.add(done);
    });
  }

  /**
   * Opens the connections the flushes will use before the first record is fetched: the first
   * flushes do not pay for connecting (it showed in the latency tail), and a server that cannot
   * give that many connections is reported at start, not at the first flush.
   */
  private async openFlushConnections(): Promise<void> {
    const want = Math.min(
      this.d.config.backpressure.maxConcurrentFlushes,
      this.d.pool.options.max ?? Infinity,
    );
    const opened = await Promise.allSettled(Array.from({ length: want }, () => this.checkout()));
    for (const r of opened) if (r.status === 'fulfilled') this.checkin(r.value);
    const failed = opened.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      const why = connectError(failed.reason, this.d.config);
      if (why instanceof ConfigError) throw why;
      const code = (failed.reason as { code?: string }).code ?? 'CONNECT_FAILED';
      throw new PgsinkError(
        'postgres',
        `cannot open the ${want} Postgres connections that backpressure.maxConcurrentFlushes asks for: ` +
          `${errorMessage(failed.reason)} (${code}). Lower backpressure.maxConcurrentFlushes, or raise the ` +
          `connection limit of the role or the server (max_connections).`,
        { code, retriable: true, cause: failed.reason },
      );
    }
  }

  /** auto-create / auto-evolve, when the route opts in; mismatched types are only reported. */
  private async prepareTable(client: pg.ClientBase, route: RouteRuntime): Promise<void> {
    const { config: rc, plan } = route;
    const keys = rc.mode === 'upsert' ? rc.keyColumns : undefined;
    const tp = await planTable(client, rc.table, plan.columns, plan.pgTypes, keys);
    for (const m of tp.mismatches)
      this.d.logger.warn({ route: rc.topic }, `column type differs from the mapping: ${m}`);
    const allowed = tp.exists ? rc.autoEvolve : rc.autoCreate;
    if (!allowed || tp.statements.length === 0) return;
    await client.query('BEGIN');
    try {
      await client.query(`SELECT pg_advisory_xact_lock(hashtext('pgsink.ddl'))`);
      // Re-plan under the lock: another consumer may have done it meanwhile.
      const again = await planTable(client, rc.table, plan.columns, plan.pgTypes, keys);
      for (const sql of again.statements) {
        this.d.logger.info({ route: rc.topic, sql }, tp.exists ? 'auto-evolve' : 'auto-create');
        await client.query(sql);
      }
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  }

  /**
   * A checked-out pg client whose connection dies emits 'error'; the pool only listens on
   * idle ones, and an unheard 'error' would crash the process. The query in progress
   * fails too, and that failure is what the caller handles.
   */
  private async checkout(): Promise<pg.PoolClient> {
    const client = await this.d.pool.connect();
    client.on('error', onCheckedOutError);
    return client;
  }

  private checkin(client: pg.PoolClient, destroy = false): void {
    client.off('error', onCheckedOutError);
    client.release(destroy);
  }

  private onFatal(err: Error): void {
    this.d.logger.error({ err }, 'kafka consumer failed and will not restart');
    this.fatalError = err;
    this.state = 'failed';
    for (const w of this.idleWaiters.splice(0)) w();
  }

  /**
   * A record batch of this partition cannot be read (its codec or its payload): the partition
   * is held and the batch fetched again after the backoff, so it is reported stuck (the error
   * names topic, partition, offsets and codec) while the other partitions go on.
   */
  private onUnreadable(tp: TopicPartition, err: PgsinkError): void {
    const st = this.states.get(`${tp.topic}:${tp.partition}`);
    if (!st?.assigned || this.state !== 'running') return;
    this.hold(st, err, 'codec');
  }

  // ---------------------------------------------------------------- assignment

  private onAssignment(change: AssignmentChange): void {
    // A join that completes after stop() was asked for: nothing is started for it.
    if (this.stopRequested) return;
    this.joined = true;
    const full = change.kind === 'full';
    const assigned = full ? change.partitions : change.assigned;
    const gained = new Set(assigned.map((tp) => `${tp.topic}:${tp.partition}`));
    const lost = new Set(full ? [] : change.revoked.map((tp) => `${tp.topic}:${tp.partition}`));
    const next = new Set(gained);
    if (!full) for (const st of this.states.values()) if (st.assigned && !lost.has(st.key)) next.add(st.key);
    // Eager rebalance (full): kafkajs has reset every fetch position to the committed offset,
    // so whatever is buffered will be fetched again: every partition starts a new epoch.
    // Incremental: only partitions that changed hands do; the others keep their buffers,
    // positions and flushes in flight.
    for (const st of this.states.values()) {
      if (!full && !gained.has(st.key) && !lost.has(st.key)) continue;
      st.epoch++;
      st.buffer.clear();
      st.positioned = undefined;
      st.fence = undefined;
      st.next = undefined;
      st.assigned = next.has(st.key);
      st.holdUntil = undefined;
      st.holdReason = undefined;
      st.attempts = 0;
      st.progress = new Progress(this.d.clock.now());
      st.reportedStuck = false;
      st.highWatermark = 0;
      st.suspect = undefined;
      st.isolateNext = false;
      st.stopped = undefined;
      st.batchLimit = undefined;
      st.skipCheckedAt = undefined;
      st.createdFrom = undefined;
      st.flushes = 0;
      st.lastCommitted = undefined;
      this.bp.forget(st.key);
      this.waiting.delete(st);
    }
    for (const tp of assigned) {
      const key = `${tp.topic}:${tp.partition}`;
      if (this.states.has(key)) continue;
      const route = this.d.routes.get(tp.topic);
      if (!route) continue;
      this.states.set(key, {
        key,
        tp,
        route,
        buffer: new PartitionBuffer<Entry>(this.d.config.batch),
        arena: new RowArena(),
        rawArena: new RowArena(),
        epoch: 0,
        assigned: true,
        positioned: undefined,
        fence: undefined,
        next: undefined,
        inFlight: undefined,
        attempts: 0,
        holdUntil: undefined,
        holdReason: undefined,
        highWatermark: 0,
        lastCommitted: undefined,
        committing: undefined,
        commitWanted: undefined,
        progress: new Progress(this.d.clock.now()),
        reportedStuck: false,
        suspect: undefined,
        isolateNext: false,
        stopped: undefined,
        batchLimit: undefined,
        adaptive: this.d.config.batch.adaptiveRows
          ? new AdaptiveRows(adaptiveRowsOptions(this.d.config.batch))
          : undefined,
        skipCheckedAt: undefined,
        createdFrom: undefined,
        flushes: 0,
        inBatch: false,
      });
    }
    // Fences for the whole assignment in one query, Kafka's commits in one request; each
    // partition's first batch waits for its own position.
    const mine = [...this.states.values()].filter((st) => st.assigned && gained.has(st.key));
    if (mine.length) this.positionAll(mine);
    // Partitions that the client still holds paused from before the rebalance resume unless
    // they are still over a limit (applyBackpressure below). Incremental: kept partitions stay
    // paused as they are; a revoked one is forgotten (the client drops its pause with it).
    const resume = [...this.kafkaPaused].filter((k) => (full ? next.has(k) : gained.has(k)));
    for (const k of [...this.kafkaPaused])
      if (full || gained.has(k) || lost.has(k)) this.kafkaPaused.delete(k);
    this.d.source.resume(resume.map((k) => this.states.get(k)!.tp));
    this.computeShare();
    this.d.observer.rebalanced(next.size);
    if (full) this.d.logger.info({ partitions: [...next] }, 'partitions assigned');
    else
      this.d.logger.info(
        { partitions: [...next], assigned: [...gained], revoked: [...lost] },
        'partitions assigned (incremental)',
      );
    this.applyBackpressure();
  }

  /** Reads the fences, Kafka's commits and the watermarks of newly owned partitions once, then positions each. */
  private positionAll(mine: PartitionState[]): void {
    const fences = this.loadFences();
    const committed = this.bounded(
      this.d.source.committedOffsets(mine.map((st) => st.tp)),
      "Kafka's committed offsets",
    );
    const marks = new Map<string, Promise<Map<number, { low: number; high: number }> | undefined>>();
    for (const st of mine) {
      if (!marks.has(st.tp.topic))
        marks.set(
          st.tp.topic,
          this.bounded(this.d.source.watermarks(st.tp.topic), `the watermarks of ${st.tp.topic}`),
        );
    }
    for (const st of mine) {
      const epoch = st.epoch;
      st.positioned = Promise.all([fences, committed, marks.get(st.tp.topic)!]).then(([f, c, w]) =>
        this.position(st, epoch, f.get(st.key), c?.get(st.key), w?.get(st.tp.partition)),
      );
    }
  }

  /**
   * Where a partition starts (src/pipeline/start-position.ts): its fence, whichever side
   * Kafka's commit is on; without a fence row, Kafka's commit or kafka.fromBeginning; a start
   * below the log start is a retention gap, a fence beyond the log end stops the partition.
   */
  private position(
    st: PartitionState,
    epoch: number,
    fence: number | undefined,
    committed: number | undefined,
    watermarks: { low: number; high: number } | undefined,
  ): void {
    if (epoch !== st.epoch || !st.assigned || this.state !== 'running') return;
    st.fence = fence;
    st.lastCommitted = committed !== undefined && committed >= 0 ? committed : undefined;
    if (watermarks) st.highWatermark = watermarks.high;
    const d = decideStart({ fence, committed, watermarks, fromBeginning: this.d.config.kafka.fromBeginning });
    if (d.kind === 'beyond-end') {
      this.stopPartition(
        st,
        'FENCE_BEYOND_LOG_END',
        `the Postgres fence of ${st.key} is at offset ${d.fence}, but the log ends at ${d.high}: the topic was recreated, ` +
          `moved to another cluster or truncated. Nothing is written to this partition until the group is moved: ` +
          `pgsink replay --topic ${st.tp.topic} --partition ${st.tp.partition} --to-earliest (or --to-offset).`,
      );
      return;
    }
    st.next = d.next;
    if (d.seek !== undefined) this.d.source.seek(st.tp, d.seek);
    if (d.reread) {
      this.d.logger.warn(
        { ...st.tp, fence, committed, records: d.reread.last - d.reread.first + 1 },
        `Postgres is behind the committed offset: records ${d.reread.first}..${d.reread.last} of ${st.key} are re-read; was Postgres restored or failed over?`,
      );
      this.d.observer.notice({ kind: 'reread', ...st.tp, ...d.reread });
    }
    if (d.fromKafkaCommit !== undefined)
      this.d.logger.warn(
        { ...st.tp, committed: d.fromKafkaCommit },
        `no Postgres fence for ${st.key}: starting from Kafka's committed offset ${d.fromKafkaCommit}. ` +
          'Records before it are not written again; if Postgres was restored from before pgsink ran, move the group with pgsink replay.',
      );
    if (d.commitBeyondEnd !== undefined)
      this.d.logger.warn(
        { ...st.tp, committed: d.commitBeyondEnd, high: watermarks?.high },
        `Kafka's committed offset ${d.commitBeyondEnd} of ${st.key} is beyond the log's end; starting as kafka.fromBeginning says`,
      );
    if (d.commitFence && fence !== undefined) this.commitSoon(st, fence);
    if (d.gap) this.retentionGap(st, d.gap.first, d.gap.last);
  }

  /** A lookup the fetch loop may wait for, bounded well under the session timeout. */
  private async bounded<T>(p: Promise<T>, what: string): Promise<T | undefined> {
    try {
      return await within(p, this.kafkaAnswerMs());
    } catch (err) {
      this.d.logger.warn(
        { err: errorMessage(err) },
        `cannot read ${what}; partitions start from their fences`,
      );
      return undefined;
    }
  }

  /** How long the fetch loop waits for a Kafka lookup: well under the session timeout. */
  private kafkaAnswerMs(): number {
    return Math.max(1_000, Math.floor(this.d.config.kafka.sessionTimeoutMs / 4));
  }

  /**
   * Offsets first..last were deleted by retention before they were written. `continue`: a
   * skip entry records them with the flush that moves the fence past them. `stop`: the
   * partition stops here (what is buffered before the gap still flushes).
   */
  private retentionGap(st: PartitionState, first: number, last: number): void {
    const action = st.route.config.onRetentionGap;
    const lost = `records ${first}..${last} of ${st.key} were deleted by retention before pgsink wrote them (${last - first + 1} records lost)`;
    if (action === 'stop') {
      this.d.observer.notice({ kind: 'retention-gap', ...st.tp, first, last, action });
      this.stopPartition(
        st,
        'RETENTION_GAP',
        `${lost}; the partition is stopped (routes[].onRetentionGap: stop). To go on, set onRetentionGap: continue and restart ` +
          `(the gap is then recorded in ${this.tables.gaps}), or move the group past it: pgsink replay --topic ${st.tp.topic} --partition ${st.tp.partition} --to-earliest.`,
      );
      return;
    }
    this.d.logger.error(
      { ...st.tp, first, last },
      `${lost}; the gap is recorded in ${this.tables.gaps} and writing goes on from offset ${last + 1}`,
    );
    this.bufferEntries(st, [skipEntry(first, last, true)]);
    this.maybeFlush(st);
    this.armTimer(st.buffer.deadline());
  }

  /** Stops fetching the partition (see PartitionState.stopped), loudly. */
  private stopPartition(st: PartitionState, code: string, reason: string): void {
    st.stopped = { code, reason };
    st.progress.failed(code, 'position', this.d.clock.now());
    this.d.logger.error({ ...st.tp, code }, reason);
    this.applyBackpressure();
  }

  private async loadFences(): Promise<Map<string, number>> {
    for (let attempt = 0; ; attempt++) {
      try {
        const client = await this.checkout();
        try {
          return await readFences(client, this.tables, this.d.config.kafka.groupId);
        } finally {
          this.checkin(client);
        }
      } catch (err) {
        if (this.state !== 'running') return new Map();
        const delay = backoffDelay(attempt, this.d.config.retry, this.d.random);
        this.d.logger.warn(
          { err: errorMessage(err), retryInMs: delay },
          'cannot read offset fences; retrying',
        );
        await this.sleep(delay);
      }
    }
  }

  // ---------------------------------------------------------------- ingest

  private async onBatch(batch: FetchedBatch): Promise<void> {
    const st = this.states.get(`${batch.topic}:${batch.partition}`);
    if (!st) return;
    st.inBatch = true;
    try {
      await this.takeBatch(st, batch);
    } finally {
      st.inBatch = false;
    }
  }

  private async takeBatch(st: PartitionState, batch: FetchedBatch): Promise<void> {
    const key = st.key;
    if (!st.assigned || this.state !== 'running' || batch.isStale()) return;
    // Paused after this batch was fetched: leave it unresolved, it is fetched again on resume.
    if (this.kafkaPaused.has(key)) return;
    if (batch.messages.length === 0) return;
    const epoch = st.epoch;
    st.highWatermark = Number(batch.highWatermark);
    // Bounded: this runs inside kafkajs' fetch loop, which heartbeats only between batches. A
    // batch left unresolved is fetched again.
    if (!(await settlesWithin(st.positioned, POSITION_WAIT_MS))) return;
    // A seek issued meanwhile (positioning) makes this batch one of the old position's.
    if (epoch !== st.epoch || this.state !== 'running' || batch.isStale() || st.stopped) return;

    const msgs = batch.messages;
    if (st.next !== undefined && batch.fetchedOffset > st.next) {
      // The client skipped offsets: filtered ones (control records, aborted transactions,
      // compaction) are fine; ones deleted by retention before they were written are a gap.
      if (!(await this.checkSkip(st, epoch, batch))) return;
    }
    const expected = st.next;
    if (expected !== undefined && batch.nextOffset <= expected) {
      // Everything here is in already (buffered, or written by an earlier owner whose Kafka
      // commit was lost): skip ahead, and bring Kafka's committed offset up to the fence.
      this.d.source.seek(st.tp, expected);
      if (st.fence !== undefined && (st.lastCommitted ?? -1) < st.fence) this.commitSoon(st, st.fence);
      return;
    }
    try {
      await st.route.decoder.prepare(msgs.map((m) => m.value));
    } catch (err) {
      this.hold(st, err as Error, 'schema registry');
      return;
    }
    if (epoch !== st.epoch || this.state !== 'running') return;

    // Below `next`: in this epoch's buffer, flushed from it, or below the fence.
    const from = expected ?? 0;
    if (expected !== undefined && batch.fetchedOffset < expected)
      this.d.logger.warn(
        { ...st.tp, fetched: batch.fetchedOffset, last: msgs[msgs.length - 1]!.offset, next: expected },
        'the Kafka client delivered records that are already buffered or written; they are skipped',
      );
    let entries: Entry[];
    try {
      entries = this.decodeAll(st, msgs, from);
    } catch (err) {
      this.hold(st, err as Error, 'decode');
      return;
    }
    const records = entries.length;
    const lastOffset = Number(msgs[msgs.length - 1]!.offset);
    // Offsets the client filtered after the last record (a transaction's commit marker).
    if (batch.nextOffset > lastOffset + 1)
      entries.push(skipEntry(lastOffset + 1, batch.nextOffset - 1, false));
    this.bufferEntries(st, entries);
    st.next = Math.max(st.next ?? 0, batch.nextOffset);
    batch.resolveOffset(msgs[msgs.length - 1]!.offset);
    st.attempts = 0;
    this.d.observer.recordsConsumed(st.tp.topic, st.tp.partition, records);
    this.d.observer.lag(
      st.tp.topic,
      st.tp.partition,
      Math.max(0, st.highWatermark - (st.lastCommitted ?? st.fence ?? 0)),
    );
    this.applyBackpressure();
    this.maybeFlush(st);
    this.armTimer(st.buffer.deadline());
  }

  /**
   * The client skipped offsets [first, next) by itself (nothing in them to write). Only a skip
   * that starts where the partition is counts; any other shows as a jump and is checked. The
   * fence moves past it with the next flush, so that it and the Kafka commit reach the end.
   */
  private onFiltered(tp: TopicPartition, first: number, next: number): void {
    const st = this.states.get(`${tp.topic}:${tp.partition}`);
    if (!st?.assigned || this.state !== 'running' || st.next !== first || next <= first) return;
    st.next = next;
    this.bufferEntries(st, [skipEntry(first, next - 1, false)]);
    this.maybeFlush(st);
    this.armTimer(st.buffer.deadline());
  }

  private bufferEntries(st: PartitionState, entries: readonly Entry[]): void {
    const now = this.d.clock.now();
    if (entries.length) st.progress.busy(now);
    let bytes = 0;
    for (const entry of entries) {
      const size = SinkService.sizeOf(entry);
      st.buffer.push(entry, size, now);
      bytes += size;
    }
    this.bp.add(st.key, bytes);
  }

  /**
   * The batch was fetched from above `next`: the client skipped offsets it did not announce
   * (announced ones, control records and aborted transactions, move `next` by onFiltered).
   * Returns true when the batch is to be taken (from its fetched offset on), false when it is
   * dropped (left unresolved) — a seek or a hold has been arranged then.
   *
   * Below the log start, the records were deleted by retention before they were written (the
   * client reset after OFFSET_OUT_OF_RANGE): a gap. Otherwise the skip is suspect (a seek of
   * an older generation that kafkajs applied late, say): the partition is sought back to
   * `next` once; a skip that comes again from the same place is taken as the client's own.
   */
  private async checkSkip(st: PartitionState, epoch: number, batch: FetchedBatch): Promise<boolean> {
    const next = st.next!;
    let logStart: number | undefined;
    try {
      // Bounded: this runs inside the client's fetch loop, which heartbeats between batches.
      logStart = (await within(this.d.source.watermarks(st.tp.topic), this.kafkaAnswerMs())).get(
        st.tp.partition,
      )?.low;
      if (logStart === undefined) throw new Error(`the broker gave no log start for ${st.key}`);
    } catch (err) {
      if (epoch !== st.epoch || this.state !== 'running') return false;
      const e = new PgsinkError('kafka', `cannot read the log start of ${st.key}: ${errorMessage(err)}`, {
        code: 'LOG_START_UNKNOWN',
        retriable: true,
        cause: err,
      });
      this.hold(st, e, 'kafka');
      return false;
    }
    if (epoch !== st.epoch || this.state !== 'running') return false;
    if (next >= logStart) {
      if (st.skipCheckedAt !== next) {
        st.skipCheckedAt = next;
        this.d.logger.warn(
          { ...st.tp, next, fetched: batch.fetchedOffset },
          `the Kafka client skipped offsets ${next}..${batch.fetchedOffset - 1} of ${st.key} without saying why; reading from ${next} again`,
        );
        this.d.source.seek(st.tp, next);
        return false;
      }
      this.d.logger.warn(
        { ...st.tp, from: next, to: batch.fetchedOffset - 1 },
        `the Kafka client skips offsets ${next}..${batch.fetchedOffset - 1} of ${st.key} again: taken as offsets it filtered (nothing to write there)`,
      );
      this.bufferEntries(st, [skipEntry(next, batch.fetchedOffset - 1, false)]);
      st.next = batch.fetchedOffset;
      return true;
    }
    // Records at and beyond the fetched offset are in hand even if retention moved on since.
    const end = Math.min(logStart, batch.fetchedOffset);
    this.retentionGap(st, next, end - 1);
    if (st.stopped) return false;
    st.next = end;
    if (end < batch.fetchedOffset) {
      // The client reset to the log's end (kafka.fromBeginning: false): records from the log
      // start on are still there and are written.
      this.d.source.seek(st.tp, end);
      return false;
    }
    return true;
  }

  /**
   * Decodes and encodes a fetched batch from offset `from` on (records below it are in already);
   * records that cannot be written become dead letters.
   */
  private decodeAll(st: PartitionState, msgs: FetchedBatch['messages'], from: number): Entry[] {
    const { decoder, plan, upsert } = st.route;
    // Binary routes write tuples (src/sink/binary-plan.ts), text routes lines; both the same way.
    const binary = st.route.format === 'binary' ? st.route.binary : undefined;
    const direct: DirectLineEncoder | DirectBinaryEncoder | undefined = binary
      ? st.route.directBinary
      : st.route.direct;
    const deletes = st.route.config.deleteOnTombstone;
    const arena = st.arena;
    const rawArena = st.rawArena;
    const meta = {
      topic: st.tp.topic,
      partition: st.tp.partition,
      offset: 0,
      timestamp: '0',
      key: null as Buffer | null,
    };
    const out: Entry[] = [];
    for (const m of msgs) {
      const offset = Number(m.offset);
      if (offset < from) continue;
      let line: string | null = null;
      let tuple: Buffer | null = null;
      let failure: Failure | undefined;
      // Set when the line was written straight into the arena (direct path).
      let chunk: Buffer | undefined;
      let start = -1;
      let end = -1;
      if (m.value === null && deletes && upsert && m.key !== null) {
        try {
          if (binary) tuple = binary.deleteTuple!(m.key, offset);
          else line = deleteLine(upsert, m.key, offset);
        } catch (err) {
          const e = err as RecordError;
          failure = { source: e.source, code: e.code, message: e.message };
        }
      } else if (m.value === null) {
        const message = deletes
          ? 'tombstone without a key: there is no row to delete'
          : 'record has a null value (tombstone) and the route does not delete on tombstones';
        failure = { source: 'kafka', code: 'TOMBSTONE', message };
      } else {
        try {
          meta.offset = offset;
          meta.timestamp = m.timestamp;
          meta.key = m.key;
          if (direct && decoder.writtenWithReader(m.value)) {
            const reserved = arena.reserve(direct.maxBytes(m.value, m.key));
            end = SinkService.encodeDirect(direct, reserved, arena.position, m.value, meta);
            if (end >= 0) {
              chunk = reserved;
              start = arena.position;
              arena.advanceTo(end);
            }
          }
          if (!chunk) {
            const record = assertRecordValue(decoder.decode(m.value));
            if (binary) {
              tuple = binary.encode(record, meta);
            } else {
              line = plan.encode(record, meta);
              if (upsert) line = upsertLine(line, offset);
            }
          }
        } catch (err) {
          if (err instanceof PgsinkError && err.retriable) throw err;
          const e =
            err instanceof RecordError
              ? err
              : new RecordError('internal', 'ENCODE_FAILED', errorMessage(err), err);
          if (!(err instanceof RecordError))
            this.d.logger.error({ err, offset, ...st.tp }, 'unexpected error encoding a record');
          failure = { source: e.source, code: e.code, message: e.message };
        }
      }
      // The line into one arena (a batch's lines stay contiguous for COPY), key and value into
      // another; nothing of the client's message object is kept.
      const key = m.key;
      const value = m.value;
      if (!chunk && tuple !== null) {
        chunk = arena.reserve(tuple.length);
        start = arena.writeBytes(tuple);
        end = arena.position;
      } else if (!chunk) {
        chunk = arena.reserve((line?.length ?? 0) * 3);
        if (line !== null) {
          start = arena.writeText(line);
          end = arena.position;
        }
      }
      const raw = rawArena.reserve((key?.length ?? 0) + (value?.length ?? 0));
      const keyStart = key === null ? -1 : rawArena.writeBytes(key);
      const keyEnd = key === null ? -1 : rawArena.position;
      const valueStart = value === null ? -1 : rawArena.writeBytes(value);
      const valueEnd = value === null ? -1 : rawArena.position;
      const headers = hasKeys(m.headers) ? m.headers : undefined;
      const entry: Entry = {
        offset,
        chunk,
        start,
        end,
        raw,
        keyStart,
        keyEnd,
        valueStart,
        valueEnd,
        headers,
        rawHeaders: headers && rawHeadersOf(m),
        timestamp: timestampOf(m.timestamp),
        gen: st.route.gen,
      };
      if (failure) entry.failure = failure;
      out.push(entry);
    }
    return out;
  }

  /** The end of the line written at out[at..], or -1 when a field overflowed (object path). */
  private static encodeDirect(
    direct: DirectLineEncoder | DirectBinaryEncoder,
    out: Buffer,
    at: number,
    value: Buffer,
    meta: RecordMeta,
  ): number {
    try {
      return direct.encode(value, out, at, meta);
    } catch (err) {
      if (err instanceof LineOverflow) return -1;
      throw err;
    }
  }

  /** What an entry holds in memory, for the byte limits. */
  private static sizeOf(e: Entry): number {
    return (
      ENTRY_OVERHEAD +
      Math.max(0, e.end - e.start) +
      Math.max(0, e.keyEnd - e.keyStart) +
      Math.max(0, e.valueEnd - e.valueStart)
    );
  }

  // ---------------------------------------------------------------- flushing

  private maybeFlush(st: PartitionState): void {
    if (this.abandoned || st.inFlight || !st.assigned || this.halted.has(st.tp.topic)) return;
    const now = this.d.clock.now();
    if (st.holdUntil !== undefined && now < st.holdUntil) return;
    const reason = this.flushReasonOf(st, now);
    if (!reason) {
      this.waiting.delete(st);
      return;
    }
    const topic = st.tp.topic;
    if (
      this.activeFlushes >= this.d.config.backpressure.maxConcurrentFlushes ||
      (this.activeByRoute.get(topic) ?? 0) >= this.routeShare()
    ) {
      this.waiting.add(st);
      return;
    }
    this.waiting.delete(st);
    const limit = Math.min(st.batchLimit ?? Infinity, st.adaptive?.limit ?? Infinity);
    const batch = st.buffer.take(reason, Number.isFinite(limit) ? limit : undefined);
    this.activeFlushes++;
    this.activeByRoute.set(topic, (this.activeByRoute.get(topic) ?? 0) + 1);
    st.inFlight = this.runFlush(st, batch, st.epoch).finally(() => {
      this.activeFlushes--;
      this.activeByRoute.set(topic, this.activeByRoute.get(topic)! - 1);
      st.inFlight = undefined;
      this.afterFlush(st);
    });
  }

  private flushReasonOf(st: PartitionState, now = this.d.clock.now()): FlushReason | null {
    const reason = st.buffer.flushReason(now);
    if (!reason && st.adaptive && st.buffer.rows >= st.adaptive.limit) return 'rows';
    if (!reason && this.draining && st.buffer.rows > 0) return 'drain';
    return reason;
  }

  /**
   * The most flush slots one route may hold: all of them but one for each other route with
   * assigned partitions. A route whose table is locked (or slow) can then fill at most its
   * share with flushes that wait, and every other route keeps at least one slot. With more
   * routes than slots, each route holds at most one and they take turns.
   */
  private routeShare(): number {
    return this.share;
  }

  /** After each assignment: see routeShare(). */
  private computeShare(): void {
    const routes = new Set<string>();
    for (const st of this.states.values()) if (st.assigned) routes.add(st.tp.topic);
    this.share = Math.max(1, this.d.config.backpressure.maxConcurrentFlushes - Math.max(0, routes.size - 1));
  }

  private async runFlush(st: PartitionState, batch: Batch<Entry>, epoch: number): Promise<void> {
    const started = this.d.clock.now();
    const entries = batch.entries;
    if (entries.some((e) => !e.skip && e.gen !== st.route.gen)) {
      // Encoded before the table's columns were read again (an ALTER TABLE): once more, from
      // the records, for the types they have now.
      try {
        await this.reencode(st, entries);
      } catch (err) {
        st.buffer.requeue(batch);
        this.hold(st, err as Error, 'decode');
        return;
      }
      if (epoch !== st.epoch) return;
    }
    const target = {
      groupId: this.d.config.kafka.groupId,
      topic: st.tp.topic,
      partition: st.tp.partition,
      table: st.route.table,
      columnList: st.route.columnList,
      tables: this.tables,
      upsert: st.route.upsert,
      isolation: st.route.isolation,
      format: st.route.format,
      wireOids: st.route.wireOids,
      expectedFence: st.fence,
    };
    const describe = (): FailedFlush => ({
      topic: st.tp.topic,
      partition: st.tp.partition,
      firstOffset: entries[0]!.offset,
      lastOffset: entries[entries.length - 1]!.offset,
      rows: entries.length,
      bytes: batch.bytes,
      reason: batch.reason,
      durationMs: this.d.clock.now() - started,
      table: st.route.config.table,
      mode: st.route.config.mode,
      traceparents: traceparentsOf(entries),
    });
    let client: pg.PoolClient | undefined;
    try {
      client = await this.checkout();
      if (this.abandoned) {
        // Given up while this flush waited for a connection: it does not start.
        this.checkin(client);
        client = undefined;
        return;
      }
      this.activeClients.add(client);
      const outcome = await flushBatch(client, target, entries, { isolate: st.isolateNext });
      this.activeClients.delete(client);
      this.checkin(client);
      client = undefined;
      const report = describe();
      const rowLimit = st.adaptive?.observe(entries.length, report.durationMs);
      this.d.observer.flushed({ ...report, outcome, ...(rowLimit === undefined ? {} : { rowLimit }) });
      if (epoch !== st.epoch) return;
      this.bp.add(st.key, -batch.bytes);
      st.fence = outcome.nextOffset;
      st.flushes++;
      if (outcome.createdFence) st.createdFrom = entries[0]!.offset;
      for (const g of outcome.gaps)
        this.d.observer.notice({ kind: 'retention-gap', ...st.tp, ...g, action: 'continue' });
      st.attempts = 0;
      st.suspect = undefined;
      st.isolateNext = false;
      if (st.batchLimit !== undefined) {
        st.batchLimit *= 2;
        if (st.batchLimit >= this.d.config.batch.maxRows) st.batchLimit = undefined;
      }
      if (st.holdUntil !== undefined) {
        this.d.logger.info({ ...st.tp }, 'sink recovered; partition resumes');
        st.holdUntil = undefined;
        st.holdReason = undefined;
      }
      st.progress.advanced(this.d.clock.now(), this.hasWork(st));
      if (st.assigned) this.commitSoon(st, outcome.nextOffset);
      if (outcome.deadLettered > 0) this.checkDeadLetterRate(st.route, outcome.deadLettered);
    } catch (err) {
      if (client) {
        this.activeClients.delete(client);
        // A failed transaction may have left the connection in any state: never reuse it.
        this.checkin(client, true);
      }
      const e = err instanceof Error ? err : new Error(String(err));
      const failed = describe();
      if (epoch !== st.epoch) {
        this.d.observer.flushFailed(st.tp.topic, st.tp.partition, e, st.attempts, {
          stage: 'flush',
          batch: failed,
        });
        return;
      }
      if (e instanceof FenceBehind) {
        this.rewind(st, e);
        return;
      }
      if (e instanceof CatalogChanged) {
        // Nothing was written: the batch goes back, the route's encoders follow the table's
        // types as they are now, and the next flush encodes it again (see the top of runFlush).
        st.buffer.requeue(batch);
        try {
          await this.refreshCatalog(st.route, e);
        } catch (err) {
          this.hold(st, err as Error, 'flush', failed);
        }
        return;
      }
      // Abandoned at the shutdown deadline: rolled back, re-read by the next owner.
      if (this.abandoned) return;
      if (e instanceof PgsinkError && e.code === '57014' && entries.length > 1) {
        // statement_timeout: the same batch would time out again; smaller ones may not.
        st.batchLimit = Math.max(1, Math.floor(entries.length / 2));
        this.d.logger.warn(
          { ...st.tp, rows: entries.length, next: st.batchLimit },
          `a flush of ${entries.length} rows of ${st.key} exceeded statement_timeout; the next ones take ${st.batchLimit} rows`,
        );
      }
      st.buffer.requeue(batch);
      this.hold(st, e, 'flush', failed);
      if (e instanceof SinkError && e.kind === 'unknown')
        await this.suspectData(st, e, entries[0]!.offset, epoch);
    }
  }

  /**
   * An error of no known kind: an outage would fail other queries too; one that repeats on the
   * same records while Postgres answers a plain query is the records' (DESIGN.md invariant 5:
   * nothing retries forever on a record). After UNKNOWN_REPEATS_AS_DATA such failures the next
   * flush isolates the batch's rows, and the rows that still fail become dead letters.
   */
  private async suspectData(st: PartitionState, e: SinkError, first: number, epoch: number): Promise<void> {
    const same = st.suspect?.code === e.code && st.suspect.first === first;
    st.suspect = { code: e.code, first, count: same ? st.suspect!.count + 1 : 1 };
    if (st.suspect.count < UNKNOWN_REPEATS_AS_DATA) return;
    if (!(await this.postgresAnswers()) || epoch !== st.epoch) return;
    st.isolateNext = true;
    this.d.logger.warn(
      { ...st.tp, code: e.code, first, attempts: st.suspect.count },
      `error ${e.code} repeated ${st.suspect.count} times on the batch from offset ${first} of ${st.key} while Postgres answers other queries: treated as the records' fault; the next flush isolates and dead-letters the rows that fail`,
    );
  }

  private async postgresAnswers(): Promise<boolean> {
    try {
      const client = await this.checkout();
      try {
        await client.query('SELECT 1');
        return true;
      } finally {
        this.checkin(client);
      }
    } catch {
      return false;
    }
  }

  /**
   * Commits to Kafka after the flush has given back its slot: the partition's next flush need
   * not wait for the broker. One commit at a time per partition, always the newest offset
   * (commits that queued up meanwhile are coalesced), never one of an older epoch.
   */
  private commitSoon(st: PartitionState, offset: number): void {
    st.commitWanted = { offset, epoch: st.epoch };
    if (st.committing) return;
    st.committing = (async () => {
      while (st.commitWanted) {
        const want = st.commitWanted;
        st.commitWanted = undefined;
        if (want.epoch !== st.epoch || !st.assigned) continue;
        // Equal only: after a re-read from the fence the commit is brought back, below.
        if (st.lastCommitted === want.offset) continue;
        await this.commit(st, want.offset);
      }
    })().finally(() => {
      st.committing = undefined;
      if (this.isIdle()) for (const w of this.idleWaiters.splice(0)) w();
    });
  }

  private async commit(st: PartitionState, offset: number): Promise<void> {
    const t0 = this.d.clock.now();
    try {
      await this.d.source.commit(st.tp, offset);
      st.lastCommitted = offset;
      this.d.observer.committed(st.tp.topic, st.tp.partition, offset, this.d.clock.now() - t0);
      this.d.observer.lag(st.tp.topic, st.tp.partition, Math.max(0, st.highWatermark - offset));
    } catch (err) {
      // Postgres holds the truth (the fence); the Kafka commit is a progress hint for lag
      // tools and the next assignment. A failed one costs at most a re-read that the fence drops.
      this.d.logger.warn(
        { err: errorMessage(err), ...st.tp, offset },
        'kafka offset commit failed (rows are safe in Postgres)',
      );
    }
  }

  private checkDeadLetterRate(route: RouteRuntime, count: number): void {
    const limit = route.config.maxDeadLettersPerMinute;
    if (limit === undefined || this.halted.has(route.config.topic)) return;
    const now = this.d.clock.now();
    const window = (this.deadLetterWindow.get(route.config.topic) ?? []).filter(([t]) => t > now - 60_000);
    window.push([now, count]);
    this.deadLetterWindow.set(route.config.topic, window);
    const total = window.reduce((n, [, c]) => n + c, 0);
    if (total <= limit) return;
    const reason =
      `route ${route.config.topic}: ${total} dead letters in the last minute exceed maxDeadLettersPerMinute (${limit}); ` +
      `the route stopped consuming. Look at ${this.tables.deadLetters} for the reasons, fix the producer, schema or table, then restart.`;
    this.halted.set(route.config.topic, reason);
    this.d.logger.error({ route: route.config.topic, deadLetters: total, limit }, reason);
    this.applyBackpressure();
  }

  /**
   * Postgres' fence is behind what this process wrote: the transactions that moved it were
   * lost (a failover to an asynchronous replica, a restore). Everything of this partition is
   * dropped and read again from the fence (or, with no fence row left, from Kafka's committed
   * offset, as at assignment); the Kafka commit follows the first flush back.
   */
  private rewind(st: PartitionState, e: FenceBehind): void {
    const fence = e.fence;
    st.epoch++;
    st.buffer.clear();
    this.bp.forget(st.key);
    this.waiting.delete(st);
    st.attempts = 0;
    st.holdUntil = undefined;
    st.holdReason = undefined;
    st.lastCommitted = undefined;
    st.commitWanted = undefined;
    st.skipCheckedAt = undefined;
    st.flushes = 0;
    const epoch = st.epoch;
    const reread = (first: number) => {
      this.d.logger.warn(
        { ...st.tp, fence: fence ?? null, written: e.expected, from: first },
        `Postgres is behind this process: its fence for ${st.key} is ${fence === undefined ? 'gone' : `at ${fence}`}, ` +
          `but offsets up to ${e.expected - 1} had been written; they are read again from ${first}. Was Postgres restored or failed over?`,
      );
      if (e.expected > first)
        this.d.observer.notice({ kind: 'reread', ...st.tp, first, last: e.expected - 1 });
    };
    if (fence !== undefined) {
      st.fence = fence;
      st.next = fence;
      st.positioned = Promise.resolve();
      this.d.source.seek(st.tp, fence);
      reread(fence);
    } else {
      // The row is gone: Postgres went back to before this group wrote here. From where this
      // process created it when it did, else from the log's start — never Kafka's commit,
      // which this process moved past the lost transactions itself.
      st.fence = undefined;
      const from = st.createdFrom;
      st.createdFrom = undefined;
      st.next = from;
      st.positioned =
        from !== undefined
          ? Promise.resolve().then(() => {
              this.d.source.seek(st.tp, from);
              reread(from);
            })
          : this.bounded(this.d.source.watermarks(st.tp.topic), `the watermarks of ${st.tp.topic}`).then(
              (w) => {
                if (epoch !== st.epoch || !st.assigned || this.state !== 'running') return;
                const low = w?.get(st.tp.partition)?.low ?? 0;
                st.next = low;
                this.d.source.seek(st.tp, low);
                reread(low);
              },
            );
    }
    this.applyBackpressure();
  }

  /**
   * Keeps a partition paused and retries after a capped, jittered backoff (or, with
   * `forMs` Infinity, until the partition is assigned again).
   */
  private hold(st: PartitionState, err: Error, what: string, batch?: FailedFlush, forMs?: number): void {
    const delay = forMs ?? backoffDelay(st.attempts, this.d.config.retry, this.d.random);
    st.attempts++;
    st.holdUntil = this.d.clock.now() + delay;
    const failCode = err instanceof PgsinkError ? err.code : (err as { code?: unknown }).code;
    st.progress.failed(typeof failCode === 'string' ? failCode : err.name, what, this.d.clock.now());
    st.holdReason = what;
    this.d.observer.flushFailed(st.tp.topic, st.tp.partition, err, st.attempts, {
      stage: what,
      ...(batch ? { batch } : {}),
    });
    const code = err instanceof PgsinkError ? err.code : (err as { code?: string }).code;
    this.d.logger.warn(
      { ...st.tp, attempt: st.attempts, retryInMs: delay, code, err: errorMessage(err) },
      `${what} failed; partition paused, retrying`,
    );
    this.applyBackpressure();
    this.armTimer(st.holdUntil);
  }

  private afterFlush(st: PartitionState): void {
    this.applyBackpressure();
    // Waiters first, in the order they came: the partition that just flushed goes behind
    // them, or a few busy partitions would keep every slot.
    for (const w of [...this.waiting]) {
      if (this.activeFlushes >= this.d.config.backpressure.maxConcurrentFlushes) break;
      this.maybeFlush(w);
    }
    if (this.waiting.size === 0) this.maybeFlush(st);
    else if (this.flushReasonOf(st)) this.waiting.add(st);
    this.armTimer(st.buffer.deadline());
    if (this.isIdle()) for (const w of this.idleWaiters.splice(0)) w();
  }

  // ---------------------------------------------------------------- timers & backpressure

  private armTimer(at: number | undefined): void {
    if (at === undefined || this.state === 'stopped') return;
    if (at >= this.timerAt) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => this.onTimer(), Math.max(0, at - this.d.clock.now()));
  }

  private onTimer(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = this.d.clock.now();
    let next = Infinity;
    for (const st of this.states.values()) {
      if (!st.assigned) continue;
      if (st.holdUntil !== undefined && now >= st.holdUntil && st.holdReason !== 'flush') {
        // A decode/registry hold ends by time: resume and let kafkajs fetch the batch again.
        st.holdUntil = undefined;
        st.holdReason = undefined;
      }
      this.maybeFlush(st);
      // In flight or waiting for a slot: afterFlush re-arms the timer for it.
      if (st.inFlight || this.waiting.has(st)) continue;
      if (st.holdUntil !== undefined) {
        if (st.holdUntil > now) next = Math.min(next, st.holdUntil);
        continue;
      }
      const d = st.buffer.deadline();
      if (d !== undefined) next = Math.min(next, d);
    }
    this.applyBackpressure();
    if (next !== Infinity) this.armTimer(Math.max(next, now + 1));
  }

  private applyBackpressure(): void {
    const assigned: string[] = [];
    const held = new Set<string>();
    for (const st of this.states.values()) {
      if (!st.assigned) continue;
      assigned.push(st.key);
      if (st.holdUntil !== undefined || st.stopped || this.halted.has(st.tp.topic)) held.add(st.key);
    }
    const { pause, resume } = this.bp.evaluate(assigned, held);
    const toPause = pause.filter((k) => !this.kafkaPaused.has(k) && this.state === 'running');
    const toResume = resume.filter((k) => this.kafkaPaused.has(k) && this.state === 'running');
    for (const k of toPause) {
      this.kafkaPaused.add(k);
      const st = this.states.get(k)!;
      this.d.observer.paused(
        st.tp.topic,
        st.tp.partition,
        held.has(k) ? (st.stopped ? 'stopped' : (st.holdReason ?? 'hold')) : 'buffer full',
      );
    }
    for (const k of toResume) {
      this.kafkaPaused.delete(k);
      const st = this.states.get(k)!;
      this.d.observer.resumed(st.tp.topic, st.tp.partition);
    }
    this.d.source.pause(toPause.map((k) => this.states.get(k)!.tp));
    this.d.source.resume(toResume.map((k) => this.states.get(k)!.tp));
    this.d.observer.buffered(this.bp.totalBytes);
  }

  // ---------------------------------------------------------------- status & shutdown

  private isIdle(): boolean {
    for (const st of this.states.values()) {
      if (st.inFlight || st.committing) return false;
      // A route stopped by its dead-letter limit flushes nothing: its records are re-read.
      if (st.assigned && st.buffer.rows > 0 && !this.halted.has(st.tp.topic)) return false;
    }
    return true;
  }

  /** Buffered bytes now (in flight included): what backpressure limits. */
  get bufferedBytes(): number {
    return this.bp.totalBytes;
  }

  get pausedPartitions(): string[] {
    return [...this.kafkaPaused];
  }

  /**
   * Stops within `deadlineMs`: stop fetching, flush what is buffered, commit, leave the
   * group, close the pool. Past the deadline, in-flight transactions are abandoned (their
   * connections closed, so Postgres rolls them back) and the records are fetched again by
   * the next owner. Idempotent; every step runs even when an earlier one fails.
   */
  stop(deadlineMs = this.d.config.shutdown.deadlineMs): Promise<void> {
    this.stopPromise ??= this.doStop(deadlineMs);
    return this.stopPromise;
  }

  private async doStop(deadlineMs: number): Promise<void> {
    const deadline = this.d.clock.now() + deadlineMs;
    const left = () => Math.max(0, deadline - this.d.clock.now());
    const wasRunning = this.state === 'running';
    this.stopRequested = true;
    for (const wake of [...this.sleepers]) wake();
    this.state = 'stopping';
    const errors: unknown[] = [];
    const step = async (name: string, fn: () => Promise<void>): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        errors.push(err);
        this.d.logger.warn({ err: errorMessage(err) }, `shutdown step '${name}' failed`);
      }
    };

    if (wasRunning && this.joined) {
      // Stop fetching: every assigned partition is paused; batches already fetched are ignored.
      this.d.source.pause([...this.states.values()].filter((s) => s.assigned).map((s) => s.tp));
      this.draining = true;
      for (const st of this.states.values()) {
        if (st.holdUntil !== undefined && st.holdReason !== 'flush') st.holdUntil = undefined;
        this.maybeFlush(st);
      }
      // Drain in the remaining time, leaving a share for leaving the group and closing.
      const drainBy = deadline - Math.min(5_000, deadlineMs * 0.2);
      await step('drain', () => this.waitIdle(drainBy));
      if (!this.isIdle()) this.abandon();
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.healthTimer) clearInterval(this.healthTimer);
    this.healthTimer = undefined;
    // Start-up returns at its next step; what it is blocked in (a connect) is not waited for
    // beyond the deadline: leaving the group and closing the pool cut it.
    if (this.startPromise)
      await step('start-up', () =>
        withTimeout(
          this.startPromise!.catch(() => undefined),
          Math.min(1_000, left()),
          'start-up to return',
        ),
      );
    await step('leave group', () =>
      withTimeout(this.d.source.stop(), Math.max(200, left()), 'leaving the group'),
    );
    // Flushes still running now (a start-up or drain cut short) are abandoned, not waited for.
    if (this.activeClients.size) this.abandon();
    await step('close pool', () =>
      withTimeout(this.d.pool.end(), Math.max(200, left()), 'closing the Postgres pool'),
    );
    this.state = 'stopped';
    this.d.logger.info({ errors: errors.length }, 'stopped');
  }

  /**
   * Past the deadline: the transactions in flight are cut (their connections closed, so
   * Postgres rolls them back) and their records are re-read by the next owner; no flush
   * starts any more.
   */
  private abandon(): void {
    if (this.abandoned) return;
    this.abandoned = true;
    const left = [...this.states.values()].reduce((n, s) => n + s.buffer.rows, 0);
    this.d.logger.warn(
      { bufferedRecords: left, inFlight: this.activeClients.size },
      'shutdown deadline reached; abandoning unflushed records (they will be re-read)',
    );
    for (const c of this.activeClients) {
      (c as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
    }
  }

  /** Resolves when nothing is buffered or in flight, or at `by` (a clock time). */
  private async waitIdle(by: number): Promise<void> {
    while (!this.isIdle() && this.d.clock.now() < by && !this.fatalError) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(100, Math.max(1, by - this.d.clock.now())));
        this.idleWaiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
      // Held partitions retry on their own timer; nudge ones whose hold has expired.
      for (const st of this.states.values()) this.maybeFlush(st);
    }
  }
}

/**
 * Isolating bad rows needs a temporary table: without the TEMP privilege the first bad row
 * would hold its partition for good, so it is a start-up error.
 */
async function assertCanIsolate(client: pg.ClientBase): Promise<void> {
  const { rows } = await client.query<{ ok: boolean }>(
    `SELECT has_database_privilege(current_database(), 'TEMP') AS ok`,
  );
  if (!rows[0]?.ok)
    throw new ConfigError(
      'the Postgres user may not create temporary tables, which pgsink needs to isolate bad rows: GRANT TEMPORARY ON DATABASE <db> TO <user>',
    );
}

/**
 * COPY ignores rules while the INSERTs that isolate bad rows would apply them: a target with
 * rules would be written two different ways. Refused at start-up.
 */
async function assertNoRules(client: pg.ClientBase, table: string, topic: string): Promise<void> {
  const { rows } = await client.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_rewrite WHERE ev_class = to_regclass($1) AND rulename <> '_RETURN'`,
    [quoteQualified(table)],
  );
  if ((rows[0]?.n ?? 0) > 0)
    throw new ConfigError(
      `route ${topic}: table ${table} has rules; COPY ignores them, so pgsink cannot write it consistently. Use a trigger instead of the rule, or point the route at the rule's target table.`,
    );
}

/** The first connection failed: say where, why, and what to check. */
export function connectError(err: unknown, config: Config): PgsinkError {
  const msg = errorMessage(err);
  let where = 'the configured server';
  try {
    where = new URL(config.postgres.url).host;
  } catch {
    // keep the generic wording; the URL is validated at start-up anyway
  }
  // A certificate that does not verify, or a server without TLS when TLS is asked for: by the
  // error's code, not its words (a reset during the handshake is a server restarting).
  const tls = isCertificateError(err) || /does not support SSL/i.test(msg);
  const state = sqlstateOf(err);
  // Credentials, a database that does not exist, a certificate that does not verify: waiting
  // does not help, the configuration must change (exit 2). The server not answering does.
  const config_ = tls || (state !== undefined && /^(28|3D)/.test(state));
  const hint = tls
    ? ' Check postgres.ssl: the CA file must sign the server certificate (verify-ca/verify-full), and verify-full needs the host name in it.'
    : config_
      ? ' Check postgres.url: the user, its password and the database.'
      : ' Waiting for it to answer.';
  const message = `cannot connect to PostgreSQL at ${where}: ${msg}.${hint}`;
  if (config_) return new ConfigError(message, err);
  return new PgsinkError('postgres', message, {
    code: state ?? (err as { code?: string }).code ?? 'CONNECT_FAILED',
    retriable: true,
    cause: err,
  });
}

/**
 * A failure while preparing the tables: an outage is waited out; anything else (a missing
 * privilege, a table that does not fit) is the configuration's or the database's to fix.
 */
function startError(err: unknown, what: string): PgsinkError {
  if (err instanceof PgsinkError) return err;
  const kind = classifyPgError(err);
  const code = sqlstateOf(err) ?? (err as { code?: string }).code ?? 'UNKNOWN';
  if (kind === 'outage')
    return new PgsinkError('postgres', `${what}: ${describePgError(err)}`, {
      code,
      retriable: true,
      cause: err,
    });
  return new ConfigError(`${what}: ${describePgError(err)} (SQLSTATE ${code})`, err);
}

/** The buffer entry that stands for offsets first..last with no record (see Entry.skip). */
function skipEntry(first: number, last: number, lost: boolean): Entry {
  return {
    offset: last,
    chunk: EMPTY,
    start: -1,
    end: -1,
    raw: EMPTY,
    keyStart: -1,
    keyEnd: -1,
    valueStart: -1,
    valueEnd: -1,
    headers: undefined,
    rawHeaders: undefined,
    skip: { first, lost },
  };
}

const EMPTY = Buffer.alloc(0);

/** `p`, or a rejection after `ms` (the timer does not outlive the answer). */
async function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A Kafka timestamp as a double where that is exact (kept without a string), else the string.
 * Both sources write timestamps as canonical decimals (String of a number or a Long), so a safe
 * integer reads back as the same text: no String() per record to check it.
 */
function timestampOf(ts: string): number | string {
  const n = Number(ts);
  return Number.isSafeInteger(n) ? n : ts;
}

/** Without allocating (Object.keys would, once per record). */
function hasKeys(o: object | undefined): boolean {
  if (!o) return false;
  for (const _ in o) return true;
  return false;
}

function traceparentsOf(entries: readonly Entry[]): string[] {
  // Distinct: a producer batch often shares one trace context.
  const out = new Set<string>();
  for (const e of entries) {
    const h = e.headers?.['traceparent'];
    if (h === undefined) continue;
    out.add((Array.isArray(h) ? h[0]! : h).toString());
    if (out.size >= MAX_TRACE_LINKS) break;
  }
  return [...out];
}

function onCheckedOutError(): void {
  // Reported through the failing query; see checkout().
}

function withTimeout(p: Promise<void>, ms: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
    p.then(
      () => {
        clearTimeout(t);
        resolve();
      },
      (err: unknown) => {
        clearTimeout(t);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

/** Whether `p` settles within `ms` (it is not cancelled when it does not). */
async function settlesWithin(p: Promise<unknown> | undefined, ms: number): Promise<boolean> {
  if (!p) return true;
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p.then(
        () => true,
        () => true,
      ),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
