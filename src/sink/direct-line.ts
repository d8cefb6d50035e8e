// Writes a record's COPY text line straight from its Avro body into the row arena, for the
// usual case where the writer schema is the route's reader schema. The object path
// (avsc → JS object → strings → UTF-8) allocates a string per field and UTF-8-decodes and
// re-encodes every text field; here the body's bytes are read once and the line's bytes are
// written once. Strings are scanned (COPY escapes needed? well-formed UTF-8?) and copied as
// bytes.
//
// The body is read strictly, with the readers and rules of src/avro/strict.ts: a value that is
// not valid Avro (ill-formed UTF-8, a boolean byte of 2, an int beyond 32 bits, a time of day
// beyond 24 h, a zero-length decimal, …) fails the record with the same code and message as
// the object path's validator, and a NUL in a written string (valid Avro that Postgres cannot
// store) is reported only once the whole body has been read, as the object path finds it only
// after its validator has. The output is byte-identical to the object path's
// (test/unit/direct-line.test.ts checks both on random valid and invalid records).
//
// Field types without a byte-level step here (arrays, maps, records, unions other than null
// and one type) are checked by the compiled validator, decoded by avsc and encoded by the
// column's own encoder, inside the same line.
import avro from 'avsc';
import { bodyError } from '../avro/decoder.ts';
import { PassthroughLogicalType } from '../avro/logical.ts';
import {
  BodyFault,
  compileValidator,
  DAY_MICROS,
  DAY_MILLIS,
  emptyDecimal,
  enumIndexOutOfRange,
  intOutOfRange,
  invalidUtf8,
  longOutOfRange,
  readBoolean,
  readInt,
  readLength,
  readLong,
  timeOutOfRange,
  trailingData,
  truncated,
  unionIndexOutOfRange,
  utf8SequenceEnd,
  type Source,
} from '../avro/strict.ts';
import { HEADER_SIZE, schemaIdOf } from '../avro/wire.ts';
import { RecordError } from '../util/errors.ts';
import { atField, keyText, type Column, type RecordMeta } from './columns.ts';
import {
  DAY,
  floatField,
  formatDate,
  formatDecimal,
  formatTime,
  formatTimestamp,
  MAX_MS,
  MIN_MS,
  nulInString,
} from './copy-text.ts';

/** A field's output did not fit the line's reserved space: encode this record the other way. */
export class LineOverflow extends Error {}

const EMPTY = Buffer.alloc(0);

class Cursor implements Source {
  src: Buffer = EMPTY;
  p = 0;
  end = 0;
  out: Buffer = EMPTY;
  o = 0;
}

type Step = (c: Cursor) => void;

const BACKSLASH = 0x5c;
const TAB = 0x09;
const LF = 0x0a;

// The first written field whose strings hold a NUL, reported after the body has been read
// (encode() is synchronous: module state is safe). `writing` is the index of the field being
// written, -1 while an excluded field is read.
let writing = -1;
let nulField = -1;
/** `writing` while the Kafka key is copied (after the body: no field's NUL is pending then). */
const KEY = 2 ** 30;

function sawNul(): void {
  if (nulField < 0) nulField = writing;
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
 * UTF-8 text src[start..stop), escaped for COPY. Not well-formed UTF-8 is INVALID_UTF8 (named
 * after `path`); a NUL is noted (sawNul) and reported once the body has been read.
 */
function copyText(c: Cursor, src: Buffer, start: number, stop: number, path: string): void {
  // Long strings: scan, then one native copy (the call costs less than a loop there).
  if (stop - start > 48) {
    copyLongText(c, src, start, stop, path);
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
      if (next < 0) throw invalidUtf8(src, start, stop, path);
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
      sawNul();
      break;
    default:
      out[o++] = b;
  }
  return o;
}

function copyLongText(c: Cursor, src: Buffer, start: number, stop: number, path: string): void {
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
    throw invalidUtf8(src, start, stop, path);
  }
  c.o = o;
}

function stringStep(path: string): Step {
  return (c) => {
    const len = readLength(c, path);
    const start = c.p;
    c.p += len;
    copyText(c, c.src, start, start + len, path);
  };
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
const HEX_HI = new Uint8Array(HEX.map((h) => h.charCodeAt(0)));
const HEX_LO = new Uint8Array(HEX.map((h) => h.charCodeAt(1)));

/** bytea hex form of src[start..stop), its leading backslash escaped for COPY: `\\x0a1b`. */
function writeBytea(c: Cursor, src: Buffer, start: number, stop: number): void {
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

/** Avro decimal (big-endian two's complement, at least one byte) with its scale, as formatDecimal writes it. */
function writeDecimal(c: Cursor, start: number, stop: number, scale: number): void {
  const len = stop - start;
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

function logicalStep(type: PassthroughLogicalType, path: string): StepPlan | undefined {
  const under = type.underlyingType;
  switch (type.logical) {
    case 'decimal': {
      const scale = type.scale;
      const extra = scale + 8;
      if (under.typeName === 'bytes') {
        return {
          step: (c) => {
            const len = readLength(c, path);
            if (len === 0) throw emptyDecimal(path);
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
            if (c.end - start < size) truncated(path);
            if (size === 0) throw emptyDecimal(path);
            c.p += size;
            writeDecimal(c, start, start + size, scale);
          },
          extra,
        };
      }
      return undefined;
    }
    case 'uuid':
      return under.typeName === 'string' ? { step: stringStep(path), extra: 0 } : undefined;
    case 'date':
      return {
        step: (c) => {
          const days = readInt(c, path);
          if (Number.isNaN(days)) throw intOutOfRange(path);
          writeAscii(c, formatDate(BigInt(days)));
        },
        extra: 32,
      };
    case 'time-millis':
      return {
        step: (c) => {
          const v = readInt(c, path);
          if (Number.isNaN(v)) throw intOutOfRange(path);
          if (v < 0 || v >= DAY_MILLIS) throw timeOutOfRange(path, v, false);
          writeAscii(c, formatTime(BigInt(v), 1000n));
        },
        extra: 48,
      };
    case 'time-micros':
      return {
        step: (c) => {
          const v = readLong(c, path);
          if (v !== v) throw longOutOfRange(path);
          if (!(v >= 0 && v < DAY_MICROS)) throw timeOutOfRange(path, v, true);
          writeAscii(c, formatTime(BigInt(v), 1000000n));
        },
        extra: 48,
      };
    case 'timestamp-millis':
    case 'timestamp-micros':
    case 'local-timestamp-millis':
    case 'local-timestamp-micros': {
      const micros = type.logical.endsWith('micros');
      const utc = !type.logical.startsWith('local');
      return {
        step: (c) => {
          const v = readLong(c, path);
          if (v !== v) throw longOutOfRange(path);
          writeTimestamp(c, v, micros, utc);
        },
        extra: 48,
      };
    }
  }
  return undefined;
}

/** A byte-level step for a field of this type (named `path`), or undefined where avsc decodes it. */
function stepFor(type: avro.Type, path: string): StepPlan | undefined {
  if (type instanceof PassthroughLogicalType) return logicalStep(type, path);
  if (type instanceof avro.types.UnwrappedUnionType) {
    // A union of null and one other type (src/avro/types.ts unwraps no other).
    const branches = type.types;
    if (branches.length !== 2) return undefined;
    const nullIndex = branches.findIndex((t) => t.typeName === 'null');
    const inner = branches[1 - nullIndex];
    if (nullIndex < 0 || !inner || inner.typeName === 'null') return undefined;
    const plan = stepFor(inner, path);
    if (!plan) return undefined;
    const innerStep = plan.step;
    return {
      step: (c) => {
        const branch = readInt(c, path);
        if (branch === nullIndex) writeNull(c);
        else if (branch === 1 - nullIndex) innerStep(c);
        else throw unionIndexOutOfRange(path, branch, 2);
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
          c.out[c.o++] = readBoolean(c, path) ? 0x74 : 0x66; // t / f
        },
        extra: 1,
      };
    case 'int':
      return {
        step: (c) => {
          const v = readInt(c, path);
          if (Number.isNaN(v)) throw intOutOfRange(path);
          writeInteger(c, v);
        },
        extra: 24,
      };
    case 'long':
    case 'abstract:long': // the BigInt long of src/avro/types.ts
      return {
        step: (c) => {
          const v = readLong(c, path);
          if (v !== v) throw longOutOfRange(path);
          writeLong(c, v);
        },
        extra: 24,
      };
    case 'float':
      return {
        step: (c) => {
          if (c.end - c.p < 4) truncated(path);
          writeAscii(c, floatField(c.src.readFloatLE(c.p)));
          c.p += 4;
        },
        extra: 32,
      };
    case 'double':
      return {
        step: (c) => {
          if (c.end - c.p < 8) truncated(path);
          writeAscii(c, floatField(c.src.readDoubleLE(c.p)));
          c.p += 8;
        },
        extra: 32,
      };
    case 'string':
      return { step: stringStep(path), extra: 0 };
    case 'enum': {
      const symbols = (type as avro.types.EnumType).symbols;
      const name = type.name ?? 'enum';
      return {
        step: (c) => {
          const index = readInt(c, path);
          const symbol = symbols[index];
          if (symbol === undefined) throw enumIndexOutOfRange(path, name, index, symbols.length);
          writeAscii(c, symbol);
        },
        extra: Math.max(0, ...symbols.map((s) => s.length)),
      };
    }
    case 'bytes':
      return {
        step: (c) => {
          const len = readLength(c, path);
          const start = c.p;
          c.p += len;
          writeBytea(c, c.src, start, start + len);
        },
        extra: 3,
      };
    case 'fixed': {
      const size = (type as avro.types.FixedType).size;
      return {
        step: (c) => {
          const start = c.p;
          if (c.end - start < size) truncated(path);
          c.p += size;
          writeBytea(c, c.src, start, start + size);
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

/**
 * A field avsc decodes: checked by the compiled validator first (avsc is lenient), then
 * decoded, then written by the column's encoder (output size unknown: checked). An excluded
 * field (no encoder) is only checked.
 */
function genericStep(type: avro.Type, path: string, encode: Column['encode'] | undefined): Step {
  const check = compileValidator(type, path);
  if (!encode) return check;
  return (c) => {
    const start = c.p;
    check(c);
    const v = type.decode(c.src, start).value as unknown;
    if (v === null || v === undefined) {
      writeNull(c);
      return;
    }
    let text: string;
    try {
      text = encode(v);
    } catch (err) {
      // Valid Avro that Postgres cannot store: reported after the body has been read.
      if (err instanceof RecordError && err.code === 'NUL_IN_STRING') {
        sawNul();
        return;
      }
      throw err;
    }
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
 * (routeColumns in src/sink/columns.ts, whose key column type it follows).
 */
export function buildDirectLineEncoder(
  readerType: avro.types.RecordType,
  columns: Column[],
  opts: DirectLineOptions,
): DirectLineEncoder {
  const byField = new Map<string, Column>();
  for (const col of columns) if (col.source.kind === 'field') byField.set(col.source.field, col);
  // Every field of the body is read in schema order; excluded ones are read (checked) and
  // dropped. Field columns are in schema order too (routeColumns), so the line comes out in
  // column order.
  const steps: Step[] = [];
  const writes: boolean[] = [];
  const names: string[] = [];
  let extra = 64 + (opts.upsert ? 32 : 0);
  for (const field of readerType.fields) {
    const col = byField.get(field.name);
    const plan = stepFor(field.type, field.name);
    steps.push(plan ? plan.step : genericStep(field.type, field.name, col?.encode));
    writes.push(col !== undefined);
    names.push(field.name);
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
          copyText(c, bytes, 0, bytes.length, '');
        });
        break;
      case 'partition':
        metas.push((c, m) => writeInteger(c, m.partition));
        break;
      case 'offset':
        metas.push((c, m) => writeInteger(c, m.offset));
        break;
      case 'timestamp':
        // Kafka's -1 is "no timestamp": NULL (as the object path writes it).
        metas.push((c, m) => {
          const ms = Number(m.timestamp);
          if (ms >= 0) writeTimestamp(c, ms, false, true);
          else writeNull(c);
        });
        break;
      case 'key':
        keyFactor = 3;
        if (col.pgType === 'bytea') {
          metas.push((c, m) => {
            if (m.key === null) writeNull(c);
            else writeBytea(c, m.key, 0, m.key.length);
          });
        } else {
          metas.push((c, m) => {
            const key = m.key;
            if (key === null) {
              writeNull(c);
              return;
            }
            // copyText checks the bytes as it copies them (no second pass over the key); a key a
            // text column cannot hold gets the object path's error (keyText throws it).
            writing = KEY;
            try {
              copyText(c, key, 0, key.length, '');
            } catch (err) {
              if (err instanceof BodyFault) keyText(key);
              throw err;
            }
            if (nulField === KEY) keyText(key);
          });
        }
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
      nulField = -1;
      let first = true;
      try {
        for (let i = 0; i < n; i++) {
          if (writes[i]) {
            if (!first) out[c.o++] = TAB;
            first = false;
            writing = i;
            steps[i]!(c);
          } else {
            const o = c.o;
            writing = -1;
            steps[i]!(c);
            c.o = o;
          }
        }
        if (c.p !== c.end) throw trailingData(c.end - c.p);
        if (nulField >= 0) throw atField(names[nulField]!, nulInString());
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
        if (err instanceof BodyFault) throw bodyError(id, err);
        throw err;
      } finally {
        // Neither the client's message nor the arena chunk stays reachable from here.
        c.src = EMPTY;
        c.out = EMPTY;
      }
    },
  };
}
