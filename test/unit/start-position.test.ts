// Where a partition starts after an assignment (src/pipeline/start-position.ts): the cases
// by name, then properties over every combination of fence, commit and watermarks.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decideStart, type StartFacts } from '../../src/pipeline/start-position.ts';

const w = (low: number, high: number) => ({ low, high });
const facts = (p: Partial<StartFacts>): StartFacts => ({
  fence: undefined,
  committed: undefined,
  watermarks: w(0, 1_000),
  fromBeginning: true,
  ...p,
});

describe('decideStart', () => {
  it('starts at the fence whichever side Kafka is on, and says which', () => {
    expect(decideStart(facts({ fence: 500, committed: 1_000 }))).toEqual({
      kind: 'start',
      seek: 500,
      next: 500,
      reread: { first: 500, last: 999 },
    });
    expect(decideStart(facts({ fence: 500, committed: 300 }))).toEqual({
      kind: 'start',
      seek: 500,
      next: 500,
      commitFence: true,
    });
    expect(decideStart(facts({ fence: 500, committed: 500 }))).toEqual({
      kind: 'start',
      seek: 500,
      next: 500,
      commitFence: false,
    });
    expect(decideStart(facts({ fence: 500, committed: -1 }))).toMatchObject({ seek: 500, commitFence: true });
    // Kafka's commit unknown: the fence is right either way.
    expect(decideStart(facts({ fence: 500, committed: undefined, watermarks: undefined }))).toMatchObject({
      seek: 500,
      next: 500,
      commitFence: true,
    });
  });

  it('records a gap when the start is below the log start, and stops beyond the log end', () => {
    expect(decideStart(facts({ fence: 200, committed: 200, watermarks: w(600, 1_000) }))).toEqual({
      kind: 'start',
      seek: 600,
      next: 600,
      gap: { first: 200, last: 599 },
      commitFence: false,
    });
    expect(decideStart(facts({ fence: 1_200, committed: 1_200 }))).toEqual({
      kind: 'beyond-end',
      fence: 1_200,
      high: 1_000,
    });
    // Without a fence row, Kafka's commit below the log start is a gap too.
    expect(decideStart(facts({ committed: 100, watermarks: w(300, 1_000) }))).toMatchObject({
      seek: 300,
      gap: { first: 100, last: 299 },
      fromKafkaCommit: 100,
    });
  });

  it("without a fence row follows Kafka's commit, else kafka.fromBeginning, as numbers", () => {
    expect(decideStart(facts({ committed: 700 }))).toEqual({
      kind: 'start',
      seek: 700,
      next: 700,
      fromKafkaCommit: 700,
    });
    expect(decideStart(facts({ committed: -1, watermarks: w(40, 90) }))).toEqual({
      kind: 'start',
      seek: 40,
      next: 40,
    });
    expect(decideStart(facts({ committed: -1, watermarks: w(40, 90), fromBeginning: false }))).toEqual({
      kind: 'start',
      seek: 90,
      next: 90,
    });
    expect(decideStart(facts({ committed: 5_000, watermarks: w(40, 90) }))).toMatchObject({
      seek: 40,
      commitBeyondEnd: 5_000,
    });
    // Nothing to decide by: the client's own start.
    expect(decideStart(facts({ committed: undefined }))).toEqual({
      kind: 'start',
      seek: undefined,
      next: undefined,
    });
    expect(decideStart(facts({ committed: 10, watermarks: undefined }))).toEqual({
      kind: 'start',
      seek: undefined,
      next: undefined,
    });
  });

  it('never starts outside the log, never skips a record without calling it a gap, and re-reads exactly what Kafka is ahead by', () => {
    const arb = fc
      .record({
        low: fc.integer({ min: 0, max: 1_000 }),
        len: fc.integer({ min: 0, max: 1_000 }),
        fence: fc.option(fc.integer({ min: 0, max: 3_000 }), { nil: undefined }),
        committed: fc.option(fc.integer({ min: -1, max: 3_000 }), { nil: undefined }),
        known: fc.boolean(),
        fromBeginning: fc.boolean(),
      })
      .map((r) => ({ ...r, high: r.low + r.len }));
    fc.assert(
      fc.property(arb, (r) => {
        const d = decideStart({
          fence: r.fence,
          committed: r.committed,
          watermarks: r.known ? w(r.low, r.high) : undefined,
          fromBeginning: r.fromBeginning,
        });
        if (d.kind === 'beyond-end') {
          expect(r.known && r.fence !== undefined && r.fence > r.high).toBe(true);
          return;
        }
        expect(d.next).toBe(d.seek);
        if (r.fence !== undefined) {
          expect(d.seek).toBeDefined();
          // The fence or, when retention took records at it, the log start, with the gap.
          if (r.known && r.fence < r.low) {
            expect(d.seek).toBe(r.low);
            expect(d.gap).toEqual({ first: r.fence, last: r.low - 1 });
          } else {
            expect(d.seek).toBe(r.fence);
            expect(d.gap).toBeUndefined();
            if (r.committed !== undefined && r.committed > r.fence)
              expect(d.reread).toEqual({ first: r.fence, last: r.committed - 1 });
            else expect(d.reread).toBeUndefined();
          }
        }
        if (d.seek !== undefined && r.known) {
          expect(d.seek).toBeGreaterThanOrEqual(r.low);
          expect(d.seek).toBeLessThanOrEqual(r.high);
        }
        if (d.gap) expect(d.gap.last).toBe((d.seek ?? 0) - 1);
      }),
      { numRuns: 2_000 },
    );
  });
});
