// Dead letters against the real server: whatever a record's key, value and headers hold, and
// whatever an error message says, the insert succeeds and gives them back byte for byte; a
// dead_letters table of an earlier version is migrated at start-up without losing a row.
import { buildIsolationPlan } from '../../src/sink/isolate.ts';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureSinkTables, sinkTables } from '../../src/sink/ddl.ts';
import { flushBatch, type Entry } from '../../src/sink/flush.ts';
import { long } from '../support/avro-bodies.ts';
import { pgPool, uniqueName } from '../support/services.ts';

const pool = pgPool();
afterAll(() => pool.end());

/** A record's header section as Kafka writes it: a count, then key and value (length -1: null). */
function headerSection(headers: Array<[Buffer | null, Buffer | null]>): Buffer {
  const bytes = (b: Buffer | null) => (b === null ? long(-1) : Buffer.concat([long(b.length), b]));
  return Buffer.concat([long(headers.length), ...headers.flatMap(([k, v]) => [bytes(k), bytes(v)])]);
}

function deadEntry(
  offset: number,
  key: Buffer | null,
  value: Buffer | null,
  headers: Buffer | undefined,
  message: string,
): Entry {
  const raw = Buffer.concat([key ?? Buffer.alloc(0), value ?? Buffer.alloc(0)]);
  const keyLen = key?.length ?? 0;
  return {
    offset,
    chunk: Buffer.alloc(0),
    start: -1,
    end: -1,
    raw,
    keyStart: key === null ? -1 : 0,
    keyEnd: key === null ? -1 : keyLen,
    valueStart: value === null ? -1 : keyLen,
    valueEnd: value === null ? -1 : raw.length,
    headers: undefined,
    rawHeaders: headers,
    failure: { source: 'avro', code: 'MALFORMED_BODY', message },
  };
}

async function target(schema: string) {
  await pool.query(`CREATE SCHEMA "${schema}"`);
  await pool.query(`CREATE TABLE "${schema}".t (x int)`);
  const tables = sinkTables(`${schema}_pgsink`);
  const client = await pool.connect();
  try {
    await ensureSinkTables(client, tables);
  } finally {
    client.release();
  }
  return {
    groupId: 'g',
    topic: 'events',
    partition: 0,
    table: `"${schema}".t`,
    columnList: '"x"',
    tables,
    isolation: buildIsolationPlan(0, `${schema}.t`, ['x'], undefined),
  };
}

describe('dead letters', () => {
  it('store any key, value and header bytes exactly, in order, with null keys and values, and any message', async () => {
    const schema = uniqueName('dl_s');
    const t = await target(schema);
    const list: Array<[Buffer | null, Buffer | null]> = [
      [Buffer.from('b'), Buffer.from([0xff, 0x00, 0xfe])],
      [Buffer.from('1'), Buffer.from('\\u0000')],
      [Buffer.from('b'), null],
      [Buffer.from([0xc3, 0x28]), Buffer.from([0])], // a key that is not UTF-8
      [null, Buffer.from('nameless')],
      [Buffer.from('__proto__'), Buffer.from('p')],
      [Buffer.alloc(0), Buffer.alloc(0)],
    ];
    const entries = [
      deadEntry(
        0,
        Buffer.from([0xff, 0xfe, 0x41, 0xc3]),
        Buffer.from([0, 0, 0, 0, 1, 0xed, 0xa0, 0x80]),
        headerSection(list),
        'NUL \u0000 and a lone \ud800 surrogate',
      ),
      deadEntry(1, null, null, undefined, 'no key, no value, no headers'),
      deadEntry(
        2,
        Buffer.from([0xc0, 0x80]),
        Buffer.alloc(0),
        headerSection([[Buffer.from('esc'), Buffer.from('\\u0000')]]),
        'text headers',
      ),
    ];
    const client = await pool.connect();
    try {
      const outcome = await flushBatch(client, t, entries);
      expect(outcome).toMatchObject({ deadLettered: 3, nextOffset: 3, rowsWritten: 0 });
    } finally {
      client.release();
    }
    const { rows } = await pool.query<{
      key: Buffer | null;
      value: Buffer | null;
      header_keys: Array<Buffer | null>;
      header_values: Array<Buffer | null>;
      headers: unknown;
      error_message: string;
    }>(
      `SELECT key, value, header_keys, header_values, headers, error_message FROM ${t.tables.deadLetters} ORDER BY "offset"`,
    );
    const hex = (b: Buffer | null) => (b === null ? null : b.toString('hex'));
    expect(rows[0]!.key).toEqual(Buffer.from([0xff, 0xfe, 0x41, 0xc3]));
    expect(rows[0]!.value).toEqual(Buffer.from([0, 0, 0, 0, 1, 0xed, 0xa0, 0x80]));
    expect(rows[0]!.header_keys.map(hex)).toEqual(list.map(([k]) => hex(k)));
    expect(rows[0]!.header_values.map(hex)).toEqual(list.map(([, v]) => hex(v)));
    expect(rows[0]!.headers).toBeNull(); // not representable as text: only the exact columns have them
    expect(rows[0]!.error_message).toBe('NUL \\0 and a lone \ufffd surrogate');
    expect(rows[1]).toMatchObject({
      key: null,
      value: null,
      header_keys: [],
      header_values: [],
      headers: null,
    });
    expect(rows[2]!.key).toEqual(Buffer.from([0xc0, 0x80]));
    expect(rows[2]!.value).toEqual(Buffer.alloc(0));
    expect(rows[2]!.headers).toEqual({ esc: '\\u0000' });
    expect(rows[2]!.header_values.map(hex)).toEqual([Buffer.from('\\u0000').toString('hex')]);
  });

  it('migrates a dead_letters table of an earlier version at start-up, idempotently, keeping its rows', async () => {
    const schema = uniqueName('dlm_s');
    const tables = sinkTables(`${schema}_pgsink`);
    // The table as pgsink created it before header_keys/header_values existed.
    await pool.query(`CREATE SCHEMA ${tables.schema}`);
    await pool.query(`CREATE TABLE ${tables.deadLetters} (
      id bigserial PRIMARY KEY, group_id text NOT NULL, topic text NOT NULL, partition integer NOT NULL,
      "offset" bigint NOT NULL, key bytea, value bytea, headers jsonb, error_source text NOT NULL,
      error_code text NOT NULL, error_message text NOT NULL, failed_at timestamptz NOT NULL DEFAULT now())`);
    await pool.query(
      `INSERT INTO ${tables.deadLetters} (group_id, topic, partition, "offset", key, value, headers, error_source, error_code, error_message)
       VALUES ('g', 'old', 0, 7, '\\x01', '\\x02', '{"h": "v"}', 'avro', 'MALFORMED_BODY', 'from before')`,
    );
    const client = await pool.connect();
    try {
      await ensureSinkTables(client, tables);
      await ensureSinkTables(client, tables); // a second start finds the columns there
    } finally {
      client.release();
    }
    const { rows: cols } = await pool.query<{ attname: string; type: string }>(
      `SELECT attname, format_type(atttypid, atttypmod) AS type FROM pg_attribute
        WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
      [tables.deadLetters],
    );
    expect(cols.map((c) => `${c.attname} ${c.type}`)).toEqual([
      'id bigint',
      'group_id text',
      'topic text',
      'partition integer',
      'offset bigint',
      'key bytea',
      'value bytea',
      'headers jsonb',
      'error_source text',
      'error_code text',
      'error_message text',
      'failed_at timestamp with time zone',
      'header_keys bytea[]',
      'header_values bytea[]',
    ]);
    const { rows: old } = await pool.query(
      `SELECT "offset", headers, header_keys, error_message FROM ${tables.deadLetters}`,
    );
    expect(old).toEqual([
      { offset: '7', headers: { h: 'v' }, header_keys: null, error_message: 'from before' },
    ]);

    // And new dead letters go in next to the old row.
    await pool.query(`CREATE SCHEMA "${schema}"`);
    await pool.query(`CREATE TABLE "${schema}".t (x int)`);
    const c2 = await pool.connect();
    try {
      await flushBatch(
        c2,
        {
          groupId: 'g',
          topic: 'events',
          partition: 0,
          table: `"${schema}".t`,
          columnList: '"x"',
          tables,
          isolation: buildIsolationPlan(0, `${schema}.t`, ['x'], undefined),
        },
        [
          deadEntry(
            0,
            Buffer.from('k'),
            Buffer.from('v'),
            headerSection([[Buffer.from('h'), Buffer.from([0xff])]]),
            'new',
          ),
        ],
      );
    } finally {
      c2.release();
    }
    const { rows } = await pool.query<{ header_values: Buffer[] }>(
      `SELECT header_values FROM ${tables.deadLetters} WHERE error_message = 'new'`,
    );
    expect(rows[0]!.header_values).toEqual([Buffer.from([0xff])]);
  });
});
