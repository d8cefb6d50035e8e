// A partition's batch row limit that follows the measured flush latency (`batch.adaptiveRows`).
//
// A fixed batch.maxRows is a guess about the database: too large and, when Postgres is slow
// (a checkpoint, a neighbour's load, a table with many indexes), each flush takes long and
// every record in the batch waits for it; too small and a fast database is paid a transaction
// per few rows. Here the limit shrinks when a flush takes longer than the target (half the
// linger time, so that a record waits at most about linger + target), in proportion to how much
// longer, and grows by a quarter while flushes of full batches take less than half the target,
// within [minRows, maxRows]. Pure: the caller reports each flush's rows and duration.

export interface AdaptiveRowsOptions {
  minRows: number;
  maxRows: number;
  /** The flush duration to stay under, in ms. */
  targetMs: number;
}

export class AdaptiveRows {
  private value: number;
  private readonly opts: AdaptiveRowsOptions;

  constructor(opts: AdaptiveRowsOptions) {
    this.opts = opts;
    if (!(opts.minRows >= 1 && opts.minRows <= opts.maxRows) || !(opts.targetMs > 0)) {
      throw new Error(`internal: bad adaptive rows bounds ${JSON.stringify(opts)}`);
    }
    this.value = opts.maxRows;
  }

  /** The rows the next batch may take. */
  get limit(): number {
    return this.value;
  }

  /** A flush of `rows` rows took `durationMs`; returns the new limit. */
  observe(rows: number, durationMs: number): number {
    const { minRows, maxRows, targetMs } = this.opts;
    if (durationMs > targetMs) {
      // At most halved at once: one slow flush (a lock wait) does not collapse the limit.
      const factor = Math.max(0.5, targetMs / durationMs);
      this.value = Math.max(minRows, Math.floor(this.value * factor));
    } else if (durationMs < targetMs / 2 && rows >= this.value) {
      this.value = Math.min(maxRows, Math.ceil(this.value * 1.25));
    }
    return this.value;
  }
}

/** The options for a partition, from the batch config (target: half the linger, at least 20 ms). */
export function adaptiveRowsOptions(batch: { maxRows: number; lingerMs: number }): AdaptiveRowsOptions {
  return {
    minRows: Math.max(1, Math.min(batch.maxRows, Math.ceil(batch.maxRows / 50))),
    maxRows: batch.maxRows,
    targetMs: Math.max(20, batch.lingerMs / 2),
  };
}
