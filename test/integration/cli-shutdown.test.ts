// SIGTERM during ingestion: the process drains, commits and exits 0 within its deadline;
// a restart completes the ingestion with nothing lost and nothing twice.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startCli } from '../support/cli.ts';
import { countRows, ordersFixture, produceOrders, waitFor } from '../support/pipeline.ts';
import { databaseUrl, kafkaBrokers, kafkaClient, pgPool } from '../support/services.ts';

const kafka = kafkaClient();
const pool = pgPool();
afterAll(() => pool.end());

describe('pgsink run: SIGTERM', () => {
  it('exits 0 within the deadline mid-ingestion, and a restart finishes with no loss', async () => {
    const f = await ordersFixture(kafka, pool, 3, 'term');
    const N = 60_000;
    const deadlineMs = 8_000;
    const dir = mkdtempSync(join(tmpdir(), 'pgsink-term-'));
    const config = join(dir, 'pgsink.yaml');
    writeFileSync(
      config,
      JSON.stringify({
        kafka: {
          brokers: kafkaBrokers(),
          groupId: f.groupId,
          sessionTimeoutMs: 10_000,
          heartbeatIntervalMs: 1_000,
        },
        postgres: { url: databaseUrl(), schema: `${f.schema}_pgsink` },
        batch: { maxRows: 2_000, maxBytes: 1024 * 1024, lingerMs: 100 },
        shutdown: { deadlineMs },
        http: { port: 0 },
        log: { level: 'info' },
        routes: [f.route],
      }),
    );
    await produceOrders(kafka, f.topic, 0, N / 2);

    const first = startCli(['run', '--config', config]);
    await waitFor(
      'some rows',
      () => countRows(pool, f.table),
      (n) => n > 0,
      60_000,
      20,
    );
    const sent = Date.now();
    first.child.kill('SIGTERM');
    const { code } = await first.exited;
    const took = Date.now() - sent;
    expect({ code, stderr: code === 0 ? '' : first.stderr() }).toEqual({ code: 0, stderr: '' });
    expect(took).toBeLessThan(deadlineMs);
    expect(first.stderr()).toContain('draining and stopping');
    expect(first.stderr()).toContain('"msg":"stopped"');
    const afterFirst = await countRows(pool, f.table);
    // The second half arrives while no consumer runs: only the restart can land it.
    await produceOrders(kafka, f.topic, N / 2, N / 2);

    const second = startCli(['run', '--config', config]);
    try {
      await waitFor(
        'second consuming',
        async () => second.stderr(),
        (s) => s.includes('"msg":"consuming"'),
        30_000,
      );
      await waitFor(
        'all rows after restart',
        () => countRows(pool, f.table),
        (n) => n >= N,
        60_000,
      );
      // The process serves its endpoints: ready while consuming, metrics counting rows.
      const port = Number(/"port":(\d+),"msg":"serving \/metrics/.exec(second.stderr())?.[1]);
      expect(port).toBeGreaterThan(0);
      expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(metrics).toMatch(/pgsink_rows_written_total\{[^}]*\} [1-9]/);
    } finally {
      second.child.kill('SIGTERM');
      expect((await second.exited).code).toBe(0);
    }
    const { rows } = await pool.query<{ n: string; d: string }>(
      `SELECT count(*) AS n, count(DISTINCT (_partition, _offset)) AS d FROM ${f.table}`,
    );
    expect({ n: Number(rows[0]!.n), d: Number(rows[0]!.d) }).toEqual({ n: N, d: N });
    expect(afterFirst).toBeGreaterThan(0);
    expect(afterFirst).toBeLessThanOrEqual(N / 2);
  });
});
