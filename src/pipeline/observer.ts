// What the pipeline reports as it runs. Counters for the CLI and the demo live here; the
// OpenTelemetry metrics and spans implement the same interface (src/telemetry/).
import type { FlushReason } from '../batch/partition-buffer.ts';
import type { FlushOutcome } from '../sink/flush.ts';

export interface FlushReport {
  topic: string;
  partition: number;
  firstOffset: number;
  lastOffset: number;
  rows: number;
  bytes: number;
  reason: FlushReason;
  durationMs: number;
  outcome: FlushOutcome;
  /** Target table as configured, and the route's write mode. */
  table: string;
  mode: 'append' | 'upsert';
  /** W3C traceparent headers of the batch's records (at most MAX_TRACE_LINKS, first ones). */
  traceparents: string[];
  /** batch.adaptiveRows: the partition's row limit after this flush. */
  rowLimit?: number;
}

export const MAX_TRACE_LINKS = 16;

/** A flush that failed: what it tried to write. */
export type FailedFlush = Omit<FlushReport, 'outcome'>;

export interface FailureDetail {
  /** 'flush', 'decode' or 'schema registry'. */
  stage: string;
  batch?: FailedFlush;
}

/**
 * Rare things that happen to a partition's position, worth a metric and a log line each:
 * - reread: Postgres' fence was behind Kafka's committed offset (or behind what this process
 *   had written), so offsets first..last are read and written again (a restore, a failover);
 * - retention-gap: offsets first..last were deleted by retention before they were written.
 */
export type PartitionNotice =
  | { kind: 'reread'; topic: string; partition: number; first: number; last: number }
  | {
      kind: 'retention-gap';
      topic: string;
      partition: number;
      first: number;
      last: number;
      action: 'continue' | 'stop';
    };

export interface SinkObserver {
  recordsConsumed(topic: string, partition: number, count: number): void;
  flushed(report: FlushReport): void;
  flushFailed(topic: string, partition: number, err: Error, attempt: number, detail?: FailureDetail): void;
  committed(topic: string, partition: number, offset: number, durationMs: number): void;
  paused(topic: string, partition: number, reason: string): void;
  resumed(topic: string, partition: number): void;
  rebalanced(assigned: number): void;
  lag(topic: string, partition: number, lag: number): void;
  buffered(totalBytes: number): void;
  notice(n: PartitionNotice): void;
  /** Every second: each assigned partition's time with records to write and no progress. */
  partitionHealth(partitions: readonly PartitionHealth[]): void;
}

export interface PartitionHealth {
  topic: string;
  partition: number;
  /** How long it has had records to write without advancing (0 with nothing to write). */
  stalledMs: number;
  stuck: boolean;
}

export class SinkStats implements SinkObserver {
  consumedTotal = 0;
  rowsWritten = 0;
  deadLettered = 0;
  batches = 0;
  flushFailures = 0;
  rebalances = 0;
  pausedNow = new Set<string>();
  maxBufferedBytes = 0;
  bufferedBytes = 0;
  readonly lagByPartition = new Map<string, number>();
  readonly flushReasons: Record<FlushReason, number> = { rows: 0, bytes: 0, linger: 0, drain: 0 };
  readonly notices: PartitionNotice[] = [];

  recordsConsumed(_t: string, _p: number, count: number): void {
    this.consumedTotal += count;
  }
  flushed(r: FlushReport): void {
    this.batches++;
    this.rowsWritten += r.outcome.rowsWritten;
    this.deadLettered += r.outcome.deadLettered;
    this.flushReasons[r.reason]++;
  }
  flushFailed(): void {
    this.flushFailures++;
  }
  committed(): void {}
  paused(t: string, p: number): void {
    this.pausedNow.add(`${t}:${p}`);
  }
  resumed(t: string, p: number): void {
    this.pausedNow.delete(`${t}:${p}`);
  }
  rebalanced(): void {
    this.rebalances++;
    this.pausedNow.clear();
  }
  lag(t: string, p: number, lag: number): void {
    this.lagByPartition.set(`${t}:${p}`, lag);
  }
  buffered(totalBytes: number): void {
    this.bufferedBytes = totalBytes;
    if (totalBytes > this.maxBufferedBytes) this.maxBufferedBytes = totalBytes;
  }
  partitionHealth(): void {}
  notice(n: PartitionNotice): void {
    // Bounded: a process that keeps seeing them keeps the latest.
    if (this.notices.length >= 1_000) this.notices.shift();
    this.notices.push(n);
  }
}

/** Fans one report out to several observers. */
export function observers(...list: SinkObserver[]): SinkObserver {
  const each =
    <K extends keyof SinkObserver>(k: K) =>
    (...args: Parameters<SinkObserver[K]>) => {
      for (const o of list) (o[k] as (...a: Parameters<SinkObserver[K]>) => void)(...args);
    };
  return {
    recordsConsumed: each('recordsConsumed'),
    flushed: each('flushed'),
    flushFailed: each('flushFailed'),
    committed: each('committed'),
    paused: each('paused'),
    resumed: each('resumed'),
    rebalanced: each('rebalanced'),
    lag: each('lag'),
    buffered: each('buffered'),
    notice: each('notice'),
    partitionHealth: each('partitionHealth'),
  };
}
