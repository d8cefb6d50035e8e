// Schema evolution and the registry against the real broker and server, with a stub
// registry serving exactly GET /schemas/ids/{id} (see test/support/registry-stub.ts).
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { typeForSchema, type AvroSchema } from '../../src/avro/types.ts';
import { frame } from '../../src/avro/wire.ts';
import { routeSchema } from '../../src/config/schema.ts';
import { ORDERS_SCHEMA_PATH, prng, sampleOrder } from '../../src/cli/sample-data.ts';
import { createPipeline } from '../../src/pipeline/app.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { startRegistryStub } from '../support/registry-stub.ts';
import { countRows, testConfig, waitFor } from '../support/pipeline.ts';
import { connectedProducer, createTopic, kafkaClient, pgPool, uniqueName } from '../support/services.ts';

const kafka = kafkaClient();
const pool = pgPool();
const logger = createLogger('error');
afterAll(() => pool.end());

type Field = { name: string; type: unknown; default?: unknown };
const v1 = JSON.parse(readFileSync(ORDERS_SCHEMA_PATH, 'utf8')) as { fields: Field[] } & Record<
  string,
  unknown
>;
const withFields = (fields: Field[]) => ({ ...v1, fields });
// v2 adds a field with a default; v3 drops `currency`, which v2 readers need (no default).
const v2 = withFields([...v1.fields, { name: 'coupon', type: 'string', default: '' }]);
const v3 = withFields(v2.fields.filter((f) => f.name !== 'currency'));
// The fix: a reader that gives `currency` a default, so it can read v3.
const v2fixed = withFields(v2.fields.map((f) => (f.name === 'currency' ? { ...f, default: 'XXX' } : f)));

function writeSchema(dir: string, name: string, schema: object): string {
  const file = join(dir, name);
  writeFileSync(file, JSON.stringify(schema));
  return file;
}

async function setup(prefix: string, readerFile: string, registryUrl: string) {
  const topic = uniqueName(`${prefix}_t`);
  const schema = uniqueName(`${prefix}_s`);
  await pool.query(`CREATE SCHEMA "${schema}"`);
  await createTopic(kafka, topic, 3);
  const route = routeSchema.parse({
    topic,
    table: `${schema}.orders`,
    schema: readerFile,
    metadata: { partition: '_partition', offset: '_offset' },
    autoCreate: true,
    autoEvolve: true,
  });
  const f = { topic, groupId: uniqueName(`${prefix}_g`), table: `"${schema}".orders`, schema, route };
  const config = testConfig(f, { schemaRegistry: { url: registryUrl, timeoutMs: 2_000 } });
  return { f, config };
}

async function send(
  topic: string,
  partition: number,
  id: number,
  schema: object,
  from: number,
  count: number,
): Promise<void> {
  const type = typeForSchema(schema as AvroSchema);
  const rand = prng(from);
  const producer = await connectedProducer(kafka);
  const messages = Array.from({ length: count }, (_, k) => {
    const i = from + k;
    const { currency, ...rest } = sampleOrder(i, rand);
    const value = {
      ...rest,
      ...(schema === v3 ? {} : { currency }),
      ...(schema === v1 ? {} : { coupon: `C${i}` }),
    };
    return { partition, key: String(i), value: frame(id, type.toBuffer(value)) };
  });
  await producer.send({ topic, messages });
  await producer.disconnect();
}

describe('schema evolution', () => {
  it('lands v1 and v2, pauses only the partition with an incompatible v3, and resumes when the route is fixed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgsink-evo-'));
    const registry = await startRegistryStub({ 1: v1, 2: v2, 3: v3 });
    try {
      const { f, config } = await setup('evo', writeSchema(dir, 'v2.avsc', v2), registry.url);
      const first = createPipeline(config, { logger });
      await first.service.start();
      try {
        for (const p of [0, 1, 2]) await send(f.topic, p, 1, v1, p * 1_000, 50);
        for (const p of [0, 1, 2]) await send(f.topic, p, 2, v2, p * 1_000 + 50, 50);
        await waitFor(
          'v1 and v2',
          () => countRows(pool, f.table),
          (n) => n >= 300,
        );
        await send(f.topic, 0, 3, v3, 5_000, 10);
        for (const p of [0, 1, 2]) await send(f.topic, p, 2, v2, p * 1_000 + 100, 20);
        // Partitions 1 and 2 keep flowing; partition 0 waits at v3 without dead-lettering it.
        await waitFor(
          '1 and 2 flow',
          async () =>
            (await pool.query(`SELECT count(*)::int AS n FROM ${f.table} WHERE _partition > 0`)).rows[0]
              .n as number,
          (n) => n >= 240,
        );
        await waitFor(
          'partition 0 paused',
          async () => first.service.pausedPartitions,
          (p) => p.includes(`${f.topic}:0`),
          20_000,
        );
        expect(
          (await pool.query(`SELECT count(*)::int AS n FROM ${f.table} WHERE _partition = 0`)).rows[0].n,
        ).toBe(100);
        expect(first.stats.deadLettered).toBe(0);
      } finally {
        await first.service.stop();
      }
      const { rows: coupons } = await pool.query<{ c: string }>(
        `SELECT coupon AS c FROM ${f.table} WHERE order_id = 0 OR order_id = 1050 ORDER BY order_id`,
      );
      expect(coupons.map((r) => r.c)).toEqual(['', 'C1050']);

      // The fix: the route's reader schema gives currency a default.
      const fixed = {
        ...config,
        routes: [{ ...config.routes[0]!, schema: writeSchema(dir, 'v2fixed.avsc', v2fixed) }],
      };
      const second = createPipeline(fixed, { logger });
      await second.service.start();
      try {
        await waitFor(
          'everything',
          () => countRows(pool, f.table),
          (n) => n >= 370,
        );
      } finally {
        await second.service.stop();
      }
      const { rows } = await pool.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM ${f.table} WHERE currency = 'XXX'`,
      );
      expect(rows[0]!.n).toBe(10);
      expect(second.stats.deadLettered).toBe(0);
    } finally {
      await registry.close();
    }
  });
});

describe('schema registry outages', () => {
  it('waits while the registry is down at start and mid-stream, dead-letters nothing, and lands everything after', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgsink-reg-'));
    const registry = await startRegistryStub({ 1: v1, 2: v2 }, { listen: false });
    const { f, config } = await setup('regdown', writeSchema(dir, 'v2.avsc', v2), registry.url);
    const p = createPipeline(config, { logger });
    await p.service.start();
    try {
      // Down at start: connection refused.
      for (const q of [0, 1, 2]) await send(f.topic, q, 1, v1, q * 1_000, 40);
      await waitFor(
        'retrying while down',
        async () => p.stats.flushFailures,
        (n) => n >= 3,
        20_000,
      );
      expect(await countRows(pool, f.table)).toBe(0);
      await registry.comeBack();
      await waitFor(
        'v1 lands',
        () => countRows(pool, f.table),
        (n) => n >= 120,
      );

      // Down mid-stream: the registry answers 503 when a new schema id appears.
      registry.mode = 'error';
      const failuresBefore = p.stats.flushFailures;
      for (const q of [0, 1, 2]) await send(f.topic, q, 2, v2, q * 1_000 + 40, 40);
      await waitFor(
        'retrying mid-stream',
        async () => p.stats.flushFailures,
        (n) => n >= failuresBefore + 3,
        20_000,
      );
      expect(await countRows(pool, f.table)).toBe(120);
      registry.mode = 'up';
      await waitFor(
        'v2 lands',
        () => countRows(pool, f.table),
        (n) => n >= 240,
      );
    } finally {
      await p.service.stop();
      await registry.close();
    }
    expect(p.stats.deadLettered).toBe(0);
    expect(registry.requests).toBeGreaterThan(2);
  });
});
