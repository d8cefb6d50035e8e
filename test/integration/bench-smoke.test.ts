// Keeps the benchmark from rotting: `node bench/run.ts --quick` against the test stack must
// finish, exit 0 and write a JSON report whose every figure is a positive number.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { repoRoot } from '../support/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'pgsink-bench-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// The quick run's rebalance phase (two members, a join, a SIGTERM, a kill -9 waited out by its
// 6 s session) and the second client's pgsink, C and K runs take about 40 s of it.
const BUDGET_MS = 150_000;

function runBench(outFile: string): Promise<{ code: number | null; output: string; ms: number }> {
  const started = Date.now();
  const child = spawn(process.execPath, ['bench/run.ts', '--quick', '--out', outFile], {
    cwd: repoRoot,
    env: { ...process.env, KAFKA_BROKERS: inject('kafkaBrokers'), DATABASE_URL: inject('databaseUrl') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const killer = setTimeout(() => child.kill('SIGKILL'), BUDGET_MS);
  return new Promise((resolve) =>
    child.on('exit', (code) => {
      clearTimeout(killer);
      resolve({ code, output, ms: Date.now() - started });
    }),
  );
}

function at(obj: unknown, path: string): unknown {
  return path
    .split('.')
    .reduce<unknown>((node, key) => (node as Record<string, unknown> | undefined)?.[key], obj);
}

const POSITIVE = [
  'machine.nproc',
  'machine.memoryGiB',
  'data.events',
  'data.partitions',
  'data.avgEventBytes',
  'data.produceEventsPerSec',
  'config.maxRows',
  'config.lingerMs',
  'config.maxConcurrentFlushes',
  'reps',
  'pgsink.eventsPerSec',
  'pgsink.seconds',
  'pgsink.peakRssMiB',
  'pgsink.cpuSeconds.pgsink',
  'baselines.A.eventsPerSec',
  'baselines.A.measuredEvents',
  'baselines.A.extrapolatedSeconds',
  'baselines.B.eventsPerSec',
  'baselines.C.eventsPerSec',
  'baselines.D.eventsPerSec',
  'ceilingDBinary.eventsPerSec',
  'ratios.A',
  'ratios.B',
  'ratios.C',
  'ratios.D',
  'latency.targetRate',
  'latency.achievedRate',
  'latency.samples',
  'latency.p50Ms',
  'latency.p99Ms',
  'latency.maxMs',
  'stall.events',
  'stall.lockHeldSeconds',
  'stall.peakRssStalledMiB',
  'stall.peakRssMiB',
  'stall.maxBufferedMiB',
  'stall.drainSeconds',
  'halfBad.events',
  'halfBad.recordsPerSec',
  'halfBad.rows',
  'halfBad.deadLetters',
  'halfBad.peakRssMiB',
];

describe('make bench', () => {
  it(
    '--quick exits 0 within its budget and writes every figure as a positive number',
    async () => {
      const outFile = join(dir, 'quick.json');
      const { code, output, ms } = await runBench(outFile);
      expect({ code, output: code === 0 ? '' : output }).toEqual({ code: 0, output: '' });
      expect(ms).toBeLessThan(BUDGET_MS);
      expect(output).toContain('pgsink ÷ it');

      const report = JSON.parse(readFileSync(outFile, 'utf8')) as Record<string, unknown>;
      const notPositive = POSITIVE.filter((p) => {
        const v = at(report, p);
        return typeof v !== 'number' || !Number.isFinite(v) || v <= 0;
      }).map((p) => `${p} = ${JSON.stringify(at(report, p))}`);
      expect(notPositive).toEqual([]);
      // CPU of postgres and the broker: null only when the server is not on this machine.
      for (const p of ['pgsink.cpuSeconds.postgres', 'pgsink.cpuSeconds.kafka']) {
        const v = at(report, p);
        expect(v === null || (typeof v === 'number' && v >= 0), `${p} = ${JSON.stringify(v)}`).toBe(true);
      }
      expect(Object.keys(at(report, 'targets') as object).sort()).toEqual([
        'ceiling',
        'halfBad',
        'latency',
        'rss',
        'throughput',
        'vsA',
        'vsB',
      ]);
      expect((at(report, 'pgsink.runs') as number[]).length).toBe(1);
      // Both clients: pgsink, C and K with their CPU per event and peak RSS.
      const clients = at(report, 'clients') as Array<Record<string, unknown>>;
      expect(clients.map((x) => x['client'])).toEqual(['kafkajs (eager)', 'platformatic (cooperative)']);
      for (const x of clients)
        for (const p of [
          'pgsinkEventsPerSec',
          'pgsinkCpuMicrosPerEvent',
          'peakRssMiB',
          'C.eventsPerSec',
          'K.eventsPerSec',
          'K.cpuMicrosPerEvent',
        ]) {
          const v = at(x, p);
          expect(typeof v === 'number' && v > 0, `${String(x['client'])} ${p} = ${JSON.stringify(v)}`).toBe(
            true,
          );
        }
      // The rebalance phase: three events, each with a stall per partition, a p99 and a count
      // of records fetched twice (0 is a valid count; a stall and a p99 are never 0).
      const reb = at(report, 'rebalance') as Array<{ timeline: Array<Record<string, unknown>> }>;
      expect(reb.length).toBe(1);
      expect(reb[0]!.timeline.map((e) => e['event'])).toEqual(['join', 'leave (SIGTERM)', 'kill -9']);
      for (const e of reb[0]!.timeline) {
        expect((e['stallMsByPartition'] as number[]).length).toBe(at(report, 'data.partitions'));
        for (const p of ['stallMaxMs', 'stallMedianMs', 'p99Ms', 'samples'])
          expect(
            typeof e[p] === 'number' && (e[p] as number) > 0,
            `${String(e['event'])} ${p} = ${JSON.stringify(e[p])}`,
          ).toBe(true);
        expect(Number.isInteger(e['fetchedTwice']) && (e['fetchedTwice'] as number) >= 0).toBe(true);
      }
      expect(typeof at(report, 'software.postgres')).toBe('string');
    },
    BUDGET_MS + 10_000,
  );
});
