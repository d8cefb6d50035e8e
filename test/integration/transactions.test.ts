// A transactional producer's topic: committed transactions interleaved with aborted ones
// leave control records (commit/abort markers) and aborted records in the log. The consumer
// reads committed records only, so it skips offsets — inside batches, at their ends, and
// whole fetches of nothing but markers. None of that is a gap: every committed record lands
// exactly once, nothing aborted lands, nothing is recorded as lost, and the group's commit
// reaches the end of the log (past the last marker).
import { afterAll, describe, expect, it } from 'vitest';
import { frame } from '../../src/avro/wire.ts';
import { ordersType, prng, sampleOrder } from '../../src/cli/sample-data.ts';
import type { KafkaSource } from '../../src/kafka/source.ts';
import { createPipeline } from '../../src/pipeline/app.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { countRows, ordersFixture, testConfig, waitCommittedToEnd, waitFor } from '../support/pipeline.ts';
import { kafkaClient, pgPool, uniqueName } from '../support/services.ts';

const kafka = kafkaClient();
const pool = pgPool();
const logger = createLogger('error');
afterAll(() => pool.end());

describe('transactional producer', () => {
  it('lands every committed record once, no aborted one, and records no gap for the markers', async () => {
    const f = await ordersFixture(kafka, pool, 2, 'txn');
    const type = ordersType();
    const rand = prng(11);
    const producer = kafka.producer({
      transactionalId: uniqueName('pgsink-test-txn'),
      idempotent: true,
      maxInFlightRequests: 1,
    });
    await producer.connect();
    let logStartLookups = 0;
    const p = createPipeline(testConfig(f, { batch: { maxRows: 50, maxBytes: 1024 * 1024, lingerMs: 30 } }), {
      logger,
      wrapSource: (s): KafkaSource => ({
        ...s,
        watermarks: (topic) => {
          logStartLookups++;
          return s.watermarks(topic);
        },
      }),
    });
    await p.service.start();
    const committed: number[] = [];
    let i = 0;
    try {
      // Small transactions, one in three aborted, some produced while the sink is tailing
      // (so fetches of a lone commit marker happen), some in bursts.
      for (let t = 0; t < 60; t++) {
        const tx = await producer.transaction();
        const n = 1 + (t % 7);
        const ids: number[] = [];
        const messages = [];
        for (let k = 0; k < n; k++, i++) {
          ids.push(i);
          messages.push({ key: String(i), value: frame(1, type.toBuffer(sampleOrder(i, rand))) });
        }
        await tx.send({ topic: f.topic, messages });
        if (t % 3 === 2) await tx.abort();
        else {
          await tx.commit();
          committed.push(...ids);
        }
        if (t % 10 === 0) await new Promise((r) => setTimeout(r, 150));
      }
      await waitFor(
        'every committed record',
        () => countRows(pool, f.table),
        (n) => n >= committed.length,
      );
      await waitCommittedToEnd(kafka, f.groupId, f.topic);
    } finally {
      await producer.disconnect();
      await p.service.stop();
    }
    const { rows } = await pool.query<{ order_id: string }>(
      `SELECT order_id FROM ${f.table} ORDER BY order_id`,
    );
    expect(rows.map((r) => Number(r.order_id))).toEqual(committed);
    expect(p.stats.notices).toEqual([]);
    // Skips the client announces are not looked up; at most a few that it did not announce.
    expect(logStartLookups).toBeLessThanOrEqual(5);
  });
});
