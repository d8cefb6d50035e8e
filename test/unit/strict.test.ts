// The strict readers of src/avro/strict.ts against reference definitions written here with
// BigInt (varints) and the WHATWG fatal UTF-8 decoder (strings), on random and edge bytes.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BodyFault,
  bodyValidator,
  checkUtf8,
  MAX_EMPTY_ITEMS,
  readBoolean,
  readInt,
  readLength,
  readLong,
  type Source,
} from '../../src/avro/strict.ts';
import { typeForSchema, type AvroSchema } from '../../src/avro/types.ts';
import { long, varint } from '../support/avro-bodies.ts';

const src = (bytes: number[] | Buffer): Source => {
  const b = Buffer.from(bytes);
  return { src: b, p: 0, end: b.length };
};

/** What a reader does with these bytes: its value and position, or its fault's code. */
function run<T>(
  read: (s: Source) => T,
  bytes: number[] | Buffer,
): { value: T; p: number } | { code: string } {
  const s = src(bytes);
  try {
    const value = read(s);
    return { value, p: s.p };
  } catch (err) {
    if (err instanceof BodyFault) return { code: err.code };
    throw err;
  }
}

/**
 * Reference: a zigzag varint of at most `max` bytes whose last byte is at most `top`; NaN when
 * it is longer or larger, MALFORMED_BODY when the bytes end first.
 */
function reference(
  bytes: number[],
  max: number,
  top: number,
): { value: bigint | number; p: number } | { code: string } {
  let z = 0n;
  for (let i = 0; i < max; i++) {
    if (i >= bytes.length) return { code: 'MALFORMED_BODY' };
    const b = bytes[i]!;
    if (i === max - 1 && b > top) return { value: Number.NaN, p: i + 1 };
    z |= BigInt(b & 0x7f) << BigInt(7 * i);
    if (b < 0x80) return { value: (z >> 1n) ^ -(z & 1n), p: i + 1 };
  }
  throw new Error('unreachable');
}

const asBig = (r: { value: unknown; p: number } | { code: string }) =>
  'value' in r && !Number.isNaN(r.value) ? { value: BigInt(r.value as number | bigint), p: r.p } : r;

const varintBytes = fc.oneof(
  fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 12 }),
  fc
    .array(fc.integer({ min: 0x80, max: 0xff }), { maxLength: 11 })
    .chain((head) => fc.integer({ min: 0, max: 0x7f }).map((last) => [...head, last])),
);

describe('readInt: at most 5 bytes, 32 bits', () => {
  it('agrees with the reference on random bytes', () => {
    fc.assert(
      fc.property(varintBytes, (bytes) => {
        expect(asBig(run((s) => readInt(s, 'f'), bytes))).toEqual(asBig(reference(bytes, 5, 0x0f)));
      }),
      { numRuns: 5_000 },
    );
  });

  it('reads every int32 exactly, also with redundant bytes, and nothing beyond', () => {
    for (const v of [0, 1, -1, 63, -64, 64, 2 ** 31 - 1, -(2 ** 31), 123_456_789]) {
      expect(run((s) => readInt(s, 'f'), long(v))).toEqual({ value: v, p: long(v).length });
      if (long(v).length < 5)
        expect(run((s) => readInt(s, 'f'), long(v, 5 - long(v).length))).toMatchObject({ value: v });
    }
    for (const v of [2 ** 31, -(2 ** 31) - 1, 2 ** 40]) {
      expect(run((s) => readInt(s, 'f'), long(v))).toMatchObject({ value: Number.NaN });
    }
    expect(run((s) => readInt(s, 'f'), [0x80, 0x80, 0x80, 0x80, 0x80, 0x00])).toMatchObject({
      value: Number.NaN,
    });
    expect(run((s) => readInt(s, 'f'), [0x80, 0x80])).toEqual({ code: 'MALFORMED_BODY' });
  });
});

describe('readLong: at most 10 bytes, 64 bits', () => {
  it('agrees with the reference on random bytes', () => {
    fc.assert(
      fc.property(varintBytes, (bytes) => {
        expect(asBig(run((s) => readLong(s, 'f'), bytes))).toEqual(asBig(reference(bytes, 10, 0x01)));
      }),
      { numRuns: 5_000 },
    );
  });

  it('reads every int64 exactly: a number below 2^52 in magnitude, a BigInt beyond', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), (v) => {
        const r = run((s) => readLong(s, 'f'), long(v));
        expect(r).toMatchObject({ value: v > -(2n ** 52n) && v < 2n ** 52n ? Number(v) : v });
      }),
      { numRuns: 2_000 },
    );
    // The 12-byte varint of the issue, and a 10th byte above 0x01.
    const twelve = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x81, 0x01];
    expect(run((s) => readLong(s, 'f'), twelve)).toMatchObject({ value: Number.NaN });
    expect(run((s) => readLong(s, 'f'), [...varint(2n ** 64n - 1n)])).toMatchObject({ value: -(2n ** 63n) });
    expect(run((s) => readLong(s, 'f'), [...varint(2n ** 64n)])).toMatchObject({ value: Number.NaN });
  });

  it('readLength refuses negative, oversized and overlong lengths', () => {
    expect(run((s) => readLength(s, 'f'), [...long(2), 0x61, 0x62])).toEqual({ value: 2, p: 1 });
    expect(run((s) => readLength(s, 'f'), [...long(3), 0x61, 0x62])).toEqual({ code: 'MALFORMED_BODY' });
    expect(run((s) => readLength(s, 'f'), [...long(-1)])).toEqual({ code: 'MALFORMED_BODY' });
    expect(run((s) => readLength(s, 'f'), [...long(2n ** 60n)])).toEqual({ code: 'MALFORMED_BODY' });
    expect(run((s) => readLength(s, 'f'), [...varint(2n ** 70n)])).toEqual({ code: 'MALFORMED_BODY' });
  });
});

describe('readBoolean', () => {
  it('reads 0 and 1 and refuses every other byte', () => {
    expect(run((s) => readBoolean(s, 'b'), [0])).toEqual({ value: false, p: 1 });
    expect(run((s) => readBoolean(s, 'b'), [1])).toEqual({ value: true, p: 1 });
    for (let b = 2; b < 256; b++)
      expect(run((s) => readBoolean(s, 'b'), [b])).toEqual({ code: 'BOOLEAN_OUT_OF_RANGE' });
    expect(run((s) => readBoolean(s, 'b'), [])).toEqual({ code: 'MALFORMED_BODY' });
  });
});

describe('checkUtf8', () => {
  const fatal = new TextDecoder('utf-8', { fatal: true });
  const wellFormed = (b: Uint8Array): boolean => {
    try {
      fatal.decode(b);
      return true;
    } catch {
      return false;
    }
  };
  const accepts = (b: Buffer): boolean => {
    try {
      checkUtf8(b, 0, b.length, 's');
      return true;
    } catch (err) {
      expect((err as BodyFault).code).toBe('INVALID_UTF8');
      return false;
    }
  };

  it('agrees with the WHATWG fatal decoder, short strings and long ones', () => {
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 16 }),
      fc.uint8Array({ minLength: 60, maxLength: 400 }),
      fc
        .string({ unit: 'grapheme', minLength: 100, maxLength: 200 })
        .map((s) => new Uint8Array(Buffer.from(s))),
      fc.string({ unit: 'grapheme', maxLength: 40 }).map((s) => new Uint8Array(Buffer.from(s))),
    );
    fc.assert(
      fc.property(bytes, (a) => {
        expect(accepts(Buffer.from(a))).toBe(wellFormed(a));
      }),
      { numRuns: 5_000 },
    );
  });

  it('names the first ill-formed sequence', () => {
    const err = (() => {
      try {
        checkUtf8(Buffer.from([0x61, 0x62, 0xed, 0xa0, 0x80]), 0, 5, 'x.y');
      } catch (e) {
        return e as BodyFault;
      }
      throw new Error('expected a throw');
    })();
    expect(err.message).toBe(
      "field 'x.y': string is not well-formed UTF-8: byte 2 of 5 starts an ill-formed sequence (ed a0 80)",
    );
  });
});

describe('bodyValidator: limits', () => {
  it('refuses more than MAX_EMPTY_ITEMS items of a type that takes no bytes, at once', () => {
    const t = typeForSchema({
      type: 'record',
      name: 'A',
      fields: [{ name: 'n', type: { type: 'array', items: 'null' } }],
    } as AvroSchema);
    const ok = Buffer.concat([long(1000), Buffer.from([0])]);
    expect(() => bodyValidator(t)(ok, 0)).not.toThrow();
    const many = Buffer.concat([long(2n ** 62n), Buffer.from([0])]);
    const started = Date.now();
    expect(() => bodyValidator(t)(many, 0)).toThrow(
      expect.objectContaining({ code: 'TOO_MANY_ITEMS' }) as Error,
    );
    const blocks = Buffer.concat([
      ...Array.from({ length: 5 }, () => long(MAX_EMPTY_ITEMS / 4)),
      Buffer.from([0]),
    ]);
    expect(() => bodyValidator(t)(blocks, 0)).toThrow(
      expect.objectContaining({ code: 'TOO_MANY_ITEMS' }) as Error,
    );
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('refuses a block whose declared byte size is not what its items take', () => {
    const t = typeForSchema({
      type: 'record',
      name: 'A',
      fields: [{ name: 'a', type: { type: 'array', items: 'int' } }],
    } as AvroSchema);
    const items = Buffer.concat([long(1), long(2)]);
    expect(() =>
      bodyValidator(t)(Buffer.concat([long(-2), long(items.length), items, Buffer.from([0])]), 0),
    ).not.toThrow();
    expect(() =>
      bodyValidator(t)(Buffer.concat([long(-2), long(items.length + 1), items, Buffer.from([0, 0])]), 0),
    ).toThrow(
      expect.objectContaining({
        code: 'MALFORMED_BODY',
        message: "field 'a': a block declares 3 bytes but its 2 items take 2",
      }) as Error,
    );
  });

  it('refuses a body nested deeper than the stack as MALFORMED_BODY', () => {
    const t = typeForSchema({
      type: 'record',
      name: 'Node',
      fields: [{ name: 'next', type: ['null', 'Node'] }],
    } as AvroSchema);
    const deep = Buffer.concat([Buffer.alloc(1_000_000, 2), Buffer.from([0])]);
    expect(() => bodyValidator(t)(deep, 0)).toThrow(
      expect.objectContaining({ code: 'MALFORMED_BODY' }) as Error,
    );
    expect(() => bodyValidator(t)(Buffer.from([2, 2, 0]), 0)).not.toThrow();
  });
});
