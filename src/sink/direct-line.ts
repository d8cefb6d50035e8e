// Writes a record's COPY text line straight from its Avro body into the row arena, for the
// usual case where the writer schema is the route's reader schema. The object path
// (avsc → JS object → strings → UTF-8) allocates a string per field and UTF-8-decodes and
// re-encodes every text field; here the body's bytes are read once and the line's bytes are
// written once. Strings are scanned (COPY escapes needed? well-formed UTF-8?) and copied as
// bytes; only a string that is not well-formed UTF-8 is decoded, with U+FFFD as avsc would,
// so the output is byte-identical to the object path's (test/unit/direct-line.test.ts checks
// that on random records of every type).
//
// Field types without a byte-level step here (arrays, maps, records, unions of several
// types) are decoded by avsc and encoded by the column's own encoder, inside the same line.
import avro from 'avsc';
import { PassthroughLogicalType } from '../avro/logical.ts';
import { HEADER_SIZE, schemaIdOf } from '../avro/wire.ts';
import { RecordError } from '../util/errors.ts';
import type { Column, RecordMeta } from './columns.ts';
import {
  DAY,
  escapeText,
  floatField,
  formatDate,
  formatDecimal,
  formatTime,
  formatTimestamp,
  MAX_MS,
  MIN_MS,
  nulInString,
} from './copy-text.ts';

/** Raised inside a step; turned into a MALFORMED_BODY record error naming the schema id. */
class Malformed extends Error {}

/** A field's output did not fit the line's reserved space: encode this record the other way. */
export class LineOverflow extends Error {}

const EMPTY = Buffer.alloc(0);

class Cursor {
  src: Buffer = EMPTY;
  p = 0;
  end = 0;
  out: Buffer = EMPTY;
  o = 0;
}

type Step = (c: Cursor) => void;

const TWO_52 = 2 ** 52;
const BACKSLASH = 0x5c;
const TAB = 0x09;
const LF = 0x0a;

function truncated(): never {
  throw new Malformed('truncated buffer');
}

/**
 * A zigzag varint long, exactly as avsc reads it: a number below 2^52 in magnitude, beyond
 * that a BigInt (src/avro/types.ts).
 */
function readLong(c: Cursor): number | bigint {
  const buf = c.src;
  const start = c.p;
  let p = start;
  const end = c.end;
  if (p >= end) truncated();
  let b = buf[p++]!;
  if (b < 0x80) {
    c.p = p;
    return (b >>> 1) ^ -(b & 1);
  }
  let n = b & 0x7f;
  let k = 7;
  do {
    if (p >= end) truncated();
    b = buf[p++]!;
    n |= (b & 0x7f) << k;
    k += 7;
  } while (b & 0x80 && k < 28);
  if (!(b & 0x80)) {
    c.p = p;
    return (n >> 1) ^ -(n & 1);
  }
  let f = n;
  let fk = 268435456; // 2 ** 28
  do {
    if (p >= end) truncated();
    b = buf[p++]!;
    f += (b & 0x7f) * fk;
    fk *= 128;
  } while (b & 0x80);
  c.p = p;
  const v = (f % 2 ? -(f + 1) : f) / 2;
  if (v < TWO_52 && v > -TWO_52) return v;
  let q = start;
  let shift = 0n;
  let z = 0n;
  do {
    b = buf[q++]!;
    z |= BigInt(b & 0x7f) << shift;
    shift += 7n;
  } while (b & 0x80);
  return (z >> 1n) ^ -(z & 1n);
}

/** A length or count: a non-negative number that fits what is left of the body. */
function readLength(c: Cursor): number {
  const n = readLong(c);
  if (typeof n !== 'number' || n < 0) throw new Malformed(`invalid length ${n}`);
  if (c.p + n > c.end) truncated();
  return n;
}

const POW10 = [1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];

/** Decimal digits of 0 <= n < 2^31 (int32 arithmetic: a double division costs far more). */
function writeSmall(out: Buffer, o: number, n: number): number {
  let digits = 1;
  while (digits < 10 && n >= POW10[digits]!) digits++;
  const end = o + digits;
  let i = end;
  let m = n | 0;
  while (m >= 10) {
    const q = (m / 10) | 0;
    out[--i] = 0x30 + m - q * 10;
    m = q;
  }
  out[i - 1] = 0x30 + m;
  return end;
}

/** Decimal digits of a safe integer, without a string. */
function writeInteger(c: Cursor, value: number): void {
  const out = c.out;
  let n = value;
  let o = c.o;
  if (n < 0) {
    out[o++] = 0x2d;
    n = -n;
  }
  if (n < 2147483648) {
    c.o = writeSmall(out, o, n);
    return;
  }
  // Above 2^31: the digits above the last nine, then the last nine zero-padded.
  const high = Math.floor(n / 1e9);
  if (high < 2147483648) {
    o = writeSmall(out, o, high);
  } else {
    c.o = o;
    writeAscii(c, String(high));
    o = c.o;
  }
  let low = (n - high * 1e9) | 0;
  for (let k = 8; k >= 0; k--) {
    const q = (low / 10) | 0;
    out[o + k] = 0x30 + low - q * 10;
    low = q;
  }
  c.o = o + 9;
}

/** An ASCII string (numbers, dates, enum symbols: nothing to escape). */
function writeAscii(c: Cursor, s: string): void {
  const out = c.out;
  let o = c.o;
  for (let i = 0; i < s.length; i++) out[o++] = s.charCodeAt(i);
  c.o = o;
}

// 'YYYY-MM-DD' of recent days, direct-mapped by day number: timestamps of a stream cluster
// in a few days, and the calendar is worked out once per day.
const DAY_SLOTS = 64;
const slotDay = new Float64Array(DAY_SLOTS).fill(Number.NaN);
const slotDate = Buffer.alloc(DAY_SLOTS * 10);
// '00'..'99' and '000'..'999' as bytes: no division per digit.
const DIGITS2 = Buffer.from(
  Array.from({ length: 100 }, (_, i) => String(i).padStart(2, '0')).join(''),
  'latin1',
);
const DIGITS3 = Buffer.from(
  Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, '0')).join(''),
  'latin1',
);

/** formatTimestamp's text, written in place for years 1..9999 (every real event). */
function writeTimestamp(c: Cursor, value: number | bigint, micros: boolean, utc: boolean): void {
  const units = micros ? 1000000n : 1000n;
  if (typeof value !== 'number') {
    writeAscii(c, formatTimestamp(value, units, utc));
    return;
  }
  const ms = micros ? Math.floor(value / 1000) : value;
  if (ms < MIN_MS || ms > MAX_MS) {
    writeAscii(c, formatTimestamp(value, units, utc));
    return;
  }
  const day = Math.floor(ms / DAY);
  const slot = day & (DAY_SLOTS - 1);
  if (slotDay[slot] !== day) {
    slotDay[slot] = day;
    slotDate.write(new Date(day * DAY).toISOString().slice(0, 10), slot * 10, 'latin1');
  }
  const out = c.out;
  let o = c.o;
  for (let i = 0, from = slot * 10; i < 10; i++) out[o + i] = slotDate[from + i]!;
  o += 10;
  // Below 86.4M: int32 arithmetic from here (a double % is a call into C).
  let rest = (ms - day * DAY) | 0;
  const secs = (rest / 1000) | 0;
  const milli = rest - secs * 1000;
  rest = secs;
  const mins = (rest / 60) | 0;
  const sec = rest - mins * 60;
  const hour = (mins / 60) | 0;
  const min = mins - hour * 60;
  out[o] = 0x20;
  out[o + 1] = DIGITS2[hour * 2]!;
  out[o + 2] = DIGITS2[hour * 2 + 1]!;
  out[o + 3] = 0x3a;
  out[o + 4] = DIGITS2[min * 2]!;
  out[o + 5] = DIGITS2[min * 2 + 1]!;
  out[o + 6] = 0x3a;
  out[o + 7] = DIGITS2[sec * 2]!;
  out[o + 8] = DIGITS2[sec * 2 + 1]!;
  out[o + 9] = 0x2e;
  out[o + 10] = DIGITS3[milli * 3]!;
  out[o + 11] = DIGITS3[milli * 3 + 1]!;
  out[o + 12] = DIGITS3[milli * 3 + 2]!;
  o += 13;
  if (micros) {
    const micro = (value - ms * 1000) | 0;
    out[o] = DIGITS3[micro * 3]!;
    out[o + 1] = DIGITS3[micro * 3 + 1]!;
    out[o + 2] = DIGITS3[micro * 3 + 2]!;
    o += 3;
  }
  if (utc) {
    out[o] = 0x2b; // +00
    out[o + 1] = 0x30;
    out[o + 2] = 0x30;
    o += 3;
  }
  c.o = o;
}

function writeLong(c: Cursor, v: number | bigint): void {
  if (typeof v === 'number') writeInteger(c, v);
  else writeAscii(c, v.toString());
}

/**
 * Index after the well-formed UTF-8 sequence that starts with src[i] >= 0x80 (Unicode table
 * 3-7: no overlongs, no surrogates, nothing above U+10FFFF), or -1.
 */
function utf8SequenceEnd(src: Buffer, i: number, stop: number): number {
  const b0 = src[i]!;
  if (b0 < 0xc2) return -1;
  if (b0 < 0xe0) return i + 1 < stop && (src[i + 1]! & 0xc0) === 0x80 ? i + 2 : -1;
  if (b0 < 0xf0) {
    if (i + 2 >= stop) return -1;
    const b1 = src[i + 1]!;
    const lo = b0 === 0xe0 ? 0xa0 : 0x80;
    const hi = b0 === 0xed ? 0x9f : 0xbf;
    return b1 >= lo && b1 <= hi && (src[i + 2]! & 0xc0) === 0x80 ? i + 3 : -1;
  }
  if (b0 < 0xf5) {
    if (i + 3 >= stop) return -1;
    const b1 = src[i + 1]!;
    const lo = b0 === 0xf0 ? 0x90 : 0x80;
    const hi = b0 === 0xf4 ? 0x8f : 0xbf;
    return b1 >= lo && b1 <= hi && (src[i + 2]! & 0xc0) === 0x80 && (src[i + 3]! & 0xc0) === 0x80
      ? i + 4
      : -1;
  }
  return -1;
}

const CLEAN = 0;
const ESCAPES = 1;
const INVALID = 2;

/** Whether src[start..stop) needs COPY escapes, is not well-formed UTF-8, or neither. */
function scanText(src: Buffer, start: number, stop: number): number {
  let found = CLEAN;
  for (let i = start; i < stop; i++) {
    const b = src[i]!;
    if (b < 0x80) {
      if (b <= 0x0d || b === BACKSLASH) found = ESCAPES;
      continue;
    }
    const next = utf8SequenceEnd(src, i, stop);
    if (next < 0) return INVALID;
    i = next - 1;
  }
  return found;
}

/**
 * UTF-8 text src[start..stop), escaped for COPY. Not well-formed UTF-8 is written as avsc
 * would have decoded it (U+FFFD for each bad sequence), so both paths write the same bytes.
 */
function copyText(c: Cursor, src: Buffer, start: number, stop: number): void {
  // Long strings: scan, then one native copy (the call costs less than a loop there).
  if (stop - start > 48) {
    copyLongText(c, src, start, stop);
    return;
  }
  // Short ones (most): scan and copy in one pass. The reservation allows 3 bytes out per byte
  // in; escapes need 2. Writes past a Buffer's end are dropped silently, hence the check after.
  const out = c.out;
  let o = c.o;
  for (let i = start; i < stop; i++) {
    const b = src[i]!;
    if (b > 0x0d && b < 0x80 && b !== BACKSLASH) {
      out[o++] = b;
      continue;
    }
    if (b >= 0x80) {
      const next = utf8SequenceEnd(src, i, stop);
      if (next < 0) {
        copyInvalidText(c, src, start, stop);
        return;
      }
      out[o++] = b;
      while (++i < next) out[o++] = src[i]!;
      i--;
      continue;
    }
    o = writeEscaped(out, o, b);
  }
  if (o > out.length) throw new LineOverflow();
  c.o = o;
}

/** The escape for a byte <= 0x0d or a backslash at out[o]; returns the end. */
function writeEscaped(out: Buffer, o: number, b: number): number {
  switch (b) {
    case BACKSLASH:
      out[o++] = BACKSLASH;
      out[o++] = BACKSLASH;
      break;
    case TAB:
      out[o++] = BACKSLASH;
      out[o++] = 0x74; // t
      break;
    case LF:
      out[o++] = BACKSLASH;
      out[o++] = 0x6e; // n
      break;
    case 0x0d:
      out[o++] = BACKSLASH;
      out[o++] = 0x72; // r
      break;
    case 0:
      throw nulInString();
    default:
      out[o++] = b;
  }
  return o;
}

function copyLongText(c: Cursor, src: Buffer, start: number, stop: number): void {
  const out = c.out;
  let o = c.o;
  const kind = scanText(src, start, stop);
  if (kind === CLEAN) {
    if (o + stop - start > out.length) throw new LineOverflow();
    o += src.copy(out, o, start, stop);
  } else if (kind === ESCAPES) {
    for (let i = start; i < stop; i++) {
      const b = src[i]!;
      if (b > 0x0d && b !== BACKSLASH) out[o++] = b;
      else o = writeEscaped(out, o, b);
    }
    if (o > out.length) throw new LineOverflow();
  } else {
    copyInvalidText(c, src, start, stop);
    return;
  }
  c.o = o;
}

/** Text that is not well-formed UTF-8: decoded with U+FFFD replacements, then escaped. */
function copyInvalidText(c: Cursor, src: Buffer, start: number, stop: number): void {
  const text = escapeText(src.toString('utf8', start, stop));
  if (c.o + text.length * 3 > c.out.length) throw new LineOverflow();
  c.o += c.out.write(text, c.o, 'utf8');
}

const stringStep: Step = (c) => {
  const len = readLength(c);
  const start = c.p;
  c.p += len;
  copyText(c, c.src, start, start + len);
};

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
const HEX_HI = new Uint8Array(HEX.map((h) => h.charCodeAt(0)));
const HEX_LO = new Uint8Array(HEX.map((h) => h.charCodeAt(1)));

/** bytea hex form, its leading backslash escaped for COPY: `\\x0a1b`. */
function writeBytea(c: Cursor, start: number, stop: number): void {
  const src = c.src;
  const out = c.out;
  let o = c.o;
  out[o++] = BACKSLASH;
  out[o++] = BACKSLASH;
  out[o++] = 0x78; // x
  for (let i = start; i < stop; i++) {
    const b = src[i]!;
    out[o++] = HEX_HI[b]!;
    out[o++] = HEX_LO[b]!;
  }
  c.o = o;
}

/** Avro decimal (big-endian two's complement) with its scale, as formatDecimal writes it. */
function writeDecimal(c: Cursor, start: number, stop: number, scale: number): void {
  const len = stop - start;
  if (len === 0) {
    c.out[c.o++] = 0x30;
    return;
  }
  if (len > 6) {
    writeAscii(c, formatDecimal(c.src.subarray(start, stop), scale));
    return;
  }
  // Up to 48 bits is exact in a double (money amounts): digits written right to left.
  const src = c.src;
  let n = 0;
  for (let i = start; i < stop; i++) n = n * 256 + src[i]!;
  if (src[start]! & 0x80) n -= 2 ** (len * 8);
  const out = c.out;
  let o = c.o;
  if (n < 0) {
    out[o++] = 0x2d;
    n = -n;
  }
  let digits = 1;
  for (let t = n; t >= 10; t = Math.floor(t / 10)) digits++;
  if (digits < scale + 1) digits = scale + 1;
  const width = scale > 0 ? digits + 1 : digits;
  let i = o + width;
  c.o = i;
  for (let d = 0; d < digits; d++) {
    if (scale > 0 && d === scale) out[--i] = 0x2e; // '.'
    const q = Math.floor(n / 10);
    out[--i] = 0x30 + (n - q * 10);
    n = q;
  }
}

interface StepPlan {
  step: Step;
  /** Most bytes this field writes beyond 3 per byte of its Avro encoding. */
  extra: number;
}

function logicalStep(type: PassthroughLogicalType): StepPlan | undefined {
  const under = type.underlyingType;
  switch (type.logical) {
    case 'decimal': {
      const scale = type.scale;
      const extra = scale + 8;
      if (under.typeName === 'bytes') {
        return {
          step: (c) => {
            const len = readLength(c);
            const start = c.p;
            c.p += len;
            writeDecimal(c, start, start + len, scale);
          },
          extra,
        };
      }
      if (under instanceof avro.types.FixedType) {
        const size = under.size;
        return {
          step: (c) => {
            const start = c.p;
            if (start + size > c.end) truncated();
            c.p += size;
            writeDecimal(c, start, start + size, scale);
          },
          extra,
        };
      }
      return undefined;
    }
    case 'uuid':
      return under.typeName === 'string' ? { step: stringStep, extra: 0 } : undefined;
    case 'date':
      return {
        step: (c) => writeAscii(c, formatDate(BigInt(readLong(c)))),
        extra: 32,
      };
    case 'time-millis':
    case 'time-micros': {
      const units = type.logical === 'time-millis' ? 1000n : 1000000n;
      return { step: (c) => writeAscii(c, formatTime(BigInt(readLong(c)), units)), extra: 48 };
    }
    case 'timestamp-millis':
    case 'timestamp-micros':
    case 'local-timestamp-millis':
    case 'local-timestamp-micros': {
      const micros = type.logical.endsWith('micros');
      const utc = !type.logical.startsWith('local');
      return { step: (c) => writeTimestamp(c, readLong(c), micros, utc), extra: 48 };
    }
  }
  return undefined;
}

/** A byte-level step for this field type, or undefined where avsc decodes it. */
function stepFor(type: avro.Type): StepPlan | undefined {
  if (type instanceof PassthroughLogicalType) return logicalStep(type);
  if (type instanceof avro.types.UnwrappedUnionType) {
    const branches = type.types;
    if (branches.length !== 2) return undefined;
    const nullIndex = branches.findIndex((t) => t.typeName === 'null');
    const inner = branches[1 - nullIndex];
    if (nullIndex < 0 || !inner || inner.typeName === 'null') return undefined;
    const plan = stepFor(inner);
    if (!plan) return undefined;
    const innerStep = plan.step;
    return {
      step: (c) => {
        const branch = readLong(c);
        if (branch === nullIndex) writeNull(c);
        else if (branch === 1 - nullIndex) innerStep(c);
        else throw new Malformed(`invalid union index ${branch}`);
      },
      extra: plan.extra,
    };
  }
  switch (type.typeName) {
    case 'null':
      return { step: writeNull, extra: 2 };
    case 'boolean':
      return {
        step: (c) => {
          if (c.p >= c.end) truncated();
          c.out[c.o++] = c.src[c.p++] ? 0x74 : 0x66; // t / f
        },
        extra: 1,
      };
    case 'int':
    case 'long':
    case 'abstract:long': // the BigInt long of src/avro/types.ts
      return { step: (c) => writeLong(c, readLong(c)), extra: 24 };
    case 'float':
      return {
        step: (c) => {
          if (c.p + 4 > c.end) truncated();
          writeAscii(c, floatField(c.src.readFloatLE(c.p)));
          c.p += 4;
        },
        extra: 32,
      };
    case 'double':
      return {
        step: (c) => {
          if (c.p + 8 > c.end) truncated();
          writeAscii(c, floatField(c.src.readDoubleLE(c.p)));
          c.p += 8;
        },
        extra: 32,
      };
    case 'string':
      return { step: stringStep, extra: 0 };
    case 'enum': {
      const symbols = (type as avro.types.EnumType).symbols;
      const name = type.name ?? 'enum';
      return {
        step: (c) => {
          const index = readLong(c);
          const symbol = typeof index === 'number' ? symbols[index] : undefined;
          if (symbol === undefined) throw new Malformed(`invalid ${name} enum index: ${index}`);
          writeAscii(c, symbol);
        },
        extra: Math.max(0, ...symbols.map((s) => s.length)),
      };
    }
    case 'bytes':
      return {
        step: (c) => {
          const len = readLength(c);
          const start = c.p;
          c.p += len;
          writeBytea(c, start, start + len);
        },
        extra: 3,
      };
    case 'fixed': {
      const size = (type as avro.types.FixedType).size;
      return {
        step: (c) => {
          const start = c.p;
          if (start + size > c.end) truncated();
          c.p += size;
          writeBytea(c, start, start + size);
        },
        extra: 3,
      };
    }
  }
  return undefined;
}

function writeNull(c: Cursor): void {
  c.out[c.o++] = BACKSLASH;
  c.out[c.o++] = 0x4e; // N
}

/** avsc decodes the field; the column's encoder writes it (output size unknown: checked). */
function genericStep(type: avro.Type, encode: Column['encode']): Step {
  return (c) => {
    let decoded: { value: unknown; offset: number };
    try {
      decoded = type.decode(c.src, c.p);
    } catch (err) {
      throw new Malformed((err as Error).message);
    }
    if (decoded.offset < 0 || decoded.offset > c.end) truncated();
    c.p = decoded.offset;
    const v = decoded.value;
    if (v === null || v === undefined) {
      writeNull(c);
      return;
    }
    const text = encode(v);
    const room = c.out.length - c.o;
    if (text.length * 3 > room && Buffer.byteLength(text, 'utf8') > room) throw new LineOverflow();
    c.o += c.out.write(text, c.o, 'utf8');
  };
}

export interface DirectLineEncoder {
  /** Bytes to reserve before encode() for this value and key. */
  maxBytes(value: Buffer, key: Buffer | null): number;
  /**
   * Writes the line (LF included) for a Confluent-framed value into out[at..]; returns the end.
   * Throws RecordError for a record that cannot be written, LineOverflow when a field that
   * avsc decodes did not fit (encode that record through the object path).
   */
  encode(value: Buffer, out: Buffer, at: number, meta: RecordMeta): number;
}

export interface DirectLineOptions {
  /** Upsert staging lines end with the offset and the 'u' operation. */
  upsert: boolean;
}

/**
 * A line encoder for bodies written with exactly `readerType`, the schema `columns` came from
 * (routeColumns in src/sink/columns.ts).
 */
export function buildDirectLineEncoder(
  readerType: avro.types.RecordType,
  columns: Column[],
  opts: DirectLineOptions,
): DirectLineEncoder {
  const byField = new Map<string, Column>();
  for (const col of columns) if (col.source.kind === 'field') byField.set(col.source.field, col);
  // Every field of the body is read in schema order; excluded ones are read and dropped.
  // Field columns are in schema order too (routeColumns), so the line comes out in column order.
  const steps: Step[] = [];
  const writes: boolean[] = [];
  let extra = 64 + (opts.upsert ? 32 : 0);
  for (const field of readerType.fields) {
    const col = byField.get(field.name);
    const plan = stepFor(field.type);
    steps.push(plan ? plan.step : genericStep(field.type, col ? col.encode : () => ''));
    writes.push(col !== undefined);
    extra += (plan?.extra ?? 0) + 1;
  }
  const metas: Array<(c: Cursor, meta: RecordMeta) => void> = [];
  let keyFactor = 0;
  for (const col of columns) {
    if (col.source.kind !== 'meta') continue;
    extra += 64;
    switch (col.source.meta) {
      case 'topic':
        extra += 3 * 249; // Kafka's longest topic name
        metas.push((c, m) => {
          const bytes = topicBytes(m.topic);
          copyText(c, bytes, 0, bytes.length);
        });
        break;
      case 'partition':
        metas.push((c, m) => writeInteger(c, m.partition));
        break;
      case 'offset':
        metas.push((c, m) => writeInteger(c, m.offset));
        break;
      case 'timestamp':
        metas.push((c, m) => writeTimestamp(c, Number(m.timestamp), false, true));
        break;
      case 'key':
        keyFactor = 3;
        metas.push((c, m) => {
          if (m.key === null) writeNull(c);
          else copyText(c, m.key, 0, m.key.length);
        });
        break;
    }
  }
  let lastTopic = '';
  let lastTopicBytes = EMPTY;
  function topicBytes(topic: string): Buffer {
    if (topic !== lastTopic) {
      lastTopic = topic;
      lastTopicBytes = Buffer.from(topic, 'utf8');
    }
    return lastTopicBytes;
  }

  const c = new Cursor();
  const n = steps.length;
  return {
    maxBytes(value, key) {
      return 3 * value.length + extra + (key ? keyFactor * key.length : 0);
    },
    encode(value, out, at, meta) {
      const id = schemaIdOf(value);
      c.src = value;
      c.p = HEADER_SIZE;
      c.end = value.length;
      c.out = out;
      c.o = at;
      let first = true;
      try {
        for (let i = 0; i < n; i++) {
          if (writes[i]) {
            if (!first) out[c.o++] = TAB;
            first = false;
            steps[i]!(c);
          } else {
            const o = c.o;
            steps[i]!(c);
            c.o = o;
          }
        }
        if (c.p !== c.end) throw new Malformed('trailing data');
        for (const write of metas) {
          if (!first) out[c.o++] = TAB;
          first = false;
          write(c, meta);
        }
        if (opts.upsert) {
          out[c.o++] = TAB;
          writeInteger(c, meta.offset);
          out[c.o++] = TAB;
          out[c.o++] = 0x75; // u
        }
        out[c.o++] = LF;
        // Index writes past the end of a Buffer are dropped silently: a line that ran past
        // it (a field avsc decoded took more than its share) is written the other way.
        if (c.o > out.length) throw new LineOverflow();
        return c.o;
      } catch (err) {
        if (err instanceof Malformed) {
          throw new RecordError(
            'avro',
            'MALFORMED_BODY',
            `Avro body does not decode with schema id ${id}: ${err.message}`,
            err,
          );
        }
        throw err;
      } finally {
        // Neither the client's message nor the arena chunk stays reachable from here.
        c.src = EMPTY;
        c.out = EMPTY;
      }
    },
  };
}
