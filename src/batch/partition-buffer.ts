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
  /** Kept so that a failed batch can be put back exactly as it was (requeue). */
  readonly slots: ReadonlyArray<Slot<T>>;
}

export class PartitionBuffer<T> {
  private slots: Slot<T>[] = [];
  private head = 0;
  private bufferedBytes = 0;

  private readonly policy: FlushPolicy;

  constructor(policy: FlushPolicy) {
    this.policy = policy;
  }

  get rows(): number {
    return this.slots.length - this.head;
  }

  get bytes(): number {
    return this.bufferedBytes;
  }

  /** Arrival time of the oldest buffered entry, or undefined when empty. */
  get oldestAt(): number | undefined {
    return this.slots[this.head]?.at;
  }

  push(entry: T, bytes: number, now: number): void {
    this.slots.push({ entry, bytes, at: now });
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
  take(reason: FlushReason): Batch<T> {
    const entries: T[] = [];
    const taken: Array<Slot<T>> = [];
    let bytes = 0;
    while (this.head < this.slots.length && entries.length < this.policy.maxRows) {
      const slot = this.slots[this.head]!;
      if (entries.length > 0 && bytes + slot.bytes > this.policy.maxBytes) break;
      entries.push(slot.entry);
      taken.push(slot);
      bytes += slot.bytes;
      this.head++;
    }
    this.bufferedBytes -= bytes;
    this.compact();
    return { entries, bytes, reason, slots: taken };
  }

  /** Puts a batch whose flush failed back in front, with its original arrival times. */
  requeue(batch: Batch<T>): void {
    this.slots = [...batch.slots, ...this.slots.slice(this.head)];
    this.head = 0;
    this.bufferedBytes += batch.bytes;
  }

  /** Drops everything (revoked partition: the records will be fetched again). */
  clear(): number {
    const dropped = this.rows;
    this.slots = [];
    this.head = 0;
    this.bufferedBytes = 0;
    return dropped;
  }

  private compact(): void {
    if (this.head === this.slots.length) {
      this.slots = [];
      this.head = 0;
    } else if (this.head > 4096 && this.head * 2 > this.slots.length) {
      this.slots = this.slots.slice(this.head);
      this.head = 0;
    }
  }
}
