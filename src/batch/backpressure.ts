// Pure bookkeeping of buffered bytes per partition and in total, deciding which partitions
// to pause and resume. Bytes count from the moment a record is buffered until its flush has
// committed (or it was dropped), so in-flight batches count too.

export interface BackpressureLimits {
  maxPartitionBytes: number;
  maxTotalBytes: number;
  resumeRatio: number;
}

export interface PauseDecision {
  pause: string[];
  resume: string[];
}

export class Backpressure {
  private readonly bytes = new Map<string, number>();
  private readonly paused = new Set<string>();
  private total = 0;
  private globallyPaused = false;

  private readonly limits: BackpressureLimits;

  constructor(limits: BackpressureLimits) {
    this.limits = limits;
  }

  get totalBytes(): number {
    return this.total;
  }

  get pausedKeys(): ReadonlySet<string> {
    return this.paused;
  }

  bytesOf(key: string): number {
    return this.bytes.get(key) ?? 0;
  }

  isPaused(key: string): boolean {
    return this.paused.has(key);
  }

  add(key: string, delta: number): void {
    const next = (this.bytes.get(key) ?? 0) + delta;
    if (next <= 0) this.bytes.delete(key);
    else this.bytes.set(key, next);
    this.total += delta;
    if (this.total < 0) this.total = 0;
  }

  forget(key: string): void {
    this.add(key, -(this.bytes.get(key) ?? 0));
    this.paused.delete(key);
  }

  /**
   * Re-evaluates pause state for `keys` (all assigned partitions). A partition pauses above
   * its own limit, or all do above the total limit; each resumes below resumeRatio of
   * the limit it crossed. `held` partitions stay paused whatever their bytes (e.g. while
   * their sink is failing).
   */
  evaluate(keys: Iterable<string>, held: ReadonlySet<string> = new Set()): PauseDecision {
    const { maxPartitionBytes, maxTotalBytes, resumeRatio } = this.limits;
    if (this.total >= maxTotalBytes) this.globallyPaused = true;
    else if (this.total <= maxTotalBytes * resumeRatio) this.globallyPaused = false;

    const decision: PauseDecision = { pause: [], resume: [] };
    for (const key of keys) {
      const bytes = this.bytes.get(key) ?? 0;
      const wasPaused = this.paused.has(key);
      let shouldPause: boolean;
      if (this.globallyPaused || held.has(key)) shouldPause = true;
      else if (wasPaused) shouldPause = bytes > maxPartitionBytes * resumeRatio;
      else shouldPause = bytes >= maxPartitionBytes;
      if (shouldPause && !wasPaused) {
        this.paused.add(key);
        decision.pause.push(key);
      } else if (!shouldPause && wasPaused) {
        this.paused.delete(key);
        decision.resume.push(key);
      }
    }
    return decision;
  }
}
