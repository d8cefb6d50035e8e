// Isolation in linear time and bounded memory (DESIGN.md invariant 5): 40,000 records, every
// other one refused by a CHECK constraint, through the real CLI with the heap the deployment
// gives it. It must not crash, and every record must end as a row or a dead letter, committed.
// (How fast is measured by `make bench`, the "half bad" row; not here.)
import { afterAll, describe, expect, it } from 'vitest';
import { startCli } from '../support/cli.ts';
import {
  cliConfigFile,
  ordersFixture,
  produceKeyedOrders,
  waitCommittedToEnd,
  waitFor,
} from '../support/pipeline.ts';
import { kafkaClient, pgPool } from '../support/services.ts';

const kafka = kafkaClient();
const pool = pgPool();
afterAll(() => pool.end());

// As deploy/k8s/base/deployment.yaml runs it.
const DEPLOYED_NODE_OPTIONS = '--max-old-space-size=160 --max-semi-space-size=8';
const N = 40_000;

describe('a stream half of whose records the table refuses', () => {
  it(
    'writes every good row and dead-letters every bad one, without crashing, in the deployed heap',
    { timeout: 240_000 },
    async () => {
      const f = await ordersFixture(kafka, pool, 3, 'half');
      await pool.query(`ALTER TABLE ${f.table} ADD CONSTRAINT even_items CHECK (item_count % 2 = 0)`);
      // Batches, buffers and flushes as shipped (the defaults); short timeouts for the test.
      const file = cliConfigFile(f, { log: { level: 'warn' } });
      await produceKeyedOrders(kafka, f.topic, 0, N, N);
      const p = startCli(['run', '--config', file], { NODE_OPTIONS: DEPLOYED_NODE_OPTIONS });
      try {
        await waitCommittedToEnd(kafka, f.groupId, f.topic, 200_000);
        await waitFor(
          'fences at the end',
          async () => {
            const { rows } = await pool.query<{ n: string }>(
              `SELECT coalesce(sum(next_offset), 0) AS n FROM "${f.schema}_pgsink".offsets WHERE group_id = $1`,
              [f.groupId],
            );
            return Number(rows[0]!.n);
          },
          (n) => n === N,
          30_000,
        );
      } finally {
        p.child.kill('SIGTERM');
      }
      const { code, signal } = await p.exited;
      expect({ code, signal, oom: /heap out of memory/i.test(p.stderr()) }).toEqual({
        code: 0,
        signal: null,
        oom: false,
      });
      const { rows } = await pool.query<{ rows: string; odd: string }>(
        `SELECT count(*) AS rows, count(*) FILTER (WHERE item_count % 2 = 1) AS odd FROM ${f.table}`,
      );
      expect(rows[0]).toEqual({ rows: String(N / 2), odd: '0' });
      const { rows: dead } = await pool.query<{ n: string; codes: string[] }>(
        `SELECT count(*) AS n, array_agg(DISTINCT error_code) AS codes FROM "${f.schema}_pgsink".dead_letters`,
      );
      expect(dead[0]).toEqual({ n: String(N / 2), codes: ['23514'] });
    },
  );
});
