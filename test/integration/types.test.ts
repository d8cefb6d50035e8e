// Exact type mapping, property-based: random records (and hand-picked edge values) of a
// schema with every supported Avro type go through Kafka and COPY into a table pgsink
// creates itself (autoCreate), and every value reads back equal to what was produced.
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { typeForSchema, type AvroSchema } from '../../src/avro/types.ts';
import { frame } from '../../src/avro/wire.ts';
import { routeSchema } from '../../src/config/schema.ts';
import { decimalBytes } from '../../src/cli/sample-data.ts';
import { createPipeline } from '../../src/pipeline/app.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { countRows, testConfig, waitFor } from '../support/pipeline.ts';
import { connectedProducer, createTopic, kafkaClient, pgPool, uniqueName } from '../support/services.ts';

const kafka = kafkaClient();
const pool = pgPool();
afterAll(() => pool.end());

const SCHEMA = {
  type: 'record',
  name: 'AllTypes',
  fields: [
    { name: 'id', type: 'int' },
    { name: 'b', type: 'boolean' },
    { name: 'i', type: 'int' },
    { name: 'l', type: 'long' },
    { name: 'f', type: 'float' },
    { name: 'd', type: 'double' },
    { name: 's', type: 'string' },
    { name: 'by', type: 'bytes' },
    { name: 'fx', type: { type: 'fixed', name: 'Four', size: 4 } },
    { name: 'e', type: { type: 'enum', name: 'Abc', symbols: ['A', 'B', 'C'] } },
    { name: 'dec', type: { type: 'bytes', logicalType: 'decimal', precision: 20, scale: 4 } },
    { name: 'u', type: { type: 'string', logicalType: 'uuid' } },
    { name: 'dt', type: { type: 'int', logicalType: 'date' } },
    { name: 'tms', type: { type: 'int', logicalType: 'time-millis' } },
    { name: 'tus', type: { type: 'long', logicalType: 'time-micros' } },
    { name: 'tsm', type: { type: 'long', logicalType: 'timestamp-millis' } },
    { name: 'tsu', type: { type: 'long', logicalType: 'timestamp-micros' } },
    { name: 'lts', type: { type: 'long', logicalType: 'local-timestamp-micros' } },
    { name: 'ns', type: ['null', 'string'], default: null },
    { name: 'uni', type: ['null', 'string', 'long'], default: null },
    {
      name: 'rec',
      type: {
        type: 'record',
        name: 'Inner',
        fields: [
          { name: 'x', type: 'int' },
          { name: 'y', type: 'string' },
        ],
      },
    },
    { name: 'm', type: { type: 'map', values: 'long' } },
    { name: 'ai', type: { type: 'array', items: 'int' } },
    { name: 'as', type: { type: 'array', items: 'string' } },
    { name: 'an', type: { type: 'array', items: ['null', 'double'] } },
  ],
};

interface Rec {
  id: number;
  b: boolean;
  i: number;
  l: bigint;
  f: number;
  d: number;
  s: string;
  by: Buffer;
  fx: Buffer;
  e: string;
  dec: bigint;
  u: string;
  dt: number;
  tms: number;
  tus: bigint;
  tsm: bigint;
  tsu: bigint;
  lts: bigint;
  ns: string | null;
  uni: string | bigint | null;
  rec: { x: number; y: string };
  m: Record<string, bigint>;
  ai: number[];
  as: string[];
  an: Array<number | null>;
}

const INT64 = { min: -(2n ** 63n), max: 2n ** 63n - 1n };
// Inside PostgreSQL's timestamp range (4713 BC .. 294276 AD), with margin.
const TS_US = { min: -210_000_000_000_000_000n, max: 9_000_000_000_000_000_000n };
const text = fc
  .oneof(
    fc.string({ unit: 'grapheme', maxLength: 12 }),
    fc.string({ unit: 'binary-ascii', maxLength: 12 }),
    fc.constantFrom('', 'é\t\\n\r\n"\'', '𝄞🚀 عربى 中文'),
  )
  .filter((s) => !s.includes('\u0000'));
const finiteDouble = fc.double({ noNaN: true, noDefaultInfinity: true });
const rec: fc.Arbitrary<Omit<Rec, 'id'>> = fc.record({
  b: fc.boolean(),
  i: fc.integer(),
  l: fc.bigInt(INT64),
  f: fc.float().map(Math.fround),
  d: fc.double(),
  s: text,
  by: fc.uint8Array({ maxLength: 10 }).map((a) => Buffer.from(a)),
  fx: fc.uint8Array({ minLength: 4, maxLength: 4 }).map((a) => Buffer.from(a)),
  e: fc.constantFrom('A', 'B', 'C'),
  dec: fc.bigInt({ min: -(10n ** 16n) + 1n, max: 10n ** 16n - 1n }),
  u: fc.uuid(),
  dt: fc.integer({ min: -2_400_000, max: 2_900_000 }),
  tms: fc.integer({ min: 0, max: 86_399_999 }),
  tus: fc.bigInt({ min: 0n, max: 86_399_999_999n }),
  tsm: fc.bigInt({ min: TS_US.min / 1000n, max: TS_US.max / 1000n }),
  tsu: fc.bigInt(TS_US),
  lts: fc.bigInt(TS_US),
  ns: fc.option(text, { nil: null }),
  uni: fc.oneof(fc.constant(null), text, fc.bigInt({ min: -(2n ** 52n), max: 2n ** 52n })),
  rec: fc.record({ x: fc.integer(), y: text }),
  m: fc.dictionary(text, fc.bigInt({ min: -(2n ** 52n), max: 2n ** 52n }), { maxKeys: 3 }),
  ai: fc.array(fc.integer(), { maxLength: 5 }),
  as: fc.array(text, { maxLength: 4 }),
  an: fc.array(fc.option(finiteDouble, { nil: null }), { maxLength: 4 }),
});

const EDGES: Array<Partial<Omit<Rec, 'id'>>> = [
  {
    l: INT64.min,
    i: -(2 ** 31),
    d: Number.MAX_VALUE,
    f: Math.fround(3.4028234663852886e38),
    dec: -(10n ** 16n) + 1n,
  },
  {
    l: INT64.max,
    i: 2 ** 31 - 1,
    d: Number.MIN_VALUE,
    f: Math.fround(1.401298464324817e-45),
    dec: 10n ** 16n - 1n,
  },
  { d: Number.NaN, f: Number.NaN, s: '', as: [], ai: [], an: [], m: {} },
  { d: Infinity, f: -Infinity, tsu: TS_US.min, lts: TS_US.max, tsm: 0n, dt: 0 },
  { d: -Infinity, f: Infinity, tsu: -1n, lts: -1n, tsm: -1n, dt: -1, dec: -1n },
  { d: -0, f: -0, tsu: TS_US.max, lts: TS_US.min, tms: 86_399_999, tus: 86_399_999_999n, dec: 0n },
];

function expectedDecimal(unscaled: bigint, scale: number): string {
  const neg = unscaled < 0n;
  const digits = (neg ? -unscaled : unscaled).toString().padStart(scale + 1, '0');
  return `${neg ? '-' : ''}${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
}

const jsonable = (v: unknown): unknown =>
  typeof v === 'bigint'
    ? Number(v)
    : Array.isArray(v)
      ? v.map(jsonable)
      : v && typeof v === 'object'
        ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, jsonable(x)]))
        : v;

describe('type mapping', () => {
  it(
    'round-trips every supported Avro type exactly through Kafka and COPY',
    { timeout: 120_000 },
    async () => {
      const samples = fc.sample(rec, { numRuns: 250, seed: 20261121 });
      const base = samples[0]!;
      const records: Rec[] = [...EDGES.map((e) => ({ ...base, ...e })), ...samples].map((r, id) => ({
        ...r,
        id,
      }));
      const type = typeForSchema(SCHEMA as AvroSchema);
      const dir = mkdtempSync(join(tmpdir(), 'pgsink-types-'));
      const schemaFile = join(dir, 'all.avsc');
      writeFileSync(schemaFile, JSON.stringify(SCHEMA));

      const topic = uniqueName('types_t');
      const schema = uniqueName('types_s');
      await pool.query(`CREATE SCHEMA "${schema}"`);
      await createTopic(kafka, topic, 2);
      const producer = await connectedProducer(kafka);
      await producer.send({
        topic,
        messages: records.map((r) => ({
          key: String(r.id),
          value: frame(1, type.toBuffer({ ...r, dec: decimalBytes(r.dec) })),
        })),
      });
      await producer.disconnect();

      const route = routeSchema.parse({
        topic,
        table: `${schema}.all_types`,
        schema: schemaFile,
        autoCreate: true,
      });
      const f = { topic, groupId: uniqueName('types_g'), table: `"${schema}".all_types`, schema, route };
      const p = createPipeline(testConfig(f), { logger: createLogger('error') });
      await p.service.start();
      try {
        await waitFor(
          'all records',
          async () => (await countRows(pool, f.table)) + p.stats.deadLettered,
          (n) => n >= records.length,
        );
      } finally {
        await p.service.stop();
      }
      expect(p.stats.deadLettered).toBe(0);

      const { rows } = await pool.query<Record<string, string | null>>(`
      SELECT id, b::text, i::text, l::text, f::float8::text AS f, d::text, s, encode(by, 'hex') AS by, encode(fx, 'hex') AS fx, e,
             dec::text, u::text, (dt - date '1970-01-01')::text AS dt,
             (extract(epoch from tms) * 1000)::bigint::text AS tms, (extract(epoch from tus) * 1000000)::bigint::text AS tus,
             (extract(epoch from tsm) * 1000)::bigint::text AS tsm, (extract(epoch from tsu) * 1000000)::bigint::text AS tsu,
             (extract(epoch from lts) * 1000000)::bigint::text AS lts, ns, uni::text, rec::text, m::text,
             to_json(ai)::text AS ai, to_json("as")::text AS "as", to_json(an)::text AS an
        FROM ${f.table} ORDER BY id`);
      expect(rows).toHaveLength(records.length);
      const num = (s: string | null | undefined) => Number(s);
      for (const r of records) {
        const row = rows[r.id]!;
        const got = {
          b: row['b'],
          i: row['i'],
          l: row['l'],
          f: Object.is(num(row['f']), r.f) || (Number.isNaN(r.f) && Number.isNaN(num(row['f']))),
          d: Object.is(num(row['d']), r.d),
          s: row['s'],
          by: row['by'],
          fx: row['fx'],
          e: row['e'],
          dec: row['dec'],
          u: row['u'],
          dt: row['dt'],
          tms: row['tms'],
          tus: row['tus'],
          tsm: row['tsm'],
          tsu: row['tsu'],
          lts: row['lts'],
          ns: row['ns'],
          uni: row['uni'] === null ? null : JSON.parse(row['uni']!),
          rec: JSON.parse(row['rec']!),
          m: JSON.parse(row['m']!),
          ai: JSON.parse(row['ai']!),
          as: JSON.parse(row['as']!),
          an: JSON.parse(row['an']!),
        };
        expect({ id: r.id, ...got }).toEqual({
          id: r.id,
          b: String(r.b),
          i: String(r.i),
          l: r.l.toString(),
          f: true,
          d: true,
          s: r.s,
          by: r.by.toString('hex'),
          fx: r.fx.toString('hex'),
          e: r.e,
          dec: expectedDecimal(r.dec, 4),
          u: r.u,
          dt: String(r.dt),
          tms: String(r.tms),
          tus: r.tus.toString(),
          tsm: r.tsm.toString(),
          tsu: r.tsu.toString(),
          lts: r.lts.toString(),
          ns: r.ns,
          uni: jsonable(r.uni),
          rec: r.rec,
          m: jsonable(r.m),
          ai: r.ai,
          as: r.as,
          an: r.an,
        });
      }
    },
  );
});
