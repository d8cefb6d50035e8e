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
import type pg from 'pg';
import { Backpressure } from '../batch/backpressure.ts';
import { PartitionBuffer, type Batch, type FlushReason } from '../batch/partition-buffer.ts';
import type { Config } from '../config/schema.ts';
import { rawHeadersOf } from '../kafka/record-headers.ts';
import type { FetchedBatch, KafkaSource, TopicPartition } from '../kafka/source.ts';
import { assertRecordValue, type RecordMeta } from '../sink/columns.ts';
import { LineOverflow, type DirectLineEncoder } from '../sink/direct-line.ts';
import { ensureSinkTables, assertTargetTable, sinkTables, type SinkTables } from '../sink/ddl.ts';
import { planTable } from '../sink/schema-plan.ts';
import { assertUniqueKey, deleteLine, upsertLine } from '../sink/upsert.ts';
import { flushBatch, readFences, type Entry, type Failure } from '../sink/flush.ts';
import { RowArena } from '../sink/row-arena.ts';
import type { Logger } from '../telemetry/logger.ts';
import { backoffDelay } from '../util/backoff.ts';
import type { Clock } from '../util/clock.ts';
import { errorMessage, PgsinkError, RecordError } from '../util/errors.ts';
import { MAX_TRACE_LINKS, type FailedFlush, type SinkObserver } from './observer.ts';
import { adaptToTable, type RouteRuntime } from './routes.ts';

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
  /** Bumped on every group join: work of an older epoch must not touch this one's state. */
  epoch: number;
  assigned: boolean;
  fence: Promise<number> | undefined;
  /** The offset after the last record buffered in this epoch: anything below is in already. */
  buffered: number | undefined;
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
}

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
  private readonly bp: Backpressure;
  private readonly tables: SinkTables;
  private readonly kafkaPaused = new Set<string>();
  private readonly waiting = new Set<PartitionState>();
  private readonly activeClients = new Set<pg.PoolClient>();
  private activeFlushes = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private draining = false;
  private stopPromise: Promise<void> | undefined;
  private joined = false;
  private fatalError: Error | undefined;
  private idleWaiters: Array<() => void> = [];
  private readonly halted = new Map<string, string>();
  private readonly deadLetterWindow = new Map<string, Array<[number, number]>>();
  state: ServiceState = 'new';

  private readonly d: SinkServiceDeps;

  constructor(d: SinkServiceDeps) {
    this.d = d;
    this.bp = new Backpressure(d.config.backpressure);
    this.tables = sinkTables(d.config.postgres.schema);
  }

  /** Joined the group at least once and not stopping. */
  get ready(): boolean {
    return this.joined && this.state === 'running' && this.halted.size === 0;
  }

  /** Routes stopped by their dead-letter rate limit, with the reason. */
  get haltedRoutes(): ReadonlyMap<string, string> {
    return this.halted;
  }

  get failure(): Error | undefined {
    return this.fatalError;
  }

  /** Creates pgsink's tables, checks the targets, joins the group and starts consuming. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error(`start() called in state ${this.state}`);
    this.state = 'starting';
    let client: pg.PoolClient;
    try {
      client = await this.checkout();
    } catch (err) {
      throw connectError(err, this.d.config);
    }
    try {
      await ensureSinkTables(client, this.tables);
      for (const route of this.d.routes.values()) {
        await this.prepareTable(client, route);
        adaptToTable(
          route,
          await assertTargetTable(client, route.config.table, route.plan.columns, route.config.topic),
        );
        if (route.upsert)
          await assertUniqueKey(
            client,
            route.config.table,
            route.config.keyColumns ?? [],
            route.config.topic,
          );
      }
    } finally {
      this.checkin(client);
    }
    await this.openFlushConnections();
    this.state = 'running';
    await this.d.source.start({
      onAssignment: (tps) => this.onAssignment(tps),
      onBatch: (b) => this.onBatch(b),
      onFatal: (err) => this.onFatal(err),
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
    const tp = await planTable(client, rc.table, plan.columns, plan.pgTypes);
    for (const m of tp.mismatches)
      this.d.logger.warn({ route: rc.topic }, `column type differs from the mapping: ${m}`);
    const allowed = tp.exists ? rc.autoEvolve : rc.autoCreate;
    if (!allowed || tp.statements.length === 0) return;
    await client.query('BEGIN');
    try {
      await client.query(`SELECT pg_advisory_xact_lock(hashtext('pgsink.ddl'))`);
      // Re-plan under the lock: another consumer may have done it meanwhile.
      const again = await planTable(client, rc.table, plan.columns, plan.pgTypes);
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

  // ---------------------------------------------------------------- assignment

  private onAssignment(assigned: TopicPartition[]): void {
    this.joined = true;
    const next = new Set(assigned.map((tp) => `${tp.topic}:${tp.partition}`));
    // Eager rebalance: kafkajs has reset every fetch position to the committed offset, so
    // whatever is buffered will be fetched again. Drop it all and start a new epoch.
    for (const st of this.states.values()) {
      st.epoch++;
      st.buffer.clear();
      st.fence = undefined;
      st.buffered = undefined;
      st.assigned = next.has(st.key);
      st.holdUntil = undefined;
      st.attempts = 0;
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
        fence: undefined,
        buffered: undefined,
        inFlight: undefined,
        attempts: 0,
        holdUntil: undefined,
        holdReason: undefined,
        highWatermark: 0,
        lastCommitted: undefined,
        committing: undefined,
        commitWanted: undefined,
      });
    }
    // Fences for the whole assignment in one query; each partition awaits its own.
    const fences = this.loadFences();
    for (const st of this.states.values()) {
      if (st.assigned) st.fence = fences.then((m) => m.get(st.key) ?? 0);
    }
    // Partitions that kafkajs still holds paused from before the rebalance resume unless
    // they are still over a limit.
    const resume = [...this.kafkaPaused].filter((k) => next.has(k));
    this.kafkaPaused.clear();
    this.d.source.resume(resume.map((k) => this.states.get(k)!.tp));
    this.d.observer.rebalanced(assigned.length);
    this.d.logger.info({ partitions: [...next] }, 'partitions assigned');
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
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  // ---------------------------------------------------------------- ingest

  private async onBatch(batch: FetchedBatch): Promise<void> {
    const key = `${batch.topic}:${batch.partition}`;
    const st = this.states.get(key);
    if (!st || !st.assigned || this.state !== 'running' || batch.isStale()) return;
    // Paused after this batch was fetched: leave it unresolved, it is fetched again on resume.
    if (this.kafkaPaused.has(key)) return;
    if (batch.messages.length === 0) return;
    const epoch = st.epoch;
    st.highWatermark = Number(batch.highWatermark);
    const fence = await st.fence!;
    if (epoch !== st.epoch || this.state !== 'running') return;

    const msgs = batch.messages;
    const lastOffset = Number(msgs[msgs.length - 1]!.offset);
    if (lastOffset < fence) {
      // Everything here is already in Postgres (an earlier owner wrote it, and its Kafka
      // commit was lost): skip ahead, and bring Kafka's committed offset up to the fence.
      this.d.source.seek(st.tp, fence);
      if (st.lastCommitted === undefined || st.lastCommitted < fence) this.commitSoon(st, fence);
      return;
    }
    try {
      await st.route.decoder.prepare(msgs.map((m) => m.value));
    } catch (err) {
      this.hold(st, err as Error, 'schema registry');
      return;
    }
    if (epoch !== st.epoch || this.state !== 'running') return;

    // Below the fence: in Postgres. Below `buffered`: in this epoch's buffer or flushed from
    // it. Neither is written again, whatever the client hands over.
    const from = Math.max(fence, st.buffered ?? 0);
    if (st.buffered !== undefined && Number(msgs[0]!.offset) < st.buffered)
      this.d.logger.warn(
        { ...st.tp, first: msgs[0]!.offset, last: lastOffset, buffered: st.buffered },
        'the Kafka client delivered records that are already buffered; they are skipped',
      );
    let entries: Entry[];
    try {
      entries = this.decodeAll(st, msgs, from);
    } catch (err) {
      this.hold(st, err as Error, 'decode');
      return;
    }
    const now = this.d.clock.now();
    let bytes = 0;
    for (const entry of entries) {
      const size = SinkService.sizeOf(entry);
      st.buffer.push(entry, size, now);
      bytes += size;
    }
    this.bp.add(key, bytes);
    st.buffered = Math.max(st.buffered ?? 0, lastOffset + 1);
    batch.resolveOffset(msgs[msgs.length - 1]!.offset);
    st.attempts = 0;
    this.d.observer.recordsConsumed(st.tp.topic, st.tp.partition, entries.length);
    this.d.observer.lag(
      st.tp.topic,
      st.tp.partition,
      Math.max(0, st.highWatermark - (st.lastCommitted ?? fence)),
    );
    this.applyBackpressure();
    this.maybeFlush(st);
    this.armTimer(st.buffer.deadline());
  }

  /**
   * Decodes and encodes a fetched batch from offset `from` on (records below it are in already);
   * records that cannot be written become dead letters.
   */
  private decodeAll(st: PartitionState, msgs: FetchedBatch['messages'], from: number): Entry[] {
    const { decoder, plan, upsert, direct } = st.route;
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
      let failure: Failure | undefined;
      // Set when the line was written straight into the arena (direct path).
      let chunk: Buffer | undefined;
      let start = -1;
      let end = -1;
      if (m.value === null && deletes && upsert && m.key !== null) {
        try {
          line = deleteLine(upsert, m.key, offset);
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
            line = plan.encode(assertRecordValue(decoder.decode(m.value)), meta);
            if (upsert) line = upsertLine(line, offset);
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
      if (!chunk) {
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
      };
      if (failure) entry.failure = failure;
      out.push(entry);
    }
    return out;
  }

  /** The end of the line written at out[at..], or -1 when a field overflowed (object path). */
  private static encodeDirect(
    direct: DirectLineEncoder,
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
    if (st.inFlight || !st.assigned || this.halted.has(st.tp.topic)) return;
    const now = this.d.clock.now();
    if (st.holdUntil !== undefined && now < st.holdUntil) return;
    let reason: FlushReason | null = st.buffer.flushReason(now);
    if (!reason && this.draining && st.buffer.rows > 0) reason = 'drain';
    if (!reason) return;
    if (this.activeFlushes >= this.d.config.backpressure.maxConcurrentFlushes) {
      this.waiting.add(st);
      return;
    }
    this.waiting.delete(st);
    const batch = st.buffer.take(reason);
    this.activeFlushes++;
    st.inFlight = this.runFlush(st, batch, st.epoch).finally(() => {
      this.activeFlushes--;
      st.inFlight = undefined;
      this.afterFlush(st);
    });
  }

  private async runFlush(st: PartitionState, batch: Batch<Entry>, epoch: number): Promise<void> {
    const started = this.d.clock.now();
    const entries = batch.entries;
    const target = {
      groupId: this.d.config.kafka.groupId,
      topic: st.tp.topic,
      partition: st.tp.partition,
      table: st.route.table,
      columnList: st.route.columnList,
      tables: this.tables,
      upsert: st.route.upsert,
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
      this.activeClients.add(client);
      const outcome = await flushBatch(client, target, entries);
      this.activeClients.delete(client);
      this.checkin(client);
      client = undefined;
      this.d.observer.flushed({ ...describe(), outcome });
      if (epoch !== st.epoch) return;
      this.bp.add(st.key, -batch.bytes);
      st.attempts = 0;
      if (st.holdUntil !== undefined) {
        this.d.logger.info({ ...st.tp }, 'sink recovered; partition resumes');
        st.holdUntil = undefined;
        st.holdReason = undefined;
      }
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
      st.buffer.requeue(batch);
      this.hold(st, e, 'flush', failed);
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
        if (st.lastCommitted !== undefined && st.lastCommitted >= want.offset) continue;
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

  /** Keeps a partition paused and retries after a capped, jittered backoff. */
  private hold(st: PartitionState, err: Error, what: string, batch?: FailedFlush): void {
    const delay = backoffDelay(st.attempts, this.d.config.retry, this.d.random);
    st.attempts++;
    st.holdUntil = this.d.clock.now() + delay;
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
    this.maybeFlush(st);
    for (const w of [...this.waiting]) {
      if (this.activeFlushes >= this.d.config.backpressure.maxConcurrentFlushes) break;
      this.maybeFlush(w);
    }
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
      if (st.holdUntil !== undefined || this.halted.has(st.tp.topic)) held.add(st.key);
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
        held.has(k) ? (st.holdReason ?? 'hold') : 'buffer full',
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
      if (st.assigned && st.buffer.rows > 0) return false;
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
    const wasRunning = this.state === 'running';
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

    if (wasRunning) {
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
      if (!this.isIdle()) {
        const left = [...this.states.values()].reduce((n, s) => n + s.buffer.rows, 0);
        this.d.logger.warn(
          { bufferedRecords: left },
          'shutdown deadline reached; abandoning unflushed records (they will be re-read)',
        );
        for (const c of this.activeClients) {
          (c as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
        }
      }
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await step('leave group', () =>
      withTimeout(this.d.source.stop(), Math.max(1_000, deadline - this.d.clock.now()), 'leaving the group'),
    );
    await step('close pool', () => withTimeout(this.d.pool.end(), 5_000, 'closing the Postgres pool'));
    this.state = 'stopped';
    this.d.logger.info({ errors: errors.length }, 'stopped');
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

/** The first connection failed: say where, why, and what to check. */
function connectError(err: unknown, config: Config): PgsinkError {
  const msg = errorMessage(err);
  let where = 'the configured server';
  try {
    where = new URL(config.postgres.url).host;
  } catch {
    // keep the generic wording; the URL is validated at start-up anyway
  }
  const tls = /certificate|self.signed|SSL|TLS|verify/i.test(msg);
  const hint = tls
    ? ' Check postgres.ssl: the CA file must sign the server certificate (verify-ca/verify-full), and verify-full needs the host name in it.'
    : ' Check postgres.url, that the server is up, and that it accepts this user.';
  return new PgsinkError('postgres', `cannot connect to PostgreSQL at ${where}: ${msg}.${hint}`, {
    code: (err as { code?: string }).code ?? 'CONNECT_FAILED',
    retriable: true,
    cause: err,
  });
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
