// The kill test: several pgsink processes of one group ingest while the test kill -9s one
// at random moments and starts a replacement, forcing rebalances mid-flush. Afterwards
// every record is in Postgres exactly once. `make chaos KILLS=100 SEED=7` runs more.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { prng } from '../../src/cli/sample-data.ts';
import { startCli, type Running } from '../support/cli.ts';
import { countRows, ordersFixture, produceOrders, waitFor } from '../support/pipeline.ts';
import { databaseUrl, kafkaBrokers, kafkaClient, pgPool } from '../support/services.ts';

const KILLS = Number(process.env['PGSINK_CHAOS_KILLS'] ?? 10);
const SEED = Number(process.env['PGSINK_CHAOS_SEED'] ?? Math.floor(Math.random() * 1e6));
const PROCESSES = 3;

const kafka = kafkaClient();
const pool = pgPool();
afterAll(() => pool.end());

describe('kill -9 chaos', () => {
  it(
    `loses and duplicates nothing across ${KILLS} kills (seed ${SEED})`,
    { timeout: 120_000 + KILLS * 8_000 },
    async () => {
      const rand = prng(SEED);
      const f = await ordersFixture(kafka, pool, 6, 'chaos');
      const file = join(mkdtempSync(join(tmpdir(), 'pgsink-chaos-')), 'pgsink.json');
      writeFileSync(
        file,
        JSON.stringify({
          kafka: {
            brokers: kafkaBrokers(),
            groupId: f.groupId,
            sessionTimeoutMs: 3_000,
            heartbeatIntervalMs: 500,
            rebalanceTimeoutMs: 10_000,
          },
          postgres: { url: databaseUrl(), schema: `${f.schema}_pgsink` },
          batch: { maxRows: 400, maxBytes: 1024 * 1024, lingerMs: 30 },
          shutdown: { deadlineMs: 5_000 },
          http: { port: 0 },
          log: { level: 'warn' },
          routes: [f.route],
        }),
      );
      const N = 40_000 + KILLS * 1_000;
      const procs: Running[] = [];
      const start = () => procs.push(startCli(['run', '--config', file]));
      for (let i = 0; i < PROCESSES; i++) start();
      let produced = 0;
      const chunk = Math.ceil(N / (KILLS + 1));
      let kills = 0;
      try {
        while (kills < KILLS) {
          const n = Math.min(chunk, N - produced);
          if (n > 0) {
            await produceOrders(kafka, f.topic, produced, n);
            produced += n;
          }
          // A random moment: often mid-flush, since batches are small and frequent.
          await new Promise((r) => setTimeout(r, 200 + Math.floor(rand() * 1_500)));
          const alive = procs.filter((p) => p.child.exitCode === null && p.child.signalCode === null);
          const victim = alive[Math.floor(rand() * alive.length)]!;
          victim.child.kill('SIGKILL');
          await victim.exited;
          kills++;
          start();
        }
        if (produced < N) await produceOrders(kafka, f.topic, produced, N - produced);
        await waitFor(
          'every record',
          () => countRows(pool, f.table),
          (c) => c >= N,
          120_000,
          250,
        );
      } finally {
        const alive = procs.filter((p) => p.child.exitCode === null && p.child.signalCode === null);
        for (const p of alive) p.child.kill('SIGTERM');
        await Promise.all(alive.map((p) => p.exited));
      }
      const { rows } = await pool.query<{ n: string; d: string; ids: string; lo: string; hi: string }>(
        `SELECT count(*) AS n, count(DISTINCT (_partition, _offset)) AS d, count(DISTINCT order_id) AS ids,
              min(order_id) AS lo, max(order_id) AS hi FROM ${f.table}`,
      );
      expect(kills).toBe(KILLS);
      expect(rows[0]).toEqual({ n: String(N), d: String(N), ids: String(N), lo: '0', hi: String(N - 1) });
    },
  );
});
