// Pure encoders for PostgreSQL's COPY binary format, chosen per column from the pair (Avro
// type, the column's type in the catalog). A tuple is an int16 field count, then per field an
// int32 length (-1 for NULL) and the value in the type's binary send/recv form, big-endian.
//
// Binary saves Postgres parsing every field from characters (about half the backend's CPU per
// row), but the bytes must be exactly the column's wire type: an int4 column takes 4 bytes, an
// int8 column 8. So the encoder follows the catalog, and every conversion text COPY left to
// Postgres' input functions is done here, with their rules and their SQLSTATEs: a long too large
// for an int4 column is 22003 "value … is out of range for type integer", a string that is not a
// uuid is 22P02, a date or timestamp beyond Postgres' range is 22008 (its binary recv functions
// would take some of those as ±infinity). What Postgres' recv functions still check themselves
// (varchar and char lengths, numeric precision and scale, domain constraints, JSON syntax) they
// check with the same errors as the text input functions: the typmod is applied either way.
//
// A pair without an encoder here (a user-defined type, an enum type, a range, int into text, …)
// makes the route use text COPY: never a guessed byte layout.
import avro from 'avsc';
import { PassthroughLogicalType } from '../avro/logical.ts';
import { emptyDecimal } from '../avro/strict.ts';
import { RecordError } from '../util/errors.ts';
import {
  floatField,
  formatDate,
  formatTimestamp,
  nulInString,
  smallDecimal,
  unscaledDigits,
} from './copy-text.ts';
import { jsonEncoder } from './jsonb.ts';

/** 'PGCOPY\n\377\r\n\0', flags (no OIDs), no header extension. */
export const BINARY_HEADER = Buffer.from([
  0x50, 0x47, 0x43, 0x4f, 0x50, 0x59, 0x0a, 0xff, 0x0d, 0x0a, 0x00, 0, 0, 0, 0, 0, 0, 0, 0,
]);
/** The file trailer: a field count of -1. */
export const BINARY_TRAILER = Buffer.from([0xff, 0xff]);

/** Where a field is written: a buffer, a position, and a way to make room (grow, or give up). */
export interface Out {
  out: Buffer;
  o: number;
  /** Ensures `n` more bytes fit at `o` (may replace `out`). */
  need(n: number): void;
}

/** Writes one non-null value, its int32 length included. */
export type FieldWriter = (value: unknown, w: Out) => void;

/**
 * A column's type as the catalog has it, resolved to what goes on the wire: a domain is written
 * as its base type (Postgres checks the domain's constraints on receipt), an array as its
 * element's base type under the element type the column declares.
 */
export interface WireType {
  /** format_type() of the column's declared type, for messages. */
  declared: string;
  /** The declared type's oid (a domain's own): a change means the table was altered. */
  declaredOid: number;
  /** The base type's name in pg_catalog (typname: int4, varchar, timestamptz, _int4, …). */
  name: string;
  /** pg_type.typtype of the base type: b(ase), e(num), c(omposite), r(ange), m(ultirange), p. */
  kind: string;
  /** Whether the base type is pg_catalog's (a user-defined base type has no encoder here). */
  builtin: boolean;
  /** The type a staging column holding these bytes has (format_type of the base type). */
  stageType: string;
  /** For an array: its declared element type's oid (written in the array header), and the
   * element's own wire type. */
  element?: { oid: number; wire: WireType } | undefined;
}

// Byte stores, not Buffer's write methods: those check their arguments on every call, and a
// tuple is a dozen of them (the callers reserved the room with need()).
const writeLength = (w: Out, n: number): void => {
  const out = w.out;
  const o = w.o;
  out[o] = n >>> 24;
  out[o + 1] = n >>> 16;
  out[o + 2] = n >>> 8;
  out[o + 3] = n;
  w.o = o + 4;
};

function store32(out: Buffer, o: number, n: number): void {
  out[o] = n >>> 24;
  out[o + 1] = n >>> 16;
  out[o + 2] = n >>> 8;
  out[o + 3] = n;
}

/** A NULL field. */
export function writeNullField(w: Out): void {
  w.need(4);
  w.out.writeInt32BE(-1, w.o);
  w.o += 4;
}

export function writeBool(w: Out, v: boolean): void {
  w.need(5);
  writeLength(w, 1);
  w.out[w.o++] = v ? 1 : 0;
}

export function writeInt2(w: Out, v: number): void {
  w.need(6);
  writeLength(w, 2);
  w.out.writeInt16BE(v, w.o);
  w.o += 2;
}

export function writeInt4(w: Out, v: number): void {
  w.need(8);
  writeLength(w, 4);
  store32(w.out, w.o, v);
  w.o += 4;
}

/** An int64 from a safe integer or a BigInt in int64 range. */
export function writeInt8(w: Out, v: number | bigint): void {
  w.need(12);
  writeLength(w, 8);
  writeInt64Raw(w, v);
}

function writeInt64Raw(w: Out, v: number | bigint): void {
  if (typeof v === 'number') {
    const high = Math.floor(v / 4294967296);
    store32(w.out, w.o, high);
    store32(w.out, w.o + 4, v - high * 4294967296);
  } else {
    w.out.writeBigInt64BE(v, w.o);
  }
  w.o += 8;
}

// A NaN read from an Avro body keeps its sign and payload bits in JS; text COPY writes any NaN
// as 'NaN', which float4in and float8in read as their one NaN: that one is written.
export function writeFloat4(w: Out, v: number): void {
  w.need(8);
  writeLength(w, 4);
  w.out.writeFloatBE(v === v ? v : Number.NaN, w.o);
  w.o += 4;
}

export function writeFloat8(w: Out, v: number): void {
  w.need(12);
  writeLength(w, 8);
  w.out.writeDoubleBE(v === v ? v : Number.NaN, w.o);
  w.o += 8;
}

/** Text (text, varchar, char, json): UTF-8; a NUL is NUL_IN_STRING, as with text COPY. */
export function writeTextField(w: Out, s: string): void {
  if (s.includes('\0')) throw nulInString();
  w.need(4 + s.length * 3);
  const n = w.out.write(s, w.o + 4, 'utf8');
  writeLength(w, n);
  w.o += n;
}

/** jsonb: version 1, then the JSON text. */
export function writeJsonbField(w: Out, json: string): void {
  if (json.includes('\0')) throw nulInString();
  w.need(5 + json.length * 3);
  w.out[w.o + 4] = 1;
  const n = w.out.write(json, w.o + 5, 'utf8');
  writeLength(w, n + 1);
  w.o += n + 1;
}

export function writeBytesField(w: Out, b: Uint8Array): void {
  w.need(4 + b.length);
  writeLength(w, b.length);
  w.out.set(b, w.o);
  w.o += b.length;
}

// ---------------------------------------------------------------------------------------------
// Integers narrowed to a smaller column: Node checks what int2in / int4in would refuse.

export function outOfRange(value: number | bigint | string, type: string): RecordError {
  return new RecordError('postgres', '22003', `value "${value}" is out of range for type ${type}`);
}

export function writeInt2Checked(w: Out, v: number | bigint): void {
  if (typeof v === 'bigint' || v < -32768 || v > 32767) {
    if (typeof v === 'bigint' && v >= -32768n && v <= 32767n) return writeInt2(w, Number(v));
    throw outOfRange(v, 'smallint');
  }
  writeInt2(w, v);
}

export function writeInt4Checked(w: Out, v: number | bigint): void {
  if (typeof v === 'bigint' || v < -2147483648 || v > 2147483647) {
    if (typeof v === 'bigint' && v >= -2147483648n && v <= 2147483647n) return writeInt4(w, Number(v));
    throw outOfRange(v, 'integer');
  }
  writeInt4(w, v);
}

// ---------------------------------------------------------------------------------------------
// Dates and times: days and microseconds since 2000-01-01 (Postgres' epoch).

const PG_EPOCH_DAYS = 10957;
const PG_EPOCH_MICROS = 946_684_800_000_000;
const PG_EPOCH_MICROS_N = 946_684_800_000_000n;
// Postgres' ranges (datatype/timestamp.h), relative to its epoch: 4714-11-24 BC to 5874897 AD
// for dates, to 294276 AD for timestamps. Its recv functions read INT32_MIN / INT64_MIN as
// -infinity: a value out of range is refused here, as the text input would refuse it.
const MIN_DATE = -2451545;
const END_DATE = 2145031949;
const MIN_TIMESTAMP = -211813488000000000n;
const END_TIMESTAMP = 9223371331200000000n;

/** An Avro date (days since 1970-01-01). */
export function writeDate(w: Out, days: number): void {
  const d = days - PG_EPOCH_DAYS;
  if (d < MIN_DATE || d >= END_DATE) {
    throw new RecordError('postgres', '22008', `date out of range: "${formatDate(BigInt(days))}"`);
  }
  writeInt4(w, d);
}

/** A time of day in microseconds (already checked to be within one day). */
export function writeTime(w: Out, micros: number | bigint): void {
  writeInt8(w, micros);
}

const MS_SAFE = 9_007_199_254_740; // |ms| * 1000 stays a safe integer

/** A timestamp from a count of `unit`s (ms or µs) since 1970-01-01 UTC. */
export function writeTimestamp(w: Out, value: number | bigint, micros: boolean, utc: boolean): void {
  if (typeof value === 'number') {
    if (micros) {
      if (value > -4e15 && value < 4e15) return writeInt8(w, value - PG_EPOCH_MICROS);
    } else if (value > -MS_SAFE && value < MS_SAFE) {
      return writeInt8(w, value * 1000 - PG_EPOCH_MICROS);
    }
  }
  const t = BigInt(value) * (micros ? 1n : 1000n) - PG_EPOCH_MICROS_N;
  if (t < MIN_TIMESTAMP || t >= END_TIMESTAMP) {
    throw new RecordError(
      'postgres',
      '22008',
      `timestamp out of range: "${formatTimestamp(value, micros ? 1000000n : 1000n, utc)}"`,
    );
  }
  writeInt8(w, t);
}

// ---------------------------------------------------------------------------------------------
// numeric: int16 ndigits, int16 weight (of the first base-10000 digit), int16 sign, int16
// dscale (digits after the point to show), then the digits. Canonical: no leading or trailing
// zero digits (numeric_recv accepts others, but a stored value is then the same either way).

const NUMERIC_POS = 0x0000;
const NUMERIC_NEG = 0x4000;
const NUMERIC_NAN = 0xc000;
const NUMERIC_PINF = 0xd000;
const NUMERIC_NINF = 0xf000;

function writeNumericSpecial(w: Out, sign: number): void {
  w.need(12);
  writeLength(w, 8);
  w.out.writeInt16BE(0, w.o);
  w.out.writeInt16BE(0, w.o + 2);
  w.out.writeUInt16BE(sign, w.o + 4);
  w.out.writeInt16BE(0, w.o + 6);
  w.o += 8;
}

/**
 * The numeric digits × 10^-scale (digits: decimal, no sign; scale ≥ 0), displayed with
 * `dscale` fraction digits.
 */
export function writeNumericDigits(w: Out, negative: boolean, digits: string, scale: number): void {
  const intLen = digits.length - scale;
  const intPart = intLen > 0 ? digits.slice(0, intLen) : '';
  const frac = intLen > 0 ? digits.slice(intLen) : '0'.repeat(-intLen) + digits;
  const intGroups = Math.ceil(intPart.length / 4);
  const padded = intPart.padStart(intGroups * 4, '0') + frac.padEnd(Math.ceil(frac.length / 4) * 4, '0');
  let first = 0;
  let last = padded.length / 4;
  while (first < last && padded.slice(first * 4, first * 4 + 4) === '0000') first++;
  while (last > first && padded.slice(last * 4 - 4, last * 4) === '0000') last--;
  const ndigits = last - first;
  const weight = ndigits === 0 ? 0 : intGroups - 1 - first;
  if (weight > 32767 || ndigits > 32767 || scale > 0x3fff) {
    throw new RecordError('postgres', '22003', 'value overflows numeric format');
  }
  w.need(12 + 2 * ndigits);
  writeLength(w, 8 + 2 * ndigits);
  const out = w.out;
  let o = w.o;
  out.writeInt16BE(ndigits, o);
  out.writeInt16BE(weight, o + 2);
  out.writeUInt16BE(ndigits !== 0 && negative ? NUMERIC_NEG : NUMERIC_POS, o + 4);
  out.writeInt16BE(scale, o + 6);
  o += 8;
  for (let g = first; g < last; g++) {
    const at = g * 4;
    const d =
      (padded.charCodeAt(at) - 48) * 1000 +
      (padded.charCodeAt(at + 1) - 48) * 100 +
      (padded.charCodeAt(at + 2) - 48) * 10 +
      (padded.charCodeAt(at + 3) - 48);
    out.writeInt16BE(d, o);
    o += 2;
  }
  w.o = o;
}

const POW10 = [1, 10, 100, 1000];
const groups = new Int32Array(8);

/**
 * n × 10^-scale for a safe integer n ≥ 0, in arithmetic (money amounts: the hot path); the same
 * digits as writeNumericDigits. False when n scaled to whole base-10000 groups is not safe.
 */
export function writeNumericScaled(w: Out, negative: boolean, n: number, scale: number): boolean {
  const pad = (4 - (scale % 4)) % 4;
  let rest = n * POW10[pad]!;
  if (!Number.isSafeInteger(rest) || scale > 0x3fff) return false;
  let count = 0;
  while (rest > 0) {
    const q = Math.floor(rest / 10000);
    groups[count++] = rest - q * 10000;
    rest = q;
  }
  let low = 0;
  while (low < count && groups[low] === 0) low++;
  const ndigits = count - low;
  const weight = ndigits === 0 ? 0 : count - 1 - (scale + pad) / 4;
  w.need(12 + 2 * ndigits);
  const out = w.out;
  let o = w.o;
  const sign = ndigits !== 0 && negative ? NUMERIC_NEG : NUMERIC_POS;
  store32(out, o, 8 + 2 * ndigits);
  out[o + 4] = ndigits >>> 8;
  out[o + 5] = ndigits;
  out[o + 6] = weight >> 8;
  out[o + 7] = weight;
  out[o + 8] = sign >>> 8;
  out[o + 9] = sign;
  out[o + 10] = scale >>> 8;
  out[o + 11] = scale;
  o += 12;
  for (let g = count - 1; g >= low; g--) {
    const d = groups[g]!;
    out[o] = d >>> 8;
    out[o + 1] = d;
    o += 2;
  }
  w.o = o;
  return true;
}

/** An Avro decimal (big-endian two's complement unscaled value) with its scale. */
export function writeNumericDecimal(w: Out, bytes: Uint8Array, scale: number): void {
  if (bytes.length === 0) throw emptyDecimal('');
  if (bytes.length <= 6) {
    const n = smallDecimal(bytes, 0, bytes.length);
    if (writeNumericScaled(w, n < 0, n < 0 ? -n : n, scale)) return;
  }
  const { negative, digits } = unscaledDigits(bytes);
  writeNumericDigits(w, negative, digits, scale);
}

export function writeNumericInteger(w: Out, v: number | bigint): void {
  const negative = v < 0;
  const digits = (negative ? -BigInt(v) : BigInt(v)).toString();
  writeNumericDigits(w, negative, digits, 0);
}

/** A float or double into numeric, as numeric_in reads the text COPY would send (floatField). */
export function writeNumericFloat(w: Out, v: number): void {
  if (Number.isNaN(v)) return writeNumericSpecial(w, NUMERIC_NAN);
  if (v === Infinity) return writeNumericSpecial(w, NUMERIC_PINF);
  if (v === -Infinity) return writeNumericSpecial(w, NUMERIC_NINF);
  const text = floatField(v);
  const negative = text.startsWith('-');
  const body = negative ? text.slice(1) : text;
  const e = body.indexOf('e');
  const mantissa = e < 0 ? body : body.slice(0, e);
  const exponent = e < 0 ? 0 : Number(body.slice(e + 1));
  const point = mantissa.indexOf('.');
  let digits = point < 0 ? mantissa : mantissa.slice(0, point) + mantissa.slice(point + 1);
  let scale = (point < 0 ? 0 : mantissa.length - point - 1) - exponent;
  if (scale < 0) {
    digits += '0'.repeat(-scale);
    scale = 0;
  }
  digits = digits.replace(/^0+(?=\d)/, '');
  writeNumericDigits(w, negative, digits, scale);
}

// ---------------------------------------------------------------------------------------------
// uuid: uuid_in's rules (hex pairs, a hyphen allowed after any group of four digits but the
// last, optional braces), and its error.

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** The 16 bytes of a uuid in any spelling uuid_in accepts, or undefined. */
export function parseUuid(s: string, into: Buffer, at: number): boolean {
  let i = 0;
  const braces = s.charCodeAt(0) === 0x7b;
  if (braces) i++;
  for (let b = 0; b < 16; b++) {
    const hi = hexValue(s.charCodeAt(i));
    const lo = hexValue(s.charCodeAt(i + 1));
    if (hi < 0 || lo < 0) return false;
    into[at + b] = hi * 16 + lo;
    i += 2;
    if (s.charCodeAt(i) === 0x2d && b % 2 === 1 && b < 15) i++;
  }
  if (braces) {
    if (s.charCodeAt(i) !== 0x7d) return false;
    i++;
  }
  return i === s.length;
}

/** parseUuid on the UTF-8 bytes src[start..stop) (a uuid is ASCII: other bytes fail it). */
export function parseUuidBytes(
  src: Uint8Array,
  start: number,
  stop: number,
  into: Buffer,
  at: number,
): boolean {
  let i = start;
  const braces = src[i] === 0x7b;
  if (braces) i++;
  for (let b = 0; b < 16; b++) {
    if (i + 1 >= stop) return false;
    const hi = hexValue(src[i]!);
    const lo = hexValue(src[i + 1]!);
    if (hi < 0 || lo < 0) return false;
    into[at + b] = hi * 16 + lo;
    i += 2;
    if (i < stop && src[i] === 0x2d && b % 2 === 1 && b < 15) i++;
  }
  if (braces) {
    if (i >= stop || src[i] !== 0x7d) return false;
    i++;
  }
  return i === stop;
}

export function writeUuid(w: Out, s: string): void {
  w.need(20);
  if (!parseUuid(s, w.out, w.o + 4)) {
    // Text COPY refuses a NUL in any string before Postgres reads it.
    if (s.includes('\0')) throw nulInString();
    throw new RecordError('postgres', '22P02', `invalid input syntax for type uuid: "${s}"`);
  }
  writeLength(w, 16);
  w.o += 16;
}

// ---------------------------------------------------------------------------------------------
// Integers from text (the Kafka key of a tombstone into an integer key column), as int2in,
// int4in and int8in read them (PostgreSQL 15: optional spaces around, a sign, decimal digits).
// Postgres finds an overflow while it reads the digits, before it looks at what follows them:
// '99999999999x' is out of range for an integer (22003), not invalid syntax.

const INT_DIGITS = /^[ \t\n\r\f\v]*([+-]?[0-9]+)/;
const INT_TRAILER = /^[ \t\n\r\f\v]*$/;

export function parseIntegerText(s: string, type: 'smallint' | 'integer' | 'bigint'): bigint {
  const m = INT_DIGITS.exec(s);
  if (!m) throw new RecordError('postgres', '22P02', `invalid input syntax for type ${type}: "${s}"`);
  const v = BigInt(m[1]!);
  const bits = type === 'smallint' ? 16n : type === 'integer' ? 32n : 64n;
  const max = (1n << (bits - 1n)) - 1n;
  if (v > max || v < -max - 1n) throw outOfRange(s, type);
  if (!INT_TRAILER.test(s.slice(m[0].length))) {
    throw new RecordError('postgres', '22P02', `invalid input syntax for type ${type}: "${s}"`);
  }
  return v;
}

// ---------------------------------------------------------------------------------------------
// Arrays: int32 ndim (0 for an empty array), int32 has-nulls, int32 element type oid, then per
// dimension int32 size and int32 lower bound (1), then each element as a field.

export function arrayWriter(elementOid: number, element: FieldWriter): FieldWriter {
  return (value, w) => {
    const items = value as readonly unknown[];
    w.need(24);
    const start = w.o;
    w.o += 4;
    if (items.length === 0) {
      w.out.writeInt32BE(0, w.o);
      w.out.writeInt32BE(0, w.o + 4);
      w.out.writeUInt32BE(elementOid, w.o + 8);
      w.o += 12;
    } else {
      let hasNull = 0;
      for (const item of items) if (item === null || item === undefined) hasNull = 1;
      w.out.writeInt32BE(1, w.o);
      w.out.writeInt32BE(hasNull, w.o + 4);
      w.out.writeUInt32BE(elementOid, w.o + 8);
      w.out.writeInt32BE(items.length, w.o + 12);
      w.out.writeInt32BE(1, w.o + 16);
      w.o += 20;
      for (const item of items) {
        if (item === null || item === undefined) writeNullField(w);
        else element(item, w);
      }
    }
    // The buffer may have grown (need() replaces it): the length goes into the current one.
    w.out.writeInt32BE(w.o - start - 4, start);
  };
}

// ---------------------------------------------------------------------------------------------
// The pair (Avro type, column type) → a writer, or why there is none.

/** The column types a string is written to as its UTF-8 bytes. */
export const TEXT_LIKE: ReadonlySet<string> = new Set(['text', 'varchar', 'bpchar']);
const JSON_LIKE = new Set(['jsonb', 'json', 'text', 'varchar', 'bpchar']);

export type WriterChoice = { writer: FieldWriter } | { unsupported: string };

const ok = (writer: FieldWriter): WriterChoice => ({ writer });

function jsonWriter(wire: WireType, json: (v: unknown) => string): FieldWriter | undefined {
  if (wire.name === 'jsonb') return (v, w) => writeJsonbField(w, json(v));
  if (JSON_LIKE.has(wire.name)) return (v, w) => writeTextField(w, json(v));
  return undefined;
}

/**
 * A string value (string, enum symbol, uuid text) into a column of `wire`; with `integers`, also
 * into an integer column as int2in/int4in/int8in read it (a tombstone's Kafka key into an integer
 * key column; PostgreSQL 16 reads more spellings, which are refused here as 15 refuses them).
 */
export function stringWriter(wire: WireType, integers = false): FieldWriter | undefined {
  switch (wire.name) {
    case 'text':
    case 'varchar':
    case 'bpchar':
    case 'json':
      return (v, w) => writeTextField(w, v as string);
    case 'jsonb':
      return (v, w) => writeJsonbField(w, v as string);
    case 'uuid':
      return (v, w) => writeUuid(w, v as string);
    case 'int2':
      if (!integers) return undefined;
      return (v, w) => writeInt2(w, Number(parseIntegerText(v as string, 'smallint')));
    case 'int4':
      if (!integers) return undefined;
      return (v, w) => writeInt4(w, Number(parseIntegerText(v as string, 'integer')));
    case 'int8':
      if (!integers) return undefined;
      return (v, w) => writeInt8(w, parseIntegerText(v as string, 'bigint'));
  }
  return undefined;
}

/** An integer (int, long, a partition or an offset) into a column of `wire`. */
export function integerWriter(wire: WireType, bits: 32 | 64): FieldWriter | undefined {
  switch (wire.name) {
    case 'int2':
      return (v, w) => writeInt2Checked(w, v as number | bigint);
    case 'int4':
      return bits === 32
        ? (v, w) => writeInt4(w, v as number)
        : (v, w) => writeInt4Checked(w, v as number | bigint);
    case 'int8':
      return (v, w) => writeInt8(w, v as number | bigint);
    case 'numeric':
      return (v, w) => writeNumericInteger(w, v as number | bigint);
    case 'float8':
      // An int is exact in a double; a long may not be (text COPY rounds it in float8in).
      return bits === 32 ? (v, w) => writeFloat8(w, v as number) : undefined;
  }
  return undefined;
}

function timestampWriter(wire: WireType, micros: boolean, utc: boolean): FieldWriter | undefined {
  // A local timestamp into timestamptz would be read in the session's time zone by text COPY:
  // that column is left to text.
  if (wire.name === 'timestamp' || (wire.name === 'timestamptz' && utc)) {
    return (v, w) => writeTimestamp(w, v as number | bigint, micros, utc);
  }
  return undefined;
}

function primitiveWriter(type: avro.Type, wire: WireType): FieldWriter | undefined {
  if (type instanceof PassthroughLogicalType) {
    switch (type.logical) {
      case 'decimal': {
        const scale = type.scale;
        return wire.name === 'numeric' ? (v, w) => writeNumericDecimal(w, v as Buffer, scale) : undefined;
      }
      case 'uuid':
        return wire.name === 'uuid' || TEXT_LIKE.has(wire.name) ? stringWriter(wire) : undefined;
      case 'date':
        return wire.name === 'date' ? (v, w) => writeDate(w, v as number) : undefined;
      case 'time-millis':
        return wire.name === 'time' ? (v, w) => writeTime(w, (v as number) * 1000) : undefined;
      case 'time-micros':
        return wire.name === 'time' ? (v, w) => writeTime(w, v as number | bigint) : undefined;
      case 'timestamp-millis':
      case 'timestamp-micros':
      case 'local-timestamp-millis':
      case 'local-timestamp-micros':
        return timestampWriter(wire, type.logical.endsWith('micros'), !type.logical.startsWith('local'));
    }
    return undefined;
  }
  switch (type.typeName) {
    case 'boolean':
      return wire.name === 'bool' ? (v, w) => writeBool(w, v as boolean) : undefined;
    case 'int':
      return integerWriter(wire, 32);
    case 'long':
    case 'abstract:long':
      return integerWriter(wire, 64);
    case 'float':
    case 'double':
      if (wire.name === 'float8') return (v, w) => writeFloat8(w, v as number);
      // A double into real: float4in rounds the shortest decimal text, which is not always
      // Math.fround of the double: left to text.
      if (wire.name === 'float4' && type.typeName === 'float') return (v, w) => writeFloat4(w, v as number);
      if (wire.name === 'numeric') return (v, w) => writeNumericFloat(w, v as number);
      return undefined;
    case 'string':
      return stringWriter(wire);
    case 'enum':
      return TEXT_LIKE.has(wire.name) ? stringWriter(wire) : undefined;
    case 'bytes':
    case 'fixed':
      return wire.name === 'bytea' ? (v, w) => writeBytesField(w, v as Uint8Array) : undefined;
    case 'null':
      return () => undefined; // never called: the value is always NULL
  }
  return undefined;
}

// src/avro/types.ts's BigInt long is avsc's 'abstract:long': a long to the user.
const avroName = (type: avro.Type): string =>
  type.typeName === 'abstract:long' ? 'long' : type.typeName === 'union:wrapped' ? 'union' : type.typeName;

const describeAvro = (type: avro.Type): string =>
  type instanceof PassthroughLogicalType
    ? `${avroName(type.underlyingType)} (${type.logical})`
    : avroName(type);

/** Why a column's type has no writer, when its kind says it (an enum, composite, range, …). */
function kindReason(wire: WireType): string | undefined {
  // The kind first: an enum, composite or range type is user-defined too (never pg_catalog's
  // but for the built-in ranges), and the kind says more.
  return wire.kind === 'e'
    ? 'an enum type'
    : wire.kind === 'c'
      ? 'a composite type'
      : wire.kind === 'r' || wire.kind === 'm'
        ? 'a range type'
        : !wire.builtin
          ? 'a user-defined type'
          : undefined;
}

function noEncoder(type: avro.Type, wire: WireType): WriterChoice {
  // An array column: its element's type is the reason (an array of an enum is no user type).
  const element = wire.element ? kindReason(wire.element.wire) : undefined;
  const why = element ? `an array of ${element}` : kindReason(wire);
  return {
    unsupported: `Avro ${describeAvro(type)} into ${wire.declared}${why ? ` (${why})` : ''}`,
  };
}

/** The writer for values of `type` (what avsc decodes) into a column of `wire`. */
export function binaryWriterFor(type: avro.Type, wire: WireType): WriterChoice {
  // A union of null and one type first: the message names that type, not the union.
  if (type instanceof avro.types.UnwrappedUnionType) {
    return binaryWriterFor(
      type.types.find((t) => t.typeName !== 'null')!,
      wire,
    );
  }
  if (!wire.builtin || (wire.kind !== 'b' && wire.kind !== 'p')) return noEncoder(type, wire);
  if (type instanceof avro.types.WrappedUnionType) {
    const writer = jsonWriter(wire, jsonEncoder(type));
    return writer ? ok(writer) : noEncoder(type, wire);
  }
  if (type instanceof avro.types.ArrayType) {
    const items = type.itemsType;
    const itemBase =
      items instanceof avro.types.UnwrappedUnionType
        ? items.types.filter((t) => t.typeName !== 'null')
        : [items];
    const scalar =
      itemBase.length === 1 &&
      !(itemBase[0] instanceof avro.types.WrappedUnionType) &&
      !(itemBase[0] instanceof avro.types.ArrayType) &&
      !(itemBase[0] instanceof avro.types.RecordType) &&
      !(itemBase[0] instanceof avro.types.MapType);
    if (scalar) {
      // Text COPY writes an array literal: only an array column takes it.
      if (!wire.element) return noEncoder(type, wire);
      const element = primitiveWriter(itemBase[0]!, wire.element.wire);
      if (!element || !wire.element.wire.builtin || wire.element.wire.kind !== 'b')
        return noEncoder(type, wire);
      return ok(arrayWriter(wire.element.oid, element));
    }
    const writer = jsonWriter(wire, jsonEncoder(type));
    return writer ? ok(writer) : noEncoder(type, wire);
  }
  if (type instanceof avro.types.RecordType || type instanceof avro.types.MapType) {
    const writer = jsonWriter(wire, jsonEncoder(type));
    return writer ? ok(writer) : noEncoder(type, wire);
  }
  if (wire.element) return noEncoder(type, wire);
  const writer = primitiveWriter(type, wire);
  return writer ? ok(writer) : noEncoder(type, wire);
}

// ---------------------------------------------------------------------------------------------
// Catalog rows → wire types (the query is src/sink/catalog.ts).

/** One pg_type row. */
export interface TypeRow {
  oid: number;
  name: string;
  /** typtype: b, c, d, e, p, r, m. */
  kind: string;
  /** typbasetype (a domain's base type), 0 otherwise. */
  base: number;
  /** typelem, 0 when none. */
  elem: number;
  /** typcategory ('A' for arrays). */
  category: string;
  len: number;
  schema: string;
  /** format_type(oid, NULL). */
  formatted: string;
}

/** The wire type of a column declared as type `oid` (domains followed to their base). */
export function resolveWireType(
  oid: number,
  declared: string,
  types: ReadonlyMap<number, TypeRow>,
): WireType {
  let t = types.get(oid);
  for (let depth = 0; t && t.kind === 'd' && depth < 64; depth++) t = types.get(t.base);
  if (!t || t.kind === 'd') throw new Error(`internal: type ${oid} (${declared}) is not in the catalog rows`);
  const isArray = t.category === 'A' && t.elem !== 0 && t.len === -1;
  const elemRow = isArray ? types.get(t.elem) : undefined;
  const element = isArray && elemRow ? resolveWireType(t.elem, elemRow.formatted, types) : undefined;
  const catalog = t.schema === 'pg_catalog';
  return {
    declared,
    declaredOid: oid,
    name: t.name,
    kind: t.kind,
    // An array of a domain is the domain's own array type, outside pg_catalog: what counts is
    // its element's base type.
    builtin: element ? element.builtin && element.kind === 'b' : catalog,
    // pg_catalog's own spelling: format_type's 'character' would be char(1) in a CREATE TABLE.
    stageType: catalog ? `pg_catalog."${t.name}"` : t.formatted,
    element: element ? { oid: t.elem, wire: element } : undefined,
  };
}

/**
 * The wire type of a column of the type `pgsink schema plan` gives it (src/sink/columns.ts
 * pgTypes: 'bigint NOT NULL', 'numeric(12,2)', 'text[]', …), without a catalog: for the
 * benchmark's encode-only ceiling and tests. Undefined for a spelling it does not know.
 */
export function naturalWireType(pgType: string): WireType | undefined {
  const declared = pgType.replace(/ NOT NULL$/, '');
  const array = declared.endsWith('[]');
  const base = (array ? declared.slice(0, -2) : declared).replace(/\(.*\)$/, '');
  const names: Record<string, [name: string, oid: number]> = {
    boolean: ['bool', 16],
    integer: ['int4', 23],
    bigint: ['int8', 20],
    real: ['float4', 700],
    'double precision': ['float8', 701],
    numeric: ['numeric', 1700],
    text: ['text', 25],
    bytea: ['bytea', 17],
    uuid: ['uuid', 2950],
    date: ['date', 1082],
    time: ['time', 1083],
    timestamp: ['timestamp', 1114],
    timestamptz: ['timestamptz', 1184],
    jsonb: ['jsonb', 3802],
  };
  const known = names[base];
  if (!known) return undefined;
  const [name, oid] = known;
  const element: WireType = { declared, declaredOid: oid, name, kind: 'b', builtin: true, stageType: base };
  if (!array) return element;
  return {
    declared,
    declaredOid: 0,
    name: `_${name}`,
    kind: 'b',
    builtin: true,
    stageType: `${base}[]`,
    element: { oid, wire: element },
  };
}
