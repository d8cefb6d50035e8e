// Writes a record's COPY binary tuple straight from its Avro body into the row arena, for
// bodies written with the route's reader schema (the usual case), as src/sink/direct-line.ts
// does for text. Each field's value is read with the strict readers of src/avro/strict.ts and
// written by the column's own writer from src/sink/binary-plan.ts, so the tuple is byte for byte
// the object path's (test/unit/direct-binary.test.ts checks both on random records); strings and
// bytes are not decoded at all: they are checked (well-formed UTF-8, no NUL) and copied.
//
// Errors come in the object path's order: a body that is not valid Avro fails at once (the
// object path's decoder reads the whole body first); a value the column cannot take (a NUL, a
// long too large for int4, …) is kept and thrown after the body has been read, the first such
// field's, as the object path finds it when it writes the fields in order.
import avro from 'avsc';
import { bodyError } from '../avro/decoder.ts';
import { PassthroughLogicalType } from '../avro/logical.ts';
import {
  BodyFault,
  checkUtf8,
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
import { writeUpsertSuffix, type BinaryColumn, type BinaryPlan } from './binary-plan.ts';
import { atField, type RecordMeta } from './columns.ts';
import {
  parseUuidBytes,
  TEXT_LIKE,
  writeNullField,
  writeNumericScaled,
  type FieldWriter,
  type Out,
} from './copy-binary.ts';
import { nulInString, smallDecimal } from './copy-text.ts';
import { LineOverflow } from './direct-line.ts';

const EMPTY = Buffer.alloc(0);
/** Metadata columns read only the Kafka side: no record object per call. */
const NO_RECORD: Record<string, unknown> = {};

class Cursor implements Source, Out {
  src: Buffer = EMPTY;
  p = 0;
  end = 0;
  out: Buffer = EMPTY;
  o = 0;
  /** The first value error of a written field (index, error), thrown after the body. */
  pendingField = -1;
  pendingError: unknown = undefined;
  writing = -1;

  need(n: number): void {
    // The arena reserved room for this record; a field that needs more (a large JSON value)
    // sends the record through the object path.
    if (this.o + n > this.out.length) throw new LineOverflow();
  }

  /** A value error of the field being written: kept (the first), not thrown yet. */
  fault(err: unknown): void {
    if (err instanceof BodyFault || err instanceof LineOverflow || !(err instanceof RecordError)) throw err;
    if (this.pendingField < 0) {
      this.pendingField = this.writing;
      this.pendingError = err;
    }
    // Whatever the writer left is not used: the record fails.
  }
}

type Step = (c: Cursor) => void;

/** Writes a value with the column's writer; a value error is kept for after the body. */
function put(c: Cursor, write: FieldWriter, v: unknown): void {
  const o = c.o;
  try {
    write(v, c);
  } catch (err) {
    c.o = o;
    c.fault(err);
    writeNullField(c);
  }
}

/**
 * UTF-8 text src[start..stop) as a text field: copied after checking it is well-formed (else
 * INVALID_UTF8, a body fault, as the object path's decoder says) and holds no NUL (else
 * NUL_IN_STRING, a value error).
 */
function copyTextField(c: Cursor, start: number, stop: number, path: string): void {
  const src = c.src;
  const len = stop - start;
  c.need(4 + len);
  const out = c.out;
  let o = c.o + 4;
  let nul = false;
  if (len <= 64) {
    // Short strings (most): checked and copied in one pass.
    for (let i = start; i < stop; i++) {
      const b = src[i]!;
      if (b < 0x80) {
        if (b === 0) nul = true;
        out[o++] = b;
        continue;
      }
      const next = utf8SequenceEnd(src, i, stop);
      if (next < 0) throw invalidUtf8(src, start, stop, path);
      for (; i < next; i++) out[o++] = src[i]!;
      i--;
    }
  } else {
    // Long ones: one checking pass, then one native copy.
    for (let i = start; i < stop; i++) {
      const b = src[i]!;
      if (b < 0x80) {
        if (b === 0) nul = true;
        continue;
      }
      const next = utf8SequenceEnd(src, i, stop);
      if (next < 0) throw invalidUtf8(src, start, stop, path);
      i = next - 1;
    }
    src.copy(out, o, start, stop);
  }
  if (nul) {
    c.fault(nulInString());
    writeNullField(c);
    return;
  }
  out[c.o] = len >>> 24;
  out[c.o + 1] = len >>> 16;
  out[c.o + 2] = len >>> 8;
  out[c.o + 3] = len;
  c.o += 4 + len;
}

/** Where a string field's bytes are copied as they are (json's binary form is its text). */
const TEXT_WIRE: ReadonlySet<string> = new Set([...TEXT_LIKE, 'json']);

/** A string field: copied as bytes into a text column, decoded for any other (uuid, jsonb). */
function stringStep(path: string, col: BinaryColumn): Step {
  if (col.wire.name === 'uuid') {
    const write = col.write;
    return (c) => {
      const len = readLength(c, path);
      const start = c.p;
      c.p += len;
      c.need(20);
      if (parseUuidBytes(c.src, start, start + len, c.out, c.o + 4)) {
        c.out.writeInt32BE(16, c.o);
        c.o += 20;
        return;
      }
      // Not a uuid: the object path's error (after its decoder's UTF-8 check).
      checkUtf8(c.src, start, start + len, path);
      put(c, write, c.src.toString('utf8', start, start + len));
    };
  }
  if (TEXT_WIRE.has(col.wire.name)) {
    return (c) => {
      const len = readLength(c, path);
      const start = c.p;
      c.p += len;
      copyTextField(c, start, start + len, path);
    };
  }
  const write = col.write;
  return (c) => {
    const len = readLength(c, path);
    const start = c.p;
    c.p += len;
    // Checked as the decoder checks it, then decoded (well-formed: the decode is exact).
    checkUtf8(c.src, start, start + len, path);
    put(c, write, c.src.toString('utf8', start, start + len));
  };
}

function logicalStep(type: PassthroughLogicalType, path: string, col: BinaryColumn): Step | undefined {
  const under = type.underlyingType;
  const write = col.write;
  switch (type.logical) {
    case 'decimal':
      if (under.typeName === 'bytes' && col.wire.name === 'numeric') {
        const scale = type.scale;
        return (c) => {
          const len = readLength(c, path);
          if (len === 0) throw emptyDecimal(path);
          const start = c.p;
          c.p += len;
          // Up to 6 bytes (money amounts): no subarray, the writer's own arithmetic path.
          if (len <= 6) {
            const n = smallDecimal(c.src, start, start + len);
            if (writeNumericScaled(c, n < 0, n < 0 ? -n : n, scale)) return;
          }
          put(c, write, c.src.subarray(start, start + len));
        };
      }
      if (under.typeName === 'bytes') {
        return (c) => {
          const len = readLength(c, path);
          if (len === 0) throw emptyDecimal(path);
          const start = c.p;
          c.p += len;
          put(c, write, c.src.subarray(start, start + len));
        };
      }
      if (under instanceof avro.types.FixedType) {
        const size = under.size;
        return (c) => {
          const start = c.p;
          if (c.end - start < size) truncated(path);
          if (size === 0) throw emptyDecimal(path);
          c.p += size;
          put(c, write, c.src.subarray(start, start + size));
        };
      }
      return undefined;
    case 'uuid':
      return under.typeName === 'string' ? stringStep(path, col) : undefined;
    case 'date':
      return (c) => {
        const days = readInt(c, path);
        if (Number.isNaN(days)) throw intOutOfRange(path);
        put(c, write, days);
      };
    case 'time-millis':
      return (c) => {
        const v = readInt(c, path);
        if (Number.isNaN(v)) throw intOutOfRange(path);
        if (v < 0 || v >= DAY_MILLIS) throw timeOutOfRange(path, v, false);
        put(c, write, v);
      };
    case 'time-micros':
      return (c) => {
        const v = readLong(c, path);
        if (v !== v) throw longOutOfRange(path);
        if (!(v >= 0 && v < DAY_MICROS)) throw timeOutOfRange(path, v, true);
        put(c, write, v);
      };
    case 'timestamp-millis':
    case 'timestamp-micros':
    case 'local-timestamp-millis':
    case 'local-timestamp-micros':
      return (c) => {
        const v = readLong(c, path);
        if (v !== v) throw longOutOfRange(path);
        put(c, write, v);
      };
  }
  return undefined;
}

/** A byte-level step for a written field of this type, or undefined where avsc decodes it. */
function stepFor(type: avro.Type, path: string, col: BinaryColumn): Step | undefined {
  if (type instanceof PassthroughLogicalType) return logicalStep(type, path, col);
  if (type instanceof avro.types.UnwrappedUnionType) {
    const branches = type.types;
    if (branches.length !== 2) return undefined;
    const nullIndex = branches.findIndex((t) => t.typeName === 'null');
    const inner = branches[1 - nullIndex];
    if (nullIndex < 0 || !inner || inner.typeName === 'null') return undefined;
    const innerStep = stepFor(inner, path, col);
    if (!innerStep) return undefined;
    return (c) => {
      const branch = readInt(c, path);
      if (branch === nullIndex) writeNullField(c);
      else if (branch === 1 - nullIndex) innerStep(c);
      else throw unionIndexOutOfRange(path, branch, 2);
    };
  }
  const write = col.write;
  switch (type.typeName) {
    case 'null':
      return writeNullField;
    case 'boolean':
      return (c) => put(c, write, readBoolean(c, path));
    case 'int':
      return (c) => {
        const v = readInt(c, path);
        if (Number.isNaN(v)) throw intOutOfRange(path);
        put(c, write, v);
      };
    case 'long':
    case 'abstract:long':
      return (c) => {
        const v = readLong(c, path);
        if (v !== v) throw longOutOfRange(path);
        put(c, write, v);
      };
    case 'float':
      return (c) => {
        if (c.end - c.p < 4) truncated(path);
        const v = c.src.readFloatLE(c.p);
        c.p += 4;
        put(c, write, v);
      };
    case 'double':
      return (c) => {
        if (c.end - c.p < 8) truncated(path);
        const v = c.src.readDoubleLE(c.p);
        c.p += 8;
        put(c, write, v);
      };
    case 'string':
      return stringStep(path, col);
    case 'enum': {
      const symbols = (type as avro.types.EnumType).symbols;
      const name = type.name ?? 'enum';
      return (c) => {
        const index = readInt(c, path);
        const symbol = symbols[index];
        if (symbol === undefined) throw enumIndexOutOfRange(path, name, index, symbols.length);
        put(c, write, symbol);
      };
    }
    case 'bytes':
      return (c) => {
        const len = readLength(c, path);
        const start = c.p;
        c.p += len;
        put(c, write, c.src.subarray(start, start + len));
      };
    case 'fixed': {
      const size = (type as avro.types.FixedType).size;
      return (c) => {
        const start = c.p;
        if (c.end - start < size) truncated(path);
        c.p += size;
        put(c, write, c.src.subarray(start, start + size));
      };
    }
  }
  return undefined;
}

/** A field avsc decodes: checked by the compiled validator (avsc is lenient), decoded, written. */
function genericStep(type: avro.Type, path: string, col: BinaryColumn): Step {
  const check = compileValidator(type, path);
  const write = col.write;
  return (c) => {
    const start = c.p;
    check(c);
    const v = type.decode(c.src, start).value as unknown;
    if (v === null || v === undefined) writeNullField(c);
    else put(c, write, v);
  };
}

export interface DirectBinaryEncoder {
  /** Bytes to reserve before encode() for this value and key. */
  maxBytes(value: Buffer, key: Buffer | null): number;
  /**
   * Writes the tuple for a Confluent-framed value into out[at..]; returns its end. Throws
   * RecordError for a record that cannot be written, LineOverflow when the reserved room did not
   * suffice (encode that record through the object path).
   */
  encode(value: Buffer, out: Buffer, at: number, meta: RecordMeta): number;
}

/** A tuple encoder for bodies written with exactly `readerType`, the schema `plan` came from. */
export function buildDirectBinaryEncoder(
  readerType: avro.types.RecordType,
  plan: BinaryPlan,
): DirectBinaryEncoder {
  const byField = new Map<string, BinaryColumn>();
  for (const col of plan.columns)
    if (col.column.source.kind === 'field') byField.set(col.column.source.field, col);
  // Every field is read in schema order; excluded ones are only checked. Field columns come in
  // schema order (routeColumns), then the metadata columns.
  const steps: Step[] = [];
  const names: string[] = [];
  for (const field of readerType.fields) {
    const col = byField.get(field.name);
    steps.push(
      col
        ? (stepFor(field.type, field.name, col) ?? genericStep(field.type, field.name, col))
        : compileValidator(field.type, field.name),
    );
    names.push(field.name);
  }
  const metas = plan.columns.filter((c) => c.column.source.kind === 'meta');
  const fieldCount = plan.columns.length + (plan.upsert ? 2 : 0);
  // Per field: a length (4) and at most 8 bytes beyond its Avro size, but a numeric (up to
  // 10/8 of the decimal's bytes and 8 more) and the metadata (the key, the topic).
  const extra = 64 + fieldCount * 16 + (plan.upsert ? 17 : 0) + metas.length * 16 + 249 * 3;
  const c = new Cursor();
  const n = steps.length;
  return {
    maxBytes(value, key) {
      return 2 * value.length + extra + (key ? 3 * key.length : 0);
    },
    encode(value, out, at, meta) {
      const id = schemaIdOf(value);
      c.src = value;
      c.p = HEADER_SIZE;
      c.end = value.length;
      c.out = out;
      c.o = at;
      c.pendingField = -1;
      c.pendingError = undefined;
      try {
        c.need(2);
        out.writeInt16BE(fieldCount, c.o);
        c.o += 2;
        for (let i = 0; i < n; i++) {
          c.writing = i;
          steps[i]!(c);
        }
        if (c.p !== c.end) throw trailingData(c.end - c.p);
        if (c.pendingField >= 0) throw atField(names[c.pendingField]!, c.pendingError);
        for (const m of metas) {
          const v = m.get(NO_RECORD, meta);
          if (v === null || v === undefined) writeNullField(c);
          else m.write(v, c);
        }
        if (plan.upsert) writeUpsertSuffix(c, meta.offset, 'u');
        return c.o;
      } catch (err) {
        if (err instanceof BodyFault) throw bodyError(id, err);
        throw err;
      } finally {
        c.src = EMPTY;
        c.out = EMPTY;
      }
    },
  };
}
