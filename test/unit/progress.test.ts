// When a partition counts as stuck (src/pipeline/progress.ts), on an injected clock.
import { describe, expect, it } from 'vitest';
import { Progress } from '../../src/pipeline/progress.ts';

describe('Progress', () => {
  it('counts only the time with records to write and no advance', () => {
    const p = new Progress(0);
    expect(p.stalledMs(10_000)).toBe(0);
    // Idle for an hour, then a record: not stuck at once.
    p.busy(3_600_000);
    expect(p.stalledMs(3_600_500)).toBe(500);
    expect(p.stuckSince(3_600_500, 1_000)).toBeUndefined();
    expect(p.stuckSince(3_602_000, 1_000)).toBe(3_600_000);
    // Busy stays busy: a second busy() does not restart the clock.
    p.busy(3_601_000);
    expect(p.stalledMs(3_602_000)).toBe(2_000);
  });

  it('an advance restarts the clock, and stops it when nothing is left', () => {
    const p = new Progress(0);
    p.busy(100);
    p.advanced(5_000, true);
    expect(p.stalledMs(6_000)).toBe(1_000);
    p.advanced(7_000, false);
    expect(p.stalledMs(60_000)).toBe(0);
  });

  it('keeps the last error until the partition advances or goes idle', () => {
    const p = new Progress(0);
    p.failed('23505', 'flush', 50);
    expect(p.lastError).toEqual({ code: '23505', stage: 'flush', at: 50 });
    expect(p.stalledMs(1_050)).toBe(1_000);
    p.advanced(2_000, true);
    expect(p.lastError).toBeUndefined();
    p.failed('BAD_RESPONSE', 'schema registry', 2_500);
    p.idle();
    expect(p.lastError).toBeUndefined();
    expect(p.stalledMs(9_000)).toBe(0);
  });
});
