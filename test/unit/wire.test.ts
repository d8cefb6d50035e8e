// Confluent wire format: magic byte 0, 4-byte big-endian schema id, Avro body.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { frame, HEADER_SIZE, MAGIC_BYTE, schemaIdOf } from '../../src/avro/wire.ts';
import { RecordError } from '../../src/util/errors.ts';

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

describe('wire format', () => {
  it('frames a body behind magic 0 and a big-endian id', () => {
    const framed = frame(0x01020304, Buffer.from([0xaa, 0xbb]));
    expect([...framed]).toEqual([0, 1, 2, 3, 4, 0xaa, 0xbb]);
    expect(MAGIC_BYTE).toBe(0);
    expect(HEADER_SIZE).toBe(5);
  });

  it('reads back the schema id of any frame', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.uint8Array({ maxLength: 32 }), (id, body) => {
        const framed = frame(id, Buffer.from(body));
        expect(schemaIdOf(framed)).toBe(id);
        expect(framed.subarray(HEADER_SIZE).equals(Buffer.from(body))).toBe(true);
      }),
    );
  });

  it('accepts a header with an empty body', () => {
    expect(schemaIdOf(Buffer.from([0, 0, 0, 0, 9]))).toBe(9);
  });

  it('rejects a wrong magic byte with RecordError BAD_MAGIC_BYTE', () => {
    for (const first of [1, 0x7b /* '{' of a JSON value */, 0xff]) {
      const err = thrown(() => schemaIdOf(Buffer.from([first, 0, 0, 0, 1, 2])));
      expect(err).toBeInstanceOf(RecordError);
      expect((err as RecordError).code).toBe('BAD_MAGIC_BYTE');
      expect((err as RecordError).retriable).toBe(false);
      expect((err as RecordError).message).toContain(String(first));
    }
  });

  it('rejects a value shorter than the header with RecordError TRUNCATED_HEADER', () => {
    for (const len of [0, 1, 4]) {
      const err = thrown(() => schemaIdOf(Buffer.alloc(len)));
      expect(err).toBeInstanceOf(RecordError);
      expect((err as RecordError).code).toBe('TRUNCATED_HEADER');
      expect((err as RecordError).message).toContain(`${len} bytes`);
    }
  });
});
