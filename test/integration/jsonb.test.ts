// Nested values in jsonb, property-based (issue 13): random schemas of any nested shape —
// records, maps, arrays, unions of null and one type and of three branches or more — with every
// logical type inside (decimals of several precisions and scales, dates, times, timestamps,
// uuids), bytes, fixed, enums and NaN/±Infinity/-0, and random values of them, go through Kafka,
// COPY and jsonb. Each jsonb value is read back as text, parsed keeping every number's digits,
// decoded by the README's mapping (written again here, independently of src/sink/jsonb.ts) and
// compared with the value produced.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { typeForSchema, type AvroSchema } from '../../src/avro/types.ts';
import { frame } from '../../src/avro/wire.ts';
import { decimalBytes } from '../../src/cli/sample-data.ts';
import { routeSchema } from '../../src/config/schema.ts';
import { createPipeline } from '../../src/pipeline/app.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { countRows, testConfig, waitCommittedToEnd } from '../support/pipeline.ts';
import { connectedProducer, createTopic, kafkaClient, pgPool, uniqueName } from '../support/services.ts';

const kafka = kafkaClient();
const pool = pgPool();
afterAll(() => pool.end());

// ------------------------------------------------------------------ schemas

type Schema = string | Schema[] | { [k: string]: unknown };
type Obj = Record<string, unknown>;

const DECIMALS: Schema[] = [
  { type: 'bytes', logicalType: 'decimal', precision: 1, scale: 0 },
  { type: 'bytes', logicalType: 'decimal', precision: 9, scale: 2 },
  { type: 'bytes', logicalType: 'decimal', precision: 18, scale: 6 },
  { type: 'bytes', logicalType: 'decimal', precision: 38, scale: 10 },
  { type: 'bytes', logicalType: 'decimal', precision: 50, scale: 25 },
  { type: 'bytes', logicalType: 'decimal', precision: 20, scale: 20 },
  { type: 'fixed', size: 16, logicalType: 'decimal', precision: 38, scale: 4 },
  { type: 'fixed', size: 3, logicalType: 'decimal', precision: 6, scale: 3 },
  { type: 'fixed', size: 1, logicalType: 'decimal', precision: 2, scale: 1 },
];
const LOGICAL: Schema[] = [
  ...DECIMALS,
  { type: 'int', logicalType: 'date' },
  { type: 'int', logicalType: 'time-millis' },
  { type: 'long', logicalType: 'time-micros' },
  { type: 'long', logicalType: 'timestamp-millis' },
  { type: 'long', logicalType: 'timestamp-micros' },
  { type: 'long', logicalType: 'local-timestamp-millis' },
  { type: 'long', logicalType: 'local-timestamp-micros' },
  { type: 'string', logicalType: 'uuid' },
];
const PRIMITIVE: Schema[] = ['null', 'boolean', 'int', 'long', 'float', 'double', 'string', 'bytes'];
const LEAVES: Schema[] = [
  ...PRIMITIVE,
  ...LOGICAL,
  { type: 'fixed', size: 5 },
  { type: 'enum', symbols: ['A', 'B', 'C'] },
];

const isObj = (s: Schema): s is Obj => typeof s === 'object' && !Array.isArray(s);

/** The name a union branch has in Avro's JSON encoding (and in avsc's wrapped unions). */
function branchName(s: Schema): string {
  if (typeof s === 'string') return s;
  if (Array.isArray(s)) throw new Error('nested union');
  const t = s['type'] as string;
  if (t === 'record' || t === 'enum' || t === 'fixed') return s['name'] as string;
  return t; // a primitive with a logical type: its underlying type; or array / map
}

/** Random schemas of any nested shape (names are given afterwards by named()). */
const schemas = fc.letrec<{
  type: Schema;
  nonUnion: Schema;
  record: Schema;
  array: Schema;
  map: Schema;
  union: Schema;
}>((tie) => ({
  type: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom(...LEAVES),
    tie('record'),
    tie('array'),
    tie('map'),
    tie('union'),
  ),
  nonUnion: fc.oneof(
    { depthSize: 'small' },
    fc.constantFrom(...LEAVES),
    tie('record'),
    tie('array'),
    tie('map'),
  ),
  record: fc.array(tie('type'), { minLength: 1, maxLength: 4 }).map((types) => ({
    type: 'record',
    fields: types.map((type, i) => ({ name: `f${i}`, type })),
  })),
  array: tie('type').map((items) => ({ type: 'array', items })),
  map: tie('type').map((values) => ({ type: 'map', values })),
  union: fc.oneof(
    tie('nonUnion')
      .filter((t) => t !== 'null')
      .chain((t) => fc.constantFrom<Schema>(['null', t], [t, 'null'])),
    // Two to five branches of distinct kinds (named types are told apart by name() below).
    fc.uniqueArray(tie('nonUnion'), {
      minLength: 2,
      maxLength: 5,
      selector: (s) =>
        isObj(s) && ['record', 'enum', 'fixed'].includes(s['type'] as string) ? Math.random() : branchName(s),
    }),
  ),
}));

/** A copy with a unique name for every record, enum and fixed. */
function named(s: Schema, counter = { n: 0 }): Schema {
  if (typeof s === 'string') return s;
  if (Array.isArray(s)) return s.map((b) => named(b, counter));
  const out: Obj = { ...s };
  const t = out['type'];
  if (t === 'record' || t === 'enum' || t === 'fixed') out['name'] = `N${counter.n++}`;
  if (t === 'record')
    out['fields'] = (out['fields'] as Obj[]).map((f) => ({
      ...f,
      type: named(f['type'] as Schema, counter),
    }));
  if (t === 'array') out['items'] = named(out['items'] as Schema, counter);
  if (t === 'map') out['values'] = named(out['values'] as Schema, counter);
  return out;
}

// ------------------------------------------------------------------ values (avsc's form)

const INT64 = { min: -(2n ** 63n), max: 2n ** 63n - 1n };
const text = fc.string({ unit: 'grapheme', maxLength: 10 }).filter((s) => !s.includes('\u0000'));

/** Two's complement of n in `size` bytes, big-endian. */
function fixedDecimal(n: bigint, size: number): Buffer {
  const out = Buffer.alloc(size);
  let v = n < 0n ? (1n << BigInt(size * 8)) + n : n;
  for (let i = size - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

function values(s: Schema): fc.Arbitrary<unknown> {
  if (Array.isArray(s)) {
    const nullPair = s.length === 2 && s.includes('null');
    if (nullPair) return fc.oneof(fc.constant(null), values(s.find((b) => b !== 'null')!));
    return fc.oneof(
      ...s.map((b) => (b === 'null' ? fc.constant(null) : values(b).map((v) => ({ [branchName(b)]: v })))),
    );
  }
  if (typeof s === 'string') return values({ type: s });
  const t = s['type'] as string;
  switch (s['logicalType']) {
    case 'decimal': {
      const p = s['precision'] as number;
      const limit = 10n ** BigInt(p) - 1n;
      const n = fc.oneof(fc.bigInt({ min: -limit, max: limit }), fc.constantFrom(0n, limit, -limit, 1n, -1n));
      return t === 'fixed' ? n.map((v) => fixedDecimal(v, s['size'] as number)) : n.map(decimalBytes);
    }
    case 'date':
      return fc.oneof(
        fc.integer(),
        fc.integer({ min: -800_000, max: 3_000_000 }),
        fc.constantFrom(-719_528, -719_529, 2_932_896, 2_932_897),
      );
    case 'time-millis':
      return fc.integer({ min: 0, max: 86_399_999 });
    case 'time-micros':
      return fc.bigInt({ min: 0n, max: 86_399_999_999n });
    case 'timestamp-millis':
    case 'timestamp-micros':
    case 'local-timestamp-millis':
    case 'local-timestamp-micros':
      return fc.oneof(
        fc.bigInt(INT64),
        fc.bigInt({ min: -62_135_596_800_000_000n, max: 253_402_300_799_999_999n }),
        fc.constantFrom(-1n, 0n, 1n),
      );
    case 'uuid':
      return fc.uuid();
  }
  switch (t) {
    case 'null':
      return fc.constant(null);
    case 'boolean':
      return fc.boolean();
    case 'int':
      return fc.integer();
    case 'long':
      return fc.oneof(fc.bigInt(INT64), fc.constantFrom(INT64.min, INT64.max, 2n ** 53n + 1n));
    case 'float':
      return fc.oneof(fc.float(), fc.constantFrom(Number.NaN, Infinity, -Infinity, -0));
    case 'double':
      return fc.oneof(fc.double(), fc.constantFrom(Number.NaN, Infinity, -Infinity, -0, 0.1, 1e21, 5e-324));
    case 'string':
      return fc.oneof(text, fc.constantFrom('NaN', 'Infinity', '-0', '', '"\\\t\n'));
    case 'bytes':
      return fc.uint8Array({ maxLength: 8 }).map((a) => Buffer.from(a));
    case 'fixed': {
      const size = s['size'] as number;
      return fc.uint8Array({ minLength: size, maxLength: size }).map((a) => Buffer.from(a));
    }
    case 'enum':
      return fc.constantFrom(...(s['symbols'] as string[]));
    case 'array':
      return fc.array(values(s['items'] as Schema), { maxLength: 3 });
    case 'map':
      return fc
        .uniqueArray(fc.tuple(fc.oneof(text, fc.constant('__proto__')), values(s['values'] as Schema)), {
          maxLength: 3,
          selector: ([k]) => k,
        })
        .map((entries) => {
          const m: Obj = {};
          for (const [k, v] of entries)
            Object.defineProperty(m, k, { value: v, enumerable: true, writable: true, configurable: true });
          return m;
        });
    case 'record':
      return fc
        .tuple(...(s['fields'] as Obj[]).map((f) => values(f['type'] as Schema)))
        .map((vs) => Object.fromEntries((s['fields'] as Obj[]).map((f, i) => [f['name'] as string, vs[i]])));
  }
  throw new Error(`no values for ${JSON.stringify(s)}`);
}

// ------------------------------------------------------------------ the README's mapping, read back

/** A JSON number with its digits as written (JSON.parse's source text access). */
class Num {
  readonly source: string;
  constructor(source: string) {
    this.source = source;
  }
}
type Reviver = (this: unknown, key: string, value: unknown, context: { source?: string }) => unknown;
const parseExact = (json: string): unknown =>
  JSON.parse(json, ((_k, v, ctx) => (typeof v === 'number' ? new Num(ctx.source!) : v)) as Reviver as never);

const two = (s: string): bigint => BigInt(s);

/** Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
function daysFromCivil(y0: bigint, m: bigint, d: bigint): bigint {
  const y = m <= 2n ? y0 - 1n : y0;
  const era = (y >= 0n ? y : y - 399n) / 400n;
  const yoe = y - era * 400n;
  const doy = (153n * (m > 2n ? m - 3n : m + 9n) + 2n) / 5n + d - 1n;
  const doe = yoe * 365n + yoe / 4n - yoe / 100n + doy;
  return era * 146097n + doe - 719468n;
}

/** 'YYYY-MM-DD', with four-digit years only for 0000..9999 and a sign and six or more digits otherwise. */
function parseDate(s: string): bigint {
  const m = /^(?:(\d{4})|([+-])(\d{6,}))-(\d{2})-(\d{2})$/.exec(s);
  if (!m) throw new Error(`not an ISO date: ${s}`);
  const year = m[1] !== undefined ? two(m[1]) : (m[2] === '-' ? -1n : 1n) * two(m[3]!);
  if (m[1] === undefined && year >= 0n && year <= 9999n)
    throw new Error(`expanded year within 0000..9999: ${s}`);
  return daysFromCivil(year, two(m[4]!), two(m[5]!));
}

function parseTime(s: string, digits: number): bigint {
  const m = new RegExp(`^(\\d{2}):(\\d{2}):(\\d{2})\\.(\\d{${digits}})$`).exec(s);
  if (!m) throw new Error(`not a time with ${digits} fraction digits: ${s}`);
  return ((two(m[1]!) * 60n + two(m[2]!)) * 60n + two(m[3]!)) * 10n ** BigInt(digits) + two(m[4]!);
}

/** A value in a form both sides can be compared in: what it means, not how avsc holds it. */
type Plain = null | boolean | string | Plain[] | { [k: string]: Plain };

function signed(buf: Buffer): bigint {
  let n = 0n;
  for (const b of buf) n = (n << 8n) | BigInt(b);
  return buf.length > 0 && buf[0]! & 0x80 ? n - (1n << BigInt(buf.length * 8)) : n;
}
const floatText = (n: number): string => (Object.is(n, -0) ? '-0' : String(n));

/** The produced value (avsc's form) as Plain. */
function expected(s: Schema, v: unknown): Plain {
  if (Array.isArray(s)) {
    if (v === null) return null;
    if (s.length === 2 && s.includes('null'))
      return expected(
        s.find((b) => b !== 'null')!,
        v,
      );
    const [name, inner] = Object.entries(v as Obj)[0]!;
    return {
      union: name,
      value: expected(
        s.find((b) => b !== 'null' && branchName(b) === name)!,
        inner,
      ),
    };
  }
  if (typeof s === 'string') return expected({ type: s }, v);
  const t = s['type'] as string;
  switch (s['logicalType']) {
    case 'decimal':
      return `${signed(v as Buffer)}e-${s['scale'] as number}`;
    case 'date':
    case 'time-millis':
    case 'time-micros':
    case 'timestamp-millis':
    case 'timestamp-micros':
    case 'local-timestamp-millis':
    case 'local-timestamp-micros':
      return String(v);
    case 'uuid':
      return v as string;
  }
  switch (t) {
    case 'null':
      return null;
    case 'boolean':
    case 'string':
    case 'enum':
      return v as string;
    case 'int':
    case 'long':
      return String(v);
    case 'float':
    case 'double':
      return floatText(v as number);
    case 'bytes':
    case 'fixed':
      return (v as Buffer).toString('hex');
    case 'array':
      return (v as unknown[]).map((x) => expected(s['items'] as Schema, x));
    case 'map':
      return {
        entries: Object.keys(v as Obj)
          .sort()
          .map((k) => [k, expected(s['values'] as Schema, (v as Obj)[k])]),
      };
    case 'record':
      return Object.fromEntries(
        (s['fields'] as Obj[]).map((f) => [
          f['name'] as string,
          expected(f['type'] as Schema, (v as Obj)[f['name'] as string]),
        ]),
      );
  }
  throw new Error(`unexpected ${t}`);
}

/** The jsonb value, read by the README's mapping, as Plain. */
function decoded(s: Schema, j: unknown): Plain {
  if (Array.isArray(s)) {
    if (j === null) return null;
    if (s.length === 2 && s.includes('null'))
      return decoded(
        s.find((b) => b !== 'null')!,
        j,
      );
    const entries = Object.entries(j as Obj);
    expect(entries).toHaveLength(1);
    const [name, inner] = entries[0]!;
    const branch = s.find((b) => b !== 'null' && branchName(b) === name);
    if (branch === undefined) throw new Error(`no branch ${name} in ${JSON.stringify(s)}`);
    return { union: name, value: decoded(branch, inner) };
  }
  if (typeof s === 'string') return decoded({ type: s }, j);
  const t = s['type'] as string;
  const str = (x: unknown): string => {
    if (typeof x !== 'string') throw new Error(`expected a JSON string, got ${JSON.stringify(x)}`);
    return x;
  };
  const num = (x: unknown): string => {
    if (!(x instanceof Num)) throw new Error(`expected a JSON number, got ${JSON.stringify(x)}`);
    return x.source;
  };
  switch (s['logicalType']) {
    case 'decimal': {
      // A number with exactly `scale` fraction digits, every digit of the unscaled value.
      const scale = s['scale'] as number;
      const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(num(j));
      if (!m || (m[3] ?? '').length !== scale)
        throw new Error(`decimal of scale ${scale} written as ${num(j)}`);
      return `${BigInt(`${m[1]}${m[2]}${m[3] ?? ''}`)}e-${scale}`;
    }
    case 'date':
      return String(parseDate(str(j)));
    case 'time-millis':
      return String(parseTime(str(j), 3));
    case 'time-micros':
      return String(parseTime(str(j), 6));
    case 'timestamp-millis':
    case 'timestamp-micros':
    case 'local-timestamp-millis':
    case 'local-timestamp-micros': {
      const logical = s['logicalType'];
      const digits = logical.endsWith('micros') ? 6 : 3;
      const utc = !logical.startsWith('local');
      const m = /^(.+)T(.+?)(Z?)$/.exec(str(j));
      if (!m || (m[3] === 'Z') !== utc) throw new Error(`${logical} written as ${str(j)}`);
      const perDay = 86_400n * 10n ** BigInt(digits);
      return String(parseDate(m[1]!) * perDay + parseTime(m[2]!, digits));
    }
    case 'uuid':
      return str(j);
  }
  switch (t) {
    case 'null':
      expect(j).toBeNull();
      return null;
    case 'boolean':
      expect(typeof j).toBe('boolean');
      return j as boolean;
    case 'string':
    case 'enum':
      return str(j);
    case 'int':
    case 'long':
      return BigInt(num(j)).toString();
    case 'float':
    case 'double':
      if (typeof j === 'string') {
        expect(['NaN', 'Infinity', '-Infinity', '-0']).toContain(j);
        return j;
      }
      return floatText(Number(num(j)));
    case 'bytes':
    case 'fixed': {
      const x = str(j);
      expect(x.startsWith('\\x')).toBe(true);
      return x.slice(2);
    }
    case 'array':
      return (j as unknown[]).map((x) => decoded(s['items'] as Schema, x));
    case 'map':
      return {
        entries: Object.keys(j as Obj)
          .sort()
          .map((k) => [k, decoded(s['values'] as Schema, (j as Obj)[k])]),
      };
    case 'record': {
      const fields = s['fields'] as Obj[];
      expect(Object.keys(j as Obj).sort()).toEqual(fields.map((f) => f['name'] as string).sort());
      return Object.fromEntries(
        fields.map((f) => [
          f['name'] as string,
          decoded(f['type'] as Schema, (j as Obj)[f['name'] as string]),
        ]),
      );
    }
  }
  throw new Error(`unexpected ${t}`);
}

// ------------------------------------------------------------------ the test

describe('nested values in jsonb', () => {
  it(
    'round-trip exactly through Kafka, COPY and jsonb for generated schemas and values',
    { timeout: 180_000 },
    async () => {
      // Fields that cover the issue's list for certain, then random ones; every field lands in
      // jsonb: a record, a map, an array of records, or a union other than null + one type.
      const random = fc.sample(schemas.type, { numRuns: 14, seed: 20261123 });
      const fixedFields: Array<[string, Schema]> = [
        ['decimals', { type: 'record', fields: DECIMALS.map((type, i) => ({ name: `d${i}`, type })) }],
        ['logical', { type: 'record', fields: LOGICAL.map((type, i) => ({ name: `l${i}`, type })) }],
        ['decimal_map', { type: 'map', values: DECIMALS[2]! }],
        [
          'times_in_array',
          {
            type: 'array',
            items: {
              type: 'record',
              fields: LOGICAL.slice(DECIMALS.length).map((type, i) => ({ name: `t${i}`, type })),
            },
          },
        ],
        [
          'u7',
          [
            'null',
            'double',
            'string',
            DECIMALS[3]!,
            { type: 'long', logicalType: 'timestamp-micros' },
            { type: 'enum', symbols: ['X', 'Y'] },
            { type: 'record', fields: [{ name: 'b', type: 'bytes' }] },
          ],
        ],
        ['u3', [{ type: 'int', logicalType: 'date' }, 'float', { type: 'fixed', size: 2 }]],
        ['u2', ['string', 'boolean']],
        [
          'floats',
          {
            type: 'record',
            fields: [
              { name: 'f', type: { type: 'array', items: 'float' } },
              { name: 'd', type: { type: 'map', values: 'double' } },
            ],
          },
        ],
        [
          'nested_unions',
          {
            type: 'map',
            values: {
              type: 'array',
              items: [
                'null',
                'long',
                'string',
                { type: 'bytes', logicalType: 'decimal', precision: 5, scale: 5 },
              ],
            },
          },
        ],
      ];
      const fields: Array<[string, Schema]> = [
        ...fixedFields,
        ...random.map((t, i): [string, Schema] => [
          `r${i}`,
          { type: 'record', fields: [{ name: 'v', type: t }] },
        ]),
      ];
      const top = named({
        type: 'record',
        name: 'Top',
        fields: [{ name: 'id', type: 'int' }, ...fields.map(([name, type]) => ({ name, type }))],
      }) as Obj;
      const topFields = (top['fields'] as Obj[])
        .slice(1)
        .map((f) => [f['name'] as string, f['type'] as Schema] as const);
      const type = typeForSchema(top as AvroSchema);
      const records = fc
        .sample(fc.tuple(...topFields.map(([, s]) => values(s))), { numRuns: 250, seed: 777 })
        .map((vs, id) => ({ id, ...Object.fromEntries(topFields.map(([name], i) => [name, vs[i]])) }));

      const dir = mkdtempSync(join(tmpdir(), 'pgsink-jsonb-'));
      const schemaFile = join(dir, 'top.avsc');
      writeFileSync(schemaFile, JSON.stringify(top));
      const topic = uniqueName('jsonb_t');
      const schema = uniqueName('jsonb_s');
      await pool.query(`CREATE SCHEMA "${schema}"`);
      await createTopic(kafka, topic, 2);
      const producer = await connectedProducer(kafka);
      for (let i = 0; i < records.length; i += 50) {
        await producer.send({
          topic,
          messages: records
            .slice(i, i + 50)
            .map((r) => ({ key: String(r.id), value: frame(1, type.toBuffer(r)) })),
        });
      }
      await producer.disconnect();

      const route = routeSchema.parse({
        topic,
        table: `${schema}.nested`,
        schema: schemaFile,
        autoCreate: true,
      });
      const f = { topic, groupId: uniqueName('jsonb_g'), table: `"${schema}".nested`, schema, route };
      const p = createPipeline(testConfig(f), { logger: createLogger('error') });
      await p.service.start();
      try {
        await waitCommittedToEnd(kafka, f.groupId, topic);
      } finally {
        await p.service.stop();
      }
      expect(p.stats.deadLettered).toBe(0);
      expect(await countRows(pool, f.table)).toBe(records.length);

      const { rows: types } = await pool.query<{ attname: string; type: string }>(
        `SELECT attname, format_type(atttypid, atttypmod) AS type FROM pg_attribute
        WHERE attrelid = $1::regclass AND attnum > 1 AND NOT attisdropped`,
        [f.table],
      );
      expect(new Set(types.map((t) => t.type))).toEqual(new Set(['jsonb']));
      const { rows } = await pool.query<Record<string, string | null>>(
        `SELECT id, ${topFields.map(([name]) => `"${name}"::text`).join(', ')} FROM ${f.table} ORDER BY id`,
      );
      expect(rows).toHaveLength(records.length);
      let compared = 0;
      for (const [i, row] of rows.entries()) {
        const r = records[i] as Record<string, unknown>;
        expect(Number(row['id'])).toBe(r['id']);
        for (const [name, s] of topFields) {
          const text = row[name];
          // A top-level union's null branch is SQL NULL.
          const got = text === null || text === undefined ? null : decoded(s, parseExact(text));
          expect({ id: r['id'], field: name, value: got }).toEqual({
            id: r['id'],
            field: name,
            value: expected(s, r[name]),
          });
          compared++;
        }
      }
      expect(compared).toBe(records.length * topFields.length);
    },
  );
});
