// Isolating bad rows keeps the fast path's meaning for every table a user may have
// (src/sink/isolate.ts): each case is a table with one more Postgres feature, a batch mixing
// good and bad records, and the exact rows and dead letters that must come out. Found by an
// adversarial review of the first isolation; each case failed there.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { typeForSchema, type AvroSchema } from '../../src/avro/types.ts';
import { frame } from '../../src/avro/wire.ts';
import { routeSchema, type RouteConfig } from '../../src/config/schema.ts';
import { createPipeline, type Pipeline } from '../../src/pipeline/app.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import {
  testConfig,
  waitCommittedToEnd,
  waitFor,
  type Fixture,
  type TestOverrides,
} from '../support/pipeline.ts';
import {
  connectedProducer,
  createTopic,
  databaseUrl,
  kafkaClient,
  pgPool,
  uniqueName,
} from '../support/services.ts';

const kafka = kafkaClient();
const pool = pgPool();
const logger = createLogger('silent');
afterAll(() => pool.end());
const running: Pipeline[] = [];
afterEach(async () => {
  for (const p of running.splice(0)) await p.service.stop();
});

/** A record: id (nullable long: the key), v (int), s (string). */
const SCHEMA: AvroSchema = {
  type: 'record',
  name: 'Row',
  fields: [
    { name: 'id', type: ['null', 'long'] },
    { name: 'v', type: 'int' },
    { name: 's', type: 'string' },
  ],
};
const type = typeForSchema(SCHEMA);
interface Row {
  id: number | null;
  v: number;
  s?: string;
}

async function setup(
  prefix: string,
  ddl: (table: string) => string[],
  route: Partial<RouteConfig> = {},
  partitions = 1,
): Promise<Fixture> {
  const topic = uniqueName(`${prefix}_t`);
  const schema = uniqueName(`${prefix}_s`);
  const table = `"${schema}"."rows"`;
  await pool.query(`CREATE SCHEMA "${schema}"`);
  for (const sql of ddl(table)) await pool.query(sql);
  await createTopic(kafka, topic, partitions);
  const file = join(mkdtempSync(join(tmpdir(), 'pgsink-iso-')), 'row.avsc');
  writeFileSync(file, JSON.stringify(SCHEMA));
  const r = routeSchema.parse({ topic, table: `${schema}.rows`, schema: file, ...route });
  return { topic, groupId: uniqueName(`${prefix}_g`), table, schema, route: r };
}

async function start(f: Fixture, overrides: TestOverrides = {}): Promise<Pipeline> {
  const p = createPipeline(
    testConfig(f, { batch: { maxRows: 1_000, maxBytes: 4 * 1024 * 1024, lingerMs: 200 }, ...overrides }),
    { logger },
  );
  running.push(p);
  await p.service.start();
  await waitFor('joined', async () => p.service.ready, Boolean, 30_000);
  return p;
}

async function send(f: Fixture, rows: Row[], partition = 0): Promise<void> {
  const producer = await connectedProducer(kafka);
  await producer.send({
    topic: f.topic,
    messages: rows.map((r) => ({
      partition,
      key: r.id === null ? null : String(r.id),
      value: frame(1, type.toBuffer({ id: r.id, v: r.v, s: r.s ?? `s${r.v}` })),
    })),
  });
  await producer.disconnect();
}

async function table(f: Fixture, order = 'id, v'): Promise<Array<{ id: string | null; v: number }>> {
  return (
    await pool.query<{ id: string | null; v: number }>(`SELECT id, v FROM ${f.table} ORDER BY ${order}`)
  ).rows;
}

async function dead(f: Fixture): Promise<Array<{ offset: number; code: string }>> {
  const { rows } = await pool.query<{ offset: string; error_code: string }>(
    `SELECT "offset", error_code FROM "${f.schema}_pgsink".dead_letters ORDER BY "offset"`,
  );
  return rows.map((r) => ({ offset: Number(r.offset), code: r.error_code }));
}

const plain = (t: string) => [`CREATE TABLE ${t} (id bigint, v integer NOT NULL CHECK (v >= 0), s text)`];

describe('isolation keeps the fast path’s meaning', () => {
  it('upsert: a refused last record of a key leaves the one before it written', async () => {
    const f = await setup(
      'ups',
      (t) => [`CREATE TABLE ${t} (id bigint PRIMARY KEY, v integer NOT NULL CHECK (v >= 0), s text)`],
      {
        mode: 'upsert',
        keyColumns: ['id'],
      },
    );
    await start(f);
    await send(f, [
      { id: 1, v: 5 },
      { id: 1, v: -1 },
      { id: 2, v: 7 },
    ]);
    await waitCommittedToEnd(kafka, f.groupId, f.topic, 30_000);
    expect(await table(f)).toEqual([
      { id: '1', v: 5 },
      { id: '2', v: 7 },
    ]);
    expect(await dead(f)).toEqual([{ offset: 1, code: '23514' }]);
  });

  it('upsert: a record whose key is null is a dead letter (NULL_KEY), not merged with others', async () => {
    const f = await setup(
      'nullkey',
      (t) => [`CREATE TABLE ${t} (id bigint UNIQUE, v integer NOT NULL, s text)`],
      {
        mode: 'upsert',
        keyColumns: ['id'],
      },
    );
    await start(f);
    await send(f, [
      { id: null, v: 1 },
      { id: 3, v: 2 },
      { id: null, v: 3 },
    ]);
    await waitCommittedToEnd(kafka, f.groupId, f.topic, 30_000);
    expect(await table(f)).toEqual([{ id: '3', v: 2 }]);
    expect(await dead(f)).toEqual([
      { offset: 0, code: 'NULL_KEY' },
      { offset: 2, code: 'NULL_KEY' },
    ]);
  });

  it('a deferrable foreign key: a child before its parent in the batch is not refused', async () => {
    const f = await setup('fk', (t) => [
      `CREATE TABLE ${t} (id bigint PRIMARY KEY, v integer NOT NULL CHECK (v >= 0), s text,
         FOREIGN KEY (v) REFERENCES ${t} (id) DEFERRABLE INITIALLY DEFERRED)`,
      `INSERT INTO ${t} VALUES (0, 0, 'root')`,
    ]);
    await start(f);
    // 4 → 3 comes before 3; -1 violates the CHECK (it sends the batch into isolation).
    await send(f, [
      { id: 4, v: 3 },
      { id: 3, v: 0 },
      { id: 5, v: -1 },
      { id: 6, v: 99 },
    ]);
    await waitCommittedToEnd(kafka, f.groupId, f.topic, 30_000);
    expect(await table(f)).toEqual([
      { id: '0', v: 0 },
      { id: '3', v: 0 },
      { id: '4', v: 3 },
    ]);
    expect(await dead(f)).toEqual([
      { offset: 2, code: '23514' },
      { offset: 3, code: '23503' },
    ]);
  });

  it('a mapped GENERATED ALWAYS identity column takes the record’s value, as COPY does', async () => {
    const f = await setup('ident', (t) => [
      `CREATE TABLE ${t} (id bigint GENERATED ALWAYS AS IDENTITY, v integer NOT NULL CHECK (v >= 0), s text)`,
    ]);
    await start(f);
    await send(f, [
      { id: 10, v: 1 },
      { id: 11, v: -1 },
      { id: 12, v: 2 },
    ]);
    await waitCommittedToEnd(kafka, f.groupId, f.topic, 30_000);
    expect(await table(f)).toEqual([
      { id: '10', v: 1 },
      { id: '12', v: 2 },
    ]);
    expect(await dead(f)).toEqual([{ offset: 1, code: '23514' }]);
  });

  it('a column altered while running is seen as it is now (varchar(5) → text)', async () => {
    const f = await setup('alter', (t) => [
      `CREATE TABLE ${t} (id bigint, v integer NOT NULL CHECK (v >= 0), s varchar(5))`,
    ]);
    await start(f);
    // A first isolation on this connection, with the narrow column.
    await send(f, [
      { id: 1, v: 1, s: 'short' },
      { id: 2, v: -1 },
    ]);
    await waitCommittedToEnd(kafka, f.groupId, f.topic, 30_000);
    await pool.query(`ALTER TABLE ${f.table} ALTER COLUMN s TYPE text`);
    await send(f, [
      { id: 3, v: 3, s: 'ten chars!' },
      { id: 4, v: -1 },
    ]);
    await waitCommittedToEnd(kafka, f.groupId, f.topic, 30_000);
    expect(await table(f)).toEqual([
      { id: '1', v: 1 },
      { id: '3', v: 3 },
    ]);
    expect(await dead(f)).toEqual([
      { offset: 1, code: '23514' },
      { offset: 3, code: '23514' },
    ]);
  });

  it('upsert: a column widened while running (integer → bigint) takes the wide value', async () => {
    const f = await setup(
      'widen',
      (t) => [`CREATE TABLE ${t} (id bigint PRIMARY KEY, v integer NOT NULL, s text)`],
      {
        mode: 'upsert',
        keyColumns: ['id'],
      },
    );
    await start(f);
    await send(f, [{ id: 1, v: 1 }]);
    await waitCommittedToEnd(kafka, f.groupId, f.topic, 30_000);
    await pool.query(`ALTER TABLE ${f.table} ALTER COLUMN v TYPE bigint, ALTER COLUMN id TYPE numeric`);
    await send(f, [{ id: 2, v: 2_000_000_000 }]);
    await send(f, [{ id: 3, v: 2_100_000_000 }]);
    await waitCommittedToEnd(kafka, f.groupId, f.topic, 30_000);
    expect((await table(f)).map((r) => Number(r.id))).toEqual([1, 2, 3]);
    expect(await dead(f)).toEqual([]);
  });

  it('an index row too large for one record (54000, at its COPY line) is that record’s dead letter', async () => {
    const f = await setup('big', (t) => [...plain(t), `CREATE INDEX ON ${t} (s)`]);
    await start(f);
    // Random hex does not compress below the 2704-byte btree limit.
    const huge = Array.from({ length: 12_000 }, () => Math.floor(Math.random() * 16).toString(16)).join('');
    await send(f, [
      { id: 1, v: 1 },
      { id: 2, v: 2, s: huge },
      { id: 3, v: 3 },
    ]);
    await waitCommittedToEnd(kafka, f.groupId, f.topic, 30_000);
    expect(await table(f)).toEqual([
      { id: '1', v: 1 },
      { id: '3', v: 3 },
    ]);
    expect(await dead(f)).toEqual([{ offset: 1, code: '54000' }]);
  });

  it('every row refused for a reason that is not theirs (a privilege): held, nothing dead-lettered', async () => {
    const f = await setup('env', (t) => [
      ...plain(t),
      `CREATE FUNCTION ${t.replace('"rows"', '"deny"')}() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'permission denied for table audit' USING ERRCODE = '42501'; END $$`,
      `CREATE TRIGGER deny BEFORE INSERT ON ${t} FOR EACH ROW EXECUTE FUNCTION ${t.replace('"rows"', '"deny"')}()`,
    ]);
    const p = await start(f);
    await send(f, [
      { id: 1, v: 1 },
      { id: 2, v: 2 },
    ]);
    await waitFor(
      'retried',
      async () => p.stats.flushFailures,
      (n) => n >= 3,
      30_000,
    );
    expect(await dead(f)).toEqual([]);
    expect(p.service.pausedPartitions).toEqual([`${f.topic}:0`]);
    await pool.query(`DROP TRIGGER deny ON ${f.table}`);
    await waitCommittedToEnd(kafka, f.groupId, f.topic, 30_000);
    expect(await table(f)).toEqual([
      { id: '1', v: 1 },
      { id: '2', v: 2 },
    ]);
  });

  it('type errors in half the rows are dead letters, in one statement (smallint overflow)', async () => {
    const f = await setup('types', (t) => [`CREATE TABLE ${t} (id bigint, v smallint NOT NULL, s text)`]);
    await start(f);
    const rows = Array.from({ length: 400 }, (_, i) => ({ id: i, v: i % 2 === 0 ? i : 40_000 + i }));
    await send(f, rows);
    await waitCommittedToEnd(kafka, f.groupId, f.topic, 30_000);
    expect((await table(f)).map((r) => Number(r.id))).toEqual(
      rows.filter((r) => r.id % 2 === 0).map((r) => r.id),
    );
    const d = await dead(f);
    expect(d.map((x) => x.offset)).toEqual(rows.filter((r) => r.id % 2 === 1).map((r) => r.id));
    expect(new Set(d.map((x) => x.code))).toEqual(new Set(['22003']));
  });

  it('a table with rules is refused at start-up (COPY ignores rules, the isolating INSERTs would not)', async () => {
    const f = await setup('rule', (t) => [
      ...plain(t),
      `CREATE TABLE ${t.replace('"rows"', '"elsewhere"')} (LIKE ${t})`,
      `CREATE RULE divert AS ON INSERT TO ${t} DO INSTEAD INSERT INTO ${t.replace('"rows"', '"elsewhere"')} VALUES (NEW.*)`,
    ]);
    const p = createPipeline(testConfig(f), { logger });
    await expect(p.service.start()).rejects.toThrow(/has rules; COPY ignores them/);
    await p.service.stop();
  });

  it('a batch that exceeds statement_timeout is split until it fits, and lands', async () => {
    const f = await setup('slow', (t) => [
      ...plain(t),
      `CREATE FUNCTION ${t.replace('"rows"', '"slow"')}() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN PERFORM pg_sleep(0.002); RETURN NEW; END $$`,
      `CREATE TRIGGER slow BEFORE INSERT ON ${t} FOR EACH ROW EXECUTE FUNCTION ${t.replace('"rows"', '"slow"')}()`,
    ]);
    const p = await start(f, {
      postgres: { url: databaseUrl(), schema: `${f.schema}_pgsink`, statementTimeoutMs: 400 },
    });
    await send(
      f,
      Array.from({ length: 600 }, (_, i) => ({ id: i, v: i })),
    );
    await waitCommittedToEnd(kafka, f.groupId, f.topic, 60_000);
    expect((await table(f)).length).toBe(600);
    expect(await dead(f)).toEqual([]);
    expect(p.stats.flushFailures).toBeGreaterThan(0);
  });
});

describe('flush slots', () => {
  it('a backlog on a slow table moves every partition, not only the first ones', async () => {
    const f = await setup(
      'starve',
      (t) => [
        ...plain(t),
        `CREATE FUNCTION ${t.replace('"rows"', '"stmt"')}() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN PERFORM pg_sleep(0.15); RETURN NULL; END $$`,
        `CREATE TRIGGER stmt AFTER INSERT ON ${t} FOR EACH STATEMENT EXECUTE FUNCTION ${t.replace('"rows"', '"stmt"')}()`,
      ],
      {},
      6,
    );
    await start(f, {
      batch: { maxRows: 50, maxBytes: 1024 * 1024, lingerMs: 10 },
      backpressure: {
        maxPartitionBytes: 4 * 1024 * 1024,
        maxTotalBytes: 32 * 1024 * 1024,
        resumeRatio: 0.5,
        maxConcurrentFlushes: 2,
      },
    });
    for (let round = 0; round < 5; round++)
      for (let p = 0; p < 6; p++)
        await send(
          f,
          Array.from({ length: 300 }, (_, i) => ({ id: round * 10_000 + p * 1_000 + i, v: 1 })),
          p,
        );
    await new Promise((r) => setTimeout(r, 4_000));
    const { rows } = await pool.query<{ p: number; n: string }>(
      `SELECT (id % 10000) / 1000 AS p, count(*) AS n FROM ${f.table} GROUP BY 1 ORDER BY 1`,
    );
    // Every partition has been written to while the backlog lasts.
    expect(rows.map((r) => Number(r.p))).toEqual([0, 1, 2, 3, 4, 5]);
  });
});
