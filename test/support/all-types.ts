// A record schema with every Avro type pgsink maps, random records of it (fast-check) and
// hand-picked edge values: shared by the type-mapping integration test and the unit test that
// checks the direct line encoder against the object path.
import fc from 'fast-check';
import type pg from 'pg';
import { expect } from 'vitest';

export const ALL_TYPES_SCHEMA = {
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

export interface AllTypesRecord {
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
  /** A union of three branches decodes wrapped: { string: … } or { long: … } (src/avro/types.ts). */
  uni: { string: string } | { long: bigint } | null;
  rec: { x: number; y: string };
  m: Record<string, bigint>;
  ai: number[];
  as: string[];
  an: Array<number | null>;
}

export const INT64 = { min: -(2n ** 63n), max: 2n ** 63n - 1n };
// Inside PostgreSQL's timestamp range (4713 BC .. 294276 AD), with margin.
export const TS_US = { min: -210_000_000_000_000_000n, max: 9_000_000_000_000_000_000n };
export const text = fc
  .oneof(
    fc.string({ unit: 'grapheme', maxLength: 12 }),
    fc.string({ unit: 'binary-ascii', maxLength: 12 }),
    fc.constantFrom('', 'é\t\\n\r\n"\'', '𝄞🚀 عربى 中文'),
  )
  .filter((s) => !s.includes('\u0000'));
const finiteDouble = fc.double({ noNaN: true, noDefaultInfinity: true });
export const allTypesRecord: fc.Arbitrary<Omit<AllTypesRecord, 'id'>> = fc.record({
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
  uni: fc.oneof(
    fc.constant(null),
    text.map((s) => ({ string: s })),
    fc.bigInt({ min: -(2n ** 52n), max: 2n ** 52n }).map((l) => ({ long: l })),
  ),
  rec: fc.record({ x: fc.integer(), y: text }),
  m: fc.dictionary(text, fc.bigInt({ min: -(2n ** 52n), max: 2n ** 52n }), { maxKeys: 3 }),
  ai: fc.array(fc.integer(), { maxLength: 5 }),
  as: fc.array(text, { maxLength: 4 }),
  an: fc.array(fc.option(finiteDouble, { nil: null }), { maxLength: 4 }),
});

export const ALL_TYPES_EDGES: Array<Partial<Omit<AllTypesRecord, 'id'>>> = [
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

/**
 * Reads the table a route of ALL_TYPES_SCHEMA wrote and compares every field of every row with
 * the record it came from (by id): exact text for integers, decimals and times, bit-exact floats
 * (NaN, ±Infinity, -0), bytes as hex, JSON for records, unions, maps and arrays.
 */
export async function expectAllTypesLanded(
  pool: pg.Pool,
  table: string,
  records: readonly AllTypesRecord[],
): Promise<void> {
  const { rows } = await pool.query<Record<string, string | null>>(`
  SELECT id, b::text, i::text, l::text, f::float8::text AS f, d::text, s, encode(by, 'hex') AS by, encode(fx, 'hex') AS fx, e,
         dec::text, u::text, (dt - date '1970-01-01')::text AS dt,
         (extract(epoch from tms) * 1000)::bigint::text AS tms, (extract(epoch from tus) * 1000000)::bigint::text AS tus,
         (extract(epoch from tsm) * 1000)::bigint::text AS tsm, (extract(epoch from tsu) * 1000000)::bigint::text AS tsu,
         (extract(epoch from lts) * 1000000)::bigint::text AS lts, ns, uni::text, rec::text, m::text,
         to_json(ai)::text AS ai, to_json("as")::text AS "as", to_json(an)::text AS an
    FROM ${table} ORDER BY id`);
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
}

/** The edge records, then `numRuns` random ones (fast-check, seeded), with ids 0.. in order. */
export function allTypesRecords(numRuns: number, seed: number): AllTypesRecord[] {
  const samples = fc.sample(allTypesRecord, { numRuns, seed });
  const base = samples[0]!;
  return [...ALL_TYPES_EDGES.map((e) => ({ ...base, ...e })), ...samples].map((r, id) => ({ ...r, id }));
}
