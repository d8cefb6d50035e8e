// Invariant 7, "exact or dead-lettered" (issue 13), against the real broker and server: every
// value a producer can write that avsc alone would have changed (ill-formed UTF-8 in fields,
// nested records and the Kafka key, a boolean byte of 2, ints beyond 32 bits and longs beyond
// 64, an empty decimal, times of day outside a day) is a dead letter with its own code, on the
// direct path (the writer is the reader schema) and on the general path (an evolved writer);
// a record without a Kafka timestamp lands with a NULL timestamp; a bytea key column takes any
// key as it is; dead letters keep headers byte for byte, and no header can make their insert
// fail (the six characters \u0000 did, 22P05, and the partition never moved).
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IHeaders } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { typeForSchema, type AvroSchema } from '../../src/avro/types.ts';
import { frame } from '../../src/avro/wire.ts';
import { decimalBytes } from '../../src/cli/sample-data.ts';
import { routeSchema } from '../../src/config/schema.ts';
import { createPipeline } from '../../src/pipeline/app.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { long } from '../support/avro-bodies.ts';
import { countRows, testConfig, waitCommittedToEnd } from '../support/pipeline.ts';
import { connectedProducer, createTopic, kafkaClient, pgPool, uniqueName } from '../support/services.ts';

const kafka = kafkaClient();
const pool = pgPool();
afterAll(() => pool.end());

const INNER = { type: 'record', name: 'Inner', fields: [{ name: 'label', type: 'string' }] };
const V1 = {
  type: 'record',
  name: 'Strict',
  namespace: 'test.strict',
  fields: [
    { name: 'id', type: 'long' },
    { name: 'flag', type: 'boolean' },
    { name: 'n', type: 'int' },
    { name: 'big', type: 'long' },
    { name: 'amount', type: { type: 'bytes', logicalType: 'decimal', precision: 12, scale: 2 } },
    { name: 'tm', type: { type: 'int', logicalType: 'time-millis' } },
    { name: 'tu', type: { type: 'long', logicalType: 'time-micros' } },
    { name: 'name', type: 'string' },
    { name: 'inner', type: INNER },
  ],
};
// An evolved writer: one more field, which the reader (V1) drops. Its bodies take the general path.
const V2 = { ...V1, fields: [...V1.fields, { name: 'extra', type: 'string', default: '' }] };
const v1 = typeForSchema(V1 as AvroSchema) as unknown as {
  fields: Array<{ name: string; type: { toBuffer(v: unknown): Buffer } }>;
};
const v2 = typeForSchema(V2 as AvroSchema) as unknown as typeof v1;

interface Values {
  id: bigint;
  flag: boolean;
  n: number;
  big: bigint;
  amount: Buffer;
  tm: number;
  tu: bigint;
  name: string;
  inner: { label: string };
  extra?: string;
}
const goodValues = (id: number): Values => ({
  id: BigInt(id),
  flag: id % 2 === 0,
  n: -2_147_483_648 + id,
  big: 9_223_372_036_854_775_807n - BigInt(id),
  amount: decimalBytes(-4_810_942_237n + BigInt(id)),
  tm: 86_399_999 - id,
  tu: BigInt(id),
  name: `naïve ${id}`,
  inner: { label: `ok ${id}` },
  extra: 'dropped by the reader',
});

/**
 * A body field by field (each encoded by avsc), with some fields replaced by raw bytes: the
 * values a producer's own encoder could write, which avsc would never write itself.
 */
function body(
  schemaId: 1 | 2,
  values: Values,
  raw: Partial<Record<keyof Values | 'inner.label', Buffer>> = {},
): Buffer {
  const type = schemaId === 1 ? v1 : v2;
  const parts = type.fields.map((f) => {
    const name = f.name as keyof Values;
    if (name === 'inner' && raw['inner.label'])
      return Buffer.concat([long(raw['inner.label'].length), raw['inner.label']]);
    return raw[name] ?? f.type.toBuffer(values[name]);
  });
  return frame(schemaId, Buffer.concat(parts));
}
const str = (b: number[]): Buffer => Buffer.concat([long(b.length), Buffer.from(b)]);
const TWELVE_BYTE_VARINT = Buffer.from([
  0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x81, 0x01,
]);

interface Case {
  name: string;
  code: string;
  /** In the message: the field (or the key) it names. */
  names: string;
  raw?: Partial<Record<keyof Values | 'inner.label', Buffer>>;
  key?: Buffer;
}
const CASES: Case[] = [
  {
    name: 'boolean byte 2',
    code: 'BOOLEAN_OUT_OF_RANGE',
    names: "field 'flag'",
    raw: { flag: Buffer.from([2]) },
  },
  { name: '2^40 in an int', code: 'INT_OUT_OF_RANGE', names: "field 'n'", raw: { n: long(2n ** 40n) } },
  {
    name: 'a 12-byte varint in a long',
    code: 'LONG_OUT_OF_RANGE',
    names: "field 'big'",
    raw: { big: TWELVE_BYTE_VARINT },
  },
  { name: 'a zero-length decimal', code: 'EMPTY_DECIMAL', names: "field 'amount'", raw: { amount: long(0) } },
  { name: 'time-millis -1', code: 'TIME_OUT_OF_RANGE', names: "field 'tm'", raw: { tm: long(-1) } },
  {
    name: 'time-millis of 24 h',
    code: 'TIME_OUT_OF_RANGE',
    names: "field 'tm'",
    raw: { tm: long(86_400_000) },
  },
  { name: 'time-micros -1', code: 'TIME_OUT_OF_RANGE', names: "field 'tu'", raw: { tu: long(-1) } },
  {
    name: 'ff fe 41 c3 in a string',
    code: 'INVALID_UTF8',
    names: "field 'name'",
    raw: { name: str([0xff, 0xfe, 0x41, 0xc3]) },
  },
  {
    name: 'overlong NUL c0 80 in a string',
    code: 'INVALID_UTF8',
    names: "field 'name'",
    raw: { name: str([0x61, 0xc0, 0x80]) },
  },
  {
    name: 'lone surrogate ed a0 80 in a nested record',
    code: 'INVALID_UTF8',
    names: "field 'inner.label'",
    raw: { 'inner.label': Buffer.from([0xed, 0xa0, 0x80]) },
  },
  {
    name: 'ff fe 41 c3 in the key',
    code: 'INVALID_UTF8',
    names: 'the Kafka key',
    key: Buffer.from([0xff, 0xfe, 0x41, 0xc3]),
  },
  {
    name: 'ed a0 80 in the key',
    code: 'INVALID_UTF8',
    names: 'the Kafka key',
    key: Buffer.from([0xed, 0xa0, 0x80]),
  },
  { name: 'c0 80 in the key', code: 'INVALID_UTF8', names: 'the Kafka key', key: Buffer.from([0xc0, 0x80]) },
];

function schemaFiles(): { dir: string; v1: string; v2: string } {
  const dir = mkdtempSync(join(tmpdir(), 'pgsink-strict-'));
  const f1 = join(dir, 'v1.avsc');
  const f2 = join(dir, 'v2.avsc');
  writeFileSync(f1, JSON.stringify(V1));
  writeFileSync(f2, JSON.stringify(V2));
  return { dir, v1: f1, v2: f2 };
}

describe('exact or dead-lettered', () => {
  it('dead-letters every value avsc would change, with its code, on both paths; a record without a timestamp lands with NULL', async () => {
    const files = schemaFiles();
    const topic = uniqueName('strict_t');
    const schema = uniqueName('strict_s');
    await pool.query(`CREATE SCHEMA "${schema}"`);
    await createTopic(kafka, topic, 2);
    const route = routeSchema.parse({
      topic,
      table: `${schema}.strict`,
      schema: files.v1,
      schemaIds: { '1': files.v1, '2': files.v2 },
      metadata: { key: '_key', timestamp: '_ts', offset: '_offset' },
      autoCreate: true,
    });
    const f = { topic, groupId: uniqueName('strict_g'), table: `"${schema}".strict`, schema, route };

    type Msg = { key: Buffer; value: Buffer; timestamp?: string };
    const goods: Msg[] = [];
    const bads: Array<Msg & { c: Case; id: 1 | 2 }> = [];
    let next = 0;
    for (const id of [1, 2] as const) {
      for (let i = 0; i < 20; i++) {
        const n = next++;
        goods.push({ key: Buffer.from(`good-${n}`), value: body(id, goodValues(n)) });
      }
      for (const c of CASES) {
        const n = next++;
        bads.push({ c, id, key: c.key ?? Buffer.from(`bad-${n}`), value: body(id, goodValues(n), c.raw) });
      }
    }
    const noTimestamp = { key: Buffer.from('no-ts'), value: body(1, goodValues(1000)), timestamp: '-1' };
    const producer = await connectedProducer(kafka);
    await producer.send({ topic, messages: [...goods, ...bads].sort(() => Math.random() - 0.5) });
    // Alone in its batch: kafkajs takes a batch's first timestamp from its messages.
    await producer.send({ topic, messages: [noTimestamp] });
    await producer.disconnect();

    const p = createPipeline(testConfig(f), { logger: createLogger('error') });
    await p.service.start();
    try {
      await waitCommittedToEnd(kafka, f.groupId, topic);
    } finally {
      await p.service.stop();
    }
    expect(p.stats.flushFailures).toBe(0);
    expect(await countRows(pool, f.table)).toBe(goods.length + 1);

    const { rows: dead } = await pool.query<{
      key: Buffer;
      value: Buffer;
      error_code: string;
      error_message: string;
      error_source: string;
    }>(`SELECT key, value, error_code, error_message, error_source FROM "${schema}_pgsink".dead_letters`);
    expect(dead).toHaveLength(bads.length);
    for (const b of bads) {
      const d = dead.find((x) => x.value.equals(b.value) && x.key.equals(b.key));
      expect({ case: b.c.name, path: b.id === 1 ? 'direct' : 'general', code: d?.error_code }).toEqual({
        case: b.c.name,
        path: b.id === 1 ? 'direct' : 'general',
        code: b.c.code,
      });
      expect(d!.error_message).toContain(b.c.names);
      if (!b.c.key) expect(d!.error_message).toContain(`schema id ${b.id}: `);
    }

    // The good rows, exactly; the record without a timestamp has none.
    const { rows } = await pool.query<Record<string, string | null>>(
      `SELECT id::text, flag::text, n::text, big::text, amount::text,
              (extract(epoch from tm) * 1000)::bigint::text AS tm, (extract(epoch from tu) * 1000000)::bigint::text AS tu, name, "inner"::text AS inner, _key, _ts::text AS ts
         FROM ${f.table} ORDER BY id`,
    );
    for (const row of rows) {
      const id = Number(row['id']);
      const v = goodValues(id);
      expect(row).toEqual({
        id: String(id),
        flag: String(v.flag),
        n: String(v.n),
        big: v.big.toString(),
        amount: ((-4_810_942_237 + id) / 100).toFixed(2),
        tm: String(86_399_999 - id),
        tu: String(id),
        name: v.name,
        inner: JSON.stringify(v.inner).replace(':', ': '),
        _key: id === 1000 ? 'no-ts' : `good-${id}`,
        ts: id === 1000 ? null : expect.stringMatching(/^20\d\d-/),
      });
    }
  });

  it('writes any Kafka key as it is into a bytea key column (read from the catalog at start-up)', async () => {
    const files = schemaFiles();
    const topic = uniqueName('bkey_t');
    const schema = uniqueName('bkey_s');
    await pool.query(`CREATE SCHEMA "${schema}"`);
    await pool.query(`CREATE TABLE "${schema}".t (id bigint, flag boolean, n integer, big bigint, amount numeric(12,2),
      tm time(3), tu time(6), name text, "inner" jsonb, _key bytea)`);
    await createTopic(kafka, topic, 1);
    const route = routeSchema.parse({
      topic,
      table: `${schema}.t`,
      schema: files.v1,
      schemaIds: { '1': files.v1, '2': files.v2 },
      metadata: { key: '_key' },
    });
    const f = { topic, groupId: uniqueName('bkey_g'), table: `"${schema}".t`, schema, route };
    const keys = [
      [0xff, 0xfe, 0x41, 0xc3],
      [0xed, 0xa0, 0x80],
      [0xc0, 0x80],
      [0x00, 0x01, 0x5c, 0x4e],
      [],
    ].map((k) => Buffer.from(k));
    const producer = await connectedProducer(kafka);
    await producer.send({
      topic,
      messages: keys.flatMap((key, i) => [
        { key, value: body(1, goodValues(i)) },
        { key, value: body(2, goodValues(100 + i)) },
      ]),
    });
    await producer.disconnect();
    const p = createPipeline(testConfig(f), { logger: createLogger('error') });
    await p.service.start();
    try {
      await waitCommittedToEnd(kafka, f.groupId, topic);
    } finally {
      await p.service.stop();
    }
    expect(p.stats.deadLettered).toBe(0);
    const { rows } = await pool.query<{ id: string; _key: Buffer }>(
      `SELECT id, _key FROM ${f.table} ORDER BY id`,
    );
    expect(rows.map((r) => [Number(r.id), r._key.toString('hex')])).toEqual([
      ...keys.map((k, i) => [i, k.toString('hex')]),
      ...keys.map((k, i) => [100 + i, k.toString('hex')]),
    ]);
  });
});

describe('dead letters keep headers byte for byte', () => {
  it('stores binary, NUL and \\u0000-text header values exactly, in order, and the partition moves on (kafkajs cannot send a null header value: test/integration/dead-letters.test.ts has those)', async () => {
    const topic = uniqueName('dlh_t');
    const schema = uniqueName('dlh_s');
    const files = schemaFiles();
    await pool.query(`CREATE SCHEMA "${schema}"`);
    await createTopic(kafka, topic, 1);
    const route = routeSchema.parse({ topic, table: `${schema}.t`, schema: files.v1, autoCreate: true });
    const f = { topic, groupId: uniqueName('dlh_g'), table: `"${schema}".t`, schema, route };
    const sixChars = Buffer.from('\\u0000'); // backslash, u, 0, 0, 0, 0
    expect(sixChars).toHaveLength(6);
    const headers: Array<[string, IHeaders, Array<[string, Buffer | null]>, unknown]> = [
      // The headers that made the insert fail (22P05): they are text, so the legacy column has them too.
      [
        '\\u0000 text',
        { esc: sixChars, a: 'x' },
        [
          ['esc', sixChars],
          ['a', Buffer.from('x')],
        ],
        { esc: '\\u0000', a: 'x' },
      ],
      [
        'binary, NUL and repeated',
        {
          bin: Buffer.from([0xff, 0x00, 0xfe]),
          nul: Buffer.from([0]),
          rep: ['1', '2'],
          é: 'ü',
        },
        [
          ['bin', Buffer.from([0xff, 0x00, 0xfe])],
          ['nul', Buffer.from([0])],
          ['rep', Buffer.from('1')],
          ['rep', Buffer.from('2')],
          ['é', Buffer.from('ü')],
        ],
        null,
      ],
      ['none', {}, [], null],
    ];
    const producer = await connectedProducer(kafka);
    // Not Avro: each is a dead letter (BAD_MAGIC_BYTE), with its headers; then one good record.
    await producer.send({
      topic,
      messages: [
        ...headers.map(([name, h]) => ({ key: name, value: Buffer.from(`not avro: ${name}`), headers: h })),
        { key: 'good', value: body(1, goodValues(1)) },
      ],
    });
    await producer.disconnect();
    const p = createPipeline(testConfig(f), { logger: createLogger('error') });
    await p.service.start();
    try {
      await waitCommittedToEnd(kafka, f.groupId, topic);
    } finally {
      await p.service.stop();
    }
    expect(p.stats.flushFailures).toBe(0);
    expect(await countRows(pool, f.table)).toBe(1);
    const { rows } = await pool.query<{
      key: Buffer;
      header_keys: Buffer[];
      header_values: Array<Buffer | null>;
      headers: unknown;
      error_code: string;
    }>(
      `SELECT key, header_keys, header_values, headers, error_code FROM "${schema}_pgsink".dead_letters ORDER BY "offset"`,
    );
    expect(rows).toHaveLength(headers.length);
    for (const [i, [name, , pairs, legacy]] of headers.entries()) {
      const r = rows[i]!;
      expect(r.key.toString()).toBe(name);
      expect(r.error_code).toBe('BAD_MAGIC_BYTE');
      expect(r.header_keys.map((k) => k.toString('utf8'))).toEqual(pairs.map(([k]) => k));
      expect(r.header_values.map((v) => (v === null ? null : v.toString('hex')))).toEqual(
        pairs.map(([, v]) => (v === null ? null : v.toString('hex'))),
      );
      expect(r.headers).toEqual(legacy);
    }
  });
});
