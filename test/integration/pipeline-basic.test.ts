// End to end against the real broker and server: every event lands exactly once with
// exact contents, and flushes happen by size and by linger.
import { testKafkaClient } from '../support/kafka-client.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prng, sampleOrder } from '../../src/cli/sample-data.ts';
import { createPipeline } from '../../src/pipeline/app.ts';
import { flushRecorder } from '../support/observers.ts';
import { formatDecimal } from '../../src/sink/copy-text.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { kafkaClient, pgPool } from '../support/services.ts';
import {
  committedOffsets,
  countRows,
  endOffsets,
  ordersFixture,
  produceOrders,
  testConfig,
  waitFor,
  waitCommittedToEnd,
} from '../support/pipeline.ts';

const kafka = kafkaClient();
const pool = pgPool();
const logger = createLogger('warn');

afterAll(async () => {
  await pool.end();
});

describe('pipeline: N events over several partitions', () => {
  const N = 3_000;
  let f: Awaited<ReturnType<typeof ordersFixture>>;

  beforeAll(async () => {
    f = await ordersFixture(kafka, pool, 4, 'basic');
    await produceOrders(kafka, f.topic, 0, N);
  });

  it('writes exactly N rows whose every field equals the produced event, then commits the end offsets', async () => {
    const { service } = createPipeline(testConfig(f), { logger });
    await service.start();
    try {
      await waitFor(
        'all rows',
        () => countRows(pool, f.table),
        (n) => n >= N,
      );
      await waitCommittedToEnd(kafka, f.groupId, f.topic);
    } finally {
      await service.stop();
    }
    expect(await countRows(pool, f.table)).toBe(N);

    const { rows } = await pool.query<Record<string, string | number | boolean | null>>(
      `SELECT o.order_id::text, customer_id::text, status, amount::text, currency, item_count, weight_kg,
              is_priority, (extract(epoch from created_at) * 1000)::bigint::text AS created_ms,
              (extract(epoch from updated_at) * 1000000)::bigint::text AS updated_us,
              shipping_city, note, _partition, _offset::text
         FROM ${f.table} AS o ORDER BY o.order_id`,
    );
    const rand = prng(42);
    for (let i = 0; i < N; i++) {
      const o = sampleOrder(i, rand);
      expect(rows[i]).toMatchObject({
        order_id: String(i),
        customer_id: o.customer_id,
        status: o.status,
        amount: formatDecimal(o.amount, 2),
        currency: o.currency,
        item_count: o.item_count,
        weight_kg: o.weight_kg,
        is_priority: o.is_priority,
        created_ms: o.created_at.toString(),
        updated_us: o.updated_at.toString(),
        shipping_city: o.shipping_city,
        note: o.note,
      });
    }
    // Offsets per partition are exactly 0..count-1: nothing skipped, nothing twice.
    const { rows: parts } = await pool.query<{ p: number; n: string; lo: string; hi: string; d: string }>(
      `SELECT _partition AS p, count(*) AS n, min(_offset) AS lo, max(_offset) AS hi, count(DISTINCT _offset) AS d
         FROM ${f.table} GROUP BY _partition ORDER BY 1`,
    );
    expect(parts.length).toBe(4);
    for (const p of parts) {
      expect(Number(p.lo)).toBe(0);
      expect(Number(p.hi)).toBe(Number(p.n) - 1);
      expect(Number(p.d)).toBe(Number(p.n));
    }
  });
});

describe('pipeline: flush triggers', () => {
  it('splits a burst at maxRows and lands a lone record within lingerMs', async () => {
    const f = await ordersFixture(kafka, pool, 1, 'trig');
    const lingerMs = 400;
    const obs = flushRecorder();
    const { service } = createPipeline(
      testConfig(f, { batch: { maxRows: 1_000, maxBytes: 4 * 1024 * 1024, lingerMs } }),
      {
        logger,
        observer: obs,
      },
    );
    await service.start();
    try {
      await produceOrders(kafka, f.topic, 0, 2_500);
      await waitFor(
        'burst',
        () => countRows(pool, f.table),
        (n) => n >= 2_500,
      );
      expect(obs.flushes.every((r) => r.rows <= 1_000)).toBe(true);
      expect(obs.flushes.filter((r) => r.reason === 'rows').length).toBeGreaterThanOrEqual(2);

      // Idle now; one more record must wait for linger (no size trigger) and then land.
      const before = obs.flushes.length;
      const t0 = Date.now();
      await produceOrders(kafka, f.topic, 2_500, 1);
      await waitFor(
        'lone record',
        () => countRows(pool, f.table),
        (n) => n >= 2_501,
        10_000,
        20,
      );
      const took = Date.now() - t0;
      const lone = obs.flushes.slice(before);
      expect(lone).toHaveLength(1);
      expect(lone[0]).toMatchObject({ rows: 1, reason: 'linger' });
      // Fetch wait (100 ms) + linger + one transaction; generous margin for a loaded 2-core CI box.
      expect(took).toBeGreaterThanOrEqual(lingerMs - 50);
      expect(took).toBeLessThan(lingerMs + 1_500);
    } finally {
      await service.stop();
    }
  });
});

describe('pipeline: the fence is written with literals', () => {
  it('keeps a group id with a quote and a backslash exactly (BEGIN + fence lock, fence + COMMIT are one round trip each)', async () => {
    const base = await ordersFixture(kafka, pool, 2, 'quote');
    // @platformatic/kafka refuses group ids with whitespace (the config says so at start-up).
    const space = testKafkaClient === 'kafkajs' ? ' ' : '_';
    const f = { ...base, groupId: `${base.groupId}-it's\\a${space}"group"` };
    await produceOrders(kafka, f.topic, 0, 200);
    const { service } = createPipeline(testConfig(f), { logger });
    await service.start();
    try {
      await waitFor(
        'all rows',
        () => countRows(pool, f.table),
        (n) => n >= 200,
      );
      await waitCommittedToEnd(kafka, f.groupId, f.topic);
    } finally {
      await service.stop();
    }
    expect(await countRows(pool, f.table)).toBe(200);
    const { rows } = await pool.query<{ group_id: string; partition: number; next_offset: string }>(
      `SELECT group_id, partition, next_offset FROM "${f.schema}_pgsink"."offsets" WHERE topic = $1 ORDER BY partition`,
      [f.topic],
    );
    const { rows: counts } = await pool.query<{ p: number; n: string }>(
      `SELECT _partition AS p, count(*) AS n FROM ${f.table} GROUP BY 1 ORDER BY 1`,
    );
    expect(rows.map((r) => ({ ...r, next_offset: Number(r.next_offset) }))).toEqual(
      counts.map((c) => ({ group_id: f.groupId, partition: c.p, next_offset: Number(c.n) })),
    );
  });
});

describe('pipeline: stop() drains', () => {
  it('flushes what is buffered and has committed it to Kafka when stop() resolves', async () => {
    const f = await ordersFixture(kafka, pool, 3, 'drain');
    await produceOrders(kafka, f.topic, 0, 300);
    // Linger far beyond the test: only the drain flushes.
    const config = testConfig(f, {
      batch: { maxRows: 100_000, maxBytes: 4 * 1024 * 1024, lingerMs: 30_000 },
      shutdown: { deadlineMs: 60_000 },
    });
    const p = createPipeline(config, { logger });
    await p.service.start();
    try {
      await waitFor(
        'all records buffered',
        async () => p.stats.consumedTotal,
        (n) => n >= 300,
      );
      expect(await countRows(pool, f.table)).toBe(0);
    } finally {
      await p.service.stop();
    }
    // Exactly what the topic holds, each (partition, offset) once. The topic may hold more than
    // the 300 sent: kafkajs' producer (not idempotent) can write a retried batch twice.
    const ends = await endOffsets(kafka, f.topic);
    const inTopic = [...ends.values()].reduce((a, b) => a + b, 0);
    const { rows } = await pool.query<{ n: string; d: string }>(
      `SELECT count(*) AS n, count(DISTINCT (_partition, _offset)) AS d FROM ${f.table}`,
    );
    expect({ rows: Number(rows[0]!.n), distinct: Number(rows[0]!.d) }).toEqual({
      rows: inTopic,
      distinct: inTopic,
    });
    expect(inTopic).toBeGreaterThanOrEqual(300);
    // No waiting: the commits ran inside stop().
    const committed = await committedOffsets(kafka, f.groupId, f.topic);
    expect([...committed].sort()).toEqual([...ends].sort());
  });
});
