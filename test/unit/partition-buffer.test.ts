// PartitionBuffer: the pure per-partition accumulator. Time is always passed in, so every
// linger case is checked without timers or sleeps.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PartitionBuffer, type Batch, type FlushPolicy } from '../../src/batch/partition-buffer.ts';

const policy = (p: Partial<FlushPolicy> = {}): FlushPolicy => ({
  maxRows: 100,
  maxBytes: 1_000,
  lingerMs: 50,
  ...p,
});

function filled(p: Partial<FlushPolicy>, sizes: number[], at = 0): PartitionBuffer<number> {
  const buf = new PartitionBuffer<number>(policy(p));
  sizes.forEach((bytes, i) => buf.push(i, bytes, at));
  return buf;
}

describe('PartitionBuffer: counters', () => {
  it('starts empty', () => {
    const buf = new PartitionBuffer<string>(policy());
    expect(buf.rows).toBe(0);
    expect(buf.bytes).toBe(0);
    expect(buf.oldestAt).toBeUndefined();
    expect(buf.deadline()).toBeUndefined();
    expect(buf.flushReason(1_000_000)).toBeNull();
  });

  it('counts rows and bytes as entries are pushed', () => {
    const buf = new PartitionBuffer<string>(policy());
    buf.push('a', 10, 5);
    buf.push('b', 20, 7);
    expect(buf.rows).toBe(2);
    expect(buf.bytes).toBe(30);
    expect(buf.oldestAt).toBe(5);
  });
});

describe('PartitionBuffer: flushReason', () => {
  it('flushes by rows exactly at maxRows, not one before', () => {
    const buf = new PartitionBuffer<number>(policy({ maxRows: 3 }));
    buf.push(1, 1, 0);
    buf.push(2, 1, 0);
    expect(buf.flushReason(0)).toBeNull();
    buf.push(3, 1, 0);
    expect(buf.flushReason(0)).toBe('rows');
  });

  it('flushes by bytes exactly at maxBytes, not one byte before', () => {
    const buf = new PartitionBuffer<number>(policy({ maxBytes: 100 }));
    buf.push(1, 60, 0);
    buf.push(2, 39, 0);
    expect(buf.flushReason(0)).toBeNull();
    buf.push(3, 1, 0);
    expect(buf.flushReason(0)).toBe('bytes');
  });

  it('flushes by bytes when a single entry is larger than maxBytes', () => {
    const buf = new PartitionBuffer<number>(policy({ maxBytes: 100 }));
    buf.push(1, 5_000, 0);
    expect(buf.flushReason(0)).toBe('bytes');
  });

  it('prefers rows over bytes when both limits are reached', () => {
    const buf = new PartitionBuffer<number>(policy({ maxRows: 2, maxBytes: 10 }));
    buf.push(1, 10, 0);
    buf.push(2, 10, 0);
    expect(buf.flushReason(0)).toBe('rows');
  });

  it('flushes by linger once the oldest entry is lingerMs old', () => {
    const buf = new PartitionBuffer<number>(policy({ lingerMs: 50 }));
    buf.push(1, 1, 1_000);
    buf.push(2, 1, 1_040);
    expect(buf.deadline()).toBe(1_050);
    expect(buf.flushReason(1_000)).toBeNull();
    expect(buf.flushReason(1_049)).toBeNull();
    expect(buf.flushReason(1_050)).toBe('linger');
    expect(buf.flushReason(9_999)).toBe('linger');
  });

  it('the linger deadline follows the oldest remaining entry after a take', () => {
    const buf = new PartitionBuffer<number>(policy({ maxRows: 1, lingerMs: 50 }));
    buf.push(1, 1, 1_000);
    buf.push(2, 1, 1_030);
    buf.take('rows');
    expect(buf.oldestAt).toBe(1_030);
    expect(buf.deadline()).toBe(1_080);
    // maxRows 1 and one row buffered: rows trigger first.
    expect(buf.flushReason(1_030)).toBe('rows');
  });

  it('lingerMs 0 flushes immediately', () => {
    const buf = new PartitionBuffer<number>(policy({ lingerMs: 0 }));
    buf.push(1, 1, 500);
    expect(buf.flushReason(500)).toBe('linger');
  });

  it('an empty buffer never flushes, however late', () => {
    const buf = filled({}, [1, 2, 3], 0);
    buf.take('drain');
    expect(buf.rows).toBe(0);
    expect(buf.flushReason(Number.MAX_SAFE_INTEGER)).toBeNull();
    expect(buf.deadline()).toBeUndefined();
  });
});

describe('PartitionBuffer: take', () => {
  it('takes everything when under both limits and carries the reason', () => {
    const buf = filled({}, [10, 20, 30]);
    const batch = buf.take('linger');
    expect(batch.entries).toEqual([0, 1, 2]);
    expect(batch.bytes).toBe(60);
    expect(batch.reason).toBe('linger');
    expect(batch.slots.map((s) => s.entry)).toEqual([0, 1, 2]);
    expect(buf.rows).toBe(0);
    expect(buf.bytes).toBe(0);
  });

  it('takes at most maxRows, oldest first', () => {
    const buf = filled(
      { maxRows: 4 },
      Array.from({ length: 10 }, () => 1),
    );
    expect(buf.take('rows').entries).toEqual([0, 1, 2, 3]);
    expect(buf.take('rows').entries).toEqual([4, 5, 6, 7]);
    expect(buf.rows).toBe(2);
    expect(buf.bytes).toBe(2);
    expect(buf.take('drain').entries).toEqual([8, 9]);
  });

  it('takes at most maxBytes', () => {
    const buf = filled({ maxBytes: 100 }, [40, 40, 40, 40]);
    const first = buf.take('bytes');
    expect(first.entries).toEqual([0, 1]);
    expect(first.bytes).toBe(80);
    expect(buf.bytes).toBe(80);
    expect(buf.take('bytes').entries).toEqual([2, 3]);
  });

  it('includes an entry that lands exactly on maxBytes', () => {
    const buf = filled({ maxBytes: 100 }, [60, 40, 1]);
    const batch = buf.take('bytes');
    expect(batch.entries).toEqual([0, 1]);
    expect(batch.bytes).toBe(100);
  });

  it('always takes at least one entry, even one larger than maxBytes', () => {
    const buf = filled({ maxBytes: 100 }, [500, 10, 10]);
    const batch = buf.take('bytes');
    expect(batch.entries).toEqual([0]);
    expect(batch.bytes).toBe(500);
    expect(buf.rows).toBe(2);
    expect(buf.bytes).toBe(20);
  });

  it('stops before an oversized entry rather than exceeding maxBytes', () => {
    const buf = filled({ maxBytes: 100 }, [10, 500, 10]);
    expect(buf.take('bytes').entries).toEqual([0]);
    expect(buf.take('bytes').entries).toEqual([1]);
    expect(buf.take('bytes').entries).toEqual([2]);
  });

  it('take on an empty buffer gives an empty batch', () => {
    const buf = new PartitionBuffer<number>(policy());
    const batch = buf.take('drain');
    expect(batch.entries).toEqual([]);
    expect(batch.bytes).toBe(0);
    expect(buf.rows).toBe(0);
  });

  it('keeps order and counters across many takes (exercises internal compaction)', () => {
    const n = 12_000;
    const buf = new PartitionBuffer<number>(policy({ maxRows: 1, maxBytes: 1_000_000 }));
    for (let i = 0; i < n; i++) buf.push(i, 2, i);
    for (let i = 0; i < 9_000; i++) {
      const b = buf.take('rows');
      expect(b.entries[0]).toBe(i);
    }
    expect(buf.rows).toBe(n - 9_000);
    expect(buf.bytes).toBe(2 * (n - 9_000));
    expect(buf.oldestAt).toBe(9_000);
    buf.push(n, 2, n);
    const rest: number[] = [];
    while (buf.rows > 0) rest.push(...buf.take('drain').entries);
    expect(rest).toEqual(Array.from({ length: n - 9_000 + 1 }, (_, i) => 9_000 + i));
  });
});

describe('PartitionBuffer: requeue', () => {
  it('puts a failed batch back in front, with bytes and arrival times restored', () => {
    const buf = new PartitionBuffer<string>(policy({ maxRows: 2, lingerMs: 100 }));
    buf.push('a', 10, 1_000);
    buf.push('b', 20, 1_010);
    buf.push('c', 30, 1_020);
    const batch = buf.take('rows');
    expect(batch.entries).toEqual(['a', 'b']);
    expect(buf.oldestAt).toBe(1_020);
    buf.push('d', 40, 1_500);

    buf.requeue(batch);
    expect(buf.rows).toBe(4);
    expect(buf.bytes).toBe(100);
    // The original arrival time is back: linger counts from when 'a' arrived, not from now.
    expect(buf.oldestAt).toBe(1_000);
    expect(buf.deadline()).toBe(1_100);
    const all: string[] = [];
    while (buf.rows > 0) all.push(...buf.take('drain').entries);
    expect(all).toEqual(['a', 'b', 'c', 'd']);
  });

  it('a requeued batch is taken again exactly as it was', () => {
    const buf = filled({ maxRows: 3, maxBytes: 1_000 }, [5, 6, 7, 8, 9]);
    const first = buf.take('rows');
    buf.requeue(first);
    const again = buf.take('rows');
    expect(again.entries).toEqual(first.entries);
    expect(again.bytes).toBe(first.bytes);
    expect(again.slots).toEqual(first.slots);
  });

  it('requeue into an otherwise empty buffer', () => {
    const buf = filled({}, [3, 4], 77);
    const batch = buf.take('linger');
    expect(buf.rows).toBe(0);
    buf.requeue(batch);
    expect(buf.rows).toBe(2);
    expect(buf.bytes).toBe(7);
    expect(buf.oldestAt).toBe(77);
    expect(buf.flushReason(77 + 50)).toBe('linger');
  });

  it('requeue of an empty batch changes nothing', () => {
    const buf = filled({}, [3, 4], 10);
    buf.requeue(new PartitionBuffer<number>(policy()).take('drain'));
    expect(buf.rows).toBe(2);
    expect(buf.bytes).toBe(7);
    expect(buf.oldestAt).toBe(10);
  });
});

describe('PartitionBuffer: clear', () => {
  it('drops everything and reports how many rows it dropped', () => {
    const buf = filled({ maxRows: 2 }, [1, 2, 3, 4, 5]);
    buf.take('rows');
    expect(buf.clear()).toBe(3);
    expect(buf.rows).toBe(0);
    expect(buf.bytes).toBe(0);
    expect(buf.oldestAt).toBeUndefined();
    expect(buf.flushReason(1e12)).toBeNull();
    expect(buf.clear()).toBe(0);
  });

  it('is usable again after clear', () => {
    const buf = filled({}, [1, 2, 3]);
    buf.clear();
    buf.push(42, 9, 123);
    const batch = buf.take('drain');
    expect(batch.entries).toEqual([42]);
    expect(batch.bytes).toBe(9);
  });
});

// ------------------------------------------------------------------ property test

type Op = { kind: 'push'; bytes: number } | { kind: 'take' } | { kind: 'fail' } | { kind: 'commit' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.integer({ min: 0, max: 120 }).map((bytes): Op => ({ kind: 'push', bytes })) },
  { weight: 2, arbitrary: fc.constant<Op>({ kind: 'take' }) },
  { weight: 1, arbitrary: fc.constant<Op>({ kind: 'fail' }) },
  { weight: 2, arbitrary: fc.constant<Op>({ kind: 'commit' }) },
);

const policyArb = fc.record({
  maxRows: fc.integer({ min: 1, max: 8 }),
  maxBytes: fc.integer({ min: 1, max: 300 }),
  lingerMs: fc.integer({ min: 0, max: 100 }),
});

describe('PartitionBuffer: property', () => {
  it('every record is committed in exactly one batch, in order, with consistent byte accounting', () => {
    fc.assert(
      fc.property(policyArb, fc.array(opArb, { maxLength: 200 }), (pol, ops) => {
        const buf = new PartitionBuffer<number>(pol);
        const sizeOf = new Map<number, number>();
        const arrivedAt = new Map<number, number>();
        const committed: number[] = [];
        let next = 0;
        let now = 0;
        // As in the sink: at most one batch of a partition is in flight.
        let inFlight: Batch<number> | undefined;
        let model: number[] = []; // ids buffered, in order

        const check = (): void => {
          const modelBytes = model.reduce((s, id) => s + sizeOf.get(id)!, 0);
          expect(buf.rows).toBe(model.length);
          expect(buf.bytes).toBe(modelBytes);
          expect(buf.oldestAt).toBe(model.length ? arrivedAt.get(model[0]!) : undefined);
        };

        for (const op of ops) {
          now += 1;
          switch (op.kind) {
            case 'push': {
              const id = next++;
              sizeOf.set(id, op.bytes);
              arrivedAt.set(id, now);
              buf.push(id, op.bytes, now);
              model.push(id);
              break;
            }
            case 'take': {
              if (inFlight) break;
              const batch = buf.take('drain');
              const expectedIds = model.slice(0, batch.entries.length);
              expect(batch.entries).toEqual(expectedIds);
              if (model.length > 0) expect(batch.entries.length).toBeGreaterThan(0);
              expect(batch.entries.length).toBeLessThanOrEqual(pol.maxRows);
              expect(batch.bytes).toBe(batch.entries.reduce((s, id) => s + sizeOf.get(id)!, 0));
              if (batch.entries.length > 1) expect(batch.bytes).toBeLessThanOrEqual(pol.maxBytes);
              // Maximal: the next entry would not have fitted.
              const following = model[batch.entries.length];
              if (following !== undefined && batch.entries.length < pol.maxRows) {
                expect(batch.bytes + sizeOf.get(following)!).toBeGreaterThan(pol.maxBytes);
              }
              expect(batch.slots.map((s) => s.at)).toEqual(batch.entries.map((id) => arrivedAt.get(id)));
              model = model.slice(batch.entries.length);
              if (batch.entries.length > 0) inFlight = batch;
              break;
            }
            case 'fail':
              if (inFlight) {
                buf.requeue(inFlight);
                model = [...inFlight.entries, ...model];
                inFlight = undefined;
              }
              break;
            case 'commit':
              if (inFlight) {
                committed.push(...inFlight.entries);
                inFlight = undefined;
              }
              break;
          }
          check();
        }
        // Drain: fail or commit what is in flight, then flush the rest.
        if (inFlight) committed.push(...inFlight.entries);
        while (buf.rows > 0) committed.push(...buf.take('drain').entries);
        expect(buf.bytes).toBe(0);
        // Exactly once and in order: the committed sequence is 0..next-1.
        expect(committed).toEqual(Array.from({ length: next }, (_, i) => i));
      }),
      { numRuns: 300 },
    );
  });
});
