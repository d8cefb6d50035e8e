// A SinkObserver that records flush reports, for tests that look at batches.
import type { FlushReport, SinkObserver } from '../../src/pipeline/observer.ts';

export function flushRecorder(): SinkObserver & { flushes: FlushReport[] } {
  const flushes: FlushReport[] = [];
  const noop = () => undefined;
  return {
    flushes,
    flushed: (r) => flushes.push(r),
    recordsConsumed: noop,
    flushFailed: noop,
    committed: noop,
    paused: noop,
    resumed: noop,
    rebalanced: noop,
    lag: noop,
    buffered: noop,
    notice: noop,
    partitionHealth: noop,
  };
}
