// Avro longs decode exactly: a number below 2^52 in magnitude (no allocation on the hot
// path), a BigInt beyond, and every value round-trips through encode and decode.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { typeForSchema, type AvroSchema } from '../../src/avro/types.ts';

const type = typeForSchema({
  type: 'record',
  name: 'L',
  fields: [{ name: 'v', type: 'long' }],
} as AvroSchema);
const roundTrip = (v: number | bigint): unknown =>
  (type.fromBuffer(type.toBuffer({ v })) as { v: unknown }).v;

describe('long decoding', () => {
  it('gives numbers below 2^52 and BigInts from 2^52 on, exactly', () => {
    expect(roundTrip(0)).toBe(0);
    expect(roundTrip(-1)).toBe(-1);
    expect(roundTrip(2 ** 52 - 1)).toBe(2 ** 52 - 1);
    expect(roundTrip(-(2 ** 52) + 1)).toBe(-(2 ** 52) + 1);
    expect(roundTrip(2n ** 52n)).toBe(2n ** 52n);
    expect(roundTrip(-(2n ** 52n))).toBe(-(2n ** 52n));
    expect(roundTrip(2n ** 53n + 1n)).toBe(2n ** 53n + 1n);
    expect(roundTrip(-(2n ** 63n))).toBe(-(2n ** 63n));
    expect(roundTrip(2n ** 63n - 1n)).toBe(2n ** 63n - 1n);
  });

  it('round-trips every int64 exactly', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), (v) => {
        expect(BigInt(roundTrip(v) as number | bigint)).toBe(v);
      }),
      { numRuns: 2000 },
    );
  });
});
