// Whether a partition is stuck (DESIGN.md invariant 8): it has records to write and has not
// advanced for longer than a bound. Pure bookkeeping; the caller passes the clock's time.
//
// "Has records to write" is anything buffered or in flight, a hold (a failing flush, decode or
// registry look-up keeps the records in Kafka), or a log end beyond the fetch position. The
// clock starts when the partition goes from nothing to write to something — or at its last
// advance, whichever is later — so a partition that sat idle for an hour and just received a
// record is not stuck at once.

export interface LastError {
  /** SQLSTATE, Kafka or pgsink code. */
  code: string;
  /** flush, decode, schema registry, kafka, retention gap. */
  stage: string;
  at: number;
}

export class Progress {
  /** When the partition last advanced (a flush committed), or was assigned. */
  private advancedAt: number;
  /** Since when it has had something to write; undefined while it has nothing. */
  private busySince: number | undefined;
  private error: LastError | undefined;

  constructor(now: number) {
    this.advancedAt = now;
  }

  /** It has something to write now. */
  busy(now: number): void {
    this.busySince ??= now;
  }

  /** It has nothing to write now. */
  idle(): void {
    this.busySince = undefined;
    this.error = undefined;
  }

  /** Its fence moved: the clock starts again (and stops if nothing is left). */
  advanced(now: number, stillBusy: boolean): void {
    this.advancedAt = now;
    this.error = undefined;
    if (!stillBusy) this.busySince = undefined;
  }

  failed(code: string, stage: string, now: number): void {
    this.busy(now);
    this.error = { code, stage, at: now };
  }

  get lastError(): LastError | undefined {
    return this.error;
  }

  /** How long it has had something to write without advancing (0 when it has nothing). */
  stalledMs(now: number): number {
    if (this.busySince === undefined) return 0;
    return Math.max(0, now - Math.max(this.busySince, this.advancedAt));
  }

  /** Since when it has been without progress, when it has been for longer than `afterMs`. */
  stuckSince(now: number, afterMs: number): number | undefined {
    const stalled = this.stalledMs(now);
    return stalled > afterMs ? now - stalled : undefined;
  }
}
