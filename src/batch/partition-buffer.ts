// Pure per-partition accumulator and flush policy. No timers: the caller passes `now` and
// asks for the next deadline, so time-based flushing is tested without sleeping.

export interface FlushPolicy {
  maxRows: number;
  maxBytes: number;
  lingerMs: number;
}

export type FlushReason = 'rows' | 'bytes' | 'linger' | 'drain';

interface Slot<T> {
  entry: T;
  bytes: number;
  at: number;
}

export interface Batch<T> {
  entries: T[];
  bytes: number;
  reason: FlushReason;
  /** Bytes and arrival time of each entry, so a failed batch can be put back exactly (requeue). */
  readonly sizes: readonly number[];
  readonly arrivals: readonly number[];
  /** The same, as one object per entry (for inspection; not used on the hot path). */
  readonly slots: ReadonlyArray<Slot<T>>;
}

function makeBatch<T>(
  entries: T[],
  sizes: number[],
  arrivals: number[],
  bytes: number,
  reason: FlushReason,
): Batch<T> {
  return {
    entries,
    sizes,
    arrivals,
    bytes,
    reason,
    get slots() {
      return entries.map((entry, i) => ({ entry, bytes: sizes[i]!, at: arrivals[i]! }));
    },
  };
}

/**
 * Entries, their sizes and arrival times in three parallel arrays (no object per entry:
 * buffered rows are the bulk of what the heap holds).
 */
export class PartitionBuffer<T> {
  private entries: T[] = [];
  private sizes: number[] = [];
  private arrivals: number[] = [];
  private head = 0;
  private bufferedBytes = 0;

  private readonly policy: FlushPolicy;

  constructor(policy: FlushPolicy) {
    this.policy = policy;
  }

  get rows(): number {
    return this.entries.length - this.head;
  }

  get bytes(): number {
    return this.bufferedBytes;
  }

  /** Arrival time of the oldest buffered entry, or undefined when empty. */
  get oldestAt(): number | undefined {
    return this.head < this.entries.length ? this.arrivals[this.head] : undefined;
  }

  push(entry: T, bytes: number, now: number): void {
    this.entries.push(entry);
    this.sizes.push(bytes);
    this.arrivals.push(now);
    this.bufferedBytes += bytes;
  }

  /** Why the buffer should flush now, or null. */
  flushReason(now: number): FlushReason | null {
    const rows = this.rows;
    if (rows === 0) return null;
    if (rows >= this.policy.maxRows) return 'rows';
    if (this.bufferedBytes >= this.policy.maxBytes) return 'bytes';
    if (now - this.oldestAt! >= this.policy.lingerMs) return 'linger';
    return null;
  }

  /** When the oldest entry's linger expires; undefined when empty. */
  deadline(): number | undefined {
    const at = this.oldestAt;
    return at === undefined ? undefined : at + this.policy.lingerMs;
  }

  /**
   * Removes and returns the oldest entries, at most maxRows of them and at most maxBytes
   * (but always at least one), so a buffer that grew while a flush was in flight is
   * written in batches of the configured size.
   */
  take(reason: FlushReason, maxRows = this.policy.maxRows): Batch<T> {
    const from = this.head;
    let to = from;
    let bytes = 0;
    const limit = Math.min(this.entries.length, from + Math.max(1, Math.min(maxRows, this.policy.maxRows)));
    while (to < limit) {
      const size = this.sizes[to]!;
      if (to > from && bytes + size > this.policy.maxBytes) break;
      bytes += size;
      to++;
    }
    const batch = makeBatch(
      this.entries.slice(from, to),
      this.sizes.slice(from, to),
      this.arrivals.slice(from, to),
      bytes,
      reason,
    );
    this.head = to;
    this.bufferedBytes -= bytes;
    this.compact();
    return batch;
  }

  /** Puts a batch whose flush failed back in front, with its original arrival times. */
  requeue(batch: Batch<T>): void {
    this.entries = [...batch.entries, ...this.entries.slice(this.head)];
    this.sizes = [...batch.sizes, ...this.sizes.slice(this.head)];
    this.arrivals = [...batch.arrivals, ...this.arrivals.slice(this.head)];
    this.head = 0;
    this.bufferedBytes += batch.bytes;
  }

  /** Drops everything (revoked partition: the records will be fetched again). */
  clear(): number {
    const dropped = this.rows;
    this.entries = [];
    this.sizes = [];
    this.arrivals = [];
    this.head = 0;
    this.bufferedBytes = 0;
    return dropped;
  }

  private compact(): void {
    if (this.head === this.entries.length) {
      this.entries = [];
      this.sizes = [];
      this.arrivals = [];
      this.head = 0;
    } else if (this.head > 4096 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.sizes = this.sizes.slice(this.head);
      this.arrivals = this.arrivals.slice(this.head);
      this.head = 0;
    }
  }
}
