// Strict reading of Avro binary bodies: what makes a body invalid, and the codes that say why.
//
// avsc is lenient where pgsink must not be: it decodes ill-formed UTF-8 with U+FFFD, reads any
// nonzero boolean byte as true, does not range-check int varints (2^40 in an int field is read
// as 2^40) nor stop a varint at 64 bits, decodes a zero-length decimal, and keeps the last of
// two equal map keys. Each of those would land a value the producer did not write. So every
// body is checked against its writer schema before anything is written from it:
//
// - the direct path (src/sink/direct-line.ts) reads bodies with the readers of this module as
//   it writes each field, and runs a compiled validator over the fields it leaves to avsc;
// - the general path (src/avro/decoder.ts) runs the compiled validator over the whole body
//   before avsc decodes it.
//
// Both paths use the same readers, the same rules and the same messages, so they fail the same
// bodies with the same code (test/unit/direct-line.test.ts holds them to it on generated
// invalid bodies). The rules, in the order a body is read:
//
//   int (also enum and union indexes, dates, time-millis): a zigzag varint of at most 5 bytes
//     whose 5th byte is at most 0x0f (32 bits). Longs: at most 10 bytes, the 10th at most 0x01.
//   boolean: one byte, 0 or 1.   string and map keys: well-formed UTF-8 (Unicode table 3-7).
//   decimal: at least one byte.  time-millis / time-micros: 0 <= t < 24 h.
//   enum and union indexes within range.  map keys unique.  lengths and block sizes >= 0 and
//   within the body; a block's declared byte size equal to what its items take; nothing after
//   the record.
//
// A body that ends early is MALFORMED_BODY; the first fault met in body order is the one
// reported. This module knows no Postgres limits (a NUL in a string is valid Avro; it is the
// sink's encoders that refuse it).
import { isUtf8 } from 'node:buffer';
import avro from 'avsc';
import { PassthroughLogicalType } from './logical.ts';

/** Dead-letter codes for bodies that are not valid Avro for their writer schema. */
export const BodyCode = {
  MALFORMED_BODY: 'MALFORMED_BODY',
  INVALID_UTF8: 'INVALID_UTF8',
  BOOLEAN_OUT_OF_RANGE: 'BOOLEAN_OUT_OF_RANGE',
  INT_OUT_OF_RANGE: 'INT_OUT_OF_RANGE',
  LONG_OUT_OF_RANGE: 'LONG_OUT_OF_RANGE',
  TIME_OUT_OF_RANGE: 'TIME_OUT_OF_RANGE',
  EMPTY_DECIMAL: 'EMPTY_DECIMAL',
  ENUM_INDEX_OUT_OF_RANGE: 'ENUM_INDEX_OUT_OF_RANGE',
  UNION_INDEX_OUT_OF_RANGE: 'UNION_INDEX_OUT_OF_RANGE',
  DUPLICATE_MAP_KEY: 'DUPLICATE_MAP_KEY',
  TOO_MANY_ITEMS: 'TOO_MANY_ITEMS',
  INEXACT_PROMOTION: 'INEXACT_PROMOTION',
} as const;
export type BodyCode = (typeof BodyCode)[keyof typeof BodyCode];

/**
 * A fault in a body, where it was found (`path`: the field, 'a.b' for nested fields, 'a[]' for
 * array items, 'a{}' for map values; empty for the record as a whole). Turned into a
 * RecordError naming the schema id by bodyError() in src/avro/decoder.ts.
 */
export class BodyFault extends Error {
  readonly code: BodyCode;
  readonly detail: string;
  readonly path: string;

  constructor(code: BodyCode, detail: string, path: string) {
    super(path ? `field '${path}': ${detail}` : detail);
    this.name = 'BodyFault';
    this.code = code;
    this.detail = detail;
    this.path = path;
  }
}

/** What the readers read from: src[p..end). The direct path's cursor is one too. */
export interface Source {
  src: Buffer;
  p: number;
  end: number;
}

export const DAY_MILLIS = 86_400_000;
export const DAY_MICROS = 86_400_000_000;
const TWO_52 = 2 ** 52;
/** Items of a type that takes no bytes (null, an empty record) cost nothing to declare. */
export const MAX_EMPTY_ITEMS = 1 << 20;

export function truncated(path: string): never {
  throw new BodyFault(BodyCode.MALFORMED_BODY, 'the body ends inside this value', path);
}

export const intOutOfRange = (path: string): BodyFault =>
  new BodyFault(BodyCode.INT_OUT_OF_RANGE, 'int varint does not fit in 32 bits', path);

export const longOutOfRange = (path: string): BodyFault =>
  new BodyFault(BodyCode.LONG_OUT_OF_RANGE, 'long varint does not fit in 64 bits', path);

export const emptyDecimal = (path: string): BodyFault =>
  new BodyFault(BodyCode.EMPTY_DECIMAL, 'decimal has no bytes (its unscaled value needs at least one)', path);

export function timeOutOfRange(path: string, value: number | bigint, micros: boolean): BodyFault {
  const unit = micros ? 'time-micros' : 'time-millis';
  const day = micros ? DAY_MICROS : DAY_MILLIS;
  return new BodyFault(
    BodyCode.TIME_OUT_OF_RANGE,
    `${unit} ${value} is not a time of day (0 <= t < ${day})`,
    path,
  );
}

const indexText = (i: number): string => (Number.isNaN(i) ? 'beyond 32 bits' : String(i));

export const enumIndexOutOfRange = (path: string, name: string, index: number, n: number): BodyFault =>
  new BodyFault(
    BodyCode.ENUM_INDEX_OUT_OF_RANGE,
    `enum ${name} index ${indexText(index)} is not one of its ${n} symbols`,
    path,
  );

export const unionIndexOutOfRange = (path: string, index: number, n: number): BodyFault =>
  new BodyFault(
    BodyCode.UNION_INDEX_OUT_OF_RANGE,
    `union index ${indexText(index)} is not one of its ${n} branches`,
    path,
  );

export const trailingData = (n: number): BodyFault =>
  new BodyFault(
    BodyCode.MALFORMED_BODY,
    `${n} byte${n === 1 ? '' : 's'} of trailing data after the record`,
    '',
  );

/**
 * A zigzag varint int: at most 5 bytes, the 5th at most 0x0f. NaN when it does not fit in
 * 32 bits (the caller names the fault: an int, an enum or a union index).
 */
export function readInt(s: Source, path: string): number {
  const buf = s.src;
  let p = s.p;
  const end = s.end;
  if (p >= end) truncated(path);
  let b = buf[p++]!;
  if (b < 0x80) {
    s.p = p;
    return (b >>> 1) ^ -(b & 1);
  }
  let n = b & 0x7f;
  for (let k = 7; k < 28; k += 7) {
    if (p >= end) truncated(path);
    b = buf[p++]!;
    n |= (b & 0x7f) << k;
    if (b < 0x80) {
      s.p = p;
      return (n >>> 1) ^ -(n & 1);
    }
  }
  if (p >= end) truncated(path);
  b = buf[p++]!;
  s.p = p;
  if (b > 0x0f) return Number.NaN;
  n |= b << 28; // the int32 bit pattern of the zigzag value
  return (n >>> 1) ^ -(n & 1);
}

/**
 * A zigzag varint long: at most 10 bytes, the 10th at most 0x01. A number below 2^52 in
 * magnitude, a BigInt beyond (as src/avro/types.ts decodes longs), NaN when it does not fit in
 * 64 bits.
 */
export function readLong(s: Source, path: string): number | bigint {
  const buf = s.src;
  const start = s.p;
  let p = start;
  const end = s.end;
  if (p >= end) truncated(path);
  let b = buf[p++]!;
  if (b < 0x80) {
    s.p = p;
    return (b >>> 1) ^ -(b & 1);
  }
  let n = b & 0x7f;
  let k = 7;
  do {
    if (p >= end) truncated(path);
    b = buf[p++]!;
    n |= (b & 0x7f) << k;
    k += 7;
  } while (b & 0x80 && k < 28);
  if (!(b & 0x80)) {
    s.p = p;
    return (n >> 1) ^ -(n & 1);
  }
  // Bytes 5 to 10 in float arithmetic: exact while the zigzag value stays below 2^53.
  let f = n;
  let fk = 268435456; // 2 ** 28
  let count = 4;
  do {
    if (p >= end) truncated(path);
    b = buf[p++]!;
    if (++count === 10 && b > 1) {
      s.p = p;
      return Number.NaN;
    }
    f += (b & 0x7f) * fk;
    fk *= 128;
  } while (b & 0x80);
  s.p = p;
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

/** A length (of bytes, a string, a block): a long >= 0 that fits what is left of the body. */
export function readLength(s: Source, path: string): number {
  const n = readLong(s, path);
  if (typeof n === 'number' && n >= 0) {
    if (n > s.end - s.p) truncated(path);
    return n;
  }
  if (n !== n) throw new BodyFault(BodyCode.MALFORMED_BODY, 'a length varint does not fit in 64 bits', path);
  if (n < 0) throw new BodyFault(BodyCode.MALFORMED_BODY, `negative length ${n}`, path);
  return truncated(path); // a BigInt length: beyond any body
}

export function readBoolean(s: Source, path: string): boolean {
  if (s.p >= s.end) truncated(path);
  const b = s.src[s.p++]!;
  if (b > 1) {
    throw new BodyFault(
      BodyCode.BOOLEAN_OUT_OF_RANGE,
      `boolean byte is ${b}; Avro writes only 0 (false) and 1 (true)`,
      path,
    );
  }
  return b === 1;
}

/**
 * Index after the well-formed UTF-8 sequence that starts with src[i] >= 0x80 (Unicode table
 * 3-7: no overlongs, no surrogates, nothing above U+10FFFF), or -1.
 */
export function utf8SequenceEnd(src: Uint8Array, i: number, stop: number): number {
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

/** Where the first ill-formed sequence of src[start..stop) starts, or -1 when it is well-formed. */
export function firstInvalidUtf8(src: Uint8Array, start: number, stop: number): number {
  for (let i = start; i < stop; i++) {
    if (src[i]! < 0x80) continue;
    const next = utf8SequenceEnd(src, i, stop);
    if (next < 0) return i;
    i = next - 1;
  }
  return -1;
}

/** The fault for src[start..stop), which is not well-formed UTF-8; `what` is 'string', 'map key', … */
export function invalidUtf8(
  src: Uint8Array,
  start: number,
  stop: number,
  path: string,
  what = 'string',
): BodyFault {
  const at = firstInvalidUtf8(src, start, stop);
  const bad = Buffer.from(src.buffer, src.byteOffset + at, Math.min(4, stop - at)).toString('hex');
  return new BodyFault(
    BodyCode.INVALID_UTF8,
    `${what} is not well-formed UTF-8: byte ${at - start} of ${stop - start} starts an ill-formed sequence (${bad.replace(/(..)(?!$)/g, '$1 ')})`,
    path,
  );
}

/** Throws INVALID_UTF8 unless src[start..stop) is well-formed UTF-8. */
export function checkUtf8(src: Buffer, start: number, stop: number, path: string, what?: string): void {
  // Long strings: one native call (simdutf) beats the byte loop; below a few hundred bytes the
  // view it needs and the call cost more than the loop (measured on bench-orders: -30 % of the
  // validator's time with strings up to 256 bytes in the loop).
  if (stop - start > 256) {
    if (isUtf8(src.subarray(start, stop))) return;
  } else {
    let i = start;
    while (i < stop && src[i]! < 0x80) i++;
    if (i === stop || firstInvalidUtf8(src, i, stop) < 0) return;
  }
  throw invalidUtf8(src, start, stop, path, what);
}

// ------------------------------------------------------------------ compiled validators

type Check = (s: Source) => void;

const NOOP: Check = () => undefined;

const join = (path: string, name: string): string => (path ? `${path}.${name}` : name);

/** The fewest bytes a value of the type can take (a lower bound for recursive types). */
function minSize(type: avro.Type, seen = new Set<avro.Type>()): number {
  if (type instanceof avro.types.LogicalType) return minSize(type.underlyingType, seen);
  switch (type.typeName) {
    case 'null':
      return 0;
    case 'float':
      return 4;
    case 'double':
      return 8;
    case 'fixed':
      return (type as avro.types.FixedType).size;
    case 'record':
    case 'error': {
      if (seen.has(type)) return 0;
      seen.add(type);
      let n = 0;
      for (const f of (type as avro.types.RecordType).fields) n += minSize(f.type, seen);
      seen.delete(type);
      return n;
    }
    default:
      return 1; // a boolean, a varint, a length, a union index or a block count
  }
}

/**
 * Array and map blocks: a count (long), negative when a byte size (long) follows; 0 ends. The
 * items are checked by `item`; returns nothing, throws the first fault.
 */
function blocks(s: Source, path: string, itemMin: number, item: (s: Source) => void): void {
  let total = 0;
  for (;;) {
    let n = readLong(s, path);
    if (n !== n) throw new BodyFault(BodyCode.MALFORMED_BODY, 'a block count does not fit in 64 bits', path);
    if (n === 0) return;
    let size = -1;
    if (n < 0) {
      n = -n;
      size = readLength(s, path);
    }
    const count = Number(n);
    total += count;
    if (itemMin > 0) {
      if (count * itemMin > s.end - s.p) truncated(path);
    } else if (total > MAX_EMPTY_ITEMS) {
      throw new BodyFault(
        BodyCode.TOO_MANY_ITEMS,
        `more than ${MAX_EMPTY_ITEMS} items of a type that takes no bytes`,
        path,
      );
    }
    const from = s.p;
    for (let i = 0; i < count; i++) item(s);
    if (size >= 0 && s.p - from !== size) {
      throw new BodyFault(
        BodyCode.MALFORMED_BODY,
        `a block declares ${size} bytes but its ${count} items take ${s.p - from}`,
        path,
      );
    }
  }
}

function compile(type: avro.Type, path: string, compiling: Map<avro.Type, Check>): Check {
  if (type instanceof PassthroughLogicalType) return compileLogical(type, path, compiling);
  if (type instanceof avro.types.LogicalType) return compile(type.underlyingType, path, compiling);
  if (type instanceof avro.types.UnwrappedUnionType || type instanceof avro.types.WrappedUnionType) {
    const branches = type.types.map((t) => compile(t, path, compiling));
    const n = branches.length;
    return (s) => {
      const i = readInt(s, path);
      const branch = branches[i];
      if (branch === undefined) throw unionIndexOutOfRange(path, i, n);
      branch(s);
    };
  }
  switch (type.typeName) {
    case 'null':
      return NOOP;
    case 'boolean':
      return (s) => {
        readBoolean(s, path);
      };
    case 'int':
      return (s) => {
        if (Number.isNaN(readInt(s, path))) throw intOutOfRange(path);
      };
    case 'long':
    case 'abstract:long':
      return (s) => {
        const v = readLong(s, path);
        if (v !== v) throw longOutOfRange(path);
      };
    case 'float':
      return (s) => {
        if (s.end - s.p < 4) truncated(path);
        s.p += 4;
      };
    case 'double':
      return (s) => {
        if (s.end - s.p < 8) truncated(path);
        s.p += 8;
      };
    case 'bytes':
      return (s) => {
        const len = readLength(s, path); // before s.p is read: readLength moves it
        s.p += len;
      };
    case 'string':
      return (s) => {
        const len = readLength(s, path);
        const start = s.p;
        s.p += len;
        checkUtf8(s.src, start, start + len, path);
      };
    case 'fixed': {
      const size = (type as avro.types.FixedType).size;
      return (s) => {
        if (s.end - s.p < size) truncated(path);
        s.p += size;
      };
    }
    case 'enum': {
      const n = (type as avro.types.EnumType).symbols.length;
      const name = type.name ?? 'enum';
      return (s) => {
        const i = readInt(s, path);
        if (!(i >= 0 && i < n)) throw enumIndexOutOfRange(path, name, i, n);
      };
    }
    case 'array': {
      const itemsType = (type as avro.types.ArrayType).itemsType;
      const item = compile(itemsType, `${path}[]`, compiling);
      const itemMin = minSize(itemsType);
      return (s) => blocks(s, path, itemMin, item);
    }
    case 'map': {
      const valuesType = (type as avro.types.MapType).valuesType as avro.Type;
      const value = compile(valuesType, `${path}{}`, compiling);
      const entryMin = 1 + minSize(valuesType);
      return (s) => {
        let keys: Set<string> | undefined;
        blocks(s, path, entryMin, (src) => {
          const len = readLength(src, path);
          const start = src.p;
          src.p += len;
          checkUtf8(src.src, start, start + len, path, 'map key');
          // Two equal keys: a reader keeps one of the values and drops the other.
          const key = src.src.toString('latin1', start, start + len);
          keys ??= new Set();
          if (keys.has(key)) {
            const text = JSON.stringify(src.src.toString('utf8', start, start + len));
            throw new BodyFault(BodyCode.DUPLICATE_MAP_KEY, `map key ${text} appears more than once`, path);
          }
          keys.add(key);
          value(src);
        });
      };
    }
    case 'record':
    case 'error': {
      const known = compiling.get(type);
      if (known) return known;
      // Recursive records refer back to this one through `self` (their faults carry its path).
      let fields: Check[] = [];
      const self: Check = (s) => {
        for (let i = 0; i < fields.length; i++) fields[i]!(s);
      };
      compiling.set(type, self);
      fields = (type as avro.types.RecordType).fields.map((f) =>
        compile(f.type, join(path, f.name), compiling),
      );
      compiling.delete(type);
      return self;
    }
  }
  throw new Error(`internal: no validator for Avro type ${type.typeName}`);
}

function compileLogical(type: PassthroughLogicalType, path: string, compiling: Map<avro.Type, Check>): Check {
  const under = type.underlyingType;
  switch (type.logical) {
    case 'decimal':
      if (under instanceof avro.types.FixedType) {
        const size = under.size;
        return (s) => {
          if (s.end - s.p < size) truncated(path);
          if (size === 0) throw emptyDecimal(path);
          s.p += size;
        };
      }
      return (s) => {
        const len = readLength(s, path);
        if (len === 0) throw emptyDecimal(path);
        s.p += len;
      };
    case 'time-millis':
      return (s) => {
        const v = readInt(s, path);
        if (Number.isNaN(v)) throw intOutOfRange(path);
        if (v < 0 || v >= DAY_MILLIS) throw timeOutOfRange(path, v, false);
      };
    case 'time-micros':
      return (s) => {
        const v = readLong(s, path);
        if (v !== v) throw longOutOfRange(path);
        if (!(v >= 0 && v < DAY_MICROS)) throw timeOutOfRange(path, v, true);
      };
    default:
      return compile(under, path, compiling);
  }
}

/** Checks one value of `type` at s.p (advancing s.p past it); `path` names it in faults. */
export function compileValidator(type: avro.Type, path = ''): (s: Source) => void {
  return compile(type, path, new Map());
}

const bodyValidators = new WeakMap<avro.Type, (body: Buffer, start: number) => void>();

/** Checks that body[start..] is exactly one valid value of the (writer) type; throws a BodyFault. */
export function bodyValidator(type: avro.Type): (body: Buffer, start: number) => void {
  let v = bodyValidators.get(type);
  if (!v) {
    const check = compileValidator(type);
    v = (body, start) => {
      const s: Source = { src: body, p: start, end: body.length };
      try {
        check(s);
      } catch (err) {
        // A body nested deeper than the stack (a recursive schema) is malformed for pgsink.
        if (err instanceof RangeError) throw new BodyFault(BodyCode.MALFORMED_BODY, err.message, '');
        throw err;
      }
      if (s.p !== s.end) throw trailingData(s.end - s.p);
    };
    bodyValidators.set(type, v);
  }
  return v;
}
