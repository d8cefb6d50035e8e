// Schema references (issue 13) through the real broker and server: a writer schema that uses
// named types of other subjects — nested two levels, one type used twice — served by the stub
// registry's Confluent endpoints, and the same offline through routes[].schemaReferences; every
// field compared. A cycle and a missing reference dead-letter their records with their codes
// while the good ones land; a reference the registry cannot serve now holds the partition
// (reported stuck) until it can.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { typeForSchema, type AvroSchema } from '../../src/avro/types.ts';
import { frame } from '../../src/avro/wire.ts';
import { routeSchema, type RouteConfig } from '../../src/config/schema.ts';
import { createPipeline } from '../../src/pipeline/app.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { startRegistryStub } from '../support/registry-stub.ts';
import { countRows, testConfig, waitFor } from '../support/pipeline.ts';
import { connectedProducer, createTopic, kafkaClient, pgPool, uniqueName } from '../support/services.ts';

/** A timestamp-micros inside jsonb: an ISO-8601 string to the microsecond (README, the jsonb mapping). */
function isoMicros(micros: bigint): string {
  const ms = micros >= 0n ? micros / 1000n : -((-micros + 999n) / 1000n);
  const rest = micros - ms * 1000n;
  return new Date(Number(ms)).toISOString().replace('Z', `${String(rest).padStart(3, '0')}Z`);
}

const kafka = kafkaClient();
const pool = pgPool();
const logger = createLogger('error');
afterAll(() => pool.end());

const MONEY = {
  type: 'record',
  name: 'Money',
  namespace: 'com.acme',
  fields: [
    { name: 'units', type: 'long' },
    { name: 'currency', type: { type: 'enum', name: 'Currency', symbols: ['EUR', 'USD', 'CHF'] } },
  ],
};
const ADDRESS = {
  type: 'record',
  name: 'Address',
  namespace: 'com.acme',
  fields: [
    { name: 'city', type: 'string' },
    { name: 'since', type: { type: 'long', logicalType: 'timestamp-micros' } },
  ],
};
// Level 2 (uses Address twice).
const CUSTOMER = {
  type: 'record',
  name: 'Customer',
  namespace: 'com.acme',
  fields: [
    { name: 'name', type: 'string' },
    { name: 'home', type: 'Address' },
    { name: 'work', type: ['null', 'com.acme.Address'], default: null },
  ],
};
const ORDER = {
  type: 'record',
  name: 'Order',
  namespace: 'com.acme.orders',
  fields: [
    { name: 'id', type: 'long' },
    { name: 'customer', type: 'com.acme.Customer' },
    { name: 'total', type: 'com.acme.Money' },
    { name: 'ship_to', type: 'com.acme.Address' },
  ],
};
const ORDER_INLINE = {
  ...ORDER,
  fields: [
    ORDER.fields[0],
    {
      name: 'customer',
      type: {
        ...CUSTOMER,
        fields: [CUSTOMER.fields[0], { name: 'home', type: ADDRESS }, CUSTOMER.fields[2]],
      },
    },
    { name: 'total', type: MONEY },
    ORDER.fields[3],
  ],
};
const orderType = typeForSchema(ORDER_INLINE as AvroSchema);

interface Address {
  city: string;
  since: bigint;
}
interface Order {
  id: bigint;
  customer: { name: string; home: Address; work: Address | null };
  total: { units: bigint; currency: string };
  ship_to: Address;
}

function order(i: number): Order {
  const big = (n: number) => (BigInt(n) * 2n ** 40n + BigInt(i)) * (i % 2 ? -1n : 1n);
  return {
    id: BigInt(i) + (i % 3 === 0 ? 2n ** 60n : 0n),
    customer: {
      name: `customer ${i} — “é” \t${'ß'.repeat(i % 4)}`,
      home: { city: `City ${i}`, since: big(1_000) },
      work: i % 2 ? null : { city: `Office ${i}`, since: BigInt(i) },
    },
    total: { units: big(7), currency: ['EUR', 'USD', 'CHF'][i % 3]! },
    ship_to: { city: `Dock ${i}`, since: -BigInt(i) },
  };
}

const ref = (name: string, subject: string, version: number) => ({ name, subject, version });
const ORDER_ID = 110;
const CYCLE_ID = 120;
const MISSING_ID = 130;

const dir = mkdtempSync(join(tmpdir(), 'pgsink-refs-'));
const file = (name: string, schema: unknown): string => {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(schema));
  return path;
};

async function registryWithOrders() {
  const registry = await startRegistryStub({});
  registry.register('acme-address', 2, 101, ADDRESS);
  registry.register('acme-customer', 1, 102, CUSTOMER, [ref('com.acme.Address', 'acme-address', 2)]);
  registry.register('acme-money', 3, 103, MONEY);
  registry.register('orders-value', 1, ORDER_ID, ORDER, [
    ref('com.acme.Customer', 'acme-customer', 1),
    ref('com.acme.Money', 'acme-money', 3),
    ref('com.acme.Address', 'acme-address', 2),
  ]);
  // A cycle: loop-a uses loop-b, which uses loop-a.
  registry.register('loop-a', 1, 121, CUSTOMER, [ref('com.acme.Address', 'loop-b', 1)]);
  registry.register('loop-b', 1, 122, ADDRESS, [ref('com.acme.Customer', 'loop-a', 1)]);
  registry.register('orders-value', 2, CYCLE_ID, ORDER, [ref('com.acme.Customer', 'loop-a', 1)]);
  // A version the registry does not have (acme-money has only version 3).
  registry.register('orders-value', 3, MISSING_ID, ORDER, [
    ref('com.acme.Customer', 'acme-customer', 1),
    ref('com.acme.Money', 'acme-money', 9),
    ref('com.acme.Address', 'acme-address', 2),
  ]);
  return registry;
}

async function produce(topic: string, values: Array<{ key: string; value: Buffer }>): Promise<void> {
  const producer = await connectedProducer(kafka);
  await producer.send({ topic, messages: values });
  await producer.disconnect();
}

/** Every field of every row against the order it came from (jsonb leaves read as text: exact). */
async function expectOrders(table: string, expected: Order[]): Promise<void> {
  const { rows } = await pool.query<Record<string, string | null>>(`
    SELECT id::text,
           customer->>'name' AS c_name, customer->'home'->>'city' AS c_home_city,
           customer->'home'->>'since' AS c_home_since, jsonb_typeof(customer->'work') AS c_work_type,
           customer->'work'->>'city' AS c_work_city, customer->'work'->>'since' AS c_work_since,
           total->>'units' AS units, total->>'currency' AS currency,
           ship_to->>'city' AS ship_city, ship_to->>'since' AS ship_since
      FROM ${table} ORDER BY id::numeric`); // an expression: the column, not the text alias
  const want = [...expected]
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .map((o) => ({
      id: o.id.toString(),
      c_name: o.customer.name,
      c_home_city: o.customer.home.city,
      c_home_since: isoMicros(o.customer.home.since),
      c_work_type: o.customer.work ? 'object' : 'null',
      c_work_city: o.customer.work?.city ?? null,
      c_work_since: o.customer.work ? isoMicros(o.customer.work.since) : null,
      units: o.total.units.toString(),
      currency: o.total.currency,
      ship_city: o.ship_to.city,
      ship_since: isoMicros(o.ship_to.since),
    }));
  expect(rows).toEqual(want);
}

function route(topic: string, schema: string, over: Partial<RouteConfig> & { schema: string }): RouteConfig {
  return routeSchema.parse({
    topic,
    table: `${schema}.orders_${topic.slice(-8)}`,
    autoCreate: true,
    ...over,
  });
}

describe('schema references', () => {
  it(
    'nested references land exactly from the registry and offline; a cycle and a missing reference are dead letters with their codes',
    { timeout: 120_000 },
    async () => {
      const registry = await registryWithOrders();
      const schema = uniqueName('refs_s');
      await pool.query(`CREATE SCHEMA "${schema}"`);
      const viaRegistry = uniqueName('refs_reg');
      const offline = uniqueName('refs_off');
      await createTopic(kafka, viaRegistry, 2);
      await createTopic(kafka, offline, 2);
      const N = 120;
      const orders = Array.from({ length: N }, (_, i) => order(i));
      const bad = new Map([
        [17, CYCLE_ID],
        [18, MISSING_ID],
        [61, CYCLE_ID],
        [99, MISSING_ID],
      ]);
      // Through the registry: the writer id's schema has references; the reader is the same
      // schema inline (so the writer's resolved types must equal it to take the direct path).
      await produce(
        viaRegistry,
        orders.map((o, i) => ({
          key: String(i),
          value: frame(bad.get(i) ?? ORDER_ID, orderType.toBuffer(o)),
        })),
      );
      // Offline: the id maps to order.avsc, and the reader is order.avsc too, both with references.
      await produce(
        offline,
        orders.map((o, i) => ({ key: String(i), value: frame(ORDER_ID, orderType.toBuffer(o)) })),
      );
      const references = [
        file('address.avsc', ADDRESS),
        file('customer.avsc', CUSTOMER),
        file('money.avsc', MONEY),
      ];
      const orderFile = file('order.avsc', ORDER);
      const routes = [
        route(viaRegistry, schema, { schema: file('order-inline.avsc', ORDER_INLINE) }),
        route(offline, schema, {
          schema: orderFile,
          schemaIds: { [ORDER_ID]: orderFile },
          schemaReferences: references,
        }),
      ];
      const f = { topic: viaRegistry, groupId: uniqueName('refs_g'), table: '', schema, route: routes[0]! };
      const p = createPipeline(
        testConfig(f, { routes, schemaRegistry: { url: registry.url, timeoutMs: 2_000 } }),
        { logger },
      );
      const regTable = `"${schema}".orders_${viaRegistry.slice(-8)}`;
      const offTable = `"${schema}".orders_${offline.slice(-8)}`;
      try {
        await p.service.start();
        await waitFor(
          'every record written or dead-lettered',
          async () =>
            (await countRows(pool, regTable).catch(() => 0)) +
            (await countRows(pool, offTable).catch(() => 0)) +
            p.stats.deadLettered,
          (n) => n >= 2 * N,
        );
      } finally {
        await p.service.stop();
        await registry.close();
      }
      await expectOrders(
        regTable,
        orders.filter((_, i) => !bad.has(i)),
      );
      await expectOrders(offTable, orders);
      const { rows: dead } = await pool.query<{
        offset: string;
        partition: number;
        error_code: string;
        error_message: string;
        value: Buffer;
      }>(
        `SELECT "offset", "partition", error_code, error_message, value FROM "${schema}_pgsink".dead_letters ORDER BY error_code, "offset"`,
      );
      expect(dead).toHaveLength(bad.size);
      const byCode = (code: string) => dead.filter((d) => d.error_code === code);
      expect(byCode('SCHEMA_REFERENCE_CYCLE')).toHaveLength(2);
      expect(byCode('UNKNOWN_SCHEMA_REFERENCE')).toHaveLength(2);
      expect(byCode('SCHEMA_REFERENCE_CYCLE')[0]!.error_message).toBe(
        `schema references form a cycle: schema id ${CYCLE_ID} → subject loop-a version 1 → subject loop-b version 1 → subject loop-a version 1`,
      );
      expect(byCode('UNKNOWN_SCHEMA_REFERENCE')[0]!.error_message).toBe(
        `subject acme-money version 9 (type com.acme.Money, referenced by schema id ${MISSING_ID}) is not in the registry`,
      );
      // The dead letters keep the values byte for byte.
      const values = new Set(dead.map((d) => d.value.toString('hex')));
      for (const [i, id] of bad)
        expect(values.has(frame(id, orderType.toBuffer(orders[i]!)).toString('hex'))).toBe(true);
      // Each referenced version was asked for once, however many records and ids use it.
      const asked = (subject: string) =>
        registry.paths.filter((path) => path.startsWith(`/subjects/${subject}/`));
      expect(asked('acme-address')).toEqual(['/subjects/acme-address/versions/2?deleted=true']);
      expect(asked('acme-customer')).toHaveLength(1);
      expect(registry.paths.filter((path) => path === `/schemas/ids/${ORDER_ID}`)).toHaveLength(1);
    },
  );

  it(
    'a reference the registry cannot serve now holds the partition, reported stuck, until it can',
    { timeout: 90_000 },
    async () => {
      const registry = await startRegistryStub({});
      registry.register('flaky-address', 1, 201, ADDRESS);
      registry.register('orders-value', 1, ORDER_ID, ORDER, [
        ref('com.acme.Customer', 'acme-customer', 1),
        ref('com.acme.Money', 'acme-money', 3),
        ref('com.acme.Address', 'flaky-address', 1),
      ]);
      registry.register('acme-customer', 1, 102, CUSTOMER, [ref('com.acme.Address', 'flaky-address', 1)]);
      registry.register('acme-money', 3, 103, MONEY);
      registry.failingSubjects.add('flaky-address');
      const schema = uniqueName('refs_flaky_s');
      await pool.query(`CREATE SCHEMA "${schema}"`);
      const topic = uniqueName('refs_flaky');
      await createTopic(kafka, topic, 1);
      const orders = Array.from({ length: 30 }, (_, i) => order(i));
      await produce(
        topic,
        orders.map((o, i) => ({ key: String(i), value: frame(ORDER_ID, orderType.toBuffer(o)) })),
      );
      const r = route(topic, schema, { schema: file('order-inline.avsc', ORDER_INLINE) });
      const f = { topic, groupId: uniqueName('refs_flaky_g'), table: '', schema, route: r };
      const p = createPipeline(
        testConfig(f, {
          schemaRegistry: { url: registry.url, timeoutMs: 2_000 },
          http: { port: 0, stuckAfterMs: 1_500 },
        }),
        { logger },
      );
      const table = `"${schema}".orders_${topic.slice(-8)}`;
      try {
        await p.service.start();
        const readiness = await waitFor(
          'the partition reported stuck',
          async () => p.service.readiness(),
          (rd) => rd.stuck.length > 0,
          30_000,
        );
        expect(readiness.stuck).toEqual([
          expect.objectContaining({ topic, partition: 0, code: 'HTTP_503', stage: 'schema registry' }),
        ]);
        expect(await countRows(pool, table).catch(() => 0)).toBe(0);
        expect(p.stats.deadLettered).toBe(0);
        registry.failingSubjects.clear();
        await waitFor(
          'all records',
          () => countRows(pool, table).catch(() => 0),
          (n) => n === orders.length,
        );
        await waitFor(
          'ready again',
          async () => p.service.readiness(),
          (rd) => rd.stuck.length === 0,
          30_000,
        );
        expect(p.stats.deadLettered).toBe(0);
        await expectOrders(table, orders);
      } finally {
        await p.service.stop();
        await registry.close();
      }
    },
  );
});
