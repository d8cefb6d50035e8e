// Capped exponential backoff with full jitter; `random` is injected, so every case is exact.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backoffDelay, type BackoffPolicy } from '../../src/util/backoff.ts';

const policy: BackoffPolicy = { initialMs: 200, maxMs: 10_000 };
const fixed = (r: number) => (): number => r;
/** The largest value Math.random can return. */
const ALMOST_ONE = 1 - Number.EPSILON / 2;

describe('backoffDelay', () => {
  it('doubles the ceiling per attempt until the cap', () => {
    const ceilings = Array.from({ length: 9 }, (_, attempt) =>
      backoffDelay(attempt, policy, fixed(ALMOST_ONE)),
    );
    expect(ceilings).toEqual([200, 400, 800, 1_600, 3_200, 6_400, 10_000, 10_000, 10_000]);
  });

  it('never exceeds maxMs, however many attempts', () => {
    for (const attempt of [6, 7, 10, 30, 31, 100, 1_000, Number.MAX_SAFE_INTEGER]) {
      expect(backoffDelay(attempt, policy, fixed(ALMOST_ONE))).toBe(10_000);
    }
  });

  it('stays finite for huge attempt counts', () => {
    expect(
      Number.isFinite(backoffDelay(1e9, { initialMs: 1, maxMs: Number.MAX_SAFE_INTEGER }, fixed(0.5))),
    ).toBe(true);
  });

  it('is never below half the initial delay, even with random() = 0', () => {
    for (const attempt of [0, 1, 5, 50]) {
      expect(backoffDelay(attempt, policy, fixed(0))).toBe(100);
    }
  });

  it('scales the jitter linearly within the ceiling', () => {
    expect(backoffDelay(3, policy, fixed(0.5))).toBe(800); // ceiling 1600
    expect(backoffDelay(3, policy, fixed(0.25))).toBe(400);
    expect(backoffDelay(10, policy, fixed(0.5))).toBe(5_000); // ceiling 10000
    expect(backoffDelay(0, policy, fixed(0.75))).toBe(150); // ceiling 200
  });

  it('rounds to whole milliseconds', () => {
    expect(backoffDelay(0, { initialMs: 3, maxMs: 100 }, fixed(0.5))).toBe(2); // round(1.5) = 2 ≥ 1.5
    expect(backoffDelay(2, { initialMs: 3, maxMs: 100 }, fixed(0.3))).toBe(4); // round(3.6)
  });

  it('consumes exactly one random number per call', () => {
    let calls = 0;
    backoffDelay(4, policy, () => {
      calls++;
      return 0.3;
    });
    expect(calls).toBe(1);
  });

  it('spreads delays: different random values give different delays', () => {
    const delays = new Set([0.1, 0.3, 0.5, 0.7, 0.9].map((r) => backoffDelay(8, policy, fixed(r))));
    expect(delays.size).toBe(5);
  });

  it('is always within [initialMs/2, min(maxMs, initialMs·2^attempt)] for maxMs ≥ initialMs', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 60 }),
        fc.integer({ min: 1, max: 10_000 }),
        fc.integer({ min: 0, max: 1_000_000 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (attempt, initialMs, extra, r) => {
          const p = { initialMs, maxMs: initialMs + extra };
          const d = backoffDelay(attempt, p, fixed(r));
          const ceiling = Math.min(p.maxMs, initialMs * 2 ** attempt);
          expect(d).toBeGreaterThanOrEqual(initialMs / 2);
          expect(d).toBeLessThanOrEqual(ceiling);
          expect(d).toBeLessThanOrEqual(p.maxMs);
        },
      ),
      { numRuns: 1_000 },
    );
  });

  it('is monotonic in random() for a fixed attempt', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 20 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (attempt, a, b) => {
          const [lo, hi] = a <= b ? [a, b] : [b, a];
          expect(backoffDelay(attempt, policy, fixed(lo))).toBeLessThanOrEqual(
            backoffDelay(attempt, policy, fixed(hi)),
          );
        },
      ),
    );
  });

  it('uses Math.random by default and stays in bounds', () => {
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(5, policy);
      expect(d).toBeGreaterThanOrEqual(100);
      expect(d).toBeLessThanOrEqual(6_400);
    }
  });
});
