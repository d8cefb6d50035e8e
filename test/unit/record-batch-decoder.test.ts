// pgsink's record batch decoder against kafkajs' own, on record batches built byte by byte here
// (the Kafka protocol's RecordBatch v2): both must return the same objects and leave the fetch
// decoder at the same position, or fail the same way.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { CODEC_IDS, compress, setDecompressFault } from '../../src/kafka/codecs.ts';
import {
  createRecordBatchDecoder,
  installRecordBatchDecoder,
  KAFKAJS_VERSION,
  unreadableOf,
  type KafkajsDecoder,
  type RecordBatchDecoder,
} from '../../src/kafka/record-batch-decoder.ts';
import { parseRawHeaders } from '../../src/kafka/record-headers.ts';

const require = createRequire(import.meta.url);
const load = (path: string): unknown => require(`kafkajs/${path}`);
const Decoder = load('src/protocol/decoder.js') as new (b: Buffer) => KafkajsDecoder;
const fast = createRecordBatchDecoder(load);

/** kafkajs' decoder, loaded from its file even where the module cache holds pgsink's. */
function stockDecoder(): RecordBatchDecoder {
  const path = require.resolve('kafkajs/src/protocol/recordBatch/v0/decoder.js');
  const cache = new Map(Object.entries(require.cache));
  Reflect.deleteProperty(require.cache, path);
  try {
    return require(path) as RecordBatchDecoder;
  } finally {
    const cached = cache.get(path);
    if (cached) require.cache[path] = cached;
    else Reflect.deleteProperty(require.cache, path);
  }
}
const stock = stockDecoder();

// ------------------------------------------------------------------ a byte-level encoder

class Bytes {
  private parts: Buffer[] = [];
  int8(v: number): this {
    const b = Buffer.alloc(1);
    b.writeInt8(v);
    return this.push(b);
  }
  int16(v: number): this {
    const b = Buffer.alloc(2);
    b.writeInt16BE(v);
    return this.push(b);
  }
  int32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeInt32BE(v);
    return this.push(b);
  }
  int64(v: bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigInt64BE(v);
    return this.push(b);
  }
  /** Zigzag varint/varlong, as Kafka writes both. */
  varlong(v: bigint): this {
    let z = BigInt.asUintN(64, (v << 1n) ^ (v >> 63n));
    const out: number[] = [];
    do {
      let byte = Number(z & 0x7fn);
      z >>= 7n;
      if (z > 0n) byte |= 0x80;
      out.push(byte);
    } while (z > 0n);
    return this.push(Buffer.from(out));
  }
  varint(v: number): this {
    return this.varlong(BigInt(v));
  }
  varBytes(b: Buffer | null): this {
    if (b === null) return this.varint(-1);
    return this.varint(b.length).push(b);
  }
  push(b: Buffer): this {
    this.parts.push(b);
    return this;
  }
  get buffer(): Buffer {
    return Buffer.concat(this.parts);
  }
}

interface TestRecord {
  timestampDelta: bigint;
  offsetDelta: number;
  key: Buffer | null;
  value: Buffer | null;
  headers: Array<[string | Buffer | null, Buffer | null]>;
}

function encodeRecord(r: TestRecord): Buffer {
  const body = new Bytes().int8(0).varlong(r.timestampDelta).varint(r.offsetDelta);
  body.varBytes(r.key).varBytes(r.value).varint(r.headers.length);
  for (const [k, v] of r.headers)
    body.varBytes(k === null ? null : Buffer.isBuffer(k) ? k : Buffer.from(k)).varBytes(v);
  const b = body.buffer;
  return new Bytes().varint(b.length).push(b).buffer;
}

interface TestBatch {
  firstOffset: bigint;
  firstTimestamp: bigint;
  maxTimestamp: bigint;
  attributes: number;
  producerId?: bigint;
  records: TestRecord[];
  gzip?: boolean;
  /** Another codec id (src/kafka/codecs.ts compresses; an unknown id leaves the bytes as they are). */
  codec?: number;
  /** Replaces the (compressed) records section, to make it unreadable. */
  payload?: Buffer;
  /** Record count written in the header, when it should lie (-1, 0). */
  count?: number;
}

function encodeBatch(b: TestBatch): Buffer {
  const records = Buffer.concat(b.records.map(encodeRecord));
  const body = new Bytes()
    .int32(7) // partition leader epoch
    .int8(2) // magic
    .int32(0) // CRC (neither decoder checks it)
    .int16(b.attributes | (b.gzip ? 1 : (b.codec ?? 0)))
    .int32(Math.max(0, b.records.length - 1))
    .int64(b.firstTimestamp)
    .int64(b.maxTimestamp)
    .int64(b.producerId ?? -1n)
    .int16(3)
    .int32(11)
    .int32(b.count ?? b.records.length)
    .push(
      b.payload ??
        (b.gzip ? gzipSync(records) : b.codec && b.codec <= 4 ? compress(b.codec, records) : records),
    ).buffer;
  return new Bytes().int64(b.firstOffset).int32(body.length).push(body).buffer;
}

/**
 * pgsink's decoder adds `rawHeaders` (the header section's wire bytes) to each record; kafkajs'
 * has no such field. It is checked here against the record's own headers object (regrouped as
 * kafkajs groups them) and then removed, so that the rest compares strictly.
 */
function withoutRawHeaders(batch: { records: Array<Record<string, unknown>> }): unknown {
  const records = batch.records.map((r) => {
    // A marker for an unreadable batch is compared as it is (its mark is not enumerable).
    if (unreadableOf(r)) return r;
    const { rawHeaders, ...rest } = r;
    const headers = r['headers'] as Record<string, unknown>;
    if (Object.keys(headers).length === 0) {
      expect(rawHeaders).toBeNull();
    } else {
      expect(Buffer.isBuffer(rawHeaders)).toBe(true);
      const grouped: Record<string, unknown> = {};
      for (const [k, v] of parseRawHeaders(rawHeaders as Buffer)) {
        const name = k === null ? 'null' : k.toString('utf8');
        const prev = Object.hasOwn(grouped, name) ? grouped[name] : undefined;
        const next = prev === undefined ? v : Array.isArray(prev) ? [...(prev as unknown[]), v] : [prev, v];
        Object.defineProperty(grouped, name, {
          value: next,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      expect(grouped).toEqual(headers);
    }
    return rest;
  });
  return { ...batch, records };
}

async function decodeWith(
  decode: RecordBatchDecoder,
  bytes: Buffer,
): Promise<{ result: unknown; offset: number } | { error: string }> {
  const d = new Decoder(bytes);
  try {
    const results: unknown[] = [];
    while (d.offset < bytes.length) {
      const batch = await decode(d);
      results.push(decode === fast ? withoutRawHeaders(batch as never) : batch);
    }
    return { result: results, offset: d.offset };
  } catch (err) {
    return { error: `${(err as Error).name}: ${(err as Error).message}` };
  }
}

/**
 * Both decoders on the same bytes: the same batches (strictly: no missing or extra keys), the
 * records of a batch sharing one context object, the same position after — or both failing,
 * with kafkajs' own message for a partial batch (the consumer relies on that one).
 */
async function expectSame(bytes: Buffer, compressed = false): Promise<unknown> {
  const a = await decodeWith(stock, bytes);
  const b = await decodeWith(fast, bytes);
  if ('error' in a && compressed && !a.error.startsWith('KafkaJSPartialMessageError')) {
    // Where kafkajs throws on a compressed batch (failing the whole fetch), pgsink's decoder
    // gives the batch one marker record that names the failure (see codecs.test.ts).
    expect(b).not.toHaveProperty('error');
    const [batch] = (b as { result: Array<{ records: object[] }> }).result;
    expect(batch!.records).toHaveLength(1);
    expect(unreadableOf(batch!.records[0]!)?.error.code).toBe('CORRUPT_BATCH');
    return a;
  }
  if ('error' in a) {
    expect(b).toHaveProperty('error');
    if (a.error.startsWith('KafkaJSPartialMessageError')) expect(b).toStrictEqual(a);
    return a;
  }
  expect(b).toStrictEqual(a);
  for (const batch of (b as { result: Array<{ records: Array<{ batchContext: object }> }> }).result) {
    const contexts = new Set(batch.records.map((r) => r.batchContext));
    expect(contexts.size).toBeLessThanOrEqual(1);
    for (const ctx of contexts) expect(ctx).not.toBe(batch);
  }
  return a;
}

const rec = (over: Partial<TestRecord> = {}): TestRecord => ({
  timestampDelta: 0n,
  offsetDelta: 0,
  key: Buffer.from('k'),
  value: Buffer.from('v'),
  headers: [],
  ...over,
});

// ------------------------------------------------------------------ tests

describe('record batch decoder (kafkajs 2.2.4 replacement)', () => {
  it('is written against the installed kafkajs', () => {
    expect((require('kafkajs/package.json') as { version: string }).version).toBe(KAFKAJS_VERSION);
  });

  it('decodes plain records exactly as kafkajs does', async () => {
    const records = [
      rec({ offsetDelta: 0, timestampDelta: 0n }),
      rec({ offsetDelta: 1, timestampDelta: 5n, key: null }),
      rec({ offsetDelta: 2, timestampDelta: -3n, value: null }),
      rec({ offsetDelta: 3, key: Buffer.alloc(0), value: Buffer.alloc(0) }),
      rec({ offsetDelta: 4, value: Buffer.alloc(300, 7), timestampDelta: 1_000_000_000n }),
    ];
    const out = (await expectSame(
      encodeBatch({
        firstOffset: 41n,
        firstTimestamp: 1_763_000_000_000n,
        maxTimestamp: 1_763_000_000_500n,
        attributes: 0,
        records,
      }),
    )) as { result: Array<{ records: Array<{ offset: string; timestamp: string }> }> };
    // Not only equal to kafkajs: the values themselves.
    const got = out.result[0]!.records;
    expect(got.map((r) => r.offset)).toEqual(['41', '42', '43', '44', '45']);
    expect(got[2]!.timestamp).toBe('1762999999997');
  });

  it('collects headers as kafkajs does: repeated keys into arrays, null values, any key', async () => {
    await expectSame(
      encodeBatch({
        firstOffset: 0n,
        firstTimestamp: 1n,
        maxTimestamp: 1n,
        attributes: 0,
        records: [
          rec({ headers: [['traceparent', Buffer.from('00-abc-def-01')]] }),
          rec({
            offsetDelta: 1,
            headers: [
              ['a', Buffer.from('1')],
              ['a', Buffer.from('2')],
              ['a', null],
              ['ünïcødé', Buffer.from('x')],
              [null, Buffer.from('nameless')],
              ['', Buffer.alloc(0)],
            ],
          }),
        ],
      }),
    );
  });

  it('keeps header names such as __proto__ or toString as plain keys (kafkajs mixes in the inherited member)', async () => {
    const bytes = encodeBatch({
      firstOffset: 0n,
      firstTimestamp: 1n,
      maxTimestamp: 1n,
      attributes: 0,
      records: [
        rec({
          headers: [
            ['__proto__', Buffer.from('p')],
            ['toString', Buffer.from('t')],
            ['constructor', Buffer.from('c1')],
            ['constructor', Buffer.from('c2')],
          ],
        }),
      ],
    });
    const out = await fast(new Decoder(bytes));
    const headers = out.records[0]!.headers;
    expect(Object.getPrototypeOf(headers)).toBe(Object.prototype);
    expect(Object.keys(headers)).toEqual(['__proto__', 'toString', 'constructor']);
    expect(Object.getOwnPropertyDescriptor(headers, '__proto__')?.value).toEqual(Buffer.from('p'));
    expect(headers.toString).toEqual(Buffer.from('t'));
    expect(headers.constructor).toEqual([Buffer.from('c1'), Buffer.from('c2')]);
  });

  it('keeps the header section as it is on the wire: order, repeated keys, null values, any key bytes', async () => {
    const headers: Array<[string | Buffer | null, Buffer | null]> = [
      ['b', Buffer.from([0xff, 0x00, 0xfe])],
      ['1', Buffer.from('one')],
      ['b', null],
      [Buffer.from([0xc3, 0x28]), Buffer.from('\\u0000')],
      [null, Buffer.from('nameless')],
      ['', Buffer.alloc(0)],
      ['a', Buffer.from([0])],
    ];
    const bytes = encodeBatch({
      firstOffset: 0n,
      firstTimestamp: 1n,
      maxTimestamp: 1n,
      attributes: 0,
      records: [rec({ headers }), rec({ offsetDelta: 1 })],
    });
    const out = await fast(new Decoder(bytes));
    const [withHeaders, without] = out.records;
    expect(without!.rawHeaders).toBeNull();
    const list = parseRawHeaders(withHeaders!.rawHeaders!);
    expect(list).toEqual(
      headers.map(([k, v]) => [k === null ? null : Buffer.isBuffer(k) ? k : Buffer.from(k), v]),
    );
    // kafkajs' shape loses what the raw bytes keep: the key order and the key's bytes.
    expect(Object.keys(withHeaders!.headers)).toEqual(['1', 'b', '\uFFFD(', 'null', '', 'a']);
  });

  it('decodes several batches from one fetch, gzip-compressed ones too', async () => {
    const many = Array.from({ length: 50 }, (_, i) =>
      rec({ offsetDelta: i, timestampDelta: BigInt(i * 3), value: Buffer.from(`value-${i}`) }),
    );
    await expectSame(
      Buffer.concat([
        encodeBatch({
          firstOffset: 0n,
          firstTimestamp: 10n,
          maxTimestamp: 99n,
          attributes: 0,
          records: many,
        }),
        encodeBatch({
          firstOffset: 50n,
          firstTimestamp: 10n,
          maxTimestamp: 99n,
          attributes: 0,
          records: many,
          gzip: true,
        }),
        encodeBatch({
          firstOffset: 100n,
          firstTimestamp: 10n,
          maxTimestamp: 99n,
          attributes: 0,
          records: [],
          count: 0,
          gzip: true,
        }),
        encodeBatch({
          firstOffset: 100n,
          firstTimestamp: 10n,
          maxTimestamp: 99n,
          attributes: 0,
          records: [],
          count: -1,
        }),
      ]),
    );
  });

  it('takes the batch timestamp under LOG_APPEND_TIME, and flags control and transactional batches', async () => {
    for (const attributes of [0x08, 0x10, 0x20, 0x30, 0x38]) {
      await expectSame(
        encodeBatch({
          firstOffset: 5n,
          firstTimestamp: 1000n,
          maxTimestamp: 2000n,
          attributes,
          records: [rec(), rec({ offsetDelta: 1, timestampDelta: 2n ** 50n })],
        }),
      );
    }
  });

  it('falls back to exact 64-bit arithmetic beyond 2^53 and for long varlongs', async () => {
    const cases: TestBatch[] = [
      // int64 fields just past the double range (high word 0x200000, low word odd) and at its edge
      ...[2n ** 53n + 1n, 2n ** 53n - 1n, -(2n ** 53n) - 1n, -(2n ** 53n) + 1n].map((v) => ({
        firstOffset: v < 0n ? -v : v,
        firstTimestamp: v,
        maxTimestamp: v,
        producerId: v,
        attributes: 0,
        records: [rec(), rec({ offsetDelta: 1 })],
      })),
      {
        firstOffset: 2n ** 60n,
        firstTimestamp: 0n,
        maxTimestamp: 0n,
        attributes: 0,
        records: [rec(), rec({ offsetDelta: 9 })],
      },
      {
        firstOffset: 2n ** 53n - 2n,
        firstTimestamp: 0n,
        maxTimestamp: 0n,
        attributes: 0,
        records: [rec({ offsetDelta: 5 })],
      },
      {
        firstOffset: 0n,
        firstTimestamp: 2n ** 62n,
        maxTimestamp: 0n,
        attributes: 0,
        records: [rec({ timestampDelta: 1n })],
      },
      {
        firstOffset: 0n,
        firstTimestamp: 9_007_199_254_740_990n,
        maxTimestamp: 0n,
        attributes: 0,
        records: [rec({ timestampDelta: 10n })],
      },
      {
        firstOffset: 0n,
        firstTimestamp: -5n,
        maxTimestamp: -1n,
        attributes: 0,
        records: [rec({ timestampDelta: -(2n ** 55n) })],
      },
      {
        firstOffset: 0n,
        firstTimestamp: 0n,
        maxTimestamp: 0n,
        attributes: 0,
        producerId: -(2n ** 62n),
        records: [rec({ timestampDelta: 2n ** 62n })],
      },
      {
        firstOffset: 0n,
        firstTimestamp: 0n,
        maxTimestamp: 0n,
        attributes: 0,
        records: [rec({ timestampDelta: 2n ** 48n }), rec({ timestampDelta: 2n ** 49n })],
      },
    ];
    for (const c of cases) await expectSame(encodeBatch(c));
  });

  it('fails a partial batch at the end of a fetch the same way', async () => {
    const full = encodeBatch({
      firstOffset: 0n,
      firstTimestamp: 0n,
      maxTimestamp: 0n,
      attributes: 0,
      records: [rec(), rec({ offsetDelta: 1 })],
    });
    for (const cut of [60, full.length - 1]) {
      const out = await expectSame(full.subarray(0, cut));
      expect(out).toMatchObject({ error: expect.stringContaining('KafkaJSPartialMessageError') });
    }
  });

  it('cuts a field that claims more bytes than its record holds at the record end, as kafkajs does', async () => {
    // Record 0's key says 50 bytes but the record ends after 3 of them; record 1 is intact.
    const body = new Bytes().int8(0).varlong(0n).varint(0).varint(50).push(Buffer.from('abc')).buffer;
    const bad = new Bytes().varint(body.length).push(body).buffer;
    const records = Buffer.concat([bad, encodeRecord(rec({ offsetDelta: 1, key: Buffer.from('next') }))]);
    const head = encodeBatch({
      firstOffset: 0n,
      firstTimestamp: 0n,
      maxTimestamp: 0n,
      attributes: 0,
      records: [rec(), rec()],
    });
    // Same header, the hand-made records in place of the encoded ones.
    const batchBody = Buffer.concat([head.subarray(12, 12 + 49), records]);
    const bytes = new Bytes().int64(0n).int32(batchBody.length).push(batchBody).buffer;
    const a = await stock(new Decoder(bytes));
    const b = await fast(new Decoder(bytes));
    expect(b.records[0]!.key).toEqual(Buffer.from('abc'));
    expect(b.records[0]!.key).toEqual(a.records[0]!.key);
    const { rawHeaders, ...rest } = b.records[1]!;
    expect(rawHeaders).toBeNull();
    expect(rest).toEqual(a.records[1]);
    expect(b.records[1]!.key).toEqual(Buffer.from('next'));
  });

  it('reads a malformed record within its declared length and fails where kafkajs fails', async () => {
    const good = encodeRecord(rec({ offsetDelta: 1, key: Buffer.from('next') }));
    // A record without its own length varint (one byte for these small records).
    const body = (r: TestRecord) => encodeRecord(r).subarray(1);
    const withLength = (length: number, content: Buffer) => new Bytes().varint(length).push(content).buffer;
    const headed = rec({ headers: [['h', Buffer.from('v')]] });
    // Each case: the records of one batch, whose header counts exactly these.
    const cases: Buffer[][] = [
      // declared shorter than its content: the rest is read as the next record
      [withLength(2, body(headed)), good],
      [withLength(5, body(headed)), good],
      // declared longer than its content: the next record's bytes are read as this one's
      [withLength(body(rec()).length + 3, body(rec())), good],
      // empty, null, negative
      [withLength(0, Buffer.alloc(0)), good],
      [withLength(-1, Buffer.alloc(0)), good],
      [withLength(-2, Buffer.alloc(0)), good],
      // a header count below -1, and -1 (none)
      [withLength(7, Buffer.from([0, 0, 0, 0, 0, 3 /* zigzag -2 */, 0]))],
      [withLength(6, Buffer.from([0, 0, 0, 0, 0, 1 /* zigzag -1 */]))],
      // key length -2 moves the position back, as kafkajs does
      [withLength(5, Buffer.from([0, 0, 0, 3, 0]))],
    ];
    let failures = 0;
    for (const list of cases) {
      const records = Buffer.concat(list);
      for (const gzip of [false, true]) {
        const head = encodeBatch({
          firstOffset: 3n,
          firstTimestamp: 100n,
          maxTimestamp: 100n,
          attributes: 0,
          records: [],
          count: list.length,
          gzip,
        });
        const header = Buffer.from(head.subarray(12, 12 + 49));
        const batchBody = Buffer.concat([header, gzip ? gzipSync(records) : records]);
        const out = await expectSame(
          new Bytes().int64(3n).int32(batchBody.length).push(batchBody).buffer,
          gzip,
        );
        if (out && typeof out === 'object' && 'error' in out) failures++;
      }
    }
    // Not every case fails: some decode to what kafkajs decodes them to.
    expect(failures).toBeGreaterThan(0);
    expect(failures).toBeLessThan(cases.length * 2);
  });

  it('agrees on 300 random batches', async () => {
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const bytes = (): Buffer | null =>
      rnd(8) === 0 ? null : Buffer.from(Array.from({ length: rnd(40) }, () => rnd(256)));
    for (let i = 0; i < 300; i++) {
      const n = rnd(12);
      // Small, around 2^49 (the edge of the double path), or anywhere in int64.
      const wide = (): bigint => {
        const kind = rnd(4);
        const magnitude =
          kind === 0
            ? BigInt(rnd(100000))
            : kind === 1
              ? 2n ** 49n + BigInt(rnd(1000)) - 500n
              : BigInt.asIntN(64, (BigInt(rnd(2 ** 31)) << 33n) ^ BigInt(rnd(2 ** 31)));
        return rnd(2) ? magnitude : -magnitude;
      };
      const records = Array.from({ length: n }, (_, j) =>
        rec({
          offsetDelta: j + rnd(3),
          timestampDelta: BigInt.asIntN(64, wide()),
          key: bytes(),
          value: bytes(),
          headers: Array.from({ length: rnd(4) }, (): [string | null, Buffer | null] => [
            [null, '', 'h', 'x', 'traceparent', 'ünï'][rnd(6)]!,
            bytes(),
          ]),
        }),
      );
      const offsets = [BigInt(rnd(1_000_000)), 2n ** 53n - BigInt(rnd(20)), wide()];
      const firstOffset = offsets[rnd(3)]!;
      await expectSame(
        encodeBatch({
          firstOffset: firstOffset < 0n ? -firstOffset : firstOffset,
          firstTimestamp: rnd(4) === 0 ? wide() : 1_700_000_000_000n + BigInt(rnd(1e9)),
          maxTimestamp: 1_700_000_000_000n,
          attributes: rnd(4) === 0 ? 0x08 : 0,
          records,
          gzip: rnd(5) === 0,
        }),
      );
    }
  });

  it('decodes snappy, lz4 and zstd batches to the records of the same batch uncompressed', async () => {
    const many = Array.from({ length: 40 }, (_, i) =>
      rec({ offsetDelta: i, timestampDelta: BigInt(i), value: Buffer.from(`value-${i}`.repeat(i)) }),
    );
    const batch = (codec: number) =>
      encodeBatch({
        firstOffset: 5n,
        firstTimestamp: 10n,
        maxTimestamp: 99n,
        attributes: 0,
        records: many,
        codec,
      });
    const plain = await decodeWith(fast, batch(0));
    expect(plain).not.toHaveProperty('error');
    for (const name of ['gzip', 'snappy', 'lz4', 'zstd'] as const) {
      const bytes = batch(CODEC_IDS[name]);
      expect(bytes.length).toBeLessThan(batch(0).length);
      const out = await decodeWith(fast, bytes);
      expect(out).toStrictEqual({ result: (plain as { result: unknown }).result, offset: bytes.length });
    }
  });

  describe('a compressed batch that cannot be read', () => {
    afterEach(() => setDecompressFault(undefined));
    const good = (firstOffset: bigint) =>
      encodeBatch({
        firstOffset,
        firstTimestamp: 10n,
        maxTimestamp: 99n,
        attributes: 0,
        records: [rec(), rec({ offsetDelta: 1 })],
      });
    const bad = (firstOffset: bigint, over: Partial<TestBatch>) =>
      encodeBatch({
        firstOffset,
        firstTimestamp: 10n,
        maxTimestamp: 99n,
        attributes: 0,
        records: [rec(), rec({ offsetDelta: 1 }), rec({ offsetDelta: 2 })],
        ...over,
      });
    const markers = async (bytes: Buffer) => {
      const out = await decodeWith(fast, bytes);
      expect(out).not.toHaveProperty('error');
      return (out as { result: Array<{ records: Array<{ offset: string }> }> }).result.map((b) =>
        b.records.map((r) => {
          const u = unreadableOf(r);
          return u ? { offset: r.offset, ...u, error: u.error.code } : r.offset;
        }),
      );
    };

    it('becomes one marker naming the codec and the reason; the batches around it are read', async () => {
      const fetch = Buffer.concat([
        good(0n),
        bad(2n, { codec: 5 }),
        good(5n),
        bad(7n, { codec: CODEC_IDS.zstd, payload: Buffer.from('not zstd at all') }),
        bad(10n, {
          codec: CODEC_IDS.snappy,
          payload: Buffer.from([
            0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9, 1,
          ]),
        }),
        bad(13n, {
          codec: CODEC_IDS.lz4,
          payload: compress(CODEC_IDS.lz4, Buffer.from('three records, promised')),
        }),
        good(16n),
      ]);
      expect(await markers(fetch)).toEqual([
        ['0', '1'],
        [{ offset: '4', firstOffset: '2', lastOffset: '4', codec: 'codec 5', error: 'UNKNOWN_CODEC' }],
        ['5', '6'],
        [{ offset: '9', firstOffset: '7', lastOffset: '9', codec: 'zstd', error: 'DECOMPRESS_FAILED' }],
        [{ offset: '12', firstOffset: '10', lastOffset: '12', codec: 'snappy', error: 'DECOMPRESS_FAILED' }],
        [{ offset: '15', firstOffset: '13', lastOffset: '15', codec: 'lz4', error: 'CORRUPT_BATCH' }],
        ['16', '17'],
      ]);
    });

    it('can be made so by the codec registry’s test hook, with real compressed bytes', async () => {
      const batch = bad(20n, { codec: CODEC_IDS.lz4 });
      expect(await markers(batch)).toEqual([['20', '21', '22']]);
      setDecompressFault((codec) => (codec === 'lz4' ? new Error('refused by the test') : undefined));
      expect(await markers(batch)).toEqual([
        [{ offset: '22', firstOffset: '20', lastOffset: '22', codec: 'lz4', error: 'DECOMPRESS_FAILED' }],
      ]);
      expect(await markers(bad(20n, { codec: CODEC_IDS.zstd }))).toEqual([['20', '21', '22']]);
    });
  });

  it("is in kafkajs' place when kafkajs is loaded through src/kafka/kafkajs.ts, and says so when it was loaded first", () => {
    const entry = fileURLToPath(new URL('../../src/kafka/kafkajs.ts', import.meta.url));
    const run = (script: string, env: Record<string, string> = {}) =>
      spawnSync(process.execPath, ['--input-type=module', '-e', script], {
        encoding: 'utf8',
        env: { ...process.env, ...env },
      });
    const probe = `
      import { createRequire } from 'node:module';
      const m = await import(${JSON.stringify(entry)});
      const require = createRequire(${JSON.stringify(entry)});
      const path = require.resolve('kafkajs/src/protocol/recordBatch/v0/decoder.js');
      const decodeMessages = require('kafkajs/src/protocol/requests/fetch/v4/decodeMessages.js');
      console.log(m.kafkajsDecoder, require(path).toString().includes('int64String'), typeof decodeMessages);`;
    expect(run(probe).stdout.trim()).toBe('fast true function');
    expect(run(probe, { PGSINK_KAFKAJS_DECODER: 'stock' }).stdout.trim()).toBe('stock false function');
    const late = run(
      `import { createRequire } from 'node:module'; createRequire(import.meta.url)('kafkajs'); await import(${JSON.stringify(entry)});`,
    );
    const again = run(`
      const m = await import(${JSON.stringify(entry)});
      const r = await import(${JSON.stringify(entry.replace('kafkajs.ts', 'record-batch-decoder.ts') + '?again')});
      console.log(m.kafkajsDecoder, r.installRecordBatchDecoder());`);
    expect(again.stdout.trim()).toBe('fast fast');
    expect(late.status).not.toBe(0);
    expect(late.stderr).toContain('kafkajs was loaded before pgsink installed its record batch decoder');
  });

  it('refuses a PGSINK_KAFKAJS_DECODER value it does not know, naming it', () => {
    expect(() => installRecordBatchDecoder({ PGSINK_KAFKAJS_DECODER: 'fastest' })).toThrow(
      /PGSINK_KAFKAJS_DECODER must be "fast" or "stock", got "fastest"/,
    );
  });
});
