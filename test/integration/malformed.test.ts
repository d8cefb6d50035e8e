// Invariant 5, data side: bad records mixed into a stream of good ones. Every bad one ends
// in the dead-letter table with the right reason, every good one in the target table, the
// offsets reach the end of every partition, and the consumer never stops or restarts.
import { afterAll, describe, expect, it } from 'vitest';
import { routeSchema } from '../../src/config/schema.ts';
import {
  decimalBytes,
  ORDERS_SCHEMA_PATH,
  ordersType,
  prng,
  sampleOrder,
  type Order,
} from '../../src/cli/sample-data.ts';
import { frame } from '../../src/avro/wire.ts';
import { createPipeline } from '../../src/pipeline/app.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { committedOffsets, countRows, testConfig, waitFor, waitCommittedToEnd } from '../support/pipeline.ts';
import { connectedProducer, createTopic, kafkaClient, pgPool, uniqueName } from '../support/services.ts';

const kafka = kafkaClient();
const pool = pgPool();
afterAll(() => pool.end());

interface Bad {
  code: string;
  value: Buffer | null;
}

describe('malformed input', () => {
  it('dead-letters each bad record with its reason and writes every good one', async () => {
    const type = ordersType();
    const rand = prng(11);
    const good = (i: number, patch: Partial<Order> = {}): Buffer =>
      frame(1, type.toBuffer({ ...sampleOrder(i, rand), note: `n${i}`, ...patch }));
    const body = type.toBuffer({ ...sampleOrder(1, rand), note: 'x' });

    const bads: Bad[] = [
      { code: 'BAD_MAGIC_BYTE', value: Buffer.concat([Buffer.from([1, 0, 0, 0, 1]), body]) },
      { code: 'UNKNOWN_SCHEMA_ID', value: frame(99, body) },
      { code: 'MALFORMED_BODY', value: frame(1, body.subarray(0, 9)) },
      { code: 'TRUNCATED_HEADER', value: Buffer.from([0, 0, 1]) },
      { code: 'NUL_IN_STRING', value: good(100_001, { shipping_city: 'Zü\u0000rich' }) },
      { code: '22P02', value: good(100_002, { customer_id: 'not-a-uuid' }) }, // wrong type for uuid
      { code: '22003', value: good(100_003, { amount: decimalBytes(10n ** 14n) }) }, // numeric(12,2) overflow
      { code: '23505', value: good(7) }, // order_id 7 again (same key → same partition, later offset)
      { code: '23502', value: good(100_005, { note: null }) }, // NOT NULL
      { code: '23514', value: good(100_006, { item_count: 0 }) }, // CHECK (item_count > 0)
      { code: '22001', value: good(100_007, { currency: 'EURO' }) }, // varchar(3)
      { code: '22008', value: good(100_008, { created_at: 9_300_000_000_000_000n }) }, // beyond timestamptz
      { code: 'TOMBSTONE', value: null },
    ];

    const topic = uniqueName('bad_orders');
    const schema = uniqueName('bad_s');
    const table = `${schema}.orders`;
    await pool.query(`CREATE SCHEMA "${schema}"`);
    await pool.query(`CREATE TABLE "${schema}".orders (
      order_id bigint PRIMARY KEY, customer_id uuid NOT NULL, status text NOT NULL,
      amount numeric(12,2) NOT NULL, currency varchar(3) NOT NULL,
      item_count integer NOT NULL CHECK (item_count > 0), weight_kg double precision NOT NULL,
      is_priority boolean NOT NULL, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL,
      shipping_city text NOT NULL, note text NOT NULL, _partition integer NOT NULL, _offset bigint NOT NULL)`);
    await createTopic(kafka, topic, 3);

    // 600 good records; the bad ones at random places, all keyed so a duplicate key meets its original.
    const messages: Array<{ key: string; value: Buffer | null }> = [];
    for (let i = 0; i < 600; i++) messages.push({ key: String(i), value: good(i) });
    for (const b of bads) {
      const at = 20 + Math.floor(rand() * 560);
      messages.splice(at, 0, { key: b.code === '23505' ? '7' : `bad-${b.code}`, value: b.value });
    }
    // The duplicate must come after its original in the partition.
    const dup = messages.findIndex(
      (m) =>
        m.key === '7' && m.value !== null && messages.indexOf(m) !== messages.findIndex((x) => x.key === '7'),
    );
    expect(dup).toBeGreaterThan(messages.findIndex((x) => x.key === '7'));

    const producer = await connectedProducer(kafka);
    await producer.send({ topic, messages });
    await producer.disconnect();

    const route = routeSchema.parse({
      topic,
      table,
      schema: ORDERS_SCHEMA_PATH,
      metadata: { partition: '_partition', offset: '_offset' },
      schemaIds: { '1': ORDERS_SCHEMA_PATH },
    });
    const fixture = { topic, groupId: uniqueName('bad_g'), table: `"${schema}".orders`, schema, route };
    const p = createPipeline(
      testConfig(fixture, { batch: { maxRows: 200, maxBytes: 1024 * 1024, lingerMs: 50 } }),
      {
        logger: createLogger('error'),
      },
    );
    await p.service.start();
    try {
      await waitCommittedToEnd(kafka, fixture.groupId, topic);
      expect(p.service.state).toBe('running');
      expect(p.service.failure).toBeUndefined();
    } finally {
      await p.service.stop();
    }
    expect(p.stats.flushFailures).toBe(0);
    expect(await countRows(pool, fixture.table)).toBe(600);

    const { rows } = await pool.query<{ error_code: string; n: string; has_value: boolean; topic: string }>(
      `SELECT error_code, count(*) AS n, bool_and(value IS NOT NULL) AS has_value, min(topic) AS topic
         FROM "${schema}_pgsink".dead_letters GROUP BY error_code ORDER BY error_code`,
    );
    expect(Object.fromEntries(rows.map((r) => [r.error_code, Number(r.n)]))).toEqual(
      Object.fromEntries(bads.map((b) => [b.code, 1])),
    );
    expect(rows.every((r) => r.topic === topic)).toBe(true);
    // Raw bytes are kept exactly, for a replay by hand.
    const { rows: raw } = await pool.query<{ value: Buffer; key: Buffer; error_message: string }>(
      `SELECT value, key, error_message FROM "${schema}_pgsink".dead_letters WHERE error_code = 'BAD_MAGIC_BYTE'`,
    );
    expect(raw[0]!.value.equals(bads[0]!.value!)).toBe(true);
    expect(raw[0]!.key.toString()).toBe('bad-BAD_MAGIC_BYTE');
    expect(raw[0]!.error_message).toContain('magic byte is 1');
  });
});

describe('dead-letter rate limit', () => {
  it('stops the route and reports not ready when a deployment is clearly broken', async () => {
    const topic = uniqueName('dlrate_t');
    const schema = uniqueName('dlrate_s');
    await pool.query(`CREATE SCHEMA "${schema}"`);
    await createTopic(kafka, topic, 1);
    const route = routeSchema.parse({
      topic,
      table: `${schema}.orders`,
      schema: ORDERS_SCHEMA_PATH,
      autoCreate: true,
      maxDeadLettersPerMinute: 3,
    });
    const f = { topic, groupId: uniqueName('dlrate_g'), table: `"${schema}".orders`, schema, route };
    const p = createPipeline(testConfig(f), { logger: createLogger('fatal') });
    await p.service.start();
    const producer = await connectedProducer(kafka);
    try {
      await waitFor('joined', async () => p.service.ready, Boolean, 30_000);
      await producer.send({
        topic,
        messages: Array.from({ length: 10 }, () => ({ value: Buffer.from('not avro at all') })),
      });
      await waitFor(
        'route halted',
        async () => p.service.haltedRoutes.size,
        (n) => n === 1,
        30_000,
      );
      expect(p.service.ready).toBe(false);
      expect(p.service.haltedRoutes.get(topic)).toMatch(
        /10 dead letters in the last minute exceed maxDeadLettersPerMinute \(3\)/,
      );
      // Nothing more is consumed: a good record waits, unacknowledged.
      const type = ordersType();
      await producer.send({
        topic,
        messages: [{ value: frame(1, type.toBuffer({ ...sampleOrder(1, prng(1)), note: null })) }],
      });
      await new Promise((r) => setTimeout(r, 1_000));
      expect(await countRows(pool, f.table)).toBe(0);
      expect(p.service.pausedPartitions).toEqual([`${topic}:0`]);
      const committed = await committedOffsets(kafka, f.groupId, topic);
      expect(committed.get(0)).toBe(10);
    } finally {
      await producer.disconnect();
      await p.service.stop();
    }
  });
});
