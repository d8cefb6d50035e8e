// Header pairs ↔ the header section's wire bytes (src/kafka/record-headers.ts): what the
// platformatic adapter keeps for dead letters must read back as the same pairs.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeRawHeaders, parseRawHeaders, type HeaderList } from '../../src/kafka/record-headers.ts';

const bytes = fc.option(
  fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
  { nil: null, freq: 4 },
);

describe('encodeRawHeaders', () => {
  it('reads back as the same pairs: null and binary keys and values, repeated keys in order', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(bytes, bytes), { maxLength: 80 }), (pairs: HeaderList) => {
        const back = parseRawHeaders(encodeRawHeaders(pairs));
        expect(back.map(([k, v]) => [k?.toString('hex') ?? null, v?.toString('hex') ?? null])).toEqual(
          pairs.map(([k, v]) => [k?.toString('hex') ?? null, v?.toString('hex') ?? null]),
        );
      }),
      { numRuns: 300 },
    );
  });

  it('writes Kafka varints: zigzag, 7 bits a byte', () => {
    // 1 header, key 'a' (length 1 → 2), value null (-1 → 1); a 200-byte key takes two bytes.
    expect(encodeRawHeaders([[Buffer.from('a'), null]]).toString('hex')).toBe('02026101');
    expect(
      encodeRawHeaders([[Buffer.alloc(200), null]])
        .subarray(0, 3)
        .toString('hex'),
    ).toBe('029003');
  });
});
