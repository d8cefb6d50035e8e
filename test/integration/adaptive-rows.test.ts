// batch.adaptiveRows against the real broker and server: when every flush takes longer than
// half the linger (a statement trigger that sleeps), each partition's row limit comes down, the
// batches follow it, and every record still lands once.
import { afterAll, describe, expect, it } from 'vitest';
import { createPipeline } from '../../src/pipeline/app.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { flushRecorder } from '../support/observers.ts';
import { countRows, ordersFixture, produceOrders, testConfig, waitFor } from '../support/pipeline.ts';
import { kafkaClient, pgPool } from '../support/services.ts';

const kafka = kafkaClient();
const pool = pgPool();
afterAll(() => pool.end());

describe('batch.adaptiveRows', () => {
  it(
    'shrinks the batches of a partition whose flushes are slow, and loses nothing',
    { timeout: 18_000 },
    async () => {
      const f = await ordersFixture(kafka, pool, 1, 'adaptive');
      // 150 ms per flush, whatever its size: above the target of 50 ms (linger 100 ms).
      await pool.query(`CREATE FUNCTION "${f.schema}".slow() RETURNS trigger LANGUAGE plpgsql AS
      $$ BEGIN PERFORM pg_sleep(0.15); RETURN NULL; END $$`);
      await pool.query(
        `CREATE TRIGGER slow AFTER INSERT ON ${f.table} FOR EACH STATEMENT EXECUTE FUNCTION "${f.schema}".slow()`,
      );
      await produceOrders(kafka, f.topic, 0, 8_000);
      const log = flushRecorder();
      const p = createPipeline(
        testConfig(f, {
          batch: { maxRows: 4_000, maxBytes: 4 * 1024 * 1024, lingerMs: 100, adaptiveRows: true },
        }),
        { logger: createLogger('error'), observer: log },
      );
      await p.service.start();
      try {
        await waitFor(
          'all rows',
          () => countRows(pool, f.table),
          (n) => n >= 8_000,
          90_000,
        );
      } finally {
        await p.service.stop();
      }
      expect(await countRows(pool, f.table)).toBe(8_000);
      const { rows } = await pool.query<{ n: number }>(
        `SELECT count(DISTINCT order_id)::int AS n FROM ${f.table}`,
      );
      expect(rows[0]!.n).toBe(8_000);
      const flushes = log.flushes.filter((r) => r.outcome.rowsWritten > 0);
      // The first batch is a full 4,000; each slow one halves the next limit (at most), down to 80.
      expect(flushes[0]!.rows).toBe(4_000);
      const limits = flushes.map((r) => r.rowLimit!);
      expect(limits.every((l) => Number.isInteger(l) && l >= 80 && l <= 4_000)).toBe(true);
      expect(Math.min(...limits)).toBeLessThan(4_000 / 4);
      // Each batch took at most the limit left by the flush before it.
      for (let i = 1; i < flushes.length; i++) expect(flushes[i]!.rows).toBeLessThanOrEqual(limits[i - 1]!);
    },
  );
});
