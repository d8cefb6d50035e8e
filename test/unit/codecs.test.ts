// Kafka's four codecs (src/kafka/codecs.ts): round trips, the framings other clients write, the
// size limit of one batch, and failures as typed errors with the codec's name. That Java's
// bytes are read is proven against the real broker (test/integration/codecs.test.ts).
import { randomBytes } from 'node:crypto';
import zlib from 'node:zlib';
import { compressSync as rawSnappy } from 'snappy';
import { describe, expect, it } from 'vitest';
import {
  CODEC_IDS,
  CodecError,
  compress,
  codecName,
  decompress,
  decompressedBatches,
} from '../../src/kafka/codecs.ts';

const text = Buffer.from(
  Array.from({ length: 5_000 }, (_, i) => `record ${i}: {"order_id": ${i * 7}, "city": "Zürich"}\n`).join(''),
);
const noise = randomBytes(100_000);

function codecError(fn: () => unknown): CodecError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CodecError);
    return err as CodecError;
  }
  throw new Error('expected a CodecError');
}

describe('codecs', () => {
  it('round-trips text and incompressible bytes through each codec, and counts what it decompressed', () => {
    const before = decompressedBatches();
    for (const name of ['gzip', 'snappy', 'lz4', 'zstd'] as const) {
      const id = CODEC_IDS[name];
      const small = compress(id, text);
      expect(small.length).toBeLessThan(text.length / 3);
      expect(decompress(id, small).equals(text)).toBe(true);
      expect(decompress(id, compress(id, noise)).equals(noise)).toBe(true);
      expect(decompress(id, compress(id, Buffer.alloc(0))).length).toBe(0);
      expect(decompressedBatches()[name] - before[name]).toBe(3);
    }
  });

  it('reads xerial-framed snappy (blocks of 32 KiB, concatenated streams) and one raw snappy block', () => {
    const framed = compress(CODEC_IDS.snappy, text);
    // The header Java's SnappyOutputStream writes: magic, version 1, compatible version 1.
    expect(framed.subarray(0, 16).toString('hex')).toBe('82534e41505059000000000100000001');
    expect(framed.readInt32BE(16)).toBeGreaterThan(0);
    // text is > 32 KiB: more than one block
    expect(text.length).toBeGreaterThan(64 * 1024);
    const twice = Buffer.concat([framed, compress(CODEC_IDS.snappy, noise)]);
    expect(decompress(CODEC_IDS.snappy, twice).equals(Buffer.concat([text, noise]))).toBe(true);
    // librdkafka and old clients: a single raw block, no framing.
    expect(decompress(CODEC_IDS.snappy, rawSnappy(text)).equals(text)).toBe(true);
  });

  it('refuses a batch that would expand beyond the limit, before allocating it where the format says its size', () => {
    const zeros = Buffer.alloc(4 * 1024 * 1024);
    for (const name of ['gzip', 'snappy', 'lz4', 'zstd'] as const) {
      const id = CODEC_IDS[name];
      const packed = compress(id, zeros);
      expect(packed.length).toBeLessThan(zeros.length / 20);
      const e = codecError(() => decompress(id, packed, 1024 * 1024));
      expect(e.code).toBe('DECOMPRESSED_TOO_LARGE');
      expect(e.codec).toBe(name);
      expect(e.message).toContain(name);
      expect(decompress(id, packed, zeros.length).length).toBe(zeros.length);
    }
  });

  it('names the codec and the reason when it cannot read a payload', () => {
    const cases: Array<[number, Buffer]> = [
      [CODEC_IDS.gzip, Buffer.from('not gzip')],
      [CODEC_IDS.zstd, Buffer.from('not zstd')],
      [CODEC_IDS.lz4, Buffer.from('not an lz4 frame')],
      [CODEC_IDS.lz4, compress(CODEC_IDS.lz4, text).subarray(0, 100)],
      [
        CODEC_IDS.snappy,
        Buffer.from([0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1, 0]),
      ],
      [CODEC_IDS.snappy, Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2])],
      [CODEC_IDS.gzip, zlib.gzipSync(text).subarray(0, 200)],
    ];
    for (const [id, payload] of cases) {
      const e = codecError(() => decompress(id, payload));
      expect(e.code).toMatch(/^(DECOMPRESS_FAILED|DECOMPRESSED_TOO_LARGE)$/);
      expect(e.codec).toBe(codecName(id));
      expect(e.retriable).toBe(true);
      expect(e.source).toBe('kafka');
    }
    for (const id of [0, 5, 6, 7]) {
      const e = codecError(() => decompress(id, text));
      expect(e.code).toBe('UNKNOWN_CODEC');
      expect(e.message).toContain(`codec id ${id}`);
    }
    expect([0, 1, 2, 3, 4, 5].map(codecName)).toEqual(['none', 'gzip', 'snappy', 'lz4', 'zstd', 'codec 5']);
  });
});
