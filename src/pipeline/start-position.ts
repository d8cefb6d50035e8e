// Where a partition starts after an assignment: pure, from what Postgres and Kafka say.
//
// Postgres is the source of truth (DESIGN.md invariant 2). With a fence row, the partition
// starts at the fence whichever side Kafka's committed offset is on; Kafka ahead means Postgres
// lost commits that Kafka kept (a restore, a failover) and those records are read again. With
// no fence row (a new group, or Postgres restored from before pgsink ran), Kafka's committed
// offset stands, else kafka.fromBeginning, as for any consumer. Either way, a start below the
// log's first offset means records were deleted by retention before they were written (a
// gap, recorded), and a fence beyond the log's end means the log is not the one the fence was
// written against (the topic recreated or moved): nothing is guessed, the partition stops.
//
// The seek is always made, also when the client would start there anyway: kafkajs keeps a
// seek still pending from before a rebalance, and it would win otherwise.

export interface StartFacts {
  /** The fence row's next offset; undefined when there is no row. */
  fence: number | undefined;
  /** Kafka's committed offset; -1 when none, undefined when it could not be read. */
  committed: number | undefined;
  /** The log's first offset and its end; undefined when they could not be read. */
  watermarks: { low: number; high: number } | undefined;
  fromBeginning: boolean;
}

export type StartDecision =
  | {
      kind: 'start';
      /** Where to seek; undefined leaves it to the client (nothing known to decide by). */
      seek: number | undefined;
      /** The offset the first batch must be fetched from (undefined: the client's). */
      next: number | undefined;
      /** Offsets first..last are read again (Kafka's commit is ahead of the fence). */
      reread?: { first: number; last: number };
      /** Offsets first..last were deleted by retention before they were written. */
      gap?: { first: number; last: number };
      /** Kafka's commit is behind the fence, absent or unknown: commit the fence. */
      commitFence?: boolean;
      /** No fence row, and Kafka's commit is taken as the start. */
      fromKafkaCommit?: number;
      /** No fence row, and Kafka's commit is beyond the log's end: the client's default. */
      commitBeyondEnd?: number;
    }
  | { kind: 'beyond-end'; fence: number; high: number };

export function decideStart(f: StartFacts): StartDecision {
  const w = f.watermarks;
  if (f.fence !== undefined) {
    const fence = f.fence;
    if (w && fence > w.high) return { kind: 'beyond-end', fence, high: w.high };
    if (w && fence < w.low) {
      return {
        kind: 'start',
        seek: w.low,
        next: w.low,
        gap: { first: fence, last: w.low - 1 },
        commitFence: false,
      };
    }
    const c = f.committed;
    if (c !== undefined && c > fence)
      return { kind: 'start', seek: fence, next: fence, reread: { first: fence, last: c - 1 } };
    return { kind: 'start', seek: fence, next: fence, commitFence: c !== fence };
  }
  if (f.committed === undefined || !w) return { kind: 'start', seek: undefined, next: undefined };
  const fallback = f.fromBeginning ? w.low : w.high;
  if (f.committed < 0) return { kind: 'start', seek: fallback, next: fallback };
  if (f.committed > w.high)
    return { kind: 'start', seek: fallback, next: fallback, commitBeyondEnd: f.committed };
  if (f.committed < w.low) {
    return {
      kind: 'start',
      seek: w.low,
      next: w.low,
      gap: { first: f.committed, last: w.low - 1 },
      fromKafkaCommit: f.committed,
    };
  }
  return { kind: 'start', seek: f.committed, next: f.committed, fromKafkaCommit: f.committed };
}
