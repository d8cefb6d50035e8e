// Pure COPY-text encoders: every value must reach Postgres exactly (no float, no JS Date
// on the way), so most cases compare with known strings, and with independent computations
// over ranges.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decimalBytes } from '../../src/cli/sample-data.ts';
import {
  arrayLiteral,
  byteaField,
  escapeText,
  floatField,
  formatDate,
  formatDecimal,
  formatTime,
  formatTimestamp,
  isoDate,
  isoTimestamp,
  jsonBytes,
  jsonFloat,
  jsonString,
  NULL_FIELD,
} from '../../src/sink/copy-text.ts';
import { BodyFault } from '../../src/avro/strict.ts';
import { RecordError } from '../../src/util/errors.ts';

/** Reverses COPY text escaping for one field (what the server does). */
function unescapeCopy(field: string): string {
  return field.replace(/\\(.)/gs, (_m, c: string) =>
    c === 't' ? '\t' : c === 'n' ? '\n' : c === 'r' ? '\r' : c === 'N' ? '<NULL>' : c,
  );
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

describe('NULL_FIELD', () => {
  it('is the two characters backslash N', () => {
    expect(NULL_FIELD).toBe('\\N');
    expect(NULL_FIELD.length).toBe(2);
  });
});

describe('escapeText', () => {
  it('returns strings without special characters unchanged', () => {
    expect(escapeText('')).toBe('');
    expect(escapeText('hello world')).toBe('hello world');
    expect(escapeText('São Paulo – Zürich – 東京 – 🙂')).toBe('São Paulo – Zürich – 東京 – 🙂');
    expect(escapeText('quotes " and \' and , ; {}')).toBe('quotes " and \' and , ; {}');
  });

  it('escapes tab, newline, carriage return and backslash', () => {
    expect(escapeText('a\tb')).toBe('a\\tb');
    expect(escapeText('a\nb')).toBe('a\\nb');
    expect(escapeText('a\rb')).toBe('a\\rb');
    expect(escapeText('a\\b')).toBe('a\\\\b');
    expect(escapeText('\r\n\t\\')).toBe('\\r\\n\\t\\\\');
  });

  it('escapes a literal backslash-N so it is not read as NULL', () => {
    expect(escapeText('\\N')).toBe('\\\\N');
    expect(escapeText('\\N')).not.toBe(NULL_FIELD);
  });

  it('rejects a NUL character with a non-retriable RecordError NUL_IN_STRING', () => {
    for (const s of ['\0', 'a\0b', 'tab\tand\0nul']) {
      const err = thrown(() => escapeText(s));
      expect(err).toBeInstanceOf(RecordError);
      expect((err as RecordError).code).toBe('NUL_IN_STRING');
      expect((err as RecordError).retriable).toBe(false);
      expect((err as RecordError).source).toBe('internal');
    }
  });

  it('round-trips any string without NUL and never leaves a raw TAB, LF or CR', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: fc.constantFrom('a', 'b', '\\', '\t', '\n', '\r', 'N', 'é', '"') }),
        fc.string({ unit: 'grapheme' }),
        (special, any) => {
          for (const s of [special, any.replace(/\0/g, ''), special + any.replace(/\0/g, '')]) {
            const e = escapeText(s);
            expect(e).not.toMatch(/[\t\n\r]/);
            expect(unescapeCopy(e)).toBe(s);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('byteaField', () => {
  it('writes hex with an escaped leading backslash', () => {
    // COPY text turns "\\x" into "\x", which bytea reads as hex.
    expect(byteaField(Buffer.from([0xde, 0xad, 0xbe, 0xef]))).toBe('\\\\xdeadbeef');
    expect(byteaField(Buffer.from([0x00, 0x0a, 0x09, 0xff]))).toBe('\\\\x000a09ff');
    expect(unescapeCopy(byteaField(Buffer.from([1, 2])))).toBe('\\x0102');
  });

  it('writes an empty value as an empty bytea', () => {
    expect(byteaField(Buffer.alloc(0))).toBe('\\\\x');
  });

  it('encodes only the bytes of a view, not its whole backing buffer', () => {
    const backing = new Uint8Array([1, 2, 3, 4, 5]);
    expect(byteaField(backing.subarray(1, 3))).toBe('\\\\x0203');
    const big = Buffer.from('0123456789abcdef', 'hex');
    expect(byteaField(big.subarray(6))).toBe('\\\\xcdef');
  });
});

describe('floatField', () => {
  it('spells the special values the way Postgres reads them', () => {
    expect(floatField(Number.NaN)).toBe('NaN');
    expect(floatField(Infinity)).toBe('Infinity');
    expect(floatField(-Infinity)).toBe('-Infinity');
    expect(floatField(-0)).toBe('-0');
    expect(floatField(0)).toBe('0');
  });

  it('writes ordinary values in shortest round-trip form', () => {
    expect(floatField(1.5)).toBe('1.5');
    expect(floatField(-2.25)).toBe('-2.25');
    expect(floatField(0.1)).toBe('0.1');
    expect(floatField(1e21)).toBe('1e+21');
    expect(floatField(5e-324)).toBe('5e-324');
    expect(floatField(Number.MAX_VALUE)).toBe('1.7976931348623157e+308');
  });

  it('round-trips every double exactly (including -0)', () => {
    fc.assert(
      fc.property(fc.double(), (x) => {
        const text = floatField(x);
        const back = text === 'NaN' ? Number.NaN : Number(text);
        expect(Object.is(back, x)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });
});

// ------------------------------------------------------------------ dates and times

/** Days since the epoch of a proleptic Gregorian date (astronomical year numbering). */
function daysOf(y: number, m: number, d: number): number {
  const date = new Date(0);
  date.setUTCFullYear(y, m - 1, d);
  return date.getTime() / 86_400_000;
}

/** What Postgres expects for a date whose astronomical year is y. */
function pgDate(y: number, m: number, d: number): string {
  const p = (n: number, w: number): string => String(n).padStart(w, '0');
  return y <= 0 ? `${p(1 - y, 4)}-${p(m, 2)}-${p(d, 2)} BC` : `${p(y, 4)}-${p(m, 2)}-${p(d, 2)}`;
}

describe('formatDate', () => {
  it('formats known dates', () => {
    expect(formatDate(0n)).toBe('1970-01-01');
    expect(formatDate(-1n)).toBe('1969-12-31');
    expect(formatDate(19_723n)).toBe('2024-01-01');
    expect(formatDate(11_016n)).toBe('2000-02-29');
    expect(formatDate(-25_509n)).toBe('1900-02-28');
    expect(formatDate(-25_508n)).toBe('1900-03-01'); // 1900 is not a leap year
    expect(formatDate(2_932_896n)).toBe('9999-12-31');
    expect(formatDate(2_932_897n)).toBe('10000-01-01');
    expect(formatDate(-719_162n)).toBe('0001-01-01');
  });

  it('formats BC dates, with no year zero (year 0 is 1 BC)', () => {
    expect(formatDate(-719_163n)).toBe('0001-12-31 BC');
    expect(formatDate(-719_528n)).toBe('0001-01-01 BC');
    expect(formatDate(-719_529n)).toBe('0002-12-31 BC');
    expect(formatDate(-735_160n)).toBe('0044-03-15 BC');
    expect(formatDate(BigInt(daysOf(-4712, 1, 1)))).toBe('4713-01-01 BC');
  });

  it('agrees with the JS calendar across a wide range of days', () => {
    fc.assert(
      fc.property(fc.integer({ min: daysOf(-9998, 1, 1), max: daysOf(9999, 12, 31) }), (days) => {
        const d = new Date(days * 86_400_000);
        expect(formatDate(BigInt(days))).toBe(
          pgDate(d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate()),
        );
      }),
      { numRuns: 2_000 },
    );
  });

  it('is exact every day around era boundaries (400-year cycles, epoch, year 1)', () => {
    for (const centre of [0, daysOf(2000, 3, 1), daysOf(1600, 2, 29), daysOf(1, 1, 1), daysOf(-400, 3, 1)]) {
      for (let days = centre - 800; days <= centre + 800; days++) {
        const d = new Date(days * 86_400_000);
        expect(formatDate(BigInt(days))).toBe(
          pgDate(d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate()),
        );
      }
    }
  });
});

const MS = 1000n;
const US = 1000000n;

describe('formatTimestamp', () => {
  it('formats millisecond timestamps', () => {
    expect(formatTimestamp(0n, MS, true)).toBe('1970-01-01 00:00:00.000+00');
    expect(formatTimestamp(1_700_000_000_123n, MS, true)).toBe('2023-11-14 22:13:20.123+00');
    expect(formatTimestamp(-1n, MS, true)).toBe('1969-12-31 23:59:59.999+00');
    expect(formatTimestamp(-86_400_000n, MS, true)).toBe('1969-12-31 00:00:00.000+00');
    expect(formatTimestamp(-86_400_001n, MS, true)).toBe('1969-12-30 23:59:59.999+00');
  });

  it('formats microsecond timestamps exactly, beyond double precision', () => {
    expect(formatTimestamp(1_700_000_000_123_456n, US, true)).toBe('2023-11-14 22:13:20.123456+00');
    expect(formatTimestamp(1_700_000_000_000_001n, US, true)).toBe('2023-11-14 22:13:20.000001+00');
    expect(formatTimestamp(-1n, US, true)).toBe('1969-12-31 23:59:59.999999+00');
    expect(formatTimestamp(0n, US, false)).toBe('1970-01-01 00:00:00.000000');
  });

  it('omits the zone for local timestamps', () => {
    expect(formatTimestamp(1_700_000_000_123n, MS, false)).toBe('2023-11-14 22:13:20.123');
    expect(formatTimestamp(1_700_000_000_123_456n, US, false)).toBe('2023-11-14 22:13:20.123456');
  });

  it('handles the last instant of year 9999 and the first of 10000', () => {
    expect(formatTimestamp(253_402_300_799_999n, MS, true)).toBe('9999-12-31 23:59:59.999+00');
    expect(formatTimestamp(253_402_300_799_999_999n, US, true)).toBe('9999-12-31 23:59:59.999999+00');
    expect(formatTimestamp(253_402_300_800_000n, MS, false)).toBe('10000-01-01 00:00:00.000');
  });

  it('formats BC timestamps with the era after the zone', () => {
    const yearOne = -62_135_596_800_000n; // 0001-01-01 00:00:00 UTC
    expect(formatTimestamp(yearOne, MS, true)).toBe('0001-01-01 00:00:00.000+00');
    expect(formatTimestamp(yearOne - 1n, MS, true)).toBe('0001-12-31 23:59:59.999+00 BC');
    expect(formatTimestamp(yearOne * 1000n - 1n, US, false)).toBe('0001-12-31 23:59:59.999999 BC');
    const idesOfMarch = BigInt(daysOf(-43, 3, 15)) * 86_400_000n + 12n * 3_600_000n;
    expect(formatTimestamp(idesOfMarch, MS, true)).toBe('0044-03-15 12:00:00.000+00 BC');
  });

  it('agrees with Date.prototype.toISOString for milliseconds in years 1..9999', () => {
    fc.assert(
      fc.property(fc.integer({ min: -62_135_596_800_000, max: 253_402_300_799_999 }), (ms) => {
        const iso = new Date(ms).toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
        expect(formatTimestamp(BigInt(ms), MS, true)).toBe(`${iso.slice(0, 10)} ${iso.slice(11, 23)}+00`);
      }),
      { numRuns: 2_000 },
    );
  });

  it('micros are millis with three more digits', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: -62_135_596_800_000n * 2n, max: 253_402_300_799_999n }),
        fc.bigInt({ min: 0n, max: 999n }),
        fc.boolean(),
        (ms, extra, utc) => {
          const millis = formatTimestamp(ms, MS, utc);
          const micros = formatTimestamp(ms * 1000n + extra, US, utc);
          const cut = millis.indexOf('.') + 4; // after the three millisecond digits
          expect(micros).toBe(`${millis.slice(0, cut)}${String(extra).padStart(3, '0')}${millis.slice(cut)}`);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('formatTime', () => {
  it('formats time-millis', () => {
    expect(formatTime(0n, MS)).toBe('00:00:00.000');
    expect(formatTime(1n, MS)).toBe('00:00:00.001');
    expect(formatTime(45_296_789n, MS)).toBe('12:34:56.789');
    expect(formatTime(86_399_999n, MS)).toBe('23:59:59.999');
  });

  it('formats time-micros', () => {
    expect(formatTime(0n, US)).toBe('00:00:00.000000');
    expect(formatTime(45_296_789_012n, US)).toBe('12:34:56.789012');
    expect(formatTime(86_399_999_999n, US)).toBe('23:59:59.999999');
  });

  it('refuses a count outside one day (TIME_OUT_OF_RANGE) instead of writing 00:00:00.-000001', () => {
    for (const [v, units] of [
      [-1n, US],
      [-1n, MS],
      [86_400_000n, MS],
      [86_400_000_000n, US],
      [2n ** 40n, US],
    ] as const) {
      const err = thrown(() => formatTime(v, units));
      expect(err).toBeInstanceOf(BodyFault);
      expect((err as BodyFault).code).toBe('TIME_OUT_OF_RANGE');
    }
  });

  it('agrees with the time part of toISOString for every millisecond of a day (sampled)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 86_399_999 }), (ms) => {
        expect(formatTime(BigInt(ms), MS)).toBe(new Date(ms).toISOString().slice(11, 23));
      }),
      { numRuns: 1_000 },
    );
  });
});

// ------------------------------------------------------------------ decimals

/** Reference formatting of unscaled·10^-scale, independent of the code under test. */
function decimalText(unscaled: bigint, scale: number): string {
  const neg = unscaled < 0n;
  const abs = neg ? -unscaled : unscaled;
  if (scale === 0) return `${neg ? '-' : ''}${abs}`;
  const div = 10n ** BigInt(scale);
  return `${neg ? '-' : ''}${abs / div}.${String(abs % div).padStart(scale, '0')}`;
}

describe('formatDecimal', () => {
  it('formats positive and negative values with their scale', () => {
    expect(formatDecimal(Buffer.from([0x04, 0xd2]), 2)).toBe('12.34');
    expect(formatDecimal(Buffer.from([0xfb, 0x2e]), 2)).toBe('-12.34');
    expect(formatDecimal(Buffer.from([0x01]), 0)).toBe('1');
    expect(formatDecimal(Buffer.from([0xff]), 0)).toBe('-1');
    expect(formatDecimal(Buffer.from([0x80]), 0)).toBe('-128');
    expect(formatDecimal(Buffer.from([0x00, 0x80]), 0)).toBe('128');
    expect(formatDecimal(Buffer.from([0x7f]), 0)).toBe('127');
  });

  it('pads values smaller than one with leading zeros', () => {
    expect(formatDecimal(Buffer.from([0x05]), 3)).toBe('0.005');
    expect(formatDecimal(Buffer.from([0xfb]), 3)).toBe('-0.005');
    expect(formatDecimal(Buffer.from([0x00]), 2)).toBe('0.00');
    expect(formatDecimal(Buffer.from([0x63]), 2)).toBe('0.99');
    expect(formatDecimal(Buffer.from([0x64]), 2)).toBe('1.00');
  });

  it('ignores redundant sign-extension bytes', () => {
    expect(formatDecimal(Buffer.from([0x00, 0x00, 0x04, 0xd2]), 2)).toBe('12.34');
    expect(formatDecimal(Buffer.from([0xff, 0xff, 0xfb, 0x2e]), 2)).toBe('-12.34');
    expect(formatDecimal(Buffer.from([0xff, 0xff]), 1)).toBe('-0.1');
  });

  it('refuses an empty value (EMPTY_DECIMAL) instead of reading it as zero', () => {
    const err = thrown(() => formatDecimal(Buffer.alloc(0), 0));
    expect(err).toBeInstanceOf(BodyFault);
    expect((err as BodyFault).code).toBe('EMPTY_DECIMAL');
  });

  it('formats values beyond 64 bits exactly', () => {
    const big = 12_345_678_901_234_567_890_123_456_789_012_345_678n; // 38 digits
    expect(formatDecimal(decimalBytes(big), 10)).toBe('1234567890123456789012345678.9012345678');
    expect(formatDecimal(decimalBytes(-big), 0)).toBe('-12345678901234567890123456789012345678');
    expect(formatDecimal(decimalBytes(-(2n ** 127n)), 0)).toBe(String(-(2n ** 127n)));
  });

  it('round-trips decimalBytes from the sample data for any value and scale', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: -(2n ** 140n), max: 2n ** 140n }),
        fc.integer({ min: 0, max: 40 }),
        (n, scale) => {
          expect(formatDecimal(decimalBytes(n), scale)).toBe(decimalText(n, scale));
        },
      ),
      { numRuns: 1_000 },
    );
  });

  it('round-trips around byte boundaries', () => {
    for (let bits = 0n; bits <= 72n; bits += 1n) {
      for (const n of [2n ** bits - 1n, 2n ** bits, 2n ** bits + 1n]) {
        for (const v of [n, -n]) {
          expect(formatDecimal(decimalBytes(v), 2)).toBe(decimalText(v, 2));
        }
      }
    }
  });
});

// ------------------------------------------------------------------ JSON and arrays

describe('jsonb scalars', () => {
  it('writes doubles as JSON numbers, and NaN, the infinities and -0 as strings', () => {
    expect(jsonFloat(1.5)).toBe('1.5');
    expect(jsonFloat(1e21)).toBe('1e+21');
    expect(jsonFloat(5e-324)).toBe('5e-324');
    expect(jsonFloat(0)).toBe('0');
    expect(jsonFloat(-0)).toBe('"-0"');
    expect(jsonFloat(Number.NaN)).toBe('"NaN"');
    expect(jsonFloat(Infinity)).toBe('"Infinity"');
    expect(jsonFloat(-Infinity)).toBe('"-Infinity"');
  });

  it('round-trips every double through its JSON text', () => {
    fc.assert(
      fc.property(fc.double(), (d) => {
        const text = jsonFloat(d);
        const back = text.startsWith('"') ? Number(JSON.parse(text) as string) : Number(text);
        expect(Object.is(back, d)).toBe(true);
      }),
      { numRuns: 2_000 },
    );
  });

  it('writes strings as JSON strings and refuses a NUL (jsonb cannot store \\u0000)', () => {
    expect(jsonString('a"b\\c\n\t')).toBe('"a\\"b\\\\c\\n\\t"');
    expect(jsonString('𝄞 é')).toBe('"𝄞 é"');
    const err = thrown(() => jsonString('a\0b'));
    expect(err).toBeInstanceOf(RecordError);
    expect((err as RecordError).code).toBe('NUL_IN_STRING');
  });

  it('writes bytes as the string \\x + hex', () => {
    expect(jsonBytes(Buffer.from([0x01, 0xab]))).toBe('"\\\\x01ab"');
    expect(JSON.parse(jsonBytes(Buffer.from([0x01, 0xab])))).toBe('\\x01ab');
    expect(jsonBytes(Buffer.alloc(0))).toBe('"\\\\x"');
  });
});

describe('ISO 8601 dates and timestamps (jsonb)', () => {
  it('writes years 0000..9999 in four digits and others as expanded years', () => {
    expect(isoDate(0n)).toBe('1970-01-01');
    expect(isoDate(-719_528n)).toBe('0000-01-01'); // 1 BC
    expect(isoDate(-719_529n)).toBe('-000001-12-31'); // 2 BC
    expect(isoDate(2_932_896n)).toBe('9999-12-31');
    expect(isoDate(2_932_897n)).toBe('+010000-01-01');
    expect(isoDate(BigInt(2 ** 31 - 1))).toBe('+5881580-07-11');
    expect(isoDate(BigInt(-(2 ** 31)))).toBe('-5877641-06-23');
  });

  it('agrees with Date.prototype.toISOString wherever Date reaches', () => {
    fc.assert(
      fc.property(fc.integer({ min: -8_640_000_000_000_000, max: 8_640_000_000_000_000 }), (ms) => {
        expect(isoTimestamp(ms, MS, true)).toBe(new Date(ms).toISOString());
        expect(isoDate(BigInt(Math.floor(ms / 86_400_000)))).toBe(new Date(ms).toISOString().slice(0, -14));
      }),
      { numRuns: 2_000 },
    );
  });

  it('is exact to the microsecond, any long, with or without a zone', () => {
    expect(isoTimestamp(-1n, US, true)).toBe('1969-12-31T23:59:59.999999Z');
    expect(isoTimestamp(1n, US, false)).toBe('1970-01-01T00:00:00.000001');
    expect(isoTimestamp(2n ** 63n - 1n, US, true)).toBe('+294247-01-10T04:00:54.775807Z');
    expect(isoTimestamp(-(2n ** 63n), US, false)).toBe('-290308-12-21T19:59:05.224192');
    expect(isoTimestamp(-(2n ** 63n), MS, true)).toBe('-292275055-05-16T16:47:04.192Z');
  });
});

describe('arrayLiteral', () => {
  it('quotes every element', () => {
    expect(arrayLiteral([])).toBe('{}');
    expect(arrayLiteral(['a'])).toBe('{"a"}');
    expect(arrayLiteral(['a', 'b c', ''])).toBe('{"a","b c",""}');
    expect(arrayLiteral(['1', '-2.5'])).toBe('{"1","-2.5"}');
  });

  it('escapes quotes and backslashes inside elements', () => {
    expect(arrayLiteral(['say "hi"'])).toBe('{"say \\"hi\\""}');
    expect(arrayLiteral(['a\\b'])).toBe('{"a\\\\b"}');
    expect(arrayLiteral(['\\x0102'])).toBe('{"\\\\x0102"}');
  });

  it('keeps delimiters and braces inside quotes', () => {
    expect(arrayLiteral(['a,b', '{c}', ' d '])).toBe('{"a,b","{c}"," d "}');
  });

  it('writes null elements as unquoted NULL, and the text NULL quoted', () => {
    expect(arrayLiteral([null])).toBe('{NULL}');
    expect(arrayLiteral(['x', null, 'y'])).toBe('{"x",NULL,"y"}');
    expect(arrayLiteral(['NULL'])).toBe('{"NULL"}');
  });

  it('round-trips through a Postgres-style array parser', () => {
    const parse = (lit: string): Array<string | null> => {
      const out: Array<string | null> = [];
      const body = lit.slice(1, -1);
      let i = 0;
      while (i < body.length) {
        if (body.startsWith('NULL', i)) {
          out.push(null);
          i += 4;
        } else {
          expect(body[i]).toBe('"');
          let s = '';
          i++;
          while (body[i] !== '"') {
            if (body[i] === '\\') i++;
            s += body[i];
            i++;
          }
          out.push(s);
          i++;
        }
        if (body[i] === ',') i++;
      }
      return out;
    };
    fc.assert(
      fc.property(
        fc.array(fc.option(fc.string({ unit: fc.constantFrom('a', '"', '\\', ',', '{', '}', ' ', 'N') }))),
        (els) => {
          expect(parse(arrayLiteral(els))).toEqual(els);
        },
      ),
      { numRuns: 300 },
    );
  });
});
