// No partition blocked forever, and health that tells the truth (DESIGN.md invariants 5 and
// 8), against the real broker and server with ordinary Postgres features: a deferred unique
// constraint (fails at COMMIT), a trigger that raises for one row, an error of no known class
// that keeps coming back at COMMIT, a renamed column (the deployment's fault, not the rows'),
// a registry that answers with an HTML page, and the dead-letter limit. Bad rows become dead
// letters and the good ones land; what is not the rows' fault holds the partition, and
// /readyz says which partition, why and since when, and turns 200 again once it moves.
import { readFileSync } from 'node:fs';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { frame } from '../../src/avro/wire.ts';
import { ordersType, prng, sampleOrder, ORDERS_SCHEMA_PATH } from '../../src/cli/sample-data.ts';
import { createPipeline, type Pipeline } from '../../src/pipeline/app.ts';
import { HttpServer } from '../../src/telemetry/http-server.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import {
  countRows,
  ordersFixture,
  produceKeyedOrders,
  testConfig,
  waitCommittedToEnd,
  waitFor,
  type Fixture,
  type TestOverrides,
} from '../support/pipeline.ts';
import { startRegistryStub } from '../support/registry-stub.ts';
import { connectedProducer, kafkaClient, pgPool } from '../support/services.ts';

const kafka = kafkaClient();
const pool = pgPool();
const logger = createLogger('silent');
afterAll(() => pool.end());

const running: Array<{ p: Pipeline; http: HttpServer }> = [];
afterEach(async () => {
  for (const r of running.splice(0)) {
    await r.p.service.stop();
    await r.http.stop();
  }
});

const STUCK_AFTER_MS = 1_500;

async function start(f: Fixture, overrides: TestOverrides = {}) {
  const p = createPipeline(
    testConfig(f, {
      batch: { maxRows: 100, maxBytes: 1024 * 1024, lingerMs: 30 },
      http: { port: 0, stuckAfterMs: STUCK_AFTER_MS },
      ...overrides,
    }),
    { logger },
  );
  const http = new HttpServer({
    port: 0,
    host: '127.0.0.1',
    readiness: () => ({ ...p.service.readiness() }),
  });
  await http.start();
  running.push({ p, http });
  await p.service.start();
  await waitFor('joined', async () => p.service.ready, Boolean, 30_000);
  const readyz = async () => {
    const res = await fetch(`http://127.0.0.1:${http.port}/readyz`);
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  return { p, readyz };
}

async function deadLetters(f: Fixture): Promise<Array<{ offset: number; code: string; message: string }>> {
  const { rows } = await pool.query<{ offset: string; error_code: string; error_message: string }>(
    `SELECT "offset", error_code, error_message FROM "${f.schema}_pgsink".dead_letters ORDER BY "offset"`,
  );
  return rows.map((r) => ({ offset: Number(r.offset), code: r.error_code, message: r.error_message }));
}

async function itemCounts(f: Fixture): Promise<number[]> {
  const { rows } = await pool.query<{ n: number }>(
    `SELECT item_count AS n FROM ${f.table} ORDER BY item_count`,
  );
  return rows.map((r) => r.n);
}

const range = (n: number, skip: (i: number) => boolean) =>
  Array.from({ length: n }, (_, i) => i).filter((i) => !skip(i));

describe('errors that are the rows’ fault become dead letters; the good rows land', () => {
  it('a DEFERRABLE INITIALLY DEFERRED unique violation, raised at COMMIT', async () => {
    const f = await ordersFixture(kafka, pool, 1, 'defer');
    await pool.query(
      `ALTER TABLE ${f.table} ADD CONSTRAINT one_order UNIQUE (order_id) DEFERRABLE INITIALLY DEFERRED`,
    );
    const { p } = await start(f);
    // 11 records, keys 0..9: record 10 repeats order_id 0.
    await produceKeyedOrders(kafka, f.topic, 0, 11, 10);
    await waitCommittedToEnd(kafka, f.groupId, f.topic, 30_000);
    expect(await itemCounts(f)).toEqual(range(10, () => false));
    const dead = await deadLetters(f);
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({ offset: 10, code: '23505' });
    expect(dead[0]!.message).toContain('one_order');
    expect(p.stats.flushFailures).toBe(0);
  });

  it('a trigger that raises (P0001) for one row', async () => {
    const f = await ordersFixture(kafka, pool, 1, 'trig');
    await pool.query(`CREATE FUNCTION "${f.schema}".no_13() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.item_count = 13 THEN RAISE EXCEPTION 'thirteen is refused'; END IF; RETURN NEW; END $$`);
    await pool.query(
      `CREATE TRIGGER no_13 BEFORE INSERT ON ${f.table} FOR EACH ROW EXECUTE FUNCTION "${f.schema}".no_13()`,
    );
    await start(f);
    await produceKeyedOrders(kafka, f.topic, 0, 40, 1_000);
    await waitCommittedToEnd(kafka, f.groupId, f.topic, 30_000);
    expect(await itemCounts(f)).toEqual(range(40, (i) => i === 13));
    expect(await deadLetters(f)).toEqual([{ offset: 13, code: 'P0001', message: 'thirteen is refused' }]);
  });

  it('an error of no known class (XX000) that repeats at COMMIT while Postgres answers', async () => {
    const f = await ordersFixture(kafka, pool, 1, 'xx');
    await pool.query(`CREATE FUNCTION "${f.schema}".odd_check() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.item_count = 7 THEN RAISE EXCEPTION 'internal-looking failure' USING ERRCODE = 'XX000'; END IF;
      RETURN NULL; END $$`);
    await pool.query(`CREATE CONSTRAINT TRIGGER odd_check AFTER INSERT ON ${f.table}
      DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION "${f.schema}".odd_check()`);
    const { p } = await start(f);
    await produceKeyedOrders(kafka, f.topic, 0, 20, 1_000);
    await waitCommittedToEnd(kafka, f.groupId, f.topic, 30_000);
    expect(await itemCounts(f)).toEqual(range(20, (i) => i === 7));
    expect(await deadLetters(f)).toEqual([{ offset: 7, code: 'XX000', message: 'internal-looking failure' }]);
    // Retried a bounded number of times first: it could have been an outage.
    expect(p.stats.flushFailures).toBeGreaterThanOrEqual(3);
    expect(p.stats.flushFailures).toBeLessThanOrEqual(5);
  });
});

describe('what is not the rows’ fault holds the partition, and /readyz names it', () => {
  it('a renamed column: held and reported stuck with its SQLSTATE, 200 again once it moves', async () => {
    const f = await ordersFixture(kafka, pool, 2, 'ren');
    const { p, readyz } = await start(f);
    await produceKeyedOrders(kafka, f.topic, 0, 100, 1_000);
    await waitFor(
      'first rows',
      () => countRows(pool, f.table),
      (n) => n === 100,
    );
    expect((await readyz()).status).toBe(200);

    await pool.query(`ALTER TABLE ${f.table} RENAME COLUMN note TO note_renamed`);
    const since = Date.now();
    await produceKeyedOrders(kafka, f.topic, 100, 100, 1_000);
    const notReady = await waitFor('503', readyz, (r) => r.status === 503, 15_000);
    // Within the bound (plus the health tick and one probe).
    expect(Date.now() - since).toBeLessThan(STUCK_AFTER_MS + 5_000);
    expect(notReady.body['reason']).toMatch(
      new RegExp(
        `partition ${f.topic}:[01] has had records to write for \\d+ s without advancing \\(last error 42703 in flush\\)`,
      ),
    );
    const stuck = notReady.body['stuck'] as Array<Record<string, unknown>>;
    expect(stuck.length).toBeGreaterThanOrEqual(1);
    expect(stuck[0]).toMatchObject({ topic: f.topic, code: '42703', stage: 'flush' });
    expect(new Date(String(stuck[0]!['since'])).getTime()).toBeGreaterThan(since - 1_000);
    // Nothing was dead-lettered: the records are not at fault.
    expect(await deadLetters(f)).toEqual([]);

    await pool.query(`ALTER TABLE ${f.table} RENAME COLUMN note_renamed TO note`);
    await waitFor(
      'all rows',
      () => countRows(pool, f.table),
      (n) => n === 200,
      30_000,
    );
    await waitFor('ready again', readyz, (r) => r.status === 200, 10_000);
    expect(p.stats.deadLettered).toBe(0);
  });

  it('a registry that answers 200 with an HTML page: held, counted, reported; lands once it answers', async () => {
    const schema = JSON.parse(readFileSync(ORDERS_SCHEMA_PATH, 'utf8')) as object;
    const registry = await startRegistryStub({ 1: schema, 2: schema });
    registry.html.add(2);
    try {
      const f = await ordersFixture(kafka, pool, 2, 'html');
      const { p, readyz } = await start(f, { schemaRegistry: { url: registry.url } });
      const type = ordersType();
      const rand = prng(3);
      const producer = await connectedProducer(kafka);
      // Partition 0: schema id 1 (answers); partition 1: schema id 2 (an HTML page).
      await producer.send({
        topic: f.topic,
        messages: Array.from({ length: 40 }, (_, i) => ({
          partition: i % 2,
          value: frame(i % 2 === 0 ? 1 : 2, type.toBuffer(sampleOrder(i, rand))),
        })),
      });
      await producer.disconnect();
      await waitFor(
        'partition 0 lands',
        () => countRows(pool, f.table),
        (n) => n === 20,
      );
      const r = await waitFor('503', readyz, (x) => x.status === 503, 15_000);
      expect(r.body['reason']).toMatch(
        new RegExp(`partition ${f.topic}:1 .*last error BAD_RESPONSE in schema registry`),
      );
      expect(p.stats.flushFailures).toBeGreaterThanOrEqual(2);
      expect(p.stats.deadLettered).toBe(0);

      registry.html.delete(2);
      await waitFor(
        'partition 1 lands',
        () => countRows(pool, f.table),
        (n) => n === 40,
        30_000,
      );
      await waitFor('ready again', readyz, (x) => x.status === 200, 10_000);
    } finally {
      await registry.close();
    }
  });

  it('the dead-letter limit: 503 names the route and the limit', async () => {
    const f = await ordersFixture(kafka, pool, 1, 'dlq');
    f.route.maxDeadLettersPerMinute = 3;
    const { readyz } = await start(f);
    const producer = await connectedProducer(kafka);
    await producer.send({
      topic: f.topic,
      messages: Array.from({ length: 10 }, () => ({ value: Buffer.from('not avro at all') })),
    });
    await producer.disconnect();
    const r = await waitFor('503', readyz, (x) => x.status === 503, 15_000);
    expect(r.body).toMatchObject({
      status: 'not ready',
      reason: `route ${f.topic} stopped by its dead-letter limit (routes[].maxDeadLettersPerMinute)`,
      haltedRoutes: [f.topic],
      checks: { consumer: 'ok' },
    });
  });
});
