// COPY binary (issue 15) against the real broker and server: binary must store exactly what
// text COPY stores, and refuse exactly what text COPY refuses. Each case is a pair of routes,
// the same records into two identical tables, one route with copyFormat auto (binary, as the
// start-up log says) and one with copyFormat text; every stored value is compared between the
// two (row_to_json and record_send: the stored bytes of every column, NaN bits and numeric
// scale included) and with what was produced, and the dead letters must have the same codes.
// Half of the records are written with an evolved writer schema, so that both the direct path
// (writer = reader) and the object path (avsc) are exercised.
//
// Also: an upsert route in binary (updates, tombstones by the Kafka key as a bigint's text), and
// a table altered while pgsink writes binary into it (int4 → bigint between two rounds).
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { typeForSchema, type AvroSchema } from '../../src/avro/types.ts';
import { frame } from '../../src/avro/wire.ts';
import { decimalBytes } from '../../src/cli/sample-data.ts';
import { routeSchema, type RouteConfig } from '../../src/config/schema.ts';
import { createPipeline, type Pipeline } from '../../src/pipeline/app.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { ALL_TYPES_SCHEMA, allTypesRecords, expectAllTypesLanded } from '../support/all-types.ts';
import { long } from '../support/avro-bodies.ts';
import { testConfig, waitCommittedToEnd, waitFor, type Fixture } from '../support/pipeline.ts';
import { connectedProducer, createTopic, kafkaClient, pgPool, uniqueName } from '../support/services.ts';

const kafka = kafkaClient();
const pool = pgPool();
const running: Pipeline[] = [];
afterEach(async () => {
  for (const p of running.splice(0)) await p.service.stop();
});
afterAll(() => pool.end());

type Schema = { type: 'record'; name: string; fields: Array<{ name: string; type: unknown }> };

/** A record to produce: its key, and its value (a JS record, an Avro body, or a tombstone). */
interface Msg {
  key: string | null;
  value: Record<string, unknown> | { body: Buffer } | null;
}

/** The log lines of a pipeline (pino JSON), to find what it said at start-up. */
class Lines extends Writable {
  readonly all: Array<{ level: string; msg: string }> = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    for (const line of chunk.toString().split('\n')) if (line.trim()) this.all.push(JSON.parse(line));
    done();
  }
  find(re: RegExp): Array<{ level: string; msg: string }> {
    return this.all.filter((l) => re.test(l.msg));
  }
}

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** One route's target: its topic and table. */
interface Target {
  topic: string;
  table: string;
  /** The table as the route names it (schema.table), as the log lines name it. */
  routeTable: string;
}

/** Two routes of one case: copyFormat auto (binary) and text, the same records into each. */
interface Twin {
  name: string;
  binary: Target;
  text: Target;
  schema: string;
  messages: Msg[];
}

const dir = mkdtempSync(join(tmpdir(), 'pgsink-binary-'));

/**
 * The reader schema's file and an evolved writer's (one more string field at the end, which the
 * reader drops): a body of writer id 1 goes the direct path, one of id 2 the object path.
 */
function schemaFiles(name: string, schema: Schema): { reader: string; writer: string } {
  const reader = join(dir, `${name}.avsc`);
  const writer = join(dir, `${name}-v2.avsc`);
  writeFileSync(reader, JSON.stringify(schema));
  writeFileSync(
    writer,
    JSON.stringify({
      ...schema,
      fields: [...schema.fields, { name: 'zz_extra', type: 'string', default: '' }],
    }),
  );
  return { reader, writer };
}

/** The messages as Kafka records: even ones with the reader schema (id 1), odd ones id 2. */
function kafkaMessages(schema: Schema, messages: readonly Msg[]) {
  const v1 = typeForSchema(schema as AvroSchema);
  const v2 = typeForSchema({
    ...schema,
    fields: [...schema.fields, { name: 'zz_extra', type: 'string', default: '' }],
  } as AvroSchema);
  const extra = Buffer.concat([long(5), Buffer.from('extra')]);
  return messages.map((m, i) => {
    let value: Buffer | null = null;
    if (m.value !== null) {
      const odd = i % 2 === 1;
      if ('body' in m.value && Buffer.isBuffer(m.value.body)) {
        value = odd ? frame(2, Buffer.concat([m.value.body, extra])) : frame(1, m.value.body as Buffer);
      } else {
        value = odd
          ? frame(2, v2.toBuffer({ ...m.value, zz_extra: 'extra' }))
          : frame(1, v1.toBuffer(m.value));
      }
    }
    return { key: m.key, value };
  });
}

async function produce(topic: string, schema: Schema, messages: readonly Msg[]): Promise<void> {
  const producer = await connectedProducer(kafka);
  const all = kafkaMessages(schema, messages);
  for (let i = 0; i < all.length; i += 500) {
    await producer.send({ topic, messages: all.slice(i, i + 500) });
  }
  await producer.disconnect();
}

/**
 * A case: its schema (Postgres), two tables made by `ddl` (or by pgsink, autoCreate), two topics
 * with the same records, and the two routes (auto, text).
 */
async function twin(
  name: string,
  avro: Schema,
  ddl: ((table: string, schema: string) => string[]) | undefined,
  messages: Msg[],
  route: Record<string, unknown> = {},
): Promise<{ twin: Twin; routes: RouteConfig[] }> {
  const schema = uniqueName(`bin_${name}`);
  await pool.query(`CREATE SCHEMA "${schema}"`);
  const files = schemaFiles(`${schema}`, avro);
  const make = async (table: string, format: 'auto' | 'text'): Promise<[Target, RouteConfig]> => {
    const topic = uniqueName(`bin_${name}_${format}`);
    await createTopic(kafka, topic, 1);
    if (ddl) for (const sql of ddl(`"${schema}"."${table}"`, `"${schema}"`)) await pool.query(sql);
    const config = routeSchema.parse({
      topic,
      table: `${schema}.${table}`,
      schema: files.reader,
      schemaIds: { '1': files.reader, '2': files.writer },
      copyFormat: format,
      ...(ddl ? {} : { autoCreate: true }),
      ...route,
    });
    return [{ topic, table: `"${schema}"."${table}"`, routeTable: `${schema}.${table}` }, config];
  };
  const [binary, rb] = await make('bin', 'auto');
  const [text, rt] = await make('txt', 'text');
  await produce(binary.topic, avro, messages);
  await produce(text.topic, avro, messages);
  return { twin: { name, binary, text, schema, messages }, routes: [rb, rt] };
}

interface Stored {
  /** Per row (by id): row_to_json, and record_send of the columns (their stored bytes). */
  rows: Array<{ id: string; json: Record<string, unknown>; bytes: string }>;
  dead: Array<{ offset: number; code: string; source: string; message: string }>;
}

async function stored(groupSchema: string, t: Target, columns?: readonly string[]): Promise<Stored> {
  const cols = columns ? columns.map((c) => `t."${c}"`).join(', ') : undefined;
  const { rows } = await pool.query<{ id: string; json: Record<string, unknown>; bytes: string }>(
    `SELECT t.id::text AS id, ${cols ? `json_build_array(${cols})` : 'row_to_json(t)'} AS json,
            encode(record_send(${cols ? `ROW(${cols})` : 't'}), 'hex') AS bytes
       FROM ${t.table} t ORDER BY t.id`,
  );
  const { rows: dead } = await pool.query<{
    offset: string;
    error_code: string;
    error_source: string;
    error_message: string;
  }>(
    `SELECT "offset", error_code, error_source, error_message FROM "${groupSchema}_pgsink".dead_letters
      WHERE topic = $1 ORDER BY "offset"`,
    [t.topic],
  );
  return {
    rows,
    dead: dead.map((d) => ({
      offset: Number(d.offset),
      code: d.error_code,
      source: d.error_source,
      message: d.error_message,
    })),
  };
}

/** Both tables of a case hold the same bytes and the same dead letters (codes); returns binary's. */
async function expectTwinsAlike(groupSchema: string, t: Twin, columns?: readonly string[]): Promise<Stored> {
  const bin = await stored(groupSchema, t.binary, columns);
  const txt = await stored(groupSchema, t.text, columns);
  expect(bin.rows.map((r) => ({ id: r.id, json: r.json }))).toEqual(
    txt.rows.map((r) => ({ id: r.id, json: r.json })),
  );
  expect(bin.rows.map((r) => ({ id: r.id, bytes: r.bytes }))).toEqual(
    txt.rows.map((r) => ({ id: r.id, bytes: r.bytes })),
  );
  expect(bin.dead.map((d) => ({ offset: d.offset, code: d.code }))).toEqual(
    txt.dead.map((d) => ({ offset: d.offset, code: d.code })),
  );
  return bin;
}

const groups = new WeakMap<Pipeline, string>();

function startPipeline(groupSchema: string, routes: RouteConfig[], lines: Lines): Pipeline {
  const f: Fixture = {
    topic: routes[0]!.topic,
    groupId: uniqueName('bin_g'),
    table: '',
    schema: groupSchema,
    route: routes[0]!,
  };
  const p = createPipeline(
    testConfig(f, { routes, batch: { maxRows: 1_000, maxBytes: 4 * 1024 * 1024, lingerMs: 200 } }),
    { logger: createLogger('info', lines) },
  );
  running.push(p);
  groups.set(p, f.groupId);
  return p;
}

/** Every record of the topics flushed: the group's committed offsets at their ends. */
async function landed(p: Pipeline, topics: readonly string[]): Promise<void> {
  const groupId = groups.get(p)!;
  for (const topic of topics) await waitCommittedToEnd(kafka, groupId, topic, 90_000);
}

/** A double's or float's bits as written in an Avro body (little-endian). */
const f64 = (hex: string): Buffer => Buffer.from(hex, 'hex').reverse();
const f32 = (hex: string): Buffer => Buffer.from(hex, 'hex').reverse();

// ---------------------------------------------------------------------------------------------
// The cases that run together in one pipeline (one group join for all of them).

const ALL = allTypesRecords(120, 20261203);
const ALL_META = { partition: '_partition', offset: '_offset', key: '_key' };

const LONG_INT4: Schema = {
  type: 'record',
  name: 'LongInt4',
  fields: [
    { name: 'id', type: 'long' },
    { name: 'v', type: 'long' },
    { name: 'nv', type: ['null', 'long'] },
  ],
};
const LONG_VALUES: Array<[number | bigint, number | bigint | null]> = [
  [1, null],
  [2147483647, -2147483648],
  [3000000000, 1],
  [-2147483648, 2],
  [-2147483649n, 3],
  [5, 2n ** 40n],
  [0, 0],
];

const UUIDS: Schema = {
  type: 'record',
  name: 'Uuids',
  fields: [
    { name: 'id', type: 'long' },
    { name: 'u', type: 'string' },
    { name: 'lu', type: ['null', { type: 'string', logicalType: 'uuid' }] },
  ],
};
const UUID_SPELLINGS = [
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',
  '{a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11}',
  'a0eebc999c0b4ef8bb6d6bb9bd380a11',
  'a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11',
  'not-a-uuid',
  '',
  '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  'a0-eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11 ',
];

const DECIMALS: Schema = {
  type: 'record',
  name: 'Decimals',
  fields: [
    { name: 'id', type: 'long' },
    { name: 'amount', type: { type: 'bytes', logicalType: 'decimal', precision: 12, scale: 2 } },
    { name: 'big', type: { type: 'bytes', logicalType: 'decimal', precision: 30, scale: 10 } },
  ],
};
// [amount × 100, numeric(5,2) text or undefined when it overflows]
const AMOUNTS: Array<[bigint, string | undefined]> = [
  [12345n, '123.45'],
  [-99999n, '-999.99'],
  [99999n, '999.99'],
  [100000n, undefined],
  [1n, '0.01'],
  [0n, '0.00'],
  [-1234567890n, undefined],
  [999999999999n, undefined],
];

const FLOATS: Schema = {
  type: 'record',
  name: 'Floats',
  fields: [
    { name: 'id', type: 'long' },
    { name: 'd', type: 'double' },
    { name: 'dn', type: 'double' },
    { name: 'f', type: 'float' },
    { name: 'fn', type: 'float' },
    { name: 'fd', type: 'float' },
  ],
};
const DOUBLE_BITS = [
  '7ff8000000000000', // NaN
  '7ff8000000000001', // NaN with a payload
  'fff8000000000000', // NaN with the sign bit
  '7ff0000000000001', // signalling NaN
  '7ff0000000000000', // Infinity
  'fff0000000000000', // -Infinity
  '8000000000000000', // -0
  '0000000000000000',
  '0000000000000001', // 5e-324
  '7fefffffffffffff', // the largest double
  '3fb999999999999a', // 0.1
  '3bc79ca10c924223', // 1e-20
];
const FLOAT_BITS = [
  '7fc00000',
  '7fc00001',
  'ff800001',
  '7f800000',
  'ff800000',
  '80000000',
  '00000001',
  '3dcccccd',
];
const floatBody = (id: number): Buffer => {
  const d = f64(DOUBLE_BITS[id % DOUBLE_BITS.length]!);
  const f = f32(FLOAT_BITS[id % FLOAT_BITS.length]!);
  return Buffer.concat([long(id), d, d, f, f, f]);
};

const ARRAYS: Schema = {
  type: 'record',
  name: 'Arrays',
  fields: [
    { name: 'id', type: 'long' },
    { name: 'ai', type: { type: 'array', items: ['null', 'int'] } },
    { name: 'as', type: { type: 'array', items: ['null', 'string'] } },
    { name: 'al', type: { type: 'array', items: 'long' } },
    { name: 'nai', type: ['null', { type: 'array', items: ['null', 'int'] }] },
  ],
};
const ARRAY_VALUES: Array<{ ai: Array<number | null>; as: Array<string | null>; al: number[] }> = [
  { ai: [], as: [], al: [] },
  { ai: [null], as: [null], al: [0] },
  { ai: [null, null, null], as: [null, null], al: [1, 2] },
  { ai: [1, null, 3], as: ['a', null, 'é'], al: [-(2 ** 31)] },
  { ai: [-(2 ** 31), 2 ** 31 - 1], as: ['NULL', 'null', ''], al: [2 ** 31 - 1] },
  { ai: [0], as: ['"', '\\', ',', '{}', ' x ', '\t\n', 'a"b\\c'], al: [] },
  { ai: [7], as: ['𝄞🚀 中文'], al: [2 ** 31] }, // al: out of range for int4[] (22003)
  { ai: [1], as: ['y'], al: [] },
  // Tuples far larger than their Avro bodies (4 and 8 bytes per item against 1 and 3): beyond
  // the room the direct path reserves, so they are written again by the object path.
  { ai: new Array<null>(100_000).fill(null), as: new Array<string>(3000).fill(''), al: [] },
  { ai: [2], as: [], al: [3] },
  { ai: Array.from({ length: 50_000 }, (_, i) => i * 40_000), as: ['z'], al: [1] },
];

const DOMAINS: Schema = {
  type: 'record',
  name: 'Domains',
  fields: [
    { name: 'id', type: 'long' },
    { name: 'v', type: 'int' },
    { name: 's', type: 'string' },
    { name: 'vs', type: { type: 'array', items: 'int' } },
  ],
};
// [v, s, vs, code or undefined]
const DOMAIN_VALUES: Array<[number, string, number[], string | undefined]> = [
  [1, 'a', [1], undefined],
  [5, 'abc', [], undefined],
  [-3, 'x', [1], '23514'],
  [0, 'y', [2], '23514'],
  [7, 'abcd', [3], '22001'],
  [8, 'ok', [1, -1], '23514'],
  [9, 'é€𝄞', [4, 5], undefined],
];

const ENUMS: Schema = {
  type: 'record',
  name: 'Enums',
  fields: [
    { name: 'id', type: 'long' },
    { name: 'm', type: { type: 'enum', name: 'Mood', symbols: ['sad', 'ok', 'happy'] } },
    { name: 'mn', type: ['null', 'string'] },
  ],
};

const TIMES: Schema = {
  type: 'record',
  name: 'Times',
  fields: [
    { name: 'id', type: 'long' },
    { name: 'tsm', type: { type: 'long', logicalType: 'timestamp-millis' } },
    { name: 'tsu', type: { type: 'long', logicalType: 'timestamp-micros' } },
    { name: 'tsz', type: { type: 'long', logicalType: 'timestamp-micros' } },
    { name: 'lts', type: { type: 'long', logicalType: 'local-timestamp-micros' } },
    { name: 'dt', type: { type: 'int', logicalType: 'date' } },
    { name: 'tm', type: { type: 'int', logicalType: 'time-millis' } },
    { name: 'tu', type: { type: 'long', logicalType: 'time-micros' } },
  ],
};
// A UTC timestamp into timestamp (no zone), typmods that round (time(0) of 23:59:59.5 is
// 24:00:00), dates and timestamps at Postgres' limits and beyond (22008).
const US_MIN = -210866803200000000n; // 4714-11-24 00:00:00 BC
const TIME_VALUES: Array<Record<string, number | bigint>> = [
  { tsm: 0, tsu: 0, tsz: 0, lts: 0, dt: 0, tm: 0, tu: 0 },
  { tsm: -1, tsu: -1, tsz: 999_999, lts: -1, dt: -1, tm: 86_399_999, tu: 86_399_999_999 },
  {
    tsm: 1709210096789,
    tsu: 1709210096789499n,
    tsz: 1709210096789500n,
    lts: 1709210096789501n,
    dt: 19782,
    tm: 43_200_500,
    tu: 43_200_000_499,
  },
  { tsm: -8520335999999, tsu: US_MIN, tsz: US_MIN + 500_000n, lts: US_MIN, dt: -2_440_588, tm: 1, tu: 1 },
  {
    tsm: 9224318015999999n,
    tsu: 2n ** 63n - 1n,
    tsz: 2n ** 62n,
    lts: 2n ** 63n - 1n,
    dt: 2_145_042_905,
    tm: 86_399_500,
    tu: 86_399_999_500,
  },
  { tsm: 0, tsu: US_MIN - 1n, tsz: 0, lts: 0, dt: 0, tm: 0, tu: 0 }, // 22008
  { tsm: 0, tsu: 0, tsz: 0, lts: 0, dt: 2_145_042_906, tm: 0, tu: 0 }, // 22008
  { tsm: 9224318016000000n, tsu: 0, tsz: 0, lts: 0, dt: 0, tm: 0, tu: 0 }, // 22008
];

const ROUNDING: Schema = {
  type: 'record',
  name: 'Rounding',
  fields: [
    { name: 'id', type: 'long' },
    { name: 'dec', type: { type: 'bytes', logicalType: 'decimal', precision: 12, scale: 4 } },
    { name: 'dbl', type: 'double' },
    { name: 'fl', type: 'float' },
    { name: 'i', type: 'int' },
    { name: 'i8', type: 'int' },
    { name: 'l', type: 'long' },
    { name: 'li', type: ['null', 'long'] },
  ],
};
// [dec × 10^4, dbl, fl, i (into smallint), i8 (into float8), l (into numeric), li (into smallint)]
const ROUNDING_VALUES: Array<[bigint, number, number, number, number, number | bigint, number | null]> = [
  [10050n, 1.005, 0.05, 1, 1, 1, null],
  [26750n, 2.675, 2.25, -32768, -(2 ** 31), -(2n ** 63n), -32768],
  [-5n, -0.0005, -0.05, 32767, 2 ** 31 - 1, 2n ** 63n - 1n, 32767],
  [1234567n, 123.4567, 1234.56, 0, 0, 0, 0],
  [999999995000n, 99999.9995, 9999.95, 7, 7, 7, 7], // dec and dbl overflow after rounding: 22003
  [-999999994999n, -99999.99949, -9999.94, 8, 8, 8, 8], // dec rounds down to -99999999.99: fits
  [0n, 0, 0, 40000, 1, 1, 1], // 22003 (smallint)
  [0n, 0, 0, 1, 1, 1, 40000], // 22003 (smallint)
];

const JSONS: Schema = {
  type: 'record',
  name: 'Jsons',
  fields: [
    { name: 'id', type: 'long' },
    { name: 'js', type: 'string' },
    { name: 'jt', type: 'string' },
    {
      name: 'rec',
      type: {
        type: 'record',
        name: 'JR',
        fields: [
          { name: 'x', type: 'long' },
          { name: 'y', type: ['null', 'string'] },
        ],
      },
    },
    { name: 'm', type: { type: 'map', values: 'double' } },
    { name: 'u', type: ['null', 'string', 'long'] },
  ],
};
const JSON_TEXTS: Array<[string, string | undefined]> = [
  ['{"a": 1, "a": 2}', undefined],
  ['  [true, null, {"b": [1e400]}] ', undefined],
  ['"é\\u00e9\\n"', undefined],
  ['12345678901234567890.123', undefined],
  ['[1, 2', '22P02'],
  ['"\\u0000"', '22P05'],
  ['', '22P02'],
];

const CHARS_FAST: Schema = {
  type: 'record',
  name: 'CharsFast',
  fields: [
    { name: 'id', type: 'long' },
    { name: 'c', type: 'string' },
    { name: 'e', type: { type: 'enum', name: 'E3', symbols: ['x', 'yy', 'zzzz'] } },
    { name: 'ca', type: { type: 'array', items: 'string' } },
  ],
};

const BULK: Schema = {
  type: 'record',
  name: 'Bulk',
  fields: [
    { name: 'id', type: 'long' },
    { name: 's', type: 'string' },
    { name: 'd', type: ['null', 'double'] },
    { name: 'amount', type: { type: 'bytes', logicalType: 'decimal', precision: 18, scale: 4 } },
  ],
};
// Enough rows for several batches and several 256 KiB arena chunks per batch.
const BULK_ROWS = 6000;
const bulkValue = (id: number) => ({
  id,
  s: `${'é'.repeat(id % 97)}${id}${'x'.repeat((id * 7) % 131)}`,
  d: id % 5 === 0 ? null : id / 7,
  amount: decimalBytes(BigInt(id) * 1_000_003n - 3_000_000_000n),
});

const CHARS: Schema = {
  type: 'record',
  name: 'Chars',
  fields: [
    { name: 'id', type: 'long' },
    { name: 'c', type: 'string' },
    { name: 'v', type: 'int' },
  ],
};
// [c, v, stored c::text or undefined (with the code)]
const CHAR_VALUES: Array<[string, number, string | undefined, string?]> = [
  ['abc', 1, 'abc'],
  ['abcde', 2, 'abcde'],
  ['x', -1, undefined, '23514'],
  ['abcdef', 3, undefined, '22001'],
  ['', 4, ''],
  ['ab  ', 5, 'ab'],
  ['abcde  ', 6, 'abcde'],
];

describe('COPY binary stores what COPY text stores', () => {
  const lines = new Lines();
  const groupSchema = uniqueName('bin_grp');
  const cases = new Map<string, Twin>();
  let pipeline: Pipeline;

  beforeAll(async () => {
    const routes: RouteConfig[] = [];
    const add = async (...args: Parameters<typeof twin>) => {
      const { twin: t, routes: r } = await twin(...args);
      cases.set(t.name, t);
      routes.push(...r);
    };
    await add(
      'all',
      ALL_TYPES_SCHEMA as Schema,
      undefined,
      ALL.map((r) => ({ key: String(r.id), value: { ...r, dec: decimalBytes(r.dec) } })),
      { metadata: ALL_META },
    );
    await add(
      'int4',
      LONG_INT4,
      (t) => [`CREATE TABLE ${t} (id bigint, v integer, nv integer)`],
      LONG_VALUES.map(([v, nv], id) => ({ key: null, value: { id, v, nv } })),
    );
    await add(
      'uuid',
      UUIDS,
      (t) => [`CREATE TABLE ${t} (id bigint, u uuid, lu uuid)`],
      UUID_SPELLINGS.map((u, id) => ({ key: null, value: { id, u, lu: id % 3 === 0 ? null : u } })),
    );
    await add(
      'numeric',
      DECIMALS,
      (t) => [`CREATE TABLE ${t} (id bigint, amount numeric(5,2), big numeric)`],
      AMOUNTS.map(([a], id) => ({
        key: null,
        value: { id, amount: decimalBytes(a), big: decimalBytes(a * 10n ** 25n - 7n) },
      })),
    );
    await add(
      'floats',
      FLOATS,
      (t) => [`CREATE TABLE ${t} (id bigint, d float8, dn numeric, f real, fn numeric, fd float8)`],
      Array.from({ length: DOUBLE_BITS.length * 2 }, (_, id) => ({
        key: null,
        value: { body: floatBody(id) },
      })),
    );
    await add(
      'arrays',
      ARRAYS,
      (t) => [`CREATE TABLE ${t} (id bigint, ai int4[], "as" text[], al int4[], nai int4[])`],
      ARRAY_VALUES.map((v, id) => ({ key: null, value: { id, ...v, nai: id % 2 ? null : v.ai } })),
    );
    await add(
      'domain',
      DOMAINS,
      (t, s) => [
        // One domain for both tables: record_send writes each column's type oid.
        `DO $$ BEGIN CREATE DOMAIN ${s}.pos AS integer CHECK (VALUE > 0); EXCEPTION WHEN duplicate_object THEN NULL; END $$`,
        `CREATE TABLE ${t} (id bigint, v ${s}.pos, s varchar(3), vs ${s}.pos[])`,
      ],
      DOMAIN_VALUES.map(([v, s, vs], id) => ({ key: null, value: { id, v, s, vs } })),
    );
    await add(
      'enum',
      ENUMS,
      (t, s) => [
        `DO $$ BEGIN CREATE TYPE ${s}.mood AS ENUM ('sad', 'ok', 'happy'); EXCEPTION WHEN duplicate_object THEN NULL; END $$`,
        `CREATE TABLE ${t} (id bigint, m ${s}.mood, mn ${s}.mood)`,
      ],
      [
        { key: null, value: { id: 0, m: 'sad', mn: 'happy' } },
        { key: null, value: { id: 1, m: 'ok', mn: null } },
        { key: null, value: { id: 2, m: 'happy', mn: 'angry' } },
        { key: null, value: { id: 3, m: 'happy', mn: 'ok' } },
      ],
    );
    await add(
      'times',
      TIMES,
      (t) => [
        `CREATE TABLE ${t} (id bigint, tsm timestamp, tsu timestamp(3), tsz timestamptz(0), lts timestamp(1), dt date, tm time(0), tu time(3))`,
      ],
      TIME_VALUES.map((v, id) => ({ key: null, value: { id, ...v } })),
    );
    await add(
      'rounding',
      ROUNDING,
      (t) => [
        `CREATE TABLE ${t} (id bigint, dec numeric(10,2), dbl numeric(8,3), fl numeric(5,1), i smallint, i8 float8, l numeric, li smallint)`,
      ],
      ROUNDING_VALUES.map(([dec, dbl, fl, i, i8, l, li], id) => ({
        key: null,
        value: { id, dec: decimalBytes(dec), dbl, fl, i, i8, l, li },
      })),
    );
    await add(
      'json',
      JSONS,
      (t) => [`CREATE TABLE ${t} (id bigint, js jsonb, jt json, rec json, m text, u jsonb)`],
      JSON_TEXTS.map(([j], id) => ({
        key: null,
        value: {
          id,
          js: j,
          jt: id === 5 ? '{}' : j,
          rec: { x: BigInt(id) * 2n ** 60n, y: id % 2 ? null : `"${j}"` },
          m: { [`k${id}`]: id / 3, nan: Number.NaN },
          u: id % 3 === 0 ? null : id % 3 === 1 ? { string: j } : { long: BigInt(id) - 2n ** 62n },
        },
      })),
    );
    await add(
      'char_fast',
      CHARS_FAST,
      (t) => [`CREATE TABLE ${t} (id bigint, c char(5), e varchar(3), ca char(3)[])`],
      [
        { key: null, value: { id: 0, c: 'abc', e: 'x', ca: ['a', 'abc', ''] } },
        { key: null, value: { id: 1, c: 'abcde', e: 'yy', ca: [] } },
        { key: null, value: { id: 2, c: '', e: 'x', ca: ['ab  '] } },
        { key: null, value: { id: 3, c: 'ab  ', e: 'yy', ca: ['abc   '] } },
        { key: null, value: { id: 4, c: 'abcde   ', e: 'x', ca: ['é€𝄞'] } },
      ],
    );
    await add(
      'bulk',
      BULK,
      (t) => [`CREATE TABLE ${t} (id bigint, s text, d float8, amount numeric(18,4))`],
      Array.from({ length: BULK_ROWS }, (_, id) => ({ key: null, value: bulkValue(id) })),
    );
    await add(
      'char',
      CHARS,
      (t) => [`CREATE TABLE ${t} (id bigint, c char(5), v integer CHECK (v >= 0))`],
      CHAR_VALUES.map(([c, v], id) => ({ key: null, value: { id, c, v } })),
    );
    // Everything is produced before pgsink starts: each case's records come in one batch, so a
    // refused row sends its whole batch through isolation.
    pipeline = startPipeline(groupSchema, routes, lines);
    await pipeline.service.start();
    await landed(
      pipeline,
      routes.map((r) => r.topic),
    );
  }, 300_000);

  /** The log line a route said at start-up. */
  const startLine = (t: Target) =>
    lines.find(new RegExp(`^route ${escapeRe(t.topic)}: COPY (binary|text) into ${escapeRe(t.routeTable)}`));

  it('says at start-up which format each route uses', () => {
    for (const [name, t] of cases) {
      const bin = startLine(t.binary);
      const txt = startLine(t.text);
      expect({ name, bin: bin.map((l) => l.level), txt: txt.map((l) => l.level) }).toEqual({
        name,
        bin: [name === 'enum' ? 'warn' : 'info'],
        txt: ['info'],
      });
      expect(txt[0]!.msg).toBe(`route ${t.text.topic}: COPY text into ${t.text.routeTable}`);
      if (name !== 'enum')
        expect(bin[0]!.msg).toBe(`route ${t.binary.topic}: COPY binary into ${t.binary.routeTable}`);
    }
  });

  it('round-trips every Avro type alike (direct and object path), metadata included', async () => {
    const t = cases.get('all')!;
    const data = [...ALL_TYPES_SCHEMA.fields.map((f) => f.name), '_partition', '_offset', '_key'];
    const bin = await expectTwinsAlike(groupSchema, t, data);
    expect(bin.dead).toEqual([]);
    expect(bin.rows).toHaveLength(ALL.length);
    await expectAllTypesLanded(pool, t.binary.table, ALL);
    await expectAllTypesLanded(pool, t.text.table, ALL);
    const { rows } = await pool.query<{ id: number; _key: string; _offset: string }>(
      `SELECT id, _key, _offset FROM ${t.binary.table} ORDER BY id`,
    );
    expect(rows.map((r) => [r.id, r._key, Number(r._offset)])).toEqual(
      ALL.map((r, i) => [r.id, String(r.id), i]),
    );
  });

  it('refuses a long beyond int4 with 22003 and writes the others', async () => {
    const t = cases.get('int4')!;
    const bin = await expectTwinsAlike(groupSchema, t);
    expect(bin.dead.map((d) => [d.offset, d.code, d.source])).toEqual([
      [2, '22003', 'postgres'],
      [4, '22003', 'postgres'],
      [5, '22003', 'postgres'],
    ]);
    expect(bin.dead.map((d) => d.message)).toEqual([
      `field 'v': value "3000000000" is out of range for type integer`,
      `field 'v': value "-2147483649" is out of range for type integer`,
      `field 'nv': value "1099511627776" is out of range for type integer`,
    ]);
    expect(bin.rows.map((r) => r.json)).toEqual([
      { id: 0, v: 1, nv: null },
      { id: 1, v: 2147483647, nv: -2147483648 },
      { id: 3, v: -2147483648, nv: 2 },
      { id: 6, v: 0, nv: 0 },
    ]);
  });

  it('reads every uuid spelling uuid_in reads, and refuses the others with 22P02', async () => {
    const t = cases.get('uuid')!;
    const bin = await expectTwinsAlike(groupSchema, t);
    const valid = UUID_SPELLINGS.slice(0, 5);
    expect(bin.dead.map((d) => [d.offset, d.code])).toEqual(
      UUID_SPELLINGS.map((_, i) => i)
        .filter((i) => i >= 5)
        .map((i) => [i, '22P02']),
    );
    expect(bin.dead[0]!.message).toBe(`field 'u': invalid input syntax for type uuid: "not-a-uuid"`);
    expect(bin.rows.map((r) => r.json)).toEqual(
      valid.map((u, id) => ({
        id,
        u: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
        lu: id % 3 === 0 ? null : 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
      })),
    );
  });

  it('refuses a decimal beyond numeric(5,2) with 22003, and writes the others exactly', async () => {
    const t = cases.get('numeric')!;
    const bin = await expectTwinsAlike(groupSchema, t);
    const over = AMOUNTS.map(([, s], i) => [i, s] as const).filter(([, s]) => s === undefined);
    expect(bin.dead.map((d) => [d.offset, d.code, d.source])).toEqual(
      over.map(([i]) => [i, '22003', 'postgres']),
    );
    for (const d of bin.dead) expect(d.message).toMatch(/numeric field overflow/);
    const { rows } = await pool.query<{ id: number; amount: string; big: string }>(
      `SELECT id::int, amount::text, big::text FROM ${t.binary.table} ORDER BY id`,
    );
    const fmt = (n: bigint, scale: number) => {
      const neg = n < 0n;
      const digits = (neg ? -n : n).toString().padStart(scale + 1, '0');
      return `${neg ? '-' : ''}${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
    };
    expect(rows).toEqual(
      AMOUNTS.map(([a, s], id) => ({ id, a, s }))
        .filter((r) => r.s !== undefined)
        .map((r) => ({ id: r.id, amount: r.s, big: fmt(r.a * 10n ** 25n - 7n, 10) })),
    );
  });

  it('stores NaN, ±Infinity and every other double and float as text COPY does', async () => {
    const t = cases.get('floats')!;
    const bin = await expectTwinsAlike(groupSchema, t);
    expect(bin.dead).toEqual([]);
    const { rows } = await pool.query<{
      id: number;
      d: string;
      dn: string;
      f: string;
      fn: string;
      d8: string;
    }>(
      `SELECT id, d::text, dn::text, f::text, fn::text, encode(float8send(d), 'hex') AS d8 FROM ${t.binary.table} ORDER BY id`,
    );
    expect(rows).toHaveLength(DOUBLE_BITS.length * 2);
    for (const r of rows.slice(0, 4)) {
      expect(r).toMatchObject({ d: 'NaN', dn: 'NaN', d8: '7ff8000000000000' });
    }
    expect(rows[4]).toMatchObject({ d: 'Infinity', dn: 'Infinity' });
    expect(rows[5]).toMatchObject({ d: '-Infinity', dn: '-Infinity' });
    expect(rows[6]).toMatchObject({ d: '-0', dn: '0', d8: '8000000000000000' });
    expect(rows[11]).toMatchObject({ d: '1e-20', dn: '0.00000000000000000001' });
    expect(rows[1]).toMatchObject({ f: 'NaN', fn: 'NaN' });
    expect(rows[3]).toMatchObject({ f: 'Infinity', fn: 'Infinity' });
    expect(rows[4]).toMatchObject({ f: '-Infinity', fn: '-Infinity' });
  });

  it('writes arrays with NULLs, empty and all-NULL arrays, and refuses an element beyond int4', async () => {
    const t = cases.get('arrays')!;
    const bin = await expectTwinsAlike(groupSchema, t);
    expect(bin.dead.map((d) => [d.offset, d.code])).toEqual([[6, '22003']]);
    expect(bin.rows.map((r) => r.json)).toEqual(
      ARRAY_VALUES.map((v, id) => ({ id, ...v, nai: id % 2 ? null : v.ai })).filter((r) => r.id !== 6),
    );
  });

  it('writes a domain as its base type; Postgres checks the domain, the length, the domain array', async () => {
    const t = cases.get('domain')!;
    const bin = await expectTwinsAlike(groupSchema, t);
    expect(bin.dead.map((d) => [d.offset, d.code])).toEqual(
      DOMAIN_VALUES.map(([, , , code], i) => [i, code] as const).filter(([, code]) => code !== undefined),
    );
    expect(bin.rows.map((r) => r.json)).toEqual(
      DOMAIN_VALUES.map(([v, s, vs, code], id) => ({ id, v, s, vs, code }))
        .filter((r) => r.code === undefined)
        .map(({ code: _code, ...r }) => r),
    );
  });

  it('falls back to text for an enum column, says which column and type, and writes the values', async () => {
    const t = cases.get('enum')!;
    const [warn] = startLine(t.binary);
    const decl = `(?:"?${escapeRe(t.schema)}"?\\.)?mood`;
    expect(warn!.msg).toMatch(
      new RegExp(
        `^route ${escapeRe(t.binary.topic)}: COPY text into ${escapeRe(t.binary.routeTable)}, because 2 columns have no binary encoder: column m: Avro enum into ${decl} \\(an enum type\\); column mn: Avro string into ${decl} \\(an enum type\\) \\(set copyFormat: text`,
      ),
    );
    const bin = await expectTwinsAlike(groupSchema, t);
    expect(bin.dead.map((d) => [d.offset, d.code])).toEqual([[2, '22P02']]);
    expect(bin.rows.map((r) => r.json)).toEqual([
      { id: 0, m: 'sad', mn: 'happy' },
      { id: 1, m: 'ok', mn: null },
      { id: 3, m: 'happy', mn: 'ok' },
    ]);
  });

  it('writes timestamps, dates and times alike, rounded by their typmods, refused beyond range', async () => {
    const t = cases.get('times')!;
    const bin = await expectTwinsAlike(groupSchema, t);
    expect(bin.dead.map((d) => [d.offset, d.code])).toEqual([
      [5, '22008'],
      [6, '22008'],
      [7, '22008'],
    ]);
    expect(bin.rows).toHaveLength(5);
    const { rows } = await pool.query<Record<string, string>>(
      `SELECT tsm::text, tsu::text, tm::text, tu::text FROM ${t.binary.table} WHERE id = 2`,
    );
    expect(rows[0]).toEqual({
      tsm: '2024-02-29 12:34:56.789',
      tsu: '2024-02-29 12:34:56.789',
      tm: '12:00:01',
      tu: '12:00:00',
    });
  });

  it('rounds to numeric typmods as numeric_in does, and narrows ints as int2in does', async () => {
    const t = cases.get('rounding')!;
    const bin = await expectTwinsAlike(groupSchema, t);
    expect(bin.dead.map((d) => [d.offset, d.code])).toEqual([
      [4, '22003'],
      [6, '22003'],
      [7, '22003'],
    ]);
    const { rows } = await pool.query<Record<string, string>>(
      `SELECT dec::text, dbl::text, fl::text, l::text FROM ${t.binary.table} ORDER BY id LIMIT 3`,
    );
    expect(rows).toEqual([
      { dec: '1.01', dbl: '1.005', fl: '0.1', l: '1' },
      { dec: '2.68', dbl: '2.675', fl: '2.3', l: '-9223372036854775808' },
      { dec: '0.00', dbl: '-0.001', fl: '-0.1', l: '9223372036854775807' },
    ]);
  });

  it('writes strings into json and jsonb, records and maps as JSON, as text COPY does', async () => {
    const t = cases.get('json')!;
    const bin = await expectTwinsAlike(groupSchema, t);
    expect(bin.dead.map((d) => [d.offset, d.code])).toEqual(
      JSON_TEXTS.map(([, code], i) => [i, code] as const).filter(([, code]) => code !== undefined),
    );
    expect(bin.rows).toHaveLength(4);
  });

  it('writes char(n), varchar(n) and char(n)[] as their recv functions pad and check them', async () => {
    const t = cases.get('char_fast')!;
    const bin = await expectTwinsAlike(groupSchema, t);
    expect(bin.dead).toEqual([]);
    const { rows } = await pool.query<{ c: string; n: number }>(
      `SELECT c::text AS c, octet_length(c)::int AS n FROM ${t.binary.table} ORDER BY id`,
    );
    expect(rows).toEqual([
      { c: 'abc', n: 5 },
      { c: 'abcde', n: 5 },
      { c: '', n: 5 },
      { c: 'ab', n: 5 },
      { c: 'abcde', n: 5 },
    ]);
  });

  it('keeps a char(n) value whole when its batch goes through isolation', async () => {
    const t = cases.get('char')!;
    for (const target of [t.binary, t.text]) {
      const s = await stored(groupSchema, target);
      const { rows } = await pool.query<{ id: number; c: string }>(
        `SELECT id::int, c::text AS c FROM ${target.table} ORDER BY id`,
      );
      expect({ table: target.table, dead: s.dead.map((d) => [d.offset, d.code]), rows }).toEqual({
        table: target.table,
        dead: CHAR_VALUES.map(([, , , code], i) => [i, code] as const).filter(
          ([, code]) => code !== undefined,
        ),
        rows: CHAR_VALUES.map(([, , c], id) => ({ id, c })).filter((r) => r.c !== undefined),
      });
    }
    await expectTwinsAlike(groupSchema, t);
  });

  it('writes many batches of many arena chunks alike', async () => {
    const t = cases.get('bulk')!;
    const bin = await expectTwinsAlike(groupSchema, t);
    expect(bin.dead).toEqual([]);
    expect(bin.rows).toHaveLength(BULK_ROWS);
    const { rows } = await pool.query<{ n: number; bytes: string }>(
      `SELECT count(*)::int AS n, sum(octet_length(s))::text AS bytes FROM ${t.binary.table}`,
    );
    const want = Array.from({ length: BULK_ROWS }, (_, id) => Buffer.byteLength(bulkValue(id).s)).reduce(
      (a, b) => a + b,
    );
    expect(rows[0]).toEqual({ n: BULK_ROWS, bytes: String(want) });
  });
});

// ---------------------------------------------------------------------------------------------

describe('COPY binary, upsert and altered tables', () => {
  const ROWS: Schema = {
    type: 'record',
    name: 'Rows',
    fields: [
      { name: 'id', type: 'long' },
      { name: 'v', type: 'string' },
      { name: 'n', type: 'int' },
    ],
  };

  const UROWS: Schema = {
    type: 'record',
    name: 'URows',
    fields: [
      { name: 'id', type: 'string' },
      { name: 'v', type: 'string' },
    ],
  };

  it(
    'upserts in binary: updates, and tombstones delete by the Kafka key as a bigint’s or uuid’s text',
    { timeout: 180_000 },
    async () => {
      const round1: Msg[] = [
        { key: '1', value: { id: 1, v: 'a', n: 1 } },
        { key: '2', value: { id: 2, v: 'b', n: 2 } },
        { key: '42', value: { id: 42, v: 'c', n: 3 } },
        { key: '1', value: { id: 1, v: 'a2', n: 4 } },
        { key: '42', value: null },
        { key: '7', value: { id: 7, v: 'd', n: 5 } },
        { key: ' 7 ', value: null },
        { key: 'x', value: null },
        { key: '99999999999999999999', value: null },
        { key: '-9223372036854775808', value: null },
        { key: '5', value: { id: 5, v: 'e', n: 6 } },
      ];
      const { twin: t, routes } = await twin(
        'upsert',
        ROWS,
        (table) => [`CREATE TABLE ${table} (id bigint PRIMARY KEY, v text, n integer CHECK (n >= 0))`],
        round1,
        { mode: 'upsert', keyColumns: ['id'], deleteOnTombstone: true },
      );
      // A uuid key column: the tombstones' keys in other spellings of the same uuids.
      const U1 = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11';
      const U2 = 'b1eebc99-9c0b-4ef8-bb6d-6bb9bd380a22';
      const U3 = 'c2eebc99-9c0b-4ef8-bb6d-6bb9bd380a33';
      const { twin: u, routes: uRoutes } = await twin(
        'upsert_uuid',
        UROWS,
        (table) => [`CREATE TABLE ${table} (id uuid PRIMARY KEY, v text)`],
        [
          { key: U1, value: { id: U1, v: 'a' } },
          { key: U2, value: { id: `{${U2}}`, v: 'b' } },
          { key: U3, value: { id: U3.toUpperCase(), v: 'c' } },
          { key: U1.toUpperCase(), value: null },
          { key: U2.replace(/-/g, ''), value: null },
          { key: 'not-a-uuid', value: null },
          { key: `${U3} `, value: null },
        ],
        { mode: 'upsert', keyColumns: ['id'], deleteOnTombstone: true },
      );
      const lines = new Lines();
      const groupSchema = uniqueName('bin_ups');
      const p = startPipeline(groupSchema, [...routes, ...uRoutes], lines);
      await p.service.start();
      await landed(p, [t.binary.topic, t.text.topic, u.binary.topic, u.text.topic]);
      for (const topic of [t.binary.topic, u.binary.topic])
        expect(lines.find(new RegExp(`^route ${escapeRe(topic)}: COPY binary into`))).toHaveLength(1);
      const ub = await expectTwinsAlike(groupSchema, u);
      expect(ub.rows.map((r) => r.json)).toEqual([{ id: U3, v: 'c' }]);
      expect(ub.dead.map((d) => [d.offset, d.code])).toEqual([
        [5, '22P02'],
        [6, '22P02'],
      ]);
      let bin = await expectTwinsAlike(groupSchema, t);
      expect(bin.rows.map((r) => r.json)).toEqual([
        { id: 1, v: 'a2', n: 4 },
        { id: 2, v: 'b', n: 2 },
        { id: 5, v: 'e', n: 6 },
      ]);
      expect(bin.dead.map((d) => [d.offset, d.code, d.source])).toEqual([
        [7, '22P02', 'postgres'],
        [8, '22003', 'postgres'],
      ]);
      expect(bin.dead.map((d) => d.message)).toEqual([
        'invalid input syntax for type bigint: "x"',
        'value "99999999999999999999" is out of range for type bigint',
      ]);
      // A second round: updates and deletes of rows the first round wrote, and a row the table
      // refuses, so that the batch goes through isolation (binary staging tuples, offset order).
      const round2: Msg[] = [
        { key: '2', value: { id: 2, v: 'b2', n: 7 } },
        { key: '1', value: null },
        { key: '42', value: { id: 42, v: 'c2', n: 8 } },
        { key: '5', value: null },
        { key: '5', value: { id: 5, v: 'e2', n: 9 } },
        { key: '2', value: { id: 2, v: 'refused', n: -1 } },
        { key: '8', value: { id: 8, v: 'f', n: 10 } },
      ];
      await produce(t.binary.topic, ROWS, round2);
      await produce(t.text.topic, ROWS, round2);
      await landed(p, [t.binary.topic, t.text.topic]);
      bin = await expectTwinsAlike(groupSchema, t);
      // The refused last record of key 2 leaves the one before it written.
      expect(bin.rows.map((r) => r.json)).toEqual([
        { id: 2, v: 'b2', n: 7 },
        { id: 5, v: 'e2', n: 9 },
        { id: 8, v: 'f', n: 10 },
        { id: 42, v: 'c2', n: 8 },
      ]);
      expect(bin.dead.map((d) => [d.offset, d.code])).toEqual([
        [7, '22P02'],
        [8, '22003'],
        [round1.length + 5, '23514'],
      ]);
    },
  );

  it(
    'loses and changes nothing when a column’s type is altered while it runs (int4 → bigint)',
    { timeout: 180_000 },
    async () => {
      const row = (i: number): Msg => ({
        key: String(i),
        value: { id: i, v: `s${i}`, n: i * 1000 - 2_000_000_000 },
      });
      const { twin: t, routes } = await twin(
        'altered',
        ROWS,
        (table) => [`CREATE TABLE ${table} (id bigint, v text, n integer)`],
        Array.from({ length: 40 }, (_, i) => row(i)),
      );
      const lines = new Lines();
      const groupSchema = uniqueName('bin_alt');
      const p = startPipeline(groupSchema, routes.slice(0, 1), lines);
      await p.service.start();
      await landed(p, [t.binary.topic]);
      expect(lines.find(new RegExp(`^route ${escapeRe(t.binary.topic)}: COPY binary into`))).toHaveLength(1);
      await pool.query(`ALTER TABLE ${t.binary.table} ALTER COLUMN n TYPE bigint`);
      // Two more rounds: the first batch after the change finds it, and every one after it.
      for (const from of [40, 80]) {
        await produce(
          t.binary.topic,
          ROWS,
          Array.from({ length: 40 }, (_, i) => row(from + i)),
        );
        await landed(p, [t.binary.topic]);
      }
      const s = await stored(groupSchema, t.binary);
      expect(s.dead).toEqual([]);
      expect(s.rows.map((r) => r.json)).toEqual(
        Array.from({ length: 120 }, (_, i) => ({ id: i, v: `s${i}`, n: i * 1000 - 2_000_000_000 })),
      );
      const { rows } = await pool.query<{ t: string }>(
        `SELECT format_type(atttypid, atttypmod) AS t FROM pg_attribute WHERE attrelid = $1::regclass AND attname = 'n'`,
        [t.binary.table],
      );
      expect(rows[0]!.t).toBe('bigint');
      await waitFor(
        'the altered-table warning',
        async () => lines.find(/the table was altered while pgsink writes COPY binary into it/).length,
        (n) => n === 1,
        10_000,
      );
    },
  );

  it(
    'takes, after a column is widened (int4 → bigint), what text COPY takes',
    { timeout: 180_000 },
    async () => {
      const LONGS: Schema = {
        type: 'record',
        name: 'Longs',
        fields: [
          { name: 'id', type: 'long' },
          { name: 'n', type: 'long' },
        ],
      };
      const row = (id: number, n: number): Msg => ({ key: null, value: { id, n } });
      const { twin: t, routes } = await twin(
        'widened',
        LONGS,
        (table) => [`CREATE TABLE ${table} (id bigint, n integer)`],
        [row(0, 1), row(1, 3_000_000_000), row(2, 2)],
      );
      const lines = new Lines();
      const groupSchema = uniqueName('bin_wid');
      const p = startPipeline(groupSchema, routes, lines);
      await p.service.start();
      await landed(p, [t.binary.topic, t.text.topic]);
      for (const target of [t.binary, t.text])
        await pool.query(`ALTER TABLE ${target.table} ALTER COLUMN n TYPE bigint`);
      const round2 = [row(3, 4), row(4, 3_000_000_001), row(5, 5)];
      await produce(t.binary.topic, LONGS, round2);
      await produce(t.text.topic, LONGS, round2);
      await landed(p, [t.binary.topic, t.text.topic]);
      const bin = await expectTwinsAlike(groupSchema, t);
      expect(bin.dead.map((d) => [d.offset, d.code])).toEqual([[1, '22003']]);
      expect(bin.rows.map((r) => r.json)).toEqual([
        { id: 0, n: 1 },
        { id: 2, n: 2 },
        { id: 3, n: 4 },
        { id: 4, n: 3_000_000_001 },
        { id: 5, n: 5 },
      ]);
    },
  );
});
