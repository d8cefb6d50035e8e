// The direct line encoder (Avro body → COPY line bytes) must write exactly what the object
// path (avsc → JS object → buildColumnPlan → UTF-8) writes, and fail the same records with
// the same codes. Random records of every supported type, invalid UTF-8, every metadata
// column, exclude/rename, upsert staging lines and malformed bodies.
import avro from 'avsc';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RouteDecoder } from '../../src/avro/decoder.ts';
import { LocalSchemas } from '../../src/avro/registry.ts';
import { typeForSchema, type AvroSchema, type AvroType } from '../../src/avro/types.ts';
import { frame } from '../../src/avro/wire.ts';
import { decimalBytes } from '../../src/cli/sample-data.ts';
import { routeSchema, type RouteConfig } from '../../src/config/schema.ts';
import { assertRecordValue, buildColumnPlan, routeColumns, type RecordMeta } from '../../src/sink/columns.ts';
import { buildDirectLineEncoder, LineOverflow } from '../../src/sink/direct-line.ts';
import { upsertLine } from '../../src/sink/upsert.ts';
import { RecordError } from '../../src/util/errors.ts';
import {
  ALL_TYPES_EDGES,
  ALL_TYPES_SCHEMA,
  allTypesRecord,
  type AllTypesRecord,
} from '../support/all-types.ts';

const ALL_META = {
  topic: '_topic',
  partition: '_partition',
  offset: '_offset',
  timestamp: '_ts',
  key: '_key',
};

function route(r: Record<string, unknown> = {}): RouteConfig {
  return routeSchema.parse({ topic: 'events', table: 'public.events', schema: 'all.avsc', ...r });
}

/** Both encoders of one route, as src/pipeline/routes.ts builds them. */
async function encoders(type: AvroType, r: RouteConfig) {
  const decoder = new RouteDecoder(type, new LocalSchemas({}, type));
  await decoder.prepare([frame(1, Buffer.alloc(0))]);
  const plan = buildColumnPlan(type, r);
  const direct = buildDirectLineEncoder(type as avro.types.RecordType, routeColumns(type, r), {
    upsert: r.mode === 'upsert',
  });
  const upsert = r.mode === 'upsert';
  return {
    object(value: Buffer, meta: RecordMeta): Buffer {
      const line = plan.encode(assertRecordValue(decoder.decode(value)), meta);
      return Buffer.from(upsert ? upsertLine(line, meta.offset) : line, 'utf8');
    },
    direct(value: Buffer, meta: RecordMeta, slack = 0): Buffer {
      expect(decoder.writtenWithReader(value)).toBe(true);
      // The line is written into a larger chunk after other lines, as in the arena.
      const at = 7;
      const out = Buffer.alloc(at + direct.maxBytes(value, meta.key) + slack, 0xee);
      const end = direct.encode(value, out, at, meta);
      return Buffer.from(out.subarray(at, end));
    },
  };
}

/** The error a call throws, or undefined. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

const anyMeta: fc.Arbitrary<RecordMeta> = fc.record({
  topic: fc.constantFrom('events', 'orders.v1', 'a-b_c'),
  partition: fc.integer({ min: 0, max: 10_000 }),
  offset: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  timestamp: fc
    .oneof(fc.integer({ min: 0, max: 4_102_444_800_000 }), fc.constantFrom(-1, -62_135_596_800_001))
    .map(String),
  key: fc.option(
    fc.oneof(
      fc.string({ unit: 'grapheme', maxLength: 12 }).map((s) => Buffer.from(s.replace(/\0/g, ''))),
      fc.uint8Array({ maxLength: 12 }).map((a) => Buffer.from(a.filter((b) => b !== 0))),
    ),
    { nil: null },
  ),
});

const allTypes = typeForSchema(ALL_TYPES_SCHEMA as AvroSchema);
const valueOf = (r: Omit<AllTypesRecord, 'id'>, id: number): Buffer =>
  frame(1, allTypes.toBuffer({ ...r, id, dec: decimalBytes(r.dec) }));

describe('direct line encoder', () => {
  const routes: Array<[string, RouteConfig]> = [
    ['every field and every metadata column', route({ metadata: ALL_META })],
    [
      'excluded and renamed fields',
      route({
        exclude: ['s', 'rec', 'tsu'],
        columns: { l: 'long_col', an: 'nums' },
        metadata: { offset: 'o' },
      }),
    ],
    ['upsert staging lines', route({ mode: 'upsert', keyColumns: ['id'], metadata: { key: 'k' } })],
  ];
  it.each(routes)('writes the bytes of the object path: %s', async (_name, r) => {
    const enc = await encoders(allTypes, r);
    const base = fc.sample(allTypesRecord, { numRuns: 1, seed: 1 })[0]!;
    const records = [
      ...ALL_TYPES_EDGES.map((e) => ({ ...base, ...e })),
      ...fc.sample(allTypesRecord, { numRuns: 400, seed: 20261122 }),
    ];
    const metas = fc.sample(anyMeta, { numRuns: records.length, seed: 5 });
    let compared = 0;
    for (const [i, rec] of records.entries()) {
      const value = valueOf(rec, i);
      const meta = metas[i]!;
      const want = enc.object(value, meta);
      expect(enc.direct(value, meta).toString('utf8')).toBe(want.toString('utf8'));
      expect(enc.direct(value, meta).equals(want)).toBe(true);
      compared++;
    }
    expect(compared).toBe(records.length);
  });

  it('writes invalid UTF-8 in strings and keys as avsc decodes it (U+FFFD), escaped alike', async () => {
    // Avro strings and bytes share one encoding: a bytes writer makes arbitrary string bodies.
    const schema = (t: string) =>
      ({
        type: 'record',
        name: 'S',
        fields: [
          { name: 's', type: t },
          { name: 'ns', type: ['null', t] },
        ],
      }) as AvroSchema;
    const reader = typeForSchema(schema('string'));
    const writer = typeForSchema(schema('bytes'));
    const enc = await encoders(reader, route({ metadata: ALL_META }));
    const bytes = fc
      .uint8Array({ maxLength: 24 })
      .map((a) => Buffer.from(a.map((b) => (b === 0 ? 0x5c : b))));
    const samples = fc.sample(fc.tuple(bytes, fc.option(bytes, { nil: null }), bytes), {
      numRuns: 500,
      seed: 3,
    });
    samples.push([
      Buffer.from([0xc3, 0x28, 0x5c, 0x09, 0xe2, 0x82]),
      Buffer.from([0xed, 0xa0, 0x80]),
      Buffer.from([0xff]),
    ]);
    // Boundaries of well-formed UTF-8 (Unicode table 3-7), each alone, mid-string and cut short.
    const sequences = [
      [0x7f],
      [0xc2, 0x80],
      [0xdf, 0xbf],
      [0xc0, 0x80],
      [0xc1, 0xbf],
      [0xe0, 0xa0, 0x80],
      [0xe0, 0x9f, 0xbf],
      [0xed, 0x9f, 0xbf],
      [0xed, 0xa0, 0x80],
      [0xef, 0xbf, 0xbf],
      [0xf0, 0x90, 0x80, 0x80],
      [0xf0, 0x8f, 0xbf, 0xbf],
      [0xf4, 0x8f, 0xbf, 0xbf],
      [0xf4, 0x90, 0x80, 0x80],
      [0xf5, 0x80, 0x80, 0x80],
      [0x80],
      [0xbf],
      [0xfe],
      [0xff],
    ];
    for (const seq of sequences) {
      const b = Buffer.from(seq);
      samples.push([b, Buffer.concat([Buffer.from('a\\'), b, Buffer.from('z')]), b.subarray(0, -1)]);
      samples.push([Buffer.concat([Buffer.from('x'.repeat(60)), b]), null, b]);
    }
    let invalid = 0;
    for (const [s, ns, key] of samples) {
      if (!Buffer.from(s.toString('utf8')).equals(s)) invalid++;
      const value = frame(1, writer.toBuffer({ s, ns }));
      const meta: RecordMeta = { topic: 'events', partition: 1, offset: 2, timestamp: '3', key };
      expect(enc.direct(value, meta).equals(enc.object(value, meta))).toBe(true);
    }
    expect(invalid).toBeGreaterThan(100);
  });

  it('fails the records the object path fails, with the same code', async () => {
    const enc = await encoders(allTypes, route({ metadata: ALL_META }));
    const base = { ...fc.sample(allTypesRecord, { numRuns: 1, seed: 9 })[0]!, ns: 'x' };
    const good = valueOf(base, 1);
    const meta: RecordMeta = { topic: 'events', partition: 0, offset: 1, timestamp: '1', key: null };
    const withNul = valueOf({ ...base, s: 'a\u0000b' }, 1);
    const keyWithNul: RecordMeta = { ...meta, key: Buffer.from([0x61, 0, 0x62]) };
    const cases: Array<[string, Buffer, RecordMeta, string]> = [
      ['NUL in a string', withNul, meta, 'NUL_IN_STRING'],
      ['NUL in the key', good, keyWithNul, 'NUL_IN_STRING'],
      ['truncated body', good.subarray(0, good.length - 3), meta, 'MALFORMED_BODY'],
      ['a body cut after the header', good.subarray(0, 6), meta, 'MALFORMED_BODY'],
      ['trailing data', Buffer.concat([good, Buffer.from([0])]), meta, 'MALFORMED_BODY'],
    ];
    for (const [name, value, m, code] of cases) {
      const a = thrown(() => enc.object(value, m));
      const b = thrown(() => enc.direct(value, m));
      expect({ name, object: (a as RecordError).code, direct: (b as RecordError).code }).toEqual({
        name,
        object: code,
        direct: code,
      });
      expect(b).toBeInstanceOf(RecordError);
      if (code === 'MALFORMED_BODY') expect((b as Error).message).toMatch(/schema id 1: /);
    }
  });

  it('rejects an enum or union index out of range like avsc', async () => {
    const reader = typeForSchema({
      type: 'record',
      name: 'E',
      fields: [
        { name: 'e', type: { type: 'enum', name: 'Abc', symbols: ['A', 'B', 'C'] } },
        { name: 'n', type: ['null', 'long'] },
      ],
    } as AvroSchema);
    const enc = await encoders(reader, route());
    const meta: RecordMeta = { topic: 'events', partition: 0, offset: 1, timestamp: '1', key: null };
    // Zigzag varints: 2 → 1, 6 → 3 (enum index 3 of 3 symbols), 4 → 2 (union branch 2 of 2).
    expect(enc.direct(frame(1, Buffer.from([2, 2, 6])), meta).toString()).toBe('B\t3\n');
    for (const body of [
      [6, 0],
      [2, 4, 2],
    ]) {
      const value = frame(1, Buffer.from(body));
      expect((thrown(() => enc.object(value, meta)) as RecordError).code).toBe('MALFORMED_BODY');
      expect((thrown(() => enc.direct(value, meta)) as RecordError).code).toBe('MALFORMED_BODY');
    }
  });

  it('reports a line that outgrows its reservation instead of writing it short', async () => {
    // An array of nulls takes 1 byte per element in Avro and 5 in the line ("NULL,").
    const enc = await encoders(allTypes, route());
    const base = fc.sample(allTypesRecord, { numRuns: 1, seed: 2 })[0]!;
    const value = valueOf({ ...base, an: new Array<null>(2000).fill(null) }, 1);
    const meta: RecordMeta = { topic: 'events', partition: 0, offset: 1, timestamp: '1', key: null };
    expect(thrown(() => enc.direct(value, meta))).toBeInstanceOf(LineOverflow);
    // With room to spare it is written, equal to the object path.
    expect(enc.direct(value, meta, 16_384).equals(enc.object(value, meta))).toBe(true);
  });
});
