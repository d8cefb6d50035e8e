// Backpressure: which partitions to pause and resume, from buffered bytes alone.
import { describe, expect, it } from 'vitest';
import { Backpressure, type BackpressureLimits } from '../../src/batch/backpressure.ts';

const limits = (l: Partial<BackpressureLimits> = {}): BackpressureLimits => ({
  maxPartitionBytes: 100,
  maxTotalBytes: 1_000,
  resumeRatio: 0.5,
  ...l,
});

const sorted = (xs: string[]): string[] => [...xs].sort();

describe('Backpressure: accounting', () => {
  it('tracks bytes per key and in total', () => {
    const bp = new Backpressure(limits());
    bp.add('t:0', 30);
    bp.add('t:1', 20);
    bp.add('t:0', 5);
    expect(bp.bytesOf('t:0')).toBe(35);
    expect(bp.bytesOf('t:1')).toBe(20);
    expect(bp.bytesOf('t:9')).toBe(0);
    expect(bp.totalBytes).toBe(55);
    bp.add('t:0', -35);
    expect(bp.bytesOf('t:0')).toBe(0);
    expect(bp.totalBytes).toBe(20);
  });

  it('never reports negative totals', () => {
    const bp = new Backpressure(limits());
    bp.add('t:0', -10);
    expect(bp.totalBytes).toBe(0);
    expect(bp.bytesOf('t:0')).toBe(0);
  });
});

describe('Backpressure: per-partition limit', () => {
  it('pauses a partition at its limit, and only that one', () => {
    const bp = new Backpressure(limits());
    bp.add('t:0', 99);
    bp.add('t:1', 10);
    expect(bp.evaluate(['t:0', 't:1'])).toEqual({ pause: [], resume: [] });
    bp.add('t:0', 1);
    expect(bp.evaluate(['t:0', 't:1'])).toEqual({ pause: ['t:0'], resume: [] });
    expect(bp.isPaused('t:0')).toBe(true);
    expect(bp.isPaused('t:1')).toBe(false);
    expect([...bp.pausedKeys]).toEqual(['t:0']);
  });

  it('reports a pause once, not on every evaluation', () => {
    const bp = new Backpressure(limits());
    bp.add('t:0', 150);
    expect(bp.evaluate(['t:0']).pause).toEqual(['t:0']);
    expect(bp.evaluate(['t:0'])).toEqual({ pause: [], resume: [] });
  });

  it('resumes only below resumeRatio of the limit (hysteresis)', () => {
    const bp = new Backpressure(limits({ resumeRatio: 0.5 }));
    bp.add('t:0', 120);
    expect(bp.evaluate(['t:0']).pause).toEqual(['t:0']);
    // Below the limit, but above half of it: stays paused.
    bp.add('t:0', -30); // 90
    expect(bp.evaluate(['t:0'])).toEqual({ pause: [], resume: [] });
    bp.add('t:0', -39); // 51
    expect(bp.evaluate(['t:0'])).toEqual({ pause: [], resume: [] });
    expect(bp.isPaused('t:0')).toBe(true);
    bp.add('t:0', -1); // 50: exactly the resume mark
    expect(bp.evaluate(['t:0'])).toEqual({ pause: [], resume: ['t:0'] });
    expect(bp.isPaused('t:0')).toBe(false);
    // Not paused again until it reaches the full limit.
    bp.add('t:0', 49); // 99
    expect(bp.evaluate(['t:0'])).toEqual({ pause: [], resume: [] });
    bp.add('t:0', 1); // 100
    expect(bp.evaluate(['t:0']).pause).toEqual(['t:0']);
  });

  it('honours a different resumeRatio', () => {
    const bp = new Backpressure(limits({ resumeRatio: 0.9 }));
    bp.add('t:0', 100);
    bp.evaluate(['t:0']);
    bp.add('t:0', -5); // 95 > 90
    expect(bp.evaluate(['t:0']).resume).toEqual([]);
    bp.add('t:0', -5); // 90
    expect(bp.evaluate(['t:0']).resume).toEqual(['t:0']);
  });

  it('a paused partition that drains to nothing resumes', () => {
    const bp = new Backpressure(limits());
    bp.add('t:0', 500);
    bp.evaluate(['t:0']);
    bp.add('t:0', -500);
    expect(bp.evaluate(['t:0']).resume).toEqual(['t:0']);
  });

  it('only evaluates the keys it is given', () => {
    const bp = new Backpressure(limits());
    bp.add('t:0', 200);
    expect(bp.evaluate(['t:1'])).toEqual({ pause: [], resume: [] });
    expect(bp.isPaused('t:0')).toBe(false);
  });
});

describe('Backpressure: total limit', () => {
  it('pauses every partition when the total reaches its limit, and resumes them when it drains', () => {
    const bp = new Backpressure(limits({ maxPartitionBytes: 100, maxTotalBytes: 200, resumeRatio: 0.5 }));
    const keys = ['t:0', 't:1', 't:2', 't:3', 't:4'];
    for (const k of keys) bp.add(k, 39); // 195: each partition well under its own limit
    expect(bp.evaluate(keys)).toEqual({ pause: [], resume: [] });
    bp.add('t:0', 5); // 200
    const paused = bp.evaluate(keys);
    expect(sorted(paused.pause)).toEqual(keys);
    expect(paused.resume).toEqual([]);
    expect(bp.pausedKeys.size).toBe(5);

    // Draining to just above half the total limit: all stay paused.
    for (const k of ['t:0', 't:1']) bp.add(k, -bp.bytesOf(k));
    bp.add('t:2', -16); // t:2 23, t:3 39, t:4 39
    expect(bp.totalBytes).toBe(101);
    expect(bp.evaluate(keys)).toEqual({ pause: [], resume: [] });
    expect(bp.pausedKeys.size).toBe(5);

    bp.add('t:2', -1); // 100: exactly half
    const resumed = bp.evaluate(keys);
    expect(resumed.pause).toEqual([]);
    expect(sorted(resumed.resume)).toEqual(keys);
    expect(bp.pausedKeys.size).toBe(0);
  });

  it('pauses even empty partitions while the total is over the limit', () => {
    const bp = new Backpressure(limits({ maxPartitionBytes: 100, maxTotalBytes: 100 }));
    bp.add('t:0', 100);
    expect(sorted(bp.evaluate(['t:0', 't:1']).pause)).toEqual(['t:0', 't:1']);
    expect(bp.isPaused('t:1')).toBe(true);
  });

  it('a partition over its own limit stays paused when the global pause lifts', () => {
    const bp = new Backpressure(limits({ maxPartitionBytes: 100, maxTotalBytes: 300, resumeRatio: 0.5 }));
    bp.add('t:0', 150);
    bp.add('t:1', 150);
    expect(sorted(bp.evaluate(['t:0', 't:1']).pause)).toEqual(['t:0', 't:1']);
    bp.add('t:1', -150); // total 150 <= 300 * 0.5
    const d = bp.evaluate(['t:0', 't:1']);
    expect(d.resume).toEqual(['t:1']);
    expect(bp.isPaused('t:0')).toBe(true);
  });
});

describe('Backpressure: held partitions', () => {
  it('pauses a held partition whatever its bytes, and keeps it paused', () => {
    const bp = new Backpressure(limits());
    const held = new Set(['t:1']);
    expect(bp.evaluate(['t:0', 't:1'], held)).toEqual({ pause: ['t:1'], resume: [] });
    bp.add('t:1', -1_000);
    expect(bp.evaluate(['t:0', 't:1'], held)).toEqual({ pause: [], resume: [] });
    expect(bp.isPaused('t:1')).toBe(true);
  });

  it('resumes a partition once it is no longer held and is below the resume mark', () => {
    const bp = new Backpressure(limits());
    bp.add('t:1', 10);
    bp.evaluate(['t:1'], new Set(['t:1']));
    expect(bp.evaluate(['t:1'])).toEqual({ pause: [], resume: ['t:1'] });
  });

  it('a partition no longer held but still above the resume mark stays paused', () => {
    const bp = new Backpressure(limits());
    bp.add('t:1', 80);
    bp.evaluate(['t:1'], new Set(['t:1']));
    expect(bp.evaluate(['t:1'])).toEqual({ pause: [], resume: [] });
    bp.add('t:1', -30);
    expect(bp.evaluate(['t:1']).resume).toEqual(['t:1']);
  });

  it('a held partition stays paused after a global pause lifts', () => {
    const bp = new Backpressure(limits({ maxPartitionBytes: 100, maxTotalBytes: 100 }));
    bp.add('t:0', 100);
    bp.evaluate(['t:0', 't:1']);
    bp.add('t:0', -100);
    const d = bp.evaluate(['t:0', 't:1'], new Set(['t:1']));
    expect(d.resume).toEqual(['t:0']);
    expect(bp.isPaused('t:1')).toBe(true);
  });
});

describe('Backpressure: forget', () => {
  it('drops a partition: its bytes leave the total and it is no longer paused', () => {
    const bp = new Backpressure(limits());
    bp.add('t:0', 150);
    bp.add('t:1', 30);
    bp.evaluate(['t:0', 't:1']);
    expect(bp.isPaused('t:0')).toBe(true);
    bp.forget('t:0');
    expect(bp.bytesOf('t:0')).toBe(0);
    expect(bp.totalBytes).toBe(30);
    expect(bp.isPaused('t:0')).toBe(false);
    expect(bp.pausedKeys.has('t:0')).toBe(false);
    // A forgotten partition starts afresh when it is assigned again.
    expect(bp.evaluate(['t:0', 't:1'])).toEqual({ pause: [], resume: [] });
  });

  it('forgetting the partition that filled the total lets the others resume', () => {
    const bp = new Backpressure(limits({ maxPartitionBytes: 100, maxTotalBytes: 100 }));
    bp.add('t:0', 100);
    bp.add('t:1', 0);
    bp.evaluate(['t:0', 't:1']);
    bp.forget('t:0');
    expect(bp.totalBytes).toBe(0);
    expect(bp.evaluate(['t:1'])).toEqual({ pause: [], resume: ['t:1'] });
  });

  it('forgetting an unknown key is harmless', () => {
    const bp = new Backpressure(limits());
    bp.add('t:0', 10);
    bp.forget('nope');
    expect(bp.totalBytes).toBe(10);
  });
});
