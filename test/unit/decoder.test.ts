// RouteDecoder with offline writer schemas (LocalSchemas and in-memory stubs): framing
// errors, unknown ids, schema evolution, and incompatible writers.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RouteDecoder } from '../../src/avro/decoder.ts';
import { LocalSchemas, type WriterSchemas } from '../../src/avro/registry.ts';
import { typeForSchema, type AvroSchema, type AvroType } from '../../src/avro/types.ts';
import { frame } from '../../src/avro/wire.ts';
import { decimalBytes } from '../../src/cli/sample-data.ts';
import { formatDecimal } from '../../src/sink/copy-text.ts';
import { ConfigError, PgsinkError, RecordError } from '../../src/util/errors.ts';

const dir = mkdtempSync(join(tmpdir(), 'pgsink-decoder-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function schemaFile(name: string, schema: unknown): string {
  const path = join(dir, `${name}.avsc`);
  writeFileSync(path, JSON.stringify(schema));
  return path;
}

const user = (fields: unknown[], extra: Record<string, unknown> = {}): AvroSchema =>
  ({ type: 'record', name: 'User', namespace: 'test', fields, ...extra }) as AvroSchema;

const V1 = user([
  { name: 'id', type: 'int' },
  { name: 'name', type: 'string' },
  { name: 'legacy', type: 'string' },
]);
/** Reader: id promoted to long, legacy removed, email added with a default, name renamed. */
const V2 = user([
  { name: 'id', type: 'long' },
  { name: 'full_name', type: 'string', aliases: ['name'] },
  { name: 'email', type: ['null', 'string'], default: null },
  { name: 'score', type: 'double', default: 1.5 },
]);

const v1 = typeForSchema(V1);
const v2 = typeForSchema(V2);

/** An in-memory WriterSchemas that counts loads and can be made to fail. */
class StubWriters implements WriterSchemas {
  readonly loads: number[] = [];
  readonly types = new Map<number, AvroType>();
  failWith: Error | undefined;

  cached(id: number): AvroType | undefined {
    return this.types.get(id);
  }

  async load(id: number): Promise<AvroType> {
    this.loads.push(id);
    if (this.failWith) throw this.failWith;
    const t = this.types.get(id);
    if (!t) throw new RecordError('registry', 'UNKNOWN_SCHEMA_ID', `no ${id}`);
    return t;
  }
}

function syncThrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

async function rejected(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('RouteDecoder: same writer and reader', () => {
  const writers = new LocalSchemas({}, v1);
  const decoder = new RouteDecoder(v1, writers);

  it('decodes a framed value with the reader schema', async () => {
    const value = frame(7, v1.toBuffer({ id: 1, name: 'Ana', legacy: 'x' }));
    await decoder.prepare([value]);
    expect(decoder.decode(value)).toMatchObject({ id: 1, name: 'Ana', legacy: 'x' });
  });

  it('decodes without prepare when the writer is known offline', () => {
    const fresh = new RouteDecoder(v1, new LocalSchemas({}, v1));
    expect(fresh.decode(frame(3, v1.toBuffer({ id: 2, name: 'B', legacy: '' })))).toMatchObject({
      id: 2,
      name: 'B',
    });
  });

  it('rejects a bad magic byte with RecordError BAD_MAGIC_BYTE', async () => {
    const value = Buffer.from([1, 0, 0, 0, 7, 0]);
    await decoder.prepare([value]); // prepare skips it: the record, not the batch, is bad
    const err = syncThrown(() => decoder.decode(value));
    expect(err).toBeInstanceOf(RecordError);
    expect((err as RecordError).code).toBe('BAD_MAGIC_BYTE');
  });

  it('rejects a truncated header with RecordError TRUNCATED_HEADER', async () => {
    const value = Buffer.from([0, 0, 0]);
    await decoder.prepare([value, null]);
    expect((syncThrown(() => decoder.decode(value)) as RecordError).code).toBe('TRUNCATED_HEADER');
  });

  it('rejects a truncated body with RecordError MALFORMED_BODY', () => {
    const full = frame(7, v1.toBuffer({ id: 1, name: 'a long enough name', legacy: 'x' }));
    for (const cut of [5, 6, full.length - 1]) {
      const err = syncThrown(() => decoder.decode(full.subarray(0, cut)));
      expect(err).toBeInstanceOf(RecordError);
      expect((err as RecordError).code).toBe('MALFORMED_BODY');
      expect((err as RecordError).source).toBe('avro');
      expect((err as RecordError).retriable).toBe(false);
      expect((err as RecordError).message).toContain('schema id 7');
    }
  });

  it('rejects trailing bytes after the record with RecordError MALFORMED_BODY', () => {
    const value = frame(
      7,
      Buffer.concat([v1.toBuffer({ id: 1, name: 'a', legacy: 'b' }), Buffer.from([0, 0])]),
    );
    expect((syncThrown(() => decoder.decode(value)) as RecordError).code).toBe('MALFORMED_BODY');
  });

  it('rejects a body that is not Avro at all', () => {
    // The first field is an int: a varint of eleven bytes does not fit in 32 bits.
    const value = frame(7, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]));
    const err = syncThrown(() => decoder.decode(value)) as RecordError;
    expect(err.code).toBe('INT_OUT_OF_RANGE');
    expect(err.message).toBe(
      "Avro body does not decode with schema id 7: field 'id': int varint does not fit in 32 bits",
    );
    expect(
      (syncThrown(() => decoder.decode(frame(7, Buffer.from('not avro at all')))) as RecordError).code,
    ).toBe('MALFORMED_BODY');
  });
});

describe('RouteDecoder: LocalSchemas with a schemaIds map', () => {
  const files = { '1': schemaFile('v1', V1), '2': schemaFile('v2', V2) };
  const writers = new LocalSchemas(files, undefined);

  it('knows only the mapped ids', () => {
    expect(writers.cached(1)?.equals(v1)).toBe(true);
    expect(writers.cached(2)?.equals(v2)).toBe(true);
    expect(writers.cached(3)).toBeUndefined();
  });

  it('an unknown id is a RecordError UNKNOWN_SCHEMA_ID for its records, not for the batch', async () => {
    const decoder = new RouteDecoder(v2, writers);
    const known = frame(1, v1.toBuffer({ id: 5, name: 'n', legacy: 'l' }));
    const unknown = frame(99, v1.toBuffer({ id: 5, name: 'n', legacy: 'l' }));
    await decoder.prepare([known, unknown]);
    expect(decoder.decode(known)).toMatchObject({ id: 5n });
    const err = syncThrown(() => decoder.decode(unknown));
    expect(err).toBeInstanceOf(RecordError);
    expect((err as RecordError).code).toBe('UNKNOWN_SCHEMA_ID');
    expect((err as RecordError).message).toContain('99');
    // And again for the next record with that id.
    expect((syncThrown(() => decoder.decode(unknown)) as RecordError).code).toBe('UNKNOWN_SCHEMA_ID');
  });

  it('LocalSchemas.load rejects an unknown id with RecordError', async () => {
    const err = await rejected(writers.load(42));
    expect(err).toBeInstanceOf(RecordError);
    expect((err as RecordError).code).toBe('UNKNOWN_SCHEMA_ID');
    await expect(writers.load(1)).resolves.toBe(writers.cached(1));
  });

  it('without a map every id is the fallback (reader) schema', async () => {
    const local = new LocalSchemas({}, v1);
    expect(await local.load(123)).toBe(v1);
    expect(local.cached(0)).toBe(v1);
  });

  it('a missing or invalid schema file is a ConfigError at start-up', () => {
    expect(() => new LocalSchemas({ '1': join(dir, 'missing.avsc') }, undefined)).toThrow(ConfigError);
    const bad = join(dir, 'bad.avsc');
    writeFileSync(bad, '{"type": "record", "name": "X", "fields": [{"name": "a", "type": "nope"}]}');
    expect(() => new LocalSchemas({ '1': bad }, undefined)).toThrow(ConfigError);
    const notJson = join(dir, 'not-json.avsc');
    writeFileSync(notJson, '{ nope');
    expect(() => new LocalSchemas({ '1': notJson }, undefined)).toThrow(/not valid JSON/);
  });
});

describe('RouteDecoder: writer → reader evolution', () => {
  const writers = new LocalSchemas({ '1': schemaFile('evo-v1', V1) }, undefined);
  const decoder = new RouteDecoder(v2, writers);
  const value = frame(1, v1.toBuffer({ id: 2_147_483_647, name: 'Grace', legacy: 'dropped' }));

  it('fills an added field from its default', async () => {
    await decoder.prepare([value]);
    const r = decoder.decode(value) as Record<string, unknown>;
    expect(r['email']).toBeNull();
    expect(r['score']).toBe(1.5);
  });

  it('drops a field the reader no longer has', () => {
    const r = decoder.decode(value) as Record<string, unknown>;
    expect(r).not.toHaveProperty('legacy');
    expect(Object.keys(r).sort()).toEqual(['email', 'full_name', 'id', 'score']);
  });

  it('promotes int to long (as a BigInt)', () => {
    const r = decoder.decode(value) as Record<string, unknown>;
    expect(r['id']).toBe(2_147_483_647n);
  });

  it('reads a renamed field through its alias', () => {
    const r = decoder.decode(value) as Record<string, unknown>;
    expect(r['full_name']).toBe('Grace');
  });

  it('promotes int to double and float to double, and string to bytes', async () => {
    const w = typeForSchema(
      user([
        { name: 'a', type: 'int' },
        { name: 'b', type: 'float' },
        { name: 'c', type: 'string' },
      ]),
    );
    const r = typeForSchema(
      user([
        { name: 'a', type: 'double' },
        { name: 'b', type: 'double' },
        { name: 'c', type: 'bytes' },
      ]),
    );
    const stub = new StubWriters();
    stub.types.set(4, w);
    const d = new RouteDecoder(r, stub);
    const v = frame(4, w.toBuffer({ a: -3, b: 0.5, c: 'hi' }));
    await d.prepare([v]);
    expect(d.decode(v)).toMatchObject({ a: -3, b: 0.5, c: Buffer.from('hi') });
  });

  it('promotes a date written as int to a long-based logical reader', async () => {
    const w = typeForSchema(user([{ name: 'at', type: { type: 'int', logicalType: 'date' } }]));
    const r = typeForSchema(user([{ name: 'at', type: 'long' }]));
    const stub = new StubWriters();
    stub.types.set(1, w);
    const d = new RouteDecoder(r, stub);
    const v = frame(1, w.toBuffer({ at: 19_723 }));
    await d.prepare([v]);
    expect(d.decode(v)).toMatchObject({ at: 19_723n });
  });

  it('resolves several writer versions side by side', async () => {
    const v3 = typeForSchema(
      user([
        { name: 'id', type: 'long' },
        { name: 'full_name', type: 'string' },
        { name: 'email', type: ['null', 'string'], default: null },
      ]),
    );
    const stub = new StubWriters();
    stub.types.set(1, v1);
    stub.types.set(3, v3);
    const d = new RouteDecoder(v2, stub);
    const a = frame(1, v1.toBuffer({ id: 1, name: 'a', legacy: '' }));
    const b = frame(3, v3.toBuffer({ id: 9_007_199_254_740_993n, full_name: 'b', email: 'b@x' }));
    await d.prepare([a, b, a, b]);
    expect(d.decode(a)).toMatchObject({ id: 1n, full_name: 'a', email: null, score: 1.5 });
    expect(d.decode(b)).toMatchObject({
      id: 9_007_199_254_740_993n,
      full_name: 'b',
      email: 'b@x',
      score: 1.5,
    });
    expect(stub.loads.sort()).toEqual([1, 3]);
  });
});

describe('RouteDecoder: strict resolution of evolved writers', () => {
  const decoderFor = async (writer: AvroType, reader: AvroType, value: Buffer): Promise<RouteDecoder> => {
    const stub = new StubWriters();
    stub.types.set(1, writer);
    const d = new RouteDecoder(reader, stub);
    await d.prepare([value]);
    return d;
  };

  it('refuses a long or int promoted to double or float when the value would be rounded (INEXACT_PROMOTION)', async () => {
    const w = typeForSchema(
      user([
        { name: 'l', type: 'long' },
        { name: 'i', type: 'int' },
      ]),
    );
    const r = typeForSchema(
      user([
        { name: 'l', type: 'double' },
        { name: 'i', type: 'float' },
      ]),
    );
    const exact = frame(1, w.toBuffer({ l: 2n ** 53n, i: 2 ** 24 }));
    const d = await decoderFor(w, r, exact);
    expect(d.decode(exact)).toMatchObject({ l: 2 ** 53, i: 2 ** 24 });
    for (const [l, i] of [
      [2n ** 53n + 1n, 1],
      [-(2n ** 63n) + 1n, 1],
      [1n, 2 ** 24 + 1],
    ] as const) {
      const err = syncThrown(() => d.decode(frame(1, w.toBuffer({ l, i })))) as RecordError;
      expect(err.code).toBe('INEXACT_PROMOTION');
      expect(err.message).toMatch(/has no exact (double|float) value/);
    }
  });

  it('refuses bytes read as a string when they are not UTF-8 (INVALID_UTF8)', async () => {
    const w = typeForSchema(user([{ name: 'b', type: 'bytes' }]));
    const r = typeForSchema(user([{ name: 'b', type: 'string' }]));
    const ok = frame(1, w.toBuffer({ b: Buffer.from('hé') }));
    const d = await decoderFor(w, r, ok);
    expect(d.decode(ok)).toMatchObject({ b: 'hé' });
    const err = syncThrown(() =>
      d.decode(frame(1, w.toBuffer({ b: Buffer.from([0x61, 0xff]) }))),
    ) as RecordError;
    expect(err.code).toBe('INVALID_UTF8');
  });

  it("resolves a writer's type into the reader union's branch of that type, not into one it would be promoted to", async () => {
    const w = typeForSchema(user([{ name: 'x', type: 'long' }]));
    const r = typeForSchema(user([{ name: 'x', type: ['null', 'double', 'long'] }]));
    const v = frame(1, w.toBuffer({ x: 2n ** 53n + 1n }));
    const d = await decoderFor(w, r, v);
    expect(d.decode(v)).toMatchObject({ x: { long: 2n ** 53n + 1n } });
    // With no long branch, the promotion is taken (and must be exact).
    const r2 = typeForSchema(user([{ name: 'x', type: ['null', 'string', 'double'] }]));
    const small = frame(1, w.toBuffer({ x: 5n }));
    const d2 = await decoderFor(w, r2, small);
    expect(d2.decode(small)).toMatchObject({ x: { double: 5 } });
    expect((syncThrown(() => d2.decode(v)) as RecordError).code).toBe('INEXACT_PROMOTION');
  });

  it("checks the writer's whole body, the fields the reader drops too", async () => {
    const w = typeForSchema(
      user([
        { name: 'keep', type: 'int' },
        { name: 'gone', type: 'boolean' },
      ]),
    );
    const r = typeForSchema(user([{ name: 'keep', type: 'int' }]));
    const good = frame(1, Buffer.from([2, 1]));
    const d = await decoderFor(w, r, good);
    expect(d.decode(good)).toMatchObject({ keep: 1 });
    const err = syncThrown(() => d.decode(frame(1, Buffer.from([2, 7])))) as RecordError;
    expect(err.code).toBe('BOOLEAN_OUT_OF_RANGE');
    expect(err.message).toContain("field 'gone': boolean byte is 7");
  });
});

describe('RouteDecoder: incompatible writers', () => {
  async function incompatible(writer: AvroSchema, reader: AvroSchema): Promise<PgsinkError> {
    const stub = new StubWriters();
    const w = typeForSchema(writer);
    stub.types.set(11, w);
    const d = new RouteDecoder(typeForSchema(reader), stub);
    const err = await rejected(d.prepare([frame(11, Buffer.alloc(0))]));
    expect(err).toBeInstanceOf(PgsinkError);
    expect(err).not.toBeInstanceOf(RecordError);
    return err as PgsinkError;
  }

  it('a type change the reader cannot read is retriable SCHEMA_INCOMPATIBLE (nothing dead-lettered)', async () => {
    const err = await incompatible(
      user([{ name: 'id', type: 'string' }]),
      user([{ name: 'id', type: 'int' }]),
    );
    expect(err.code).toBe('SCHEMA_INCOMPATIBLE');
    expect(err.retriable).toBe(true);
    expect(err.source).toBe('avro');
    expect(err.message).toContain('schema id 11');
  });

  it('a reader field without default that the writer lacks is SCHEMA_INCOMPATIBLE', async () => {
    const err = await incompatible(
      user([{ name: 'id', type: 'int' }]),
      user([
        { name: 'id', type: 'int' },
        { name: 'required', type: 'string' },
      ]),
    );
    expect(err.code).toBe('SCHEMA_INCOMPATIBLE');
  });

  it('long → int narrowing is SCHEMA_INCOMPATIBLE', async () => {
    const err = await incompatible(user([{ name: 'id', type: 'long' }]), user([{ name: 'id', type: 'int' }]));
    expect(err.code).toBe('SCHEMA_INCOMPATIBLE');
  });

  it('a different record name without alias is SCHEMA_INCOMPATIBLE', async () => {
    const err = await incompatible(
      { type: 'record', name: 'Other', fields: [{ name: 'id', type: 'int' }] } as AvroSchema,
      user([{ name: 'id', type: 'int' }]),
    );
    expect(err.code).toBe('SCHEMA_INCOMPATIBLE');
  });

  it('decode() also reports SCHEMA_INCOMPATIBLE when the writer was only cached', () => {
    const stub = new StubWriters();
    stub.types.set(5, typeForSchema(user([{ name: 'id', type: 'string' }])));
    const d = new RouteDecoder(typeForSchema(user([{ name: 'id', type: 'int' }])), stub);
    const err = syncThrown(() => d.decode(frame(5, Buffer.from([2, 0x41]))));
    expect((err as PgsinkError).code).toBe('SCHEMA_INCOMPATIBLE');
    expect((err as PgsinkError).retriable).toBe(true);
  });

  // BUG (src/avro/decoder.ts addWriter + src/avro/logical.ts _resolve): `writer.equals(reader)`
  // compares Parsing Canonical Form, which drops logical types and their attributes, and
  // PassthroughLogicalType._resolve accepts any writer with the same underlying type. So a
  // decimal written with scale 2 is read with the reader's scale 4 (12.34 becomes 0.1234), and
  // timestamp-millis values are read as timestamp-micros (1000× off), silently.
  // Both paths: identical but for the logical attributes (the `equals` shortcut), and with an
  // extra reader field (a real resolver, through PassthroughLogicalType._resolve).
  const withExtra = (fields: unknown[]): unknown[] => [...fields, { name: 'extra', type: 'int', default: 0 }];

  it.each([false, true])(
    'a decimal written with another scale is SCHEMA_INCOMPATIBLE, not silently rescaled (extra field: %s)',
    async (extra) => {
      const field = (scale: number): unknown[] => [
        { name: 'amount', type: { type: 'bytes', logicalType: 'decimal', precision: 10, scale } },
      ];
      const stub = new StubWriters();
      const w = typeForSchema(user(field(2)));
      stub.types.set(1, w);
      const d = new RouteDecoder(typeForSchema(user(extra ? withExtra(field(4)) : field(4))), stub);
      const v = frame(1, w.toBuffer({ amount: decimalBytes(1234n) }));
      let outcome: string;
      try {
        await d.prepare([v]);
        outcome = formatDecimal((d.decode(v) as { amount: Buffer }).amount, 4);
      } catch (err) {
        outcome = (err as PgsinkError).code;
      }
      // Either refused, or read as the writer meant it (12.34); never 0.1234.
      expect(['SCHEMA_INCOMPATIBLE', '12.3400']).toContain(outcome);
    },
  );

  it.each([false, true])(
    'timestamp-millis written, timestamp-micros read, is SCHEMA_INCOMPATIBLE, not 1000× off (extra field: %s)',
    async (extra) => {
      const field = (unit: string): unknown[] => [
        { name: 'at', type: { type: 'long', logicalType: `timestamp-${unit}` } },
      ];
      const stub = new StubWriters();
      const w = typeForSchema(user(field('millis')));
      stub.types.set(1, w);
      const d = new RouteDecoder(
        typeForSchema(user(extra ? withExtra(field('micros')) : field('micros'))),
        stub,
      );
      const v = frame(1, w.toBuffer({ at: 1_700_000_000_000n }));
      let outcome: string;
      try {
        await d.prepare([v]);
        outcome = String((d.decode(v) as { at: bigint }).at);
      } catch (err) {
        outcome = (err as PgsinkError).code;
      }
      expect(['SCHEMA_INCOMPATIBLE', '1700000000000000']).toContain(outcome);
    },
  );

  it('a plain long writer read as timestamp-millis is fine (the reader gives the meaning)', async () => {
    const stub = new StubWriters();
    const w = typeForSchema(user([{ name: 'at', type: 'long' }]));
    stub.types.set(1, w);
    const d = new RouteDecoder(
      typeForSchema(user([{ name: 'at', type: { type: 'long', logicalType: 'timestamp-millis' } }])),
      stub,
    );
    const v = frame(1, w.toBuffer({ at: 1_700_000_000_000n }));
    await d.prepare([v]);
    expect(d.decode(v)).toMatchObject({ at: 1_700_000_000_000 });
  });
});

describe('RouteDecoder: prepare', () => {
  it('loads each id once, however many values carry it', async () => {
    const stub = new StubWriters();
    stub.types.set(1, v1);
    stub.types.set(2, v1);
    const d = new RouteDecoder(v1, stub);
    const a = frame(1, v1.toBuffer({ id: 1, name: 'a', legacy: '' }));
    const b = frame(2, v1.toBuffer({ id: 2, name: 'b', legacy: '' }));
    await d.prepare([a, b, a, a, b, null]);
    await d.prepare([a, b]);
    expect(stub.loads.sort()).toEqual([1, 2]);
    expect(d.decode(b)).toMatchObject({ id: 2 });
  });

  it('remembers an unknown id: it is not looked up again', async () => {
    const stub = new StubWriters();
    const d = new RouteDecoder(v1, stub);
    const v = frame(8, Buffer.alloc(0));
    await d.prepare([v]);
    await d.prepare([v]);
    expect(stub.loads).toEqual([8]);
    expect((syncThrown(() => d.decode(v)) as RecordError).code).toBe('UNKNOWN_SCHEMA_ID');
  });

  it('a retriable load failure fails prepare, and the next prepare tries again', async () => {
    const stub = new StubWriters();
    stub.types.set(1, v1);
    stub.failWith = new PgsinkError('registry', 'down', { code: 'REGISTRY_UNREACHABLE', retriable: true });
    const d = new RouteDecoder(v1, stub);
    const v = frame(1, v1.toBuffer({ id: 1, name: 'a', legacy: '' }));
    const err = await rejected(d.prepare([v]));
    expect((err as PgsinkError).retriable).toBe(true);
    stub.failWith = undefined;
    await d.prepare([v]);
    expect(stub.loads).toEqual([1, 1]);
    expect(d.decode(v)).toMatchObject({ id: 1 });
  });

  it('skips values that cannot carry an id (null, short, wrong magic) without loading', async () => {
    const stub = new StubWriters();
    const d = new RouteDecoder(v1, stub);
    await d.prepare([null, Buffer.from([0, 1]), Buffer.from([9, 0, 0, 0, 1])]);
    expect(stub.loads).toEqual([]);
  });

  it('decode of an id that was never prepared nor cached is an internal error', () => {
    const d = new RouteDecoder(v1, new StubWriters());
    expect(() => d.decode(frame(77, Buffer.alloc(0)))).toThrow(/before prepare/);
  });
});
