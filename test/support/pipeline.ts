// Shared set-up for pipeline integration tests: a topic with orders, a target table,
// a config, and polling helpers with bounded waits.
import type { Kafka } from 'kafkajs';
import type pg from 'pg';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import { routeSchema, type Config, type ConfigInput, type RouteConfig } from '../../src/config/schema.ts';
import { frame } from '../../src/avro/wire.ts';
import { ORDERS_SCHEMA_PATH, orderValues, ordersType, prng, sampleOrder } from '../../src/cli/sample-data.ts';
import { buildColumnPlan } from '../../src/sink/columns.ts';
import { createTableSql } from '../../src/sink/ddl.ts';
import { clientConfig } from './kafka-client.ts';
import { connectedProducer, createTopic, databaseUrl, kafkaBrokers, uniqueName } from './services.ts';

export interface Fixture {
  topic: string;
  groupId: string;
  table: string;
  schema: string;
  route: RouteConfig;
}

export function ordersRoute(topic: string, table: string): RouteConfig {
  return routeSchema.parse({
    topic,
    table,
    schema: ORDERS_SCHEMA_PATH,
    metadata: { partition: '_partition', offset: '_offset' },
  });
}

/** A topic, a group id, a pgsink schema and an orders table, all unique to the caller. */
export async function ordersFixture(
  kafka: Kafka,
  pool: pg.Pool,
  partitions: number,
  prefix = 't',
): Promise<Fixture> {
  const topic = uniqueName(`${prefix}_orders`);
  const schema = uniqueName(`${prefix}_s`);
  const table = `${schema}.orders`;
  const route = ordersRoute(topic, table);
  const plan = buildColumnPlan(ordersType(), route);
  await pool.query(`CREATE SCHEMA "${schema}"`);
  await pool.query(createTableSql(table, plan.columns, plan.pgTypes));
  await createTopic(kafka, topic, partitions);
  return { topic, groupId: uniqueName(`${prefix}_g`), table: `"${schema}"."orders"`, schema, route };
}

export type TestOverrides = Omit<Partial<ConfigInput>, 'kafka'> & { kafka?: Partial<ConfigInput['kafka']> };

export function testConfig(f: Fixture, overrides: TestOverrides = {}): Config {
  const { kafka, ...rest } = overrides;
  return parseConfig(
    {
      kafka: {
        brokers: kafkaBrokers(),
        groupId: f.groupId,
        ...clientConfig(),
        sessionTimeoutMs: 10_000,
        heartbeatIntervalMs: 1_000,
        ...kafka,
      },
      postgres: { url: databaseUrl(), schema: `${f.schema}_pgsink` },
      batch: { maxRows: 5_000, maxBytes: 4 * 1024 * 1024, lingerMs: 100 },
      retry: { initialMs: 100, maxMs: 1_000 },
      shutdown: { deadlineMs: 10_000 },
      http: { port: 0 },
      log: { level: 'warn' },
      routes: [f.route],
      ...rest,
    },
    'test',
    process.cwd(),
  );
}

/**
 * A config file for the real CLI (`pgsink run --config …`): this run's broker and database, the
 * fixture's group, schema and route, short session timeouts, a free HTTP port; `over` replaces
 * top-level keys (and adds to `kafka`).
 */
export function cliConfigFile(
  f: Pick<Fixture, 'groupId' | 'schema' | 'route'>,
  over: TestOverrides & { log?: { level: string } } = {},
): string {
  const { kafka, ...rest } = over;
  const file = join(mkdtempSync(join(tmpdir(), 'pgsink-cli-config-')), 'pgsink.json');
  writeFileSync(
    file,
    JSON.stringify({
      kafka: {
        brokers: kafkaBrokers(),
        groupId: f.groupId,
        sessionTimeoutMs: 10_000,
        heartbeatIntervalMs: 1_000,
        ...kafka,
      },
      postgres: { url: databaseUrl(), schema: `${f.schema}_pgsink` },
      http: { port: 0 },
      log: { level: 'info' },
      routes: [f.route],
      ...rest,
    }),
  );
  return file;
}

export async function produceOrders(kafka: Kafka, topic: string, from: number, count: number): Promise<void> {
  const producer = await connectedProducer(kafka);
  const type = ordersType();
  let chunk: Array<{ key: string; value: Buffer }> = [];
  for (const m of orderValues(type, 1, from, count)) {
    chunk.push(m);
    if (chunk.length === 2_000) {
      await producer.send({ topic, messages: chunk });
      chunk = [];
    }
  }
  if (chunk.length) await producer.send({ topic, messages: chunk });
  await producer.disconnect();
}

/**
 * Orders i in [from, from+count) keyed by i % keys: order_id = i % keys, item_count = i, so a
 * row says which record it came from, and an upsert table's last value per key is known.
 */
export async function produceKeyedOrders(
  kafka: Kafka,
  topic: string,
  from: number,
  count: number,
  keys: number,
): Promise<void> {
  const producer = await connectedProducer(kafka);
  const type = ordersType();
  const rand = prng(7 + from);
  let chunk: Array<{ key: string; value: Buffer }> = [];
  for (let i = from; i < from + count; i++) {
    const k = i % keys;
    chunk.push({
      key: String(k),
      value: frame(1, type.toBuffer({ ...sampleOrder(i, rand), order_id: BigInt(k), item_count: i })),
    });
    if (chunk.length === 2_000) {
      await producer.send({ topic, messages: chunk });
      chunk = [];
    }
  }
  if (chunk.length) await producer.send({ topic, messages: chunk });
  await producer.disconnect();
}

/**
 * After records 0..n-1 of produceKeyedOrders: append holds each exactly once; upsert holds one
 * row per key with the last record's value.
 */
export async function checkFinalState(
  pool: pg.Pool,
  f: Fixture,
  mode: 'append' | 'upsert',
  n: number,
  keys: number,
): Promise<void> {
  const { rows } = await pool.query<{ order_id: string; item_count: number }>(
    `SELECT order_id, item_count FROM ${f.table} ORDER BY item_count`,
  );
  if (mode === 'append') {
    expect(rows.map((r) => r.item_count)).toEqual(Array.from({ length: n }, (_, i) => i));
    return;
  }
  const last = new Map<number, number>();
  for (let i = 0; i < n; i++) last.set(i % keys, i);
  expect(new Map(rows.map((r) => [Number(r.order_id), r.item_count]))).toEqual(last);
}

export async function waitFor<T>(
  what: string,
  probe: () => Promise<T>,
  done: (v: T) => boolean,
  timeoutMs = 60_000,
  everyMs = 100,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: T = await probe();
  while (!done(last)) {
    if (Date.now() > until)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}; last value: ${JSON.stringify(last, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}`,
      );
    await new Promise((r) => setTimeout(r, everyMs));
    last = await probe();
  }
  return last;
}

export async function countRows(pool: pg.Pool, table: string): Promise<number> {
  const { rows } = await pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`);
  return Number(rows[0]!.n);
}

/** Committed offsets of a group per partition (-1 when none). */
export async function committedOffsets(
  kafka: Kafka,
  groupId: string,
  topic: string,
): Promise<Map<number, number>> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    // A fresh broker answers NOT_COORDINATOR while it loads the offsets topic: retried.
    for (let attempt = 0; ; attempt++) {
      try {
        const [res] = await admin.fetchOffsets({ groupId, topics: [topic] });
        return new Map(res!.partitions.map((p) => [p.partition, Number(p.offset)]));
      } catch (err) {
        if (!(err as { retriable?: boolean }).retriable || attempt >= 20) throw err;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  } finally {
    await admin.disconnect();
  }
}

export async function endOffsets(kafka: Kafka, topic: string): Promise<Map<number, number>> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const res = await admin.fetchTopicOffsets(topic);
    return new Map(res.map((p) => [p.partition, Number(p.high)]));
  } finally {
    await admin.disconnect();
  }
}

/** Waits until the group's committed offset is at the end of every partition of the topic. */
export async function waitCommittedToEnd(
  kafka: Kafka,
  groupId: string,
  topic: string,
  timeoutMs = 60_000,
): Promise<void> {
  const ends = await endOffsets(kafka, topic);
  await waitFor(
    'committed offsets at the end of every partition',
    () => committedOffsets(kafka, groupId, topic),
    (c) => [...ends].every(([p, end]) => c.get(p) === end),
    timeoutMs,
  );
}

/**
 * Every one of `n` records landed once in an orders table: n rows, n distinct (partition,
 * offset) pairs, and with `ids`, n distinct order ids.
 */
export async function expectExactlyOnce(
  pool: pg.Pool,
  table: string,
  n: number,
  opts: { ids?: boolean } = {},
): Promise<void> {
  const { rows } = await pool.query<{ n: string; d: string; ids: string }>(
    `SELECT count(*) AS n, count(DISTINCT (_partition, _offset)) AS d, count(DISTINCT order_id) AS ids FROM ${table}`,
  );
  const got = { n: Number(rows[0]!.n), d: Number(rows[0]!.d), ids: Number(rows[0]!.ids) };
  if (opts.ids) expect(got).toEqual({ n, d: n, ids: n });
  else expect({ n: got.n, d: got.d }).toEqual({ n, d: n });
}
