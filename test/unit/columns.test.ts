// buildColumnPlan: Avro reader schema + route → column list, Postgres types and the exact
// COPY text line of a record. Records are round-tripped through avsc first so the values
// have exactly the shapes the decoder produces (BigInt longs, Buffers, unwrapped unions).
import { describe, expect, it } from 'vitest';
import { typeForSchema, type AvroSchema, type AvroType } from '../../src/avro/types.ts';
import { decimalBytes } from '../../src/cli/sample-data.ts';
import { routeSchema, type RouteConfig } from '../../src/config/schema.ts';
import {
  assertRecordValue,
  buildColumnPlan,
  quoteIdent,
  quoteQualified,
  type RecordMeta,
} from '../../src/sink/columns.ts';
import { buildUpsertPlan, deleteLine } from '../../src/sink/upsert.ts';
import { ConfigError, RecordError } from '../../src/util/errors.ts';

const route = (r: Record<string, unknown> = {}): RouteConfig =>
  routeSchema.parse({ topic: 'events', table: 'public.events', schema: 'events.avsc', ...r });

const meta = (m: Partial<RecordMeta> = {}): RecordMeta => ({
  topic: 'events',
  partition: 3,
  offset: 42,
  timestamp: '1700000000123',
  key: Buffer.from('k-1'),
  ...m,
});

const record = (fields: unknown[]): AvroSchema =>
  ({ type: 'record', name: 'Event', namespace: 'test', fields }) as AvroSchema;

/** The value exactly as the decoder hands it over. */
function decoded(type: AvroType, value: Record<string, unknown>): Record<string, unknown> {
  return type.fromBuffer(type.toBuffer(value)) as Record<string, unknown>;
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

// One field per supported shape: [name, Avro type, value, expected COPY field, expected pgType].
const CASES: Array<[string, unknown, unknown, string, string]> = [
  ['b', 'boolean', true, 't', 'boolean NOT NULL'],
  ['b_false', 'boolean', false, 'f', 'boolean NOT NULL'],
  ['i', 'int', -2_147_483_648, '-2147483648', 'integer NOT NULL'],
  ['f', 'float', 1.5, '1.5', 'real NOT NULL'],
  ['d', 'double', -0, '-0', 'double precision NOT NULL'],
  ['d_nan', 'double', Number.NaN, 'NaN', 'double precision NOT NULL'],
  ['d_inf', 'double', -Infinity, '-Infinity', 'double precision NOT NULL'],
  ['s', 'string', 'tab\there\nnew\\line', 'tab\\there\\nnew\\\\line', 'text NOT NULL'],
  ['by', 'bytes', Buffer.from([0x00, 0x0a, 0xff]), '\\\\x000aff', 'bytea NOT NULL'],
  ['fx', { type: 'fixed', name: 'Two', size: 2 }, Buffer.from([0xab, 0xcd]), '\\\\xabcd', 'bytea NOT NULL'],
  ['e', { type: 'enum', name: 'Colour', symbols: ['RED', 'GREEN'] }, 'GREEN', 'GREEN', 'text NOT NULL'],
  [
    'dec',
    { type: 'bytes', logicalType: 'decimal', precision: 10, scale: 2 },
    decimalBytes(-1234n),
    '-12.34',
    'numeric(10,2) NOT NULL',
  ],
  [
    'dec_fixed',
    { type: 'fixed', name: 'Dec8', size: 8, logicalType: 'decimal', precision: 18, scale: 4 },
    Buffer.from([0, 0, 0, 0, 0, 0, 0x30, 0x39]),
    '1.2345',
    'numeric(18,4) NOT NULL',
  ],
  [
    'u',
    { type: 'string', logicalType: 'uuid' },
    '0b9e2a4c-7d1f-4c3b-a2e1-9f8d7c6b5a40',
    '0b9e2a4c-7d1f-4c3b-a2e1-9f8d7c6b5a40',
    'uuid NOT NULL',
  ],
  ['dt', { type: 'int', logicalType: 'date' }, 19_723, '2024-01-01', 'date NOT NULL'],
  ['dt_bc', { type: 'int', logicalType: 'date' }, -719_163, '0001-12-31 BC', 'date NOT NULL'],
  ['tm', { type: 'int', logicalType: 'time-millis' }, 45_296_789, '12:34:56.789', 'time(3) NOT NULL'],
  [
    'tu',
    { type: 'long', logicalType: 'time-micros' },
    45_296_789_012n,
    '12:34:56.789012',
    'time(6) NOT NULL',
  ],
  [
    'tsm',
    { type: 'long', logicalType: 'timestamp-millis' },
    1_700_000_000_123n,
    '2023-11-14 22:13:20.123+00',
    'timestamptz NOT NULL',
  ],
  [
    'tsu',
    { type: 'long', logicalType: 'timestamp-micros' },
    1_700_000_000_123_456n,
    '2023-11-14 22:13:20.123456+00',
    'timestamptz NOT NULL',
  ],
  [
    'ltm',
    { type: 'long', logicalType: 'local-timestamp-millis' },
    -1n,
    '1969-12-31 23:59:59.999',
    'timestamp NOT NULL',
  ],
  [
    'ltu',
    { type: 'long', logicalType: 'local-timestamp-micros' },
    253_402_300_799_999_999n,
    '9999-12-31 23:59:59.999999',
    'timestamp NOT NULL',
  ],
  ['ns', ['null', 'string'], 'x', 'x', 'text'],
  ['ns_null', ['null', 'string'], null, '\\N', 'text'],
  ['sn', ['string', 'null'], 'second branch null', 'second branch null', 'text'],
  [
    'nts',
    ['null', { type: 'long', logicalType: 'timestamp-micros' }],
    0n,
    '1970-01-01 00:00:00.000000+00',
    'timestamptz',
  ],
  [
    'ndec',
    ['null', { type: 'bytes', logicalType: 'decimal', precision: 5, scale: 1 }],
    decimalBytes(5n),
    '0.5',
    'numeric(5,1)',
  ],
  // Every union but null + one type is {"<branch>": value} (src/avro/types.ts, src/sink/jsonb.ts).
  ['multi_s', ['null', 'string', 'int'], { string: 'a\tb' }, '{"string":"a\\\\tb"}', 'jsonb'],
  ['multi_i', ['null', 'string', 'int'], { int: 7 }, '{"int":7}', 'jsonb'],
  ['multi_null', ['null', 'string', 'int'], null, '\\N', 'jsonb'],
  ['multi_nn', ['string', 'boolean'], { boolean: true }, '{"boolean":true}', 'jsonb NOT NULL'],
  ['single', ['long'], { long: 3n }, '{"long":3}', 'jsonb NOT NULL'],
  [
    'rec',
    {
      type: 'record',
      name: 'Inner',
      fields: [
        { name: 'x', type: 'int' },
        { name: 'big', type: 'long' },
        { name: 'raw', type: 'bytes' },
      ],
    },
    { x: 1, big: 9_223_372_036_854_775_807n, raw: Buffer.from([1]) },
    '{"x":1,"big":9223372036854775807,"raw":"\\\\\\\\x01"}',
    'jsonb NOT NULL',
  ],
  ['mp', { type: 'map', values: 'long' }, { a: 1n, 'b\nc': 2n }, '{"a":1,"b\\\\nc":2}', 'jsonb NOT NULL'],
  ['ai', { type: 'array', items: 'int' }, [1, -2, 3], '{"1","-2","3"}', 'integer[] NOT NULL'],
  ['ai_empty', { type: 'array', items: 'int' }, [], '{}', 'integer[] NOT NULL'],
  ['abool', { type: 'array', items: 'boolean' }, [true, false], '{"t","f"}', 'boolean[] NOT NULL'],
  [
    'adbl',
    { type: 'array', items: 'double' },
    [Number.NaN, 0.5],
    '{"NaN","0.5"}',
    'double precision[] NOT NULL',
  ],
  // Element escaping ('"' → '\"', '\' → '\\') and then COPY escaping (every '\' doubled, TAB → \t).
  [
    'as',
    { type: 'array', items: 'string' },
    ['a"b', 'c\\d', 'e\tf'],
    '{"a\\\\"b","c\\\\\\\\d","e\\tf"}',
    'text[] NOT NULL',
  ],
  ['an', { type: 'array', items: ['null', 'string'] }, ['x', null], '{"x",NULL}', 'text[] NOT NULL'],
  [
    'abytes',
    { type: 'array', items: 'bytes' },
    [Buffer.from([0xbe, 0xef])],
    '{"\\\\\\\\xbeef"}',
    'bytea[] NOT NULL',
  ],
  [
    'aenum',
    { type: 'array', items: { type: 'enum', name: 'E2', symbols: ['A', 'B'] } },
    ['B', 'A'],
    '{"B","A"}',
    'text[] NOT NULL',
  ],
  [
    'adec',
    { type: 'array', items: { type: 'bytes', logicalType: 'decimal', precision: 6, scale: 3 } },
    [decimalBytes(-5n), decimalBytes(123456n)],
    '{"-0.005","123.456"}',
    'numeric(6,3)[] NOT NULL',
  ],
  [
    'ats',
    { type: 'array', items: { type: 'long', logicalType: 'timestamp-micros' } },
    [1n],
    '{"1970-01-01 00:00:00.000001+00"}',
    'timestamptz[] NOT NULL',
  ],
  [
    'adate',
    { type: 'array', items: { type: 'int', logicalType: 'date' } },
    [0],
    '{"1970-01-01"}',
    'date[] NOT NULL',
  ],
  [
    'auuid',
    { type: 'array', items: { type: 'string', logicalType: 'uuid' } },
    ['00000000-0000-0000-0000-000000000001'],
    '{"00000000-0000-0000-0000-000000000001"}',
    'uuid[] NOT NULL',
  ],
  [
    'arec',
    { type: 'array', items: { type: 'record', name: 'Item', fields: [{ name: 'n', type: 'int' }] } },
    [{ n: 1 }, { n: 2 }],
    '[{"n":1},{"n":2}]',
    'jsonb NOT NULL',
  ],
  [
    'aa',
    { type: 'array', items: { type: 'array', items: 'int' } },
    [[1], [2, 3]],
    '[[1],[2,3]]',
    'jsonb NOT NULL',
  ],
  [
    'amulti',
    { type: 'array', items: ['null', 'string', 'int'] },
    [{ string: 'a' }, { int: 1 }, null],
    '[{"string":"a"},{"int":1},null]',
    'jsonb NOT NULL',
  ],
  ['nai', ['null', { type: 'array', items: 'int' }], [4], '{"4"}', 'integer[]'],
  ['nai_null', ['null', { type: 'array', items: 'int' }], null, '\\N', 'integer[]'],
  ['nmap', ['null', { type: 'map', values: 'string' }], { k: 'v' }, '{"k":"v"}', 'jsonb'],
];

describe('buildColumnPlan: every supported type', () => {
  const type = typeForSchema(record(CASES.map(([name, t]) => ({ name, type: t }))));
  const value = Object.fromEntries(CASES.map(([name, , v]) => [name, v]));
  const plan = buildColumnPlan(type, route());

  it('has one column per field, in field order', () => {
    expect(plan.columns).toEqual(CASES.map(([name]) => name));
  });

  it.each(CASES.map(([name, , , , pgType], i) => [name, pgType, i] as const))(
    '%s has pgType %s',
    (_name, pgType, i) => {
      expect(plan.pgTypes[i]).toBe(pgType);
    },
  );

  it.each(CASES.map(([name, , , text], i) => [name, text, i] as const))(
    '%s is encoded as %s',
    (_name, text, i) => {
      const fields = plan.encode(decoded(type, value), meta()).slice(0, -1).split('\t');
      expect(fields).toHaveLength(CASES.length);
      expect(fields[i]).toBe(text);
    },
  );

  it('writes one line: fields joined by TAB, ended by LF, with no other raw TAB or LF', () => {
    const line = plan.encode(decoded(type, value), meta());
    expect(line.endsWith('\n')).toBe(true);
    expect(line.indexOf('\n')).toBe(line.length - 1);
    expect(line.split('\t')).toHaveLength(CASES.length);
    expect(line).toBe(`${CASES.map(([, , , text]) => text).join('\t')}\n`);
  });
});

describe('buildColumnPlan: a realistic schema, exact lines', () => {
  const type = typeForSchema(
    record([
      { name: 'id', type: 'int' },
      { name: 'name', type: 'string' },
      { name: 'price', type: { type: 'bytes', logicalType: 'decimal', precision: 12, scale: 2 } },
      { name: 'at', type: { type: 'long', logicalType: 'timestamp-millis' } },
      { name: 'tags', type: { type: 'array', items: 'string' } },
      { name: 'note', type: ['null', 'string'], default: null },
    ]),
  );

  it('encodes two records', () => {
    const plan = buildColumnPlan(type, route());
    expect(plan.columns).toEqual(['id', 'name', 'price', 'at', 'tags', 'note']);
    expect(plan.pgTypes).toEqual([
      'integer NOT NULL',
      'text NOT NULL',
      'numeric(12,2) NOT NULL',
      'timestamptz NOT NULL',
      'text[] NOT NULL',
      'text',
    ]);
    const a = decoded(type, {
      id: 1,
      name: 'Ana',
      price: decimalBytes(1999n),
      at: 0n,
      tags: ['x', 'y z'],
      note: null,
    });
    const b = decoded(type, {
      id: 2,
      name: 'B\\o\tb',
      price: decimalBytes(-5n),
      at: -1n,
      tags: [],
      note: 'line1\nline2',
    });
    expect(plan.encode(a, meta())).toBe('1\tAna\t19.99\t1970-01-01 00:00:00.000+00\t{"x","y z"}\t\\N\n');
    expect(plan.encode(b, meta())).toBe(
      '2\tB\\\\o\\tb\t-0.05\t1969-12-31 23:59:59.999+00\t{}\tline1\\nline2\n',
    );
  });

  it('renames columns and excludes fields', () => {
    const plan = buildColumnPlan(
      type,
      route({ columns: { id: 'order_id', at: 'created_at' }, exclude: ['tags', 'note'] }),
    );
    expect(plan.columns).toEqual(['order_id', 'name', 'price', 'created_at']);
    expect(plan.pgTypes).toEqual([
      'integer NOT NULL',
      'text NOT NULL',
      'numeric(12,2) NOT NULL',
      'timestamptz NOT NULL',
    ]);
    const v = decoded(type, {
      id: 7,
      name: 'n',
      price: decimalBytes(100n),
      at: 1_000n,
      tags: ['t'],
      note: 'x',
    });
    expect(plan.encode(v, meta())).toBe('7\tn\t1.00\t1970-01-01 00:00:01.000+00\n');
  });

  it('appends metadata columns after the fields, in a fixed order', () => {
    const plan = buildColumnPlan(
      type,
      route({
        exclude: ['tags', 'note', 'price', 'at'],
        metadata: {
          key: '_key',
          timestamp: '_ts',
          offset: '_offset',
          partition: '_partition',
          topic: '_topic',
        },
      }),
    );
    expect(plan.columns).toEqual(['id', 'name', '_topic', '_partition', '_offset', '_ts', '_key']);
    expect(plan.pgTypes).toEqual([
      'integer NOT NULL',
      'text NOT NULL',
      'text NOT NULL',
      'integer NOT NULL',
      'bigint NOT NULL',
      'timestamptz',
      'text',
    ]);
    const v = decoded(type, { id: 1, name: 'a', price: decimalBytes(0n), at: 0n, tags: [], note: null });
    expect(plan.encode(v, meta())).toBe('1\ta\tevents\t3\t42\t2023-11-14 22:13:20.123+00\tk-1\n');
    expect(
      plan.encode(v, meta({ key: null, topic: 'we\tird', timestamp: '0', offset: 0, partition: 0 })),
    ).toBe('1\ta\twe\\tird\t0\t0\t1970-01-01 00:00:00.000+00\t\\N\n');
    expect(plan.encode(v, meta({ key: Buffer.from('a\\b\nc') }))).toMatch(/\ta\\\\b\\nc\n$/);
  });

  it('writes only the metadata columns that are configured', () => {
    const plan = buildColumnPlan(
      type,
      route({ exclude: ['name', 'price', 'at', 'tags', 'note'], metadata: { offset: 'kafka_offset' } }),
    );
    expect(plan.columns).toEqual(['id', 'kafka_offset']);
    const v = decoded(type, { id: 9, name: '', price: decimalBytes(0n), at: 0n, tags: [], note: null });
    expect(plan.encode(v, meta({ offset: 123_456_789_012 }))).toBe('9\t123456789012\n');
  });

  it('writes a missing or undefined field as NULL', () => {
    const plan = buildColumnPlan(type, route({ exclude: ['tags'] }));
    expect(plan.encode({ id: 1 }, meta())).toBe('1\t\\N\t\\N\t\\N\t\\N\n');
  });
});

describe('buildColumnPlan: long fields', () => {
  // avsc's LongType.__with (the BigInt long of src/avro/types.ts) has typeName
  // 'abstract:long', not 'long'.
  const type = typeForSchema(
    record([
      { name: 'l', type: 'long' },
      { name: 'nl', type: ['null', 'long'] },
      { name: 'al', type: { type: 'array', items: 'long' } },
      { name: 'anl', type: { type: 'array', items: ['null', 'long'] } },
    ]),
  );
  const plan = buildColumnPlan(type, route());
  const max = 9_223_372_036_854_775_807n;
  const min = -9_223_372_036_854_775_808n;

  it('writes long values exactly, beyond 2^53', () => {
    const line = plan.encode(decoded(type, { l: min, nl: 9_007_199_254_740_993n, al: [], anl: [] }), meta());
    expect(line.split('\t').slice(0, 2)).toEqual(['-9223372036854775808', '9007199254740993']);
    expect(
      plan
        .encode(decoded(type, { l: max, nl: null, al: [], anl: [] }), meta())
        .split('\t')
        .slice(0, 2),
    ).toEqual(['9223372036854775807', '\\N']);
  });

  // BUG (src/sink/columns.ts primitiveEncoder, `case 'long'`): never matches the BigInt long
  // ('abstract:long'), so long columns fall to the default branch and are typed jsonb.
  it('a long field is a bigint column', () => {
    expect(plan.pgTypes.slice(0, 2)).toEqual(['bigint NOT NULL', 'bigint']);
  });

  // Same bug: an array of longs has no element encoder, so it is written as JSON ('[1,2]'),
  // which Postgres rejects for a bigint[] column (malformed array literal).
  it('an array of longs is a bigint[] column', () => {
    expect(plan.pgTypes.slice(2)).toEqual(['bigint[] NOT NULL', 'bigint[] NOT NULL']);
  });

  it('an array of longs is written as a Postgres array literal', () => {
    const line = plan.encode(decoded(type, { l: 0n, nl: null, al: [1n, max], anl: [min, null] }), meta());
    expect(line.slice(0, -1).split('\t').slice(2)).toEqual([
      '{"1","9223372036854775807"}',
      '{"-9223372036854775808",NULL}',
    ]);
  });
});

describe('buildColumnPlan: record-level errors', () => {
  const type = typeForSchema(
    record([
      { name: 's', type: 'string' },
      { name: 'tags', type: { type: 'array', items: 'string' } },
    ]),
  );
  const plan = buildColumnPlan(type, route({ metadata: { key: '_key' } }));

  it('a NUL in a string field is a RecordError NUL_IN_STRING', () => {
    const err = thrown(() => plan.encode({ s: 'a\0b', tags: [] }, meta()));
    expect(err).toBeInstanceOf(RecordError);
    expect((err as RecordError).code).toBe('NUL_IN_STRING');
  });

  it('a NUL in an array element is a RecordError NUL_IN_STRING', () => {
    const err = thrown(() => plan.encode({ s: 'ok', tags: ['x\0'] }, meta()));
    expect((err as RecordError).code).toBe('NUL_IN_STRING');
  });

  it('a NUL in the Kafka key is a RecordError NUL_IN_STRING', () => {
    const err = thrown(() => plan.encode({ s: 'ok', tags: [] }, meta({ key: Buffer.from([0x61, 0x00]) })));
    expect((err as RecordError).code).toBe('NUL_IN_STRING');
  });
});

describe('buildColumnPlan: configuration errors', () => {
  const type = typeForSchema(
    record([
      { name: 'a', type: 'int' },
      { name: 'b', type: 'string' },
    ]),
  );

  it('rejects an unknown field in columns, naming it and the known fields', () => {
    const err = thrown(() => buildColumnPlan(type, route({ columns: { nope: 'x' } })));
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain("'nope'");
    expect((err as Error).message).toContain('a, b');
    expect((err as Error).message).toContain('events');
  });

  it('rejects an unknown field in exclude', () => {
    const err = thrown(() => buildColumnPlan(type, route({ exclude: ['ghost'] })));
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain("'ghost'");
  });

  it('rejects two fields mapped to one column', () => {
    const err = thrown(() => buildColumnPlan(type, route({ columns: { a: 'b' } })));
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain("two fields map to column 'b'");
  });

  it('allows swapping two column names', () => {
    const plan = buildColumnPlan(type, route({ columns: { a: 'b', b: 'a' } }));
    expect(plan.columns).toEqual(['b', 'a']);
  });

  it('allows renaming onto an excluded field name', () => {
    const plan = buildColumnPlan(type, route({ columns: { a: 'b' }, exclude: ['b'] }));
    expect(plan.columns).toEqual(['b']);
    expect(plan.pgTypes).toEqual(['integer NOT NULL']);
  });

  it('rejects a metadata column that clashes with a field column', () => {
    const err = thrown(() => buildColumnPlan(type, route({ metadata: { offset: 'a' } })));
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain("'a'");
  });

  it('rejects two metadata columns with one name', () => {
    const err = thrown(() => buildColumnPlan(type, route({ metadata: { topic: 'm', key: 'm' } })));
    expect(err).toBeInstanceOf(ConfigError);
  });

  it('rejects a reader schema that is not a record', () => {
    for (const schema of ['string', { type: 'array', items: 'int' }, ['null', 'string']] as AvroSchema[]) {
      const err = thrown(() => buildColumnPlan(typeForSchema(schema), route()));
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toMatch(/must be an Avro record/);
    }
  });
});

describe('buildColumnPlan: field names that are Object.prototype members', () => {
  // BUG (src/sink/columns.ts, `route.columns[name] ?? name`): route.columns is a plain
  // object, so a field called `constructor`, `toString`, `valueOf`... picks up the
  // inherited function as its "column name".
  it('a field named constructor or toString keeps its own name as the column', () => {
    const type = typeForSchema(
      record([
        { name: 'constructor', type: 'int' },
        { name: 'toString', type: 'string' },
      ]),
    );
    const plan = buildColumnPlan(type, route());
    expect(plan.columns).toEqual(['constructor', 'toString']);
    expect(plan.columns.every((c) => typeof c === 'string')).toBe(true);
  });
});

describe('buildColumnPlan: wrapped unions', () => {
  // avsc (wrapUnions: 'auto') wraps unions it cannot tell apart by JS type, e.g. two records
  // or int and double. They are written as jsonb; a branch `null` makes the column nullable.
  const A = { type: 'record', name: 'A', fields: [{ name: 'x', type: 'int' }] };
  const B = { type: 'record', name: 'B', fields: [{ name: 'y', type: 'string' }] };
  const type = typeForSchema(
    record([
      { name: 'ab', type: ['null', A, B] },
      { name: 'num', type: ['null', 'int', 'double'] },
      { name: 'ab_nn', type: ['A', 'B'] },
    ]),
  );
  const plan = buildColumnPlan(type, route());

  it('writes a wrapped union as jsonb and NULL as \\N', () => {
    // Branches are keyed by full name (the records inherit the namespace 'test').
    expect(plan.encode(decoded(type, { ab: null, num: null, ab_nn: { 'test.A': { x: 2 } } }), meta())).toBe(
      '\\N\t\\N\t{"test.A":{"x":2}}\n',
    );
    const line = plan.encode(
      decoded(type, { ab: { 'test.B': { y: 'q' } }, num: { double: 1.5 }, ab_nn: { 'test.B': { y: '' } } }),
      meta(),
    );
    expect(line).toBe('{"test.B":{"y":"q"}}\t{"double":1.5}\t{"test.B":{"y":""}}\n');
  });

  // BUG (src/sink/columns.ts encoderFor): a WrappedUnionType is not an UnwrappedUnionType, so
  // it falls through to primitiveEncoder and gets nullable = (typeName === 'null') = false:
  // the column is declared NOT NULL although the encoder writes \N for the null branch.
  it('a wrapped union with a null branch is a nullable jsonb column', () => {
    expect(plan.pgTypes).toEqual(['jsonb', 'jsonb', 'jsonb NOT NULL']);
  });
});

describe('buildColumnPlan: nested values in jsonb, one mapping at every depth', () => {
  const Dec = { type: 'bytes', logicalType: 'decimal', precision: 12, scale: 2 };
  const inner = {
    type: 'record',
    name: 'Inner',
    fields: [
      { name: 'dec', type: Dec },
      {
        name: 'dec0',
        type: { type: 'fixed', name: 'D4', size: 4, logicalType: 'decimal', precision: 9, scale: 0 },
      },
      { name: 'dt', type: { type: 'int', logicalType: 'date' } },
      { name: 'tms', type: { type: 'int', logicalType: 'time-millis' } },
      { name: 'tus', type: { type: 'long', logicalType: 'time-micros' } },
      { name: 'tsm', type: { type: 'long', logicalType: 'timestamp-millis' } },
      { name: 'tsu', type: { type: 'long', logicalType: 'timestamp-micros' } },
      { name: 'ltm', type: { type: 'long', logicalType: 'local-timestamp-millis' } },
      { name: 'ltu', type: { type: 'long', logicalType: 'local-timestamp-micros' } },
      { name: 'u', type: { type: 'string', logicalType: 'uuid' } },
      { name: 'by', type: 'bytes' },
      { name: 'fx', type: { type: 'fixed', name: 'F2', size: 2 } },
      { name: 'e', type: { type: 'enum', name: 'E', symbols: ['A', 'B'] } },
      { name: 'l', type: 'long' },
      { name: 'd', type: { type: 'array', items: 'double' } },
      { name: 'ns', type: ['null', 'string'] },
      { name: 'multi', type: ['null', 'double', 'string', Dec] },
    ],
  };
  const type = typeForSchema(
    record([
      { name: 'rec', type: inner },
      { name: 'm', type: { type: 'map', values: Dec } },
      {
        name: 'arr',
        type: {
          type: 'array',
          items: { type: 'map', values: ['null', { type: 'long', logicalType: 'timestamp-micros' }] },
        },
      },
      { name: 'u3', type: ['null', 'string', { type: 'long', logicalType: 'timestamp-millis' }, Dec] },
    ]),
  );
  const plan = buildColumnPlan(type, route());
  const value = {
    rec: {
      dec: decimalBytes(-4_810_942_237n),
      dec0: Buffer.from([0xff, 0xff, 0xff, 0xfe]),
      dt: -719_529,
      tms: 86_399_999,
      tus: 1n,
      tsm: -1n,
      tsu: 2n ** 63n - 1n,
      ltm: 0n,
      ltu: 253_402_300_800_000_000n,
      u: '0b9e2a4c-7d1f-4c3b-a2e1-9f8d7c6b5a40',
      by: Buffer.from([0, 0xff]),
      fx: Buffer.from([0xab, 0xcd]),
      e: 'B',
      l: -(2n ** 63n),
      d: [Number.NaN, Infinity, -Infinity, -0, 0.1],
      ns: null,
      multi: { double: Number.NaN },
    },
    m: { a: decimalBytes(150n), '': decimalBytes(-5n) },
    arr: [{ t: 0n, n: null }],
    u3: { 'test.Decimal': null },
  };

  it('writes each logical type by the mapping (exact digits and scale, ISO 8601, wrapped unions)', () => {
    const v = { ...value, u3: { string: 'NaN' } };
    const json = plan
      .encode(decoded(type, v), meta())
      .slice(0, -1)
      .split('\t')
      .map((f) => f.replace(/\\\\/g, '\\'));
    expect(plan.pgTypes).toEqual(['jsonb NOT NULL', 'jsonb NOT NULL', 'jsonb NOT NULL', 'jsonb']);
    expect(json[0]).toBe(
      '{"dec":-48109422.37,"dec0":-2,"dt":"-000001-12-31","tms":"23:59:59.999","tus":"00:00:00.000001",' +
        '"tsm":"1969-12-31T23:59:59.999Z","tsu":"+294247-01-10T04:00:54.775807Z","ltm":"1970-01-01T00:00:00.000",' +
        '"ltu":"+010000-01-01T00:00:00.000000","u":"0b9e2a4c-7d1f-4c3b-a2e1-9f8d7c6b5a40","by":"\\\\x00ff",' +
        '"fx":"\\\\xabcd","e":"B","l":-9223372036854775808,"d":["NaN","Infinity","-Infinity","-0",0.1],"ns":null,' +
        '"multi":{"double":"NaN"}}',
    );
    expect(json[1]).toBe('{"a":1.50,"":-0.05}');
    expect(json[2]).toBe('[{"t":"1970-01-01T00:00:00.000000Z","n":null}]');
    // A "NaN" string under the string branch cannot be taken for the double NaN above.
    expect(json[3]).toBe('{"string":"NaN"}');
    const line = plan.encode(decoded(type, { ...v, u3: { bytes: decimalBytes(1n) } }), meta());
    expect(line.slice(0, -1).split('\t')[3]).toBe('{"bytes":0.01}');
    expect(
      plan
        .encode(decoded(type, { ...v, u3: null }), meta())
        .slice(0, -1)
        .split('\t')[3],
    ).toBe('\\N');
  });

  it('keeps a map key "__proto__" as a key', () => {
    const t = typeForSchema(record([{ name: 'm', type: { type: 'map', values: 'int' } }]));
    const key = Buffer.from('__proto__');
    // One block of one entry: key "__proto__" → 5; then the end of the map.
    const body = Buffer.concat([Buffer.from([2, key.length * 2]), key, Buffer.from([10, 0])]);
    expect(buildColumnPlan(t, route()).encode(t.fromBuffer(body) as Record<string, unknown>, meta())).toBe(
      '{"__proto__":5}\n',
    );
  });

  it('refuses a reader schema with a record field named __proto__ (a JS object cannot hold it)', () => {
    const t = typeForSchema(
      record([
        { name: 'r', type: { type: 'record', name: 'P', fields: [{ name: '__proto__', type: 'int' }] } },
      ]),
    );
    expect(thrown(() => buildColumnPlan(t, route()))).toBeInstanceOf(ConfigError);
  });
});

describe('buildColumnPlan: values the reader cannot take exactly (evolved writers)', () => {
  // The validator refuses these in bodies written with the reader schema; values resolved from
  // another writer (a plain int read as time-millis, bytes as decimal) meet the encoders' own check.
  const type = typeForSchema(
    record([
      { name: 't', type: { type: 'int', logicalType: 'time-millis' } },
      { name: 'dec', type: { type: 'bytes', logicalType: 'decimal', precision: 4, scale: 1 } },
      {
        name: 'rec',
        type: {
          type: 'record',
          name: 'R',
          fields: [{ name: 'tu', type: { type: 'long', logicalType: 'time-micros' } }],
        },
      },
      { name: 's', type: 'string' },
    ]),
  );
  const plan = buildColumnPlan(type, route());
  const ok = { t: 0, dec: Buffer.from([1]), rec: { tu: 0 }, s: 'x' };
  it.each([
    ['t', { t: -1 }, 'TIME_OUT_OF_RANGE', "field 't': time-millis -1 is not a time of day"],
    ['t', { t: 86_400_000 }, 'TIME_OUT_OF_RANGE', "field 't': time-millis 86400000"],
    ['dec', { dec: Buffer.alloc(0) }, 'EMPTY_DECIMAL', "field 'dec': decimal has no bytes"],
    ['rec', { rec: { tu: -1 } }, 'TIME_OUT_OF_RANGE', "field 'rec': time-micros -1"],
    ['s', { s: 'a\0' }, 'NUL_IN_STRING', "field 's': string contains a NUL"],
  ] as const)('%s: %s is %s', (_f, patch, code, message) => {
    const err = thrown(() => plan.encode({ ...ok, ...patch }, meta()));
    expect(err).toBeInstanceOf(RecordError);
    expect((err as RecordError).code).toBe(code);
    expect((err as RecordError).message).toContain(message);
  });
});

describe('buildColumnPlan: Kafka metadata written exactly', () => {
  const type = typeForSchema(record([{ name: 'id', type: 'int' }]));
  const text = buildColumnPlan(type, route({ metadata: { timestamp: '_ts', key: '_key' } }));
  const bytea = buildColumnPlan(type, route({ metadata: { key: '_key' } }), { key: 'bytea' });

  it('writes a record without a timestamp (Kafka: -1, or any negative) as NULL', () => {
    expect(text.encode({ id: 1 }, meta({ timestamp: '-1', key: null }))).toBe('1\t\\N\t\\N\n');
    expect(text.encode({ id: 1 }, meta({ timestamp: '-42', key: null }))).toBe('1\t\\N\t\\N\n');
    expect(text.encode({ id: 1 }, meta({ timestamp: '0', key: null }))).toBe(
      '1\t1970-01-01 00:00:00.000+00\t\\N\n',
    );
  });

  it.each([
    ['ff fe 41 c3', 'byte 0 of 4 starts an ill-formed sequence (ff fe 41 c3)'],
    ['61 ed a0 80', 'byte 1 of 4 starts an ill-formed sequence (ed a0 80)'],
    ['c0 80', 'byte 0 of 2 starts an ill-formed sequence (c0 80)'],
  ])('refuses a key that is not UTF-8 (%s) for a text key column: INVALID_UTF8', (hex, detail) => {
    const key = Buffer.from(hex.replace(/ /g, ''), 'hex');
    const err = thrown(() => text.encode({ id: 1 }, meta({ key })));
    expect((err as RecordError).code).toBe('INVALID_UTF8');
    expect((err as RecordError).message).toContain(`the Kafka key is not well-formed UTF-8: ${detail}`);
    // A bytea key column takes any key as it is.
    expect(bytea.encode({ id: 1 }, meta({ key }))).toBe(`1\t\\\\x${key.toString('hex')}\n`);
  });

  it('a tombstone delete takes the key as text under the same rule', () => {
    const plan = buildUpsertPlan(0, 'public.events', ['id'], ['id']);
    expect(deleteLine(plan, Buffer.from('42'), 7)).toBe('42\t7\td\n');
    const err = thrown(() => deleteLine(plan, Buffer.from([0x34, 0xc0, 0x80]), 7));
    expect((err as RecordError).code).toBe('INVALID_UTF8');
    expect((thrown(() => deleteLine(plan, Buffer.from([0x34, 0]), 7)) as RecordError).code).toBe(
      'NUL_IN_STRING',
    );
  });

  it('a bytea key column is typed bytea', () => {
    expect(bytea.pgTypes).toEqual(['integer NOT NULL', 'bytea']);
    expect(bytea.encode({ id: 1 }, meta({ key: null }))).toBe('1\t\\N\n');
  });
});

describe('helpers', () => {
  it('quoteIdent doubles embedded quotes', () => {
    expect(quoteIdent('plain')).toBe('"plain"');
    expect(quoteIdent('we"ird')).toBe('"we""ird"');
    expect(quoteIdent('Mixed Case')).toBe('"Mixed Case"');
  });

  it('quoteQualified quotes each part', () => {
    expect(quoteQualified('events')).toBe('"events"');
    expect(quoteQualified('sales.orders')).toBe('"sales"."orders"');
    expect(quoteQualified('a"b.c')).toBe('"a""b"."c"');
  });

  it('assertRecordValue accepts objects and rejects the rest with NOT_A_RECORD', () => {
    const obj = { a: 1 };
    expect(assertRecordValue(obj)).toBe(obj);
    for (const v of [null, 'x', 1, undefined]) {
      const err = thrown(() => assertRecordValue(v));
      expect(err).toBeInstanceOf(RecordError);
      expect((err as RecordError).code).toBe('NOT_A_RECORD');
    }
  });
});
