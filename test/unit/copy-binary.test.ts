// The COPY binary field writers (src/sink/copy-binary.ts) against the bytes PostgreSQL's own
// binary send functions produce, so that binary COPY stores exactly what text COPY stores.
//
// Every expected hex string below was read once from PostgreSQL 15 with psql, e.g.
//   psql -At -c "select encode(numeric_send('123.4500'::numeric), 'hex')"
//   psql -At -c "select encode(array_send(ARRAY[1,NULL,3]::int4[]), 'hex')"
//   psql -At -c "select encode(timestamptz_send('1969-12-31 23:59:59.999999+00'), 'hex')"
// (int2send, int4send, int8send, float4send, float8send, boolsend, textsend, varcharsend,
// byteasend, json_send, jsonb_send, uuid_send, date_send, time_send, timestamp_send,
// timestamptz_send, numeric_send, array_send), and the refusals and their messages from
// `select '…'::uuid`, `select '…'::int8`, `select '…'::date`, `select '…'::timestamptz`.
// A field is its int32 length, then those bytes.
import avro from 'avsc';
import { describe, expect, it } from 'vitest';
import { typeForSchema, type AvroSchema } from '../../src/avro/types.ts';
import { decimalBytes } from '../../src/cli/sample-data.ts';
import { TupleBuffer } from '../../src/sink/binary-plan.ts';
import {
  arrayWriter,
  BINARY_HEADER,
  BINARY_TRAILER,
  binaryWriterFor,
  integerWriter,
  parseIntegerText,
  parseUuid,
  parseUuidBytes,
  resolveWireType,
  stringWriter,
  writeBool,
  writeBytesField,
  writeDate,
  writeFloat4,
  writeFloat8,
  writeInt2,
  writeInt2Checked,
  writeInt4,
  writeInt4Checked,
  writeInt8,
  writeJsonbField,
  writeNullField,
  writeNumericDecimal,
  writeNumericFloat,
  writeNumericInteger,
  writeTextField,
  writeTime,
  writeTimestamp,
  writeUuid,
  type FieldWriter,
  type Out,
  type TypeRow,
  type WireType,
} from '../../src/sink/copy-binary.ts';
import { RecordError } from '../../src/util/errors.ts';

/** An Out that starts with one byte, so that every write grows it (need() must be honest). */
function tiny(): TupleBuffer {
  const b = new TupleBuffer();
  b.out = Buffer.alloc(1);
  return b;
}

/** The bytes `write` produces, as hex; checked against a second run into a roomy buffer. */
function field(write: (w: Out) => void): string {
  const small = tiny();
  write(small);
  const big = new TupleBuffer();
  big.o = 3; // not at the start of the buffer
  write(big);
  const a = small.out.subarray(0, small.o).toString('hex');
  expect(big.out.subarray(3, big.o).toString('hex')).toBe(a);
  return a;
}

/** A field: its length, then the send function's bytes. */
const sent = (hex: string): string => (hex.length / 2).toString(16).padStart(8, '0') + hex;

function failure(fn: () => unknown): { source: string; code: string; message: string } {
  try {
    fn();
  } catch (err) {
    if (err instanceof RecordError) return { source: err.source, code: err.code, message: err.message };
    throw err;
  }
  throw new Error('expected a RecordError, got none');
}

/** A wire type as src/sink/catalog.ts resolves it (pg_catalog base type). */
function wire(name: string, oid: number, element?: WireType): WireType {
  return {
    declared: name,
    declaredOid: oid,
    name,
    kind: 'b',
    builtin: true,
    stageType: name,
    element: element ? { oid: element.declaredOid, wire: element } : undefined,
  };
}
const W = {
  bool: wire('bool', 16),
  bytea: wire('bytea', 17),
  int8: wire('int8', 20),
  int2: wire('int2', 21),
  int4: wire('int4', 23),
  text: wire('text', 25),
  json: wire('json', 114),
  float4: wire('float4', 700),
  float8: wire('float8', 701),
  bpchar: wire('bpchar', 1042),
  varchar: wire('varchar', 1043),
  date: wire('date', 1082),
  time: wire('time', 1083),
  timestamp: wire('timestamp', 1114),
  timestamptz: wire('timestamptz', 1184),
  numeric: wire('numeric', 1700),
  uuid: wire('uuid', 2950),
  jsonb: wire('jsonb', 3802),
};

const avroType = (schema: unknown): avro.Type => typeForSchema(schema as AvroSchema);

/** The writer binaryWriterFor picks for (Avro schema, wire type); fails when there is none. */
function writerFor(schema: unknown, w: WireType): FieldWriter {
  const choice = binaryWriterFor(avroType(schema), w);
  if ('unsupported' in choice) throw new Error(`no writer: ${choice.unsupported}`);
  return choice.writer;
}

describe('COPY binary framing', () => {
  it('writes the file header and trailer of the COPY binary format', () => {
    expect(BINARY_HEADER.toString('hex')).toBe('5047434f50590aff0d0a00' + '00000000' + '00000000');
    expect(BINARY_TRAILER.toString('hex')).toBe('ffff');
    expect(field(writeNullField)).toBe('ffffffff');
  });
});

describe('fixed-width and variable-width fields', () => {
  it.each([
    ['int2 -2', (w: Out) => writeInt2(w, -2), 'fffe'],
    ['int2 32767', (w: Out) => writeInt2(w, 32767), '7fff'],
    ['int4 -2147483648', (w: Out) => writeInt4(w, -2147483648), '80000000'],
    ['int4 2147483647', (w: Out) => writeInt4(w, 2147483647), '7fffffff'],
    ['int8 42', (w: Out) => writeInt8(w, 42), '000000000000002a'],
    ['int8 -1', (w: Out) => writeInt8(w, -1), 'ffffffffffffffff'],
    ['int8 2^52+1 (BigInt)', (w: Out) => writeInt8(w, 4503599627370497n), '0010000000000001'],
    ['int8 -(2^52-1) (number)', (w: Out) => writeInt8(w, -4503599627370495), 'fff0000000000001'],
    ['int8 min', (w: Out) => writeInt8(w, -(2n ** 63n)), '8000000000000000'],
    ['int8 max', (w: Out) => writeInt8(w, 2n ** 63n - 1n), '7fffffffffffffff'],
    ['float4 1.5', (w: Out) => writeFloat4(w, 1.5), '3fc00000'],
    ['float4 -0', (w: Out) => writeFloat4(w, -0), '80000000'],
    ['float4 NaN', (w: Out) => writeFloat4(w, Number.NaN), '7fc00000'],
    ['float8 0.1', (w: Out) => writeFloat8(w, 0.1), '3fb999999999999a'],
    ['float8 -0', (w: Out) => writeFloat8(w, -0), '8000000000000000'],
    ['float8 NaN', (w: Out) => writeFloat8(w, Number.NaN), '7ff8000000000000'],
    ['float8 -Infinity', (w: Out) => writeFloat8(w, -Infinity), 'fff0000000000000'],
    ['bool true', (w: Out) => writeBool(w, true), '01'],
    ['bool false', (w: Out) => writeBool(w, false), '00'],
    ['text héllo', (w: Out) => writeTextField(w, 'héllo'), '68c3a96c6c6f'],
    ['varchar 𝄞x (a surrogate pair)', (w: Out) => writeTextField(w, '𝄞x'), 'f09d849e78'],
    ['text empty', (w: Out) => writeTextField(w, ''), ''],
    ['json', (w: Out) => writeTextField(w, '{"a":1}'), '7b2261223a317d'],
    ['jsonb [1, 2]', (w: Out) => writeJsonbField(w, '[1, 2]'), '015b312c20325d'],
    ['jsonb {"a": "é"}', (w: Out) => writeJsonbField(w, '{"a": "é"}'), '017b2261223a2022c3a9227d'],
    ['bytea', (w: Out) => writeBytesField(w, Buffer.from([0, 0xff, 0x10])), '00ff10'],
    ['bytea empty', (w: Out) => writeBytesField(w, Buffer.alloc(0)), ''],
  ])('%s', (_name, write, hex) => {
    expect(field(write)).toBe(sent(hex));
  });

  it('writes every NaN as the NaN float4in and float8in make of the text "NaN"', () => {
    // Text COPY writes any NaN as 'NaN'; Postgres stores its one NaN. A NaN read from an Avro
    // body keeps its payload and sign in JS: binary must not store those bits.
    const nan8 = ['7ff8000000000001', 'fff8000000000000', 'fff0000000000001', '7ff0000000000001'];
    for (const bits of nan8) {
      const v = Buffer.from(bits, 'hex').readDoubleBE(0);
      expect(Number.isNaN(v)).toBe(true);
      expect({ bits, f8: field((w) => writeFloat8(w, v)) }).toEqual({ bits, f8: sent('7ff8000000000000') });
      expect({ bits, f4: field((w) => writeFloat4(w, v)) }).toEqual({ bits, f4: sent('7fc00000') });
    }
    for (const bits of ['ffc00000', '7fc00001', 'ff800001']) {
      const v = Buffer.from(bits, 'hex').readFloatBE(0);
      expect({ bits, f4: field((w) => writeFloat4(w, v)) }).toEqual({ bits, f4: sent('7fc00000') });
      expect({ bits, f8: field((w) => writeFloat8(w, v)) }).toEqual({ bits, f8: sent('7ff8000000000000') });
    }
  });

  it('refuses a NUL in text and jsonb as text COPY does (NUL_IN_STRING)', () => {
    for (const write of [(w: Out) => writeTextField(w, 'a\0b'), (w: Out) => writeJsonbField(w, '"\0"')]) {
      expect(failure(() => write(new TupleBuffer())).code).toBe('NUL_IN_STRING');
    }
  });
});

describe('numeric', () => {
  const dec = (unscaled: bigint, scale: number) => (w: Out) =>
    writeNumericDecimal(w, decimalBytes(unscaled), scale);
  const dbl = (v: number) => (w: Out) => writeNumericFloat(w, v);
  const int = (v: number | bigint) => (w: Out) => writeNumericInteger(w, v);
  it.each([
    ['0 (int)', int(0), '0000000000000000'],
    ['0 (decimal, scale 0)', dec(0n, 0), '0000000000000000'],
    ['0.00', dec(0n, 2), '0000000000000002'],
    ['-0 (double) as numeric_in reads "-0"', dbl(-0), '0000000000000000'],
    ['0 (double)', dbl(0), '0000000000000000'],
    ['123.4500', dec(1234500n, 4), '0002000000000004007b1194'],
    ['-1.5 (decimal)', dec(-15n, 1), '000200004000000100011388'],
    ['-1.5 (double)', dbl(-1.5), '000200004000000100011388'],
    ['1.0000: a dscale beyond the last digit', dec(10000n, 4), '00010000000000040001'],
    ['10000.0001: a zero group inside', dec(100000001n, 4), '0003000100000004000100000001'],
    ['0.00001234: fraction groups crossing', dec(1234n, 8), '0001fffe0000000804d2'],
    ['1.23456789', dec(123456789n, 8), '0003000000000008000109291a85'],
    ['0.0005', dec(5n, 4), '0001ffff000000040005'],
    ['-0.0001', dec(-1n, 4), '0001ffff400000040001'],
    ['-128 (one byte)', dec(-128n, 0), '00010000400000000080'],
    ['-1407374883553.28 (-2^47, six bytes)', dec(-(2n ** 47n), 2), '000500034000000200010fe91d400de10af0'],
    ['1407374883553.28 (2^47, seven bytes)', dec(2n ** 47n, 2), '000500030000000200010fe91d400de10af0'],
    ['2^55', dec(2n ** 55n, 0), '00050004000000000003178c1f2207680f80'],
    ['-99999999999999.9999', dec(-999999999999999999n, 4), '00050003400000040063270f270f270f270f'],
    [
      '9999999999999999999999999999.9999999999 (10^38-1, scale 10)',
      dec(10n ** 38n - 1n, 10),
      '000a00060000000a270f270f270f270f270f270f270f270f270f26ac',
    ],
    ['10^20 (decimal)', dec(10n ** 20n, 0), '00010005000000000001'],
    ['10^20 (BigInt)', int(10n ** 20n), '00010005000000000001'],
    ['50000000 (int)', int(50000000), '00010001000000001388'],
    ['int8 max', int(2n ** 63n - 1n), '0005000400000000039a0d2c0170156516af'],
    ['int8 min', int(-(2n ** 63n)), '0005000440000000039a0d2c0170156516b0'],
    ['1e-20 from a double ("1e-20")', dbl(1e-20), '0001fffb000000140001'],
    ['1e21 from a double ("1e+21")', dbl(1e21), '0001000500000000000a'],
    ['1e20 from a double', dbl(1e20), '00010005000000000001'],
    ['0.1 from a double', dbl(0.1), '0001ffff0000000103e8'],
    ['123.456 from a double', dbl(123.456), '0002000000000003007b11d0'],
    ['-2.5e-7 from a double', dbl(-2.5e-7), '0001fffe400000080019'],
    ['12345678.9 from a double', dbl(12345678.9), '000300010000000104d2162e2328'],
    ['5e-324 (the least subnormal)', dbl(5e-324), '0001ffaf000001440005'],
    ['1.7976931348623157e308', dbl(Number.MAX_VALUE), '0005004d0000000000011f28246112fe0c55'],
    ['NaN', dbl(Number.NaN), '00000000c0000000'],
  ])('%s', (_name, write, hex) => {
    expect(field(write)).toBe(sent(hex));
  });

  it('writes ±Infinity with the sign numeric_send uses (its dscale is not part of the value)', () => {
    // numeric_send('Infinity') is 00000000d0000020: it reads the dscale of a special value from
    // its short header (0x20 there is an artifact); numeric_recv ignores the dscale of NaN and
    // ±Infinity (make_result keeps only the sign). The stored values are compared against text
    // COPY's in test/integration/binary-copy.test.ts.
    expect(field(dbl(Infinity))).toBe(sent('00000000d0000000'));
    expect(field(dbl(-Infinity))).toBe(sent('00000000f0000000'));
  });

  it('writes a double the way numeric_in reads the double’s shortest text, for many doubles', () => {
    // The decimal digits of the numeric are the digits of String(v): checked by decoding the
    // bytes back to text.
    const back = (hex: string): string => {
      const b = Buffer.from(hex, 'hex').subarray(4);
      const n = b.readInt16BE(0);
      const weight = b.readInt16BE(2);
      const neg = b.readUInt16BE(4) === 0x4000;
      const dscale = b.readInt16BE(6);
      let digits = '';
      for (let i = 0; i < n; i++) digits += String(b.readInt16BE(8 + 2 * i)).padStart(4, '0');
      // digits × 10000^(weight - n + 1)
      const intGroups = weight + 1;
      let intPart: string;
      let frac: string;
      if (intGroups >= n) {
        intPart = digits + '0000'.repeat(intGroups - n);
        frac = '';
      } else if (intGroups <= 0) {
        intPart = '0';
        frac = '0000'.repeat(-intGroups) + digits;
      } else {
        intPart = digits.slice(0, intGroups * 4);
        frac = digits.slice(intGroups * 4);
      }
      intPart = intPart.replace(/^0+(?=\d)/, '');
      frac = frac.padEnd(dscale, '0');
      expect(frac.slice(dscale).replace(/0/g, '')).toBe('');
      frac = frac.slice(0, dscale);
      return `${neg ? '-' : ''}${intPart}${frac ? `.${frac}` : ''}`;
    };
    const buf = new ArrayBuffer(8);
    const bits = new DataView(buf);
    let seed = 12345;
    for (let i = 0; i < 3000; i++) {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      bits.setUint32(0, (seed * 7919) >>> 0);
      bits.setUint32(4, (seed * 104729) >>> 0);
      const v = bits.getFloat64(0);
      if (!Number.isFinite(v)) continue;
      const text = back(field(dbl(v)));
      expect({ v, back: Number(text) }).toEqual({ v, back: Object.is(v, -0) ? 0 : v });
    }
  });

  it('refuses a value beyond numeric’s format (22003)', () => {
    const digits = `1${'0'.repeat(131072)}`;
    expect(failure(() => writeNumericInteger(new TupleBuffer(), BigInt(digits)))).toEqual({
      source: 'postgres',
      code: '22003',
      message: 'value overflows numeric format',
    });
    expect(() => writeNumericInteger(new TupleBuffer(), BigInt(digits.slice(1)))).not.toThrow();
  });
});

describe('dates and times', () => {
  it.each([
    ['2000-01-01 (Postgres epoch)', 10957, '00000000'],
    ['1970-01-01', 0, 'ffffd533'],
    ['4714-11-24 BC (the first date)', -2440588, 'ffda97a7'],
    ['5874897-12-31 (the last date)', 2145042905, '7fda970c'],
  ])('date %s', (_name, days, hex) => {
    expect(field((w) => writeDate(w, days))).toBe(sent(hex));
  });

  it.each([
    [-2440589, 'date out of range: "4714-11-23 BC"'],
    [2145042906, 'date out of range: "5874898-01-01"'],
    [2 ** 31 - 1, 'date out of range: "5881580-07-11"'],
    [-(2 ** 31), expect.stringMatching(/^date out of range: ".* BC"$/)],
  ])('refuses the date %s days after 1970 as date_in does (22008)', (days, message) => {
    // date_recv would read INT32_MIN and INT32_MAX as ±infinity: never written.
    expect(failure(() => writeDate(new TupleBuffer(), days))).toEqual({
      source: 'postgres',
      code: '22008',
      message,
    });
  });

  it('writes times of day in microseconds', () => {
    expect(field((w) => writeTime(w, 86_399_999_999))).toBe(sent('000000141dd75fff'));
    expect(field((w) => writeTime(w, 86_399_999_999n))).toBe(sent('000000141dd75fff'));
    expect(field((w) => writeTime(w, 43_200_500_000))).toBe(sent('0000000a0ef35120'));
    // time-millis: × 1000.
    const millis = writerFor({ type: 'int', logicalType: 'time-millis' }, W.time);
    expect(field((w) => millis(43_200_500, w))).toBe(sent('0000000a0ef35120'));
  });

  it.each([
    ['1970-01-01 00:00:00+00 (ms)', 0, false, 'fffca2fec4c82000'],
    ['1970-01-01 00:00:00+00 (µs)', 0, true, 'fffca2fec4c82000'],
    ['1969-12-31 23:59:59.999999+00', -1, true, 'fffca2fec4c81fff'],
    ['1900-01-01 00:00:00+00', -2208988800000, false, 'fff4c9ee7c0b8000'],
    ['2000-01-01 00:00:00+00', 946684800000, false, '0000000000000000'],
    ['2024-02-29 12:34:56.789+00', 1709210096789, false, '0002b58341728608'],
    ['2024-02-29 12:34:56.789+00 (µs)', 1709210096789000, true, '0002b58341728608'],
    ['1700-01-01 00:00:00.001+00 (ms, the fast path’s far end)', -8520335999999, false, 'ffde5dcb742283e8'],
    ['1600-03-01 00:00:00.000001 (µs)', -11670911999999999n, true, 'ffd32c5cd0d12001'],
    ['4714-11-24 00:00:00+00 BC (µs, the first)', -210866803200000000n, true, 'fd0f7cc1411fa000'],
    ['4714-11-24 00:00:00+00 BC (ms, the first)', -210866803200000, false, 'fd0f7cc1411fa000'],
    ['294276-12-31 23:59:59.999+00 (ms, the last)', 9224318015999999n, false, '7fffff5bb3b29c18'],
    ['294247-01-10 04:00:54.775807+00 (µs: the largest long)', 2n ** 63n - 1n, true, '7ffca2fec4c81fff'],
  ])('timestamp %s', (_name, value, micros, hex) => {
    for (const utc of [true, false]) {
      expect(field((w) => writeTimestamp(w, value, micros, utc))).toBe(sent(hex));
      // A long arrives as a number below 2^52 and as a BigInt beyond: the same bytes either way.
      expect(field((w) => writeTimestamp(w, BigInt(value), micros, utc))).toBe(sent(hex));
    }
  });

  it('writes the same bytes on both sides of the number fast paths’ limits', () => {
    for (const micros of [false, true]) {
      const edges = micros
        ? [4e15 - 1, 4e15, 4e15 + 1, -4e15 + 1, -4e15, -4e15 - 1, 2 ** 52 - 1, -(2 ** 52) + 1]
        : [9_007_199_254_739, 9_007_199_254_740, 9_007_199_254_741, -9_007_199_254_739, -9_007_199_254_740];
      for (const v of edges) {
        const exact = BigInt(v) * (micros ? 1n : 1000n) - 946_684_800_000_000n;
        const want = Buffer.alloc(8);
        want.writeBigInt64BE(exact);
        expect({ v, micros, got: field((w) => writeTimestamp(w, v, micros, true)) }).toEqual({
          v,
          micros,
          got: sent(want.toString('hex')),
        });
      }
    }
  });

  it.each([
    ['µs before 4714-11-24 BC', -210866803200000001n, true, true, '4714-11-23 23:59:59.999999+00 BC'],
    ['µs: the least long', -(2n ** 63n), true, true, undefined],
    ['ms after 294276-12-31 23:59:59.999', 9224318016000000n, false, true, '294277-01-01 00:00:00.000+00'],
    ['ms, local', 9224318016000000n, false, false, '294277-01-01 00:00:00.000'],
    ['ms: the largest long', 2n ** 63n - 1n, false, true, undefined],
    ['ms before the first', -210866803200001, false, true, '4714-11-23 23:59:59.999+00 BC'],
  ])('refuses a timestamp beyond Postgres’ range (22008): %s', (_name, value, micros, utc, text) => {
    const f = failure(() => writeTimestamp(new TupleBuffer(), value, micros, utc));
    expect(f.source).toBe('postgres');
    expect(f.code).toBe('22008');
    expect(f.message).toMatch(/^timestamp out of range: ".+"$/);
    if (text) expect(f.message).toBe(`timestamp out of range: "${text}"`);
  });
});

describe('integers narrowed to a smaller column', () => {
  it('writes what fits', () => {
    for (const v of [32767, -32768, 0, 32767n, -32768n]) {
      const want = Buffer.alloc(2);
      want.writeInt16BE(Number(v));
      expect(field((w) => writeInt2Checked(w, v))).toBe(sent(want.toString('hex')));
    }
    for (const v of [2147483647, -2147483648, 2147483647n, -2147483648n]) {
      const want = Buffer.alloc(4);
      want.writeInt32BE(Number(v));
      expect(field((w) => writeInt4Checked(w, v))).toBe(sent(want.toString('hex')));
    }
  });

  it.each([
    [32768, 'smallint', 'value "32768" is out of range for type smallint'],
    [-32769, 'smallint', 'value "-32769" is out of range for type smallint'],
    [40000n, 'smallint', 'value "40000" is out of range for type smallint'],
    [3000000000, 'integer', 'value "3000000000" is out of range for type integer'],
    [-2147483649n, 'integer', 'value "-2147483649" is out of range for type integer'],
    [2n ** 62n, 'integer', 'value "4611686018427387904" is out of range for type integer'],
  ])('refuses %s for a %s column as int2in/int4in do (22003)', (v, type, message) => {
    const write = type === 'smallint' ? writeInt2Checked : writeInt4Checked;
    expect(failure(() => write(new TupleBuffer(), v))).toEqual({
      source: 'postgres',
      code: '22003',
      message,
    });
  });

  it('checks a long into int2/int4, not an int into int4', () => {
    const long4 = writerFor('long', W.int4);
    expect(failure(() => long4(3000000000, new TupleBuffer())).code).toBe('22003');
    expect(field((w) => long4(-7n, w))).toBe(sent('fffffff9'));
    const int2 = writerFor('int', W.int2);
    expect(failure(() => int2(2 ** 31 - 1, new TupleBuffer())).message).toBe(
      'value "2147483647" is out of range for type smallint',
    );
    const meta = integerWriter(W.int4, 64)!;
    expect(failure(() => meta(2 ** 40, new TupleBuffer())).code).toBe('22003');
  });
});

describe('uuid', () => {
  const BYTES = 'a0eebc999c0b4ef8bb6d6bb9bd380a11';
  it.each([
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
    'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',
    'A0eeBC99-9c0B-4Ef8-bB6d-6bB9bD380a11',
    '{a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11}',
    'a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11',
    'a0eebc999c0b4ef8bb6d6bb9bd380a11',
    '{a0eebc999c0b4ef8bb6d6bb9bd380a11}',
    '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}',
  ])('reads %s as uuid_in does', (s) => {
    expect(field((w) => writeUuid(w, s))).toBe(sent(BYTES));
    const into = Buffer.alloc(18);
    expect(parseUuid(s, into, 2)).toBe(true);
    expect(into.subarray(2).toString('hex')).toBe(BYTES);
    // The direct path reads the same spelling from the body's bytes.
    const bytes = Buffer.from(`x${s}{`);
    into.fill(0);
    expect(parseUuidBytes(bytes, 1, bytes.length - 1, into, 2)).toBe(true);
    expect(into.subarray(2).toString('hex')).toBe(BYTES);
  });

  it.each([
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1',
    '-a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11-',
    'a0eebc99--9c0b-4ef8-bb6d-6bb9bd380a11',
    '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}',
    '{{a0eebc999c0b4ef8bb6d6bb9bd380a11}}',
    'a0e-ebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
    'a0eebc999c0b4ef8bb6d6bb9bd380a1-1',
    'a0-eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
    'a0eebc-999c0b4ef8bb6d6bb9bd380a11',
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11a0',
    'g0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
    ' a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11 ',
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1١',
    'a0eebc99\u00ad9c0b-4ef8-bb6d-6bb9bd380a11',
    '',
    'not-a-uuid',
  ])('refuses %j as uuid_in does (22P02)', (s) => {
    expect(failure(() => writeUuid(new TupleBuffer(), s))).toEqual({
      source: 'postgres',
      code: '22P02',
      message: `invalid input syntax for type uuid: "${s}"`,
    });
    // Also from bytes, whatever follows them in the body ('{', a hex digit, '}').
    for (const after of ['', '{', 'a', '}', '-']) {
      const bytes = Buffer.from(`${s}${after}`);
      expect(parseUuidBytes(bytes, 0, bytes.length - after.length, Buffer.alloc(16), 0)).toBe(false);
    }
  });

  it('refuses a NUL as text COPY does (NUL_IN_STRING, before Postgres sees it)', () => {
    const s = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\0';
    expect(failure(() => writeUuid(new TupleBuffer(), s)).code).toBe('NUL_IN_STRING');
  });

  it('writes the uuid logical type into uuid and text columns, a string into uuid', () => {
    const s = 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11';
    const logical = { type: 'string', logicalType: 'uuid' };
    expect(field((w) => writerFor(logical, W.uuid)(s, w))).toBe(sent(BYTES));
    expect(field((w) => writerFor('string', W.uuid)(s, w))).toBe(sent(BYTES));
    expect(field((w) => writerFor(logical, W.text)(s, w))).toBe(sent(Buffer.from(s).toString('hex')));
  });
});

describe('parseIntegerText (a Kafka key into an integer key column)', () => {
  it.each([
    [' 42 ', 'integer', 42n],
    ['+7', 'smallint', 7n],
    ['-0', 'smallint', 0n],
    ['\t-9223372036854775808\n', 'bigint', -(2n ** 63n)],
    ['9223372036854775807', 'bigint', 2n ** 63n - 1n],
    ['000000000000000000000042', 'smallint', 42n],
    ['\f\v\r 1 \r\n', 'integer', 1n],
    ['-2147483648', 'integer', -(2n ** 31n)],
  ] as const)('reads %j as a %s', (s, type, v) => {
    expect(parseIntegerText(s, type)).toBe(v);
  });

  it.each([
    ['1e3', 'integer'],
    ['0x1F', 'integer'],
    ['1_000', 'integer'],
    ['', 'integer'],
    ['+', 'integer'],
    ['-', 'bigint'],
    [' ', 'bigint'],
    ['5 5', 'integer'],
    ['٣', 'integer'],
    ['１', 'bigint'],
    ['1.0', 'bigint'],
    ['+-1', 'bigint'],
    ['42\u00a0', 'integer'],
  ] as const)('refuses %j as a %s (22P02)', (s, type) => {
    expect(failure(() => parseIntegerText(s, type))).toEqual({
      source: 'postgres',
      code: '22P02',
      message: `invalid input syntax for type ${type}: "${s}"`,
    });
  });

  it.each([
    ['9223372036854775808', 'bigint'],
    ['-9223372036854775809', 'bigint'],
    ['32768', 'smallint'],
    ['-2147483649', 'integer'],
    ['2147483648', 'integer'],
    // int4in/int8in find the overflow while reading the digits, before what follows them.
    ['99999999999999999999x', 'bigint'],
    ['99999999999x', 'integer'],
    [' -99999999999 1', 'integer'],
  ] as const)('refuses %j as a %s (22003)', (s, type) => {
    expect(failure(() => parseIntegerText(s, type))).toEqual({
      source: 'postgres',
      code: '22003',
      message: `value "${s}" is out of range for type ${type}`,
    });
  });

  it('writes the key text of an integer key column as the column’s integer', () => {
    expect(field((w) => stringWriter(W.int8, true)!(' 42', w))).toBe(sent('000000000000002a'));
    expect(field((w) => stringWriter(W.int4, true)!('-1', w))).toBe(sent('ffffffff'));
    expect(field((w) => stringWriter(W.int2, true)!('7', w))).toBe(sent('0007'));
    expect(stringWriter(W.int8)).toBeUndefined();
  });
});

describe('arrays', () => {
  const _int4 = wire('_int4', 1007, W.int4);
  const _int8 = wire('_int8', 1016, W.int8);
  const _text = wire('_text', 1009, W.text);
  const _float8 = wire('_float8', 1022, W.float8);
  const _uuid = wire('_uuid', 2951, W.uuid);
  const _date = wire('_date', 1182, W.date);
  const _numeric = wire('_numeric', 1231, W.numeric);
  const _bool = wire('_bool', 1000, W.bool);
  const _bytea = wire('_bytea', 1001, W.bytea);
  const _timestamptz = wire('_timestamptz', 1185, W.timestamptz);
  const arr = (items: unknown) => ({ type: 'array', items });
  it.each([
    [
      '{1,NULL,3}::int4[]',
      arr(['null', 'int']),
      _int4,
      [1, null, 3],
      '00000001000000010000001700000003000000010000000400000001ffffffff0000000400000003',
    ],
    ['{}::int4[]', arr('int'), _int4, [], '000000000000000000000017'],
    [
      '{NULL,NULL}::int4[]',
      arr(['null', 'int']),
      _int4,
      [null, null],
      '0000000100000001000000170000000200000001ffffffffffffffff',
    ],
    [
      '{a,NULL,é}::text[]',
      arr(['null', 'string']),
      _text,
      ['a', null, 'é'],
      '00000001000000010000001900000003000000010000000161ffffffff00000002c3a9',
    ],
    [
      '{7}::int8[] from ints',
      arr('int'),
      _int8,
      [7],
      '0000000100000000000000140000000100000001000000080000000000000007',
    ],
    [
      '{7}::int8[] from longs',
      arr('long'),
      _int8,
      [7n],
      '0000000100000000000000140000000100000001000000080000000000000007',
    ],
    ['{}::float8[]', arr('double'), _float8, [], '0000000000000000000002bd'],
    [
      'uuid[]',
      arr('string'),
      _uuid,
      ['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'],
      '000000010000000000000b86000000010000000100000010a0eebc999c0b4ef8bb6d6bb9bd380a11',
    ],
    [
      'date[]',
      arr(['null', { type: 'int', logicalType: 'date' }]),
      _date,
      [10958, null],
      '00000001000000010000043a00000002000000010000000400000001ffffffff',
    ],
    [
      'numeric[]',
      arr(['null', 'double']),
      _numeric,
      [1.5, null, 0],
      '0000000100000001000006a400000003000000010000000c000200000000000100011388ffffffff000000080000000000000000',
    ],
    [
      'bool[]',
      arr('boolean'),
      _bool,
      [true, false],
      '000000010000000000000010000000020000000100000001010000000100',
    ],
    [
      'bytea[]',
      arr('bytes'),
      _bytea,
      [Buffer.from([1]), Buffer.alloc(0)],
      '0000000100000000000000110000000200000001000000010100000000',
    ],
    [
      'timestamptz[]',
      arr({ type: 'long', logicalType: 'timestamp-millis' }),
      _timestamptz,
      [0],
      '0000000100000000000004a0000000010000000100000008fffca2fec4c82000',
    ],
  ])('%s', (_name, schema, w, value, hex) => {
    const write = writerFor(schema, w);
    expect(field((o) => write(value, o))).toBe(sent(hex));
  });

  it('writes the length of an array that grew the buffer while its elements were written', () => {
    const write = arrayWriter(25, (v, w) => writeTextField(w, v as string));
    const items = Array.from({ length: 300 }, (_, i) => 'x'.repeat(i % 17));
    const got = field((w) => write(items, w));
    const b = Buffer.from(got, 'hex');
    expect(b.readInt32BE(0)).toBe(b.length - 4);
    expect(b.readInt32BE(4 + 12)).toBe(300);
  });

  it('refuses an element as its column refuses it, with the element’s error', () => {
    const write = writerFor(arr('long'), _int4);
    expect(failure(() => write([1n, 3000000000], new TupleBuffer()))).toEqual({
      source: 'postgres',
      code: '22003',
      message: 'value "3000000000" is out of range for type integer',
    });
    expect(failure(() => writerFor(arr('string'), _text)(['a\0'], new TupleBuffer())).code).toBe(
      'NUL_IN_STRING',
    );
  });

  it('takes the element oid of the column (an array of a domain names the domain)', () => {
    const dom: WireType = { ...W.int4, declared: 'positive', declaredOid: 50001 };
    const w = { ...wire('_int4', 50002), element: { oid: 50001, wire: dom } };
    const got = field((o) => writerFor(arr('int'), w)([5], o));
    expect(Buffer.from(got, 'hex').readUInt32BE(4 + 8)).toBe(50001);
  });
});

describe('binaryWriterFor: which pairs have a writer', () => {
  const noWriter = (schema: unknown, w: WireType): string => {
    const choice = binaryWriterFor(avroType(schema), w);
    if ('writer' in choice) throw new Error(`unexpected writer for ${JSON.stringify(schema)} into ${w.name}`);
    return choice.unsupported;
  };
  const userType = (kind: string, name: string): WireType => ({
    ...wire(name, 60000),
    declared: `public.${name}`,
    kind,
    builtin: false,
  });

  it('names an enum type, a composite type, a range type, a user-defined base type', () => {
    expect(noWriter('string', userType('e', 'mood'))).toBe('Avro string into public.mood (an enum type)');
    expect(noWriter({ type: 'enum', name: 'M', symbols: ['a'] }, userType('e', 'mood'))).toBe(
      'Avro enum into public.mood (an enum type)',
    );
    expect(noWriter('string', userType('c', 'pair'))).toBe('Avro string into public.pair (a composite type)');
    expect(noWriter('string', userType('r', 'floatrange'))).toBe(
      'Avro string into public.floatrange (a range type)',
    );
    expect(noWriter('string', { ...wire('int4range', 3904), kind: 'r' })).toBe(
      'Avro string into int4range (a range type)',
    );
    expect(noWriter('string', userType('b', 'citext'))).toBe(
      'Avro string into public.citext (a user-defined type)',
    );
    expect(noWriter(['null', 'string'], userType('e', 'mood'))).toBe(
      'Avro string into public.mood (an enum type)',
    );
    // Array columns: by their element's type.
    const moods: WireType = {
      ...wire('_mood', 60001),
      declared: 'public.mood[]',
      builtin: false,
      element: { oid: 60000, wire: userType('e', 'mood') },
    };
    expect(noWriter({ type: 'array', items: 'string' }, moods)).toBe(
      'Avro array into public.mood[] (an array of an enum type)',
    );
    const ranges: WireType = {
      ...wire('_int4range', 3905),
      declared: 'int4range[]',
      builtin: false,
      element: { oid: 3904, wire: { ...wire('int4range', 3904), kind: 'r' } },
    };
    expect(noWriter({ type: 'array', items: 'string' }, ranges)).toBe(
      'Avro array into int4range[] (an array of a range type)',
    );
    const intervals = wire('_interval', 1187, wire('interval', 1186));
    expect(noWriter({ type: 'array', items: 'string' }, intervals)).toBe('Avro array into _interval');
  });

  it('leaves to text what text COPY converts differently or not at all', () => {
    // A local timestamp into timestamptz: text COPY reads it in the session's time zone.
    expect(noWriter({ type: 'long', logicalType: 'local-timestamp-micros' }, W.timestamptz)).toMatch(
      /^Avro long \(local-timestamp-micros\) into timestamptz$/,
    );
    // A double into real: float4in rounds the shortest text, not the double.
    expect(noWriter('double', W.float4)).toBe('Avro double into float4');
    // A long into float8: float8in rounds.
    expect(noWriter('long', W.float8)).toBe('Avro long into float8');
    expect(noWriter('int', W.text)).toBe('Avro int into text');
    expect(noWriter(['null', 'string', 'long'], W.int4)).toBe('Avro union into int4');
    expect(noWriter(['null', 'long'], W.text)).toBe('Avro long into text');
    expect(noWriter('string', W.int4)).toBe('Avro string into int4');
    expect(noWriter({ type: 'array', items: 'int' }, W.jsonb)).toBe('Avro array into jsonb');
    expect(noWriter('int', wire('_int4', 1007, W.int4))).toBe('Avro int into _int4');
    expect(noWriter({ type: 'enum', name: 'E', symbols: ['a'] }, W.jsonb)).toBe('Avro enum into jsonb');
    expect(noWriter({ type: 'bytes', logicalType: 'decimal', precision: 4, scale: 2 }, W.text)).toBe(
      'Avro bytes (decimal) into text',
    );
  });

  it('writes the pairs text COPY converts exactly', () => {
    const pairs: Array<[unknown, WireType]> = [
      ['boolean', W.bool],
      ['int', W.int2],
      ['int', W.int4],
      ['int', W.int8],
      ['int', W.numeric],
      ['int', W.float8],
      ['long', W.int2],
      ['long', W.int4],
      ['long', W.int8],
      ['long', W.numeric],
      ['float', W.float4],
      ['float', W.float8],
      ['float', W.numeric],
      ['double', W.float8],
      ['double', W.numeric],
      ['string', W.text],
      ['string', W.varchar],
      ['string', W.bpchar],
      ['string', W.json],
      ['string', W.jsonb],
      ['string', W.uuid],
      [{ type: 'enum', name: 'E', symbols: ['a'] }, W.text],
      [{ type: 'enum', name: 'E', symbols: ['a'] }, W.varchar],
      ['bytes', W.bytea],
      [{ type: 'fixed', name: 'F', size: 2 }, W.bytea],
      [{ type: 'int', logicalType: 'date' }, W.date],
      [{ type: 'long', logicalType: 'timestamp-millis' }, W.timestamp],
      [{ type: 'long', logicalType: 'timestamp-micros' }, W.timestamptz],
      [{ type: 'long', logicalType: 'local-timestamp-millis' }, W.timestamp],
      [{ type: 'record', name: 'R', fields: [{ name: 'x', type: 'int' }] }, W.jsonb],
      [{ type: 'record', name: 'R2', fields: [{ name: 'x', type: 'int' }] }, W.json],
      [{ type: 'map', values: 'long' }, W.jsonb],
      [{ type: 'map', values: 'long' }, W.text],
      [['null', 'string', 'long'], W.jsonb],
      [{ type: 'array', items: { type: 'array', items: 'int' } }, W.jsonb],
    ];
    for (const [schema, w] of pairs) {
      expect({ schema, w: w.name, ok: 'writer' in binaryWriterFor(avroType(schema), w) }).toEqual({
        schema,
        w: w.name,
        ok: true,
      });
    }
  });

  it('writes a Kafka timestamp of a record into timestamptz and timestamp alike', () => {
    const w1 = writerFor({ type: 'long', logicalType: 'timestamp-millis' }, W.timestamptz);
    const w2 = writerFor({ type: 'long', logicalType: 'timestamp-millis' }, W.timestamp);
    expect(field((o) => w1(1709210096789, o))).toBe(sent('0002b58341728608'));
    expect(field((o) => w2(1709210096789, o))).toBe(sent('0002b58341728608'));
  });
});

describe('resolveWireType', () => {
  const row = (r: Partial<TypeRow> & Pick<TypeRow, 'oid' | 'name'>): TypeRow => ({
    kind: 'b',
    base: 0,
    elem: 0,
    category: 'N',
    len: 4,
    schema: 'pg_catalog',
    formatted: r.name,
    ...r,
  });
  const types = new Map<number, TypeRow>(
    [
      row({ oid: 23, name: 'int4', formatted: 'integer' }),
      row({ oid: 1007, name: '_int4', category: 'A', elem: 23, len: -1, formatted: 'integer[]' }),
      row({ oid: 19, name: 'name', category: 'S', elem: 18, len: 64 }),
      row({ oid: 18, name: 'char', category: 'Z', len: 1, formatted: '"char"' }),
      row({ oid: 70001, name: 'positive', kind: 'd', base: 23, schema: 'public', formatted: 'positive' }),
      row({ oid: 70002, name: 'pos2', kind: 'd', base: 70001, schema: 'public', formatted: 'pos2' }),
      row({ oid: 70003, name: '_positive', category: 'A', elem: 70001, len: -1, schema: 'public' }),
      row({ oid: 70004, name: 'mood', kind: 'e', category: 'E', schema: 'public', formatted: 'mood' }),
      row({ oid: 70005, name: 'ints', kind: 'd', base: 1007, schema: 'public', formatted: 'ints' }),
      row({ oid: 70006, name: '_mood', category: 'A', elem: 70004, len: -1, schema: 'public' }),
      row({ oid: 1042, name: 'bpchar', category: 'S', len: -1, formatted: 'character' }),
      row({ oid: 1014, name: '_bpchar', category: 'A', elem: 1042, len: -1, formatted: 'character[]' }),
    ].map((r) => [r.oid, r]),
  );

  it('follows domains to their base type and keeps the declared oid', () => {
    const w = resolveWireType(70002, 'pos2', types);
    expect(w).toMatchObject({ declared: 'pos2', declaredOid: 70002, name: 'int4', builtin: true, kind: 'b' });
    expect(w.element).toBeUndefined();
    const arr = resolveWireType(70005, 'ints', types);
    expect(arr).toMatchObject({ name: '_int4', declaredOid: 70005, element: { oid: 23 } });
    expect(arr.element!.wire.name).toBe('int4');
  });

  it('takes only varlena arrays as arrays (name has an element type, and is no array)', () => {
    expect(resolveWireType(19, 'name', types).element).toBeUndefined();
    expect(resolveWireType(1007, 'integer[]', types).element!.oid).toBe(23);
  });

  it('tells user-defined and enum types from pg_catalog’s', () => {
    expect(resolveWireType(70004, 'mood', types)).toMatchObject({ builtin: false, kind: 'e' });
    expect(resolveWireType(70006, 'mood[]', types)).toMatchObject({ builtin: false });
    // An array of a domain: by its element's base type (the element oid is the domain's).
    const positives = resolveWireType(70003, 'positive[]', types);
    expect(positives).toMatchObject({ builtin: true, element: { oid: 70001 } });
    expect(positives.element!.wire).toMatchObject({ name: 'int4', declaredOid: 70001 });
    expect(() => resolveWireType(99999, 'gone', types)).toThrow(/not in the catalog rows/);
  });

  it('spells staging types without a length (format_type’s "character" is char(1))', () => {
    expect(resolveWireType(1042, 'character(5)', types).stageType).toBe('pg_catalog."bpchar"');
    expect(resolveWireType(1014, 'character(5)[]', types).stageType).toBe('pg_catalog."_bpchar"');
    expect(resolveWireType(70002, 'pos2', types).stageType).toBe('pg_catalog."int4"');
  });
});
