// The adaptive batch row limit (src/batch/adaptive-rows.ts): pure, driven by reported flushes.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AdaptiveRows, adaptiveRowsOptions } from '../../src/batch/adaptive-rows.ts';

describe('adaptive batch rows', () => {
  it('starts at maxRows and derives the target from the linger', () => {
    const opts = adaptiveRowsOptions({ maxRows: 10_000, lingerMs: 250 });
    expect(opts).toEqual({ minRows: 200, maxRows: 10_000, targetMs: 125 });
    expect(new AdaptiveRows(opts).limit).toBe(10_000);
    expect(adaptiveRowsOptions({ maxRows: 10, lingerMs: 0 })).toEqual({
      minRows: 1,
      maxRows: 10,
      targetMs: 20,
    });
  });

  it('shrinks in proportion when flushes are slow, at most halving at once, never below minRows', () => {
    const a = new AdaptiveRows({ minRows: 100, maxRows: 10_000, targetMs: 100 });
    expect(a.observe(10_000, 125)).toBe(8_000);
    expect(a.observe(8_000, 1_000)).toBe(4_000);
    for (let i = 0; i < 20; i++) a.observe(a.limit, 5_000);
    expect(a.limit).toBe(100);
  });

  it('grows by a quarter while full batches flush fast, up to maxRows; not on partial batches', () => {
    const a = new AdaptiveRows({ minRows: 100, maxRows: 1_000, targetMs: 100 });
    a.observe(1_000, 400);
    expect(a.limit).toBe(500);
    expect(a.observe(200, 10)).toBe(500); // a linger flush of a few rows says nothing of a full one
    expect(a.observe(500, 10)).toBe(625);
    for (let i = 0; i < 10; i++) a.observe(a.limit, 10);
    expect(a.limit).toBe(1_000);
    expect(a.observe(1_000, 70)).toBe(1_000); // between half the target and the target: kept
  });

  it('stays within its bounds for any sequence of flushes', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5_000 }),
        fc.integer({ min: 0, max: 5_000 }),
        fc.integer({ min: 1, max: 1_000 }),
        fc.array(
          fc.tuple(fc.integer({ min: 1, max: 20_000 }), fc.double({ min: 0, max: 60_000, noNaN: true })),
        ),
        (min, extra, target, flushes) => {
          const a = new AdaptiveRows({ minRows: min, maxRows: min + extra, targetMs: target });
          for (const [rows, ms] of flushes) {
            const limit = a.observe(rows, ms);
            expect(Number.isInteger(limit)).toBe(true);
            expect(limit).toBeGreaterThanOrEqual(min);
            expect(limit).toBeLessThanOrEqual(min + extra);
          }
        },
      ),
    );
  });
});
