// A route's COPY binary tuples, from records (the object path) and for tombstones: one writer
// per column, chosen from the pair (Avro type, the column's type in the catalog) by
// src/sink/copy-binary.ts. When a column has no writer the route uses text COPY: buildBinaryPlan
// says which columns and why, and the caller logs it once at start-up.
import type avro from 'avsc';
import type { RouteConfig } from '../config/schema.ts';
import { BodyFault } from '../avro/strict.ts';
import { RecordError } from '../util/errors.ts';
import {
  atField,
  keyText,
  routeColumns,
  type Column,
  type ColumnOptions,
  type RecordMeta,
} from './columns.ts';
import {
  binaryWriterFor,
  integerWriter,
  stringWriter,
  TEXT_LIKE,
  writeBytesField,
  writeInt8,
  writeNullField,
  writeTimestamp,
  type FieldWriter,
  type Out,
  type WireType,
} from './copy-binary.ts';

/** A growable buffer for one tuple at a time. */
export class TupleBuffer implements Out {
  out: Buffer = Buffer.allocUnsafe(64 * 1024);
  o = 0;

  need(n: number): void {
    if (this.o + n <= this.out.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.out.length * 2, this.o + n));
    this.out.copy(next, 0, 0, this.o);
    this.out = next;
  }
}

/** One column's value writer, and what its value is read from. */
export interface BinaryColumn {
  column: Column;
  wire: WireType;
  /** The value to write, null for NULL. */
  get: (record: Record<string, unknown>, meta: RecordMeta) => unknown;
  write: FieldWriter;
}

export interface BinaryPlan {
  columns: readonly BinaryColumn[];
  /** The staging column types that hold these bytes (isolation's staging table). */
  stageTypes: readonly string[];
  /** Upsert: tuples carry the offset (int8) and the operation ("char") after the columns. */
  upsert: boolean;
  /**
   * The record's tuple. The result is a view of a buffer reused by the next call: copy it.
   * Throws RecordError (its field named) for a value the column cannot take.
   */
  encode(record: Record<string, unknown>, meta: RecordMeta): Buffer;
  /** A tombstone's tuple (upsert): the key column from the Kafka key's text, the rest NULL. */
  deleteTuple?: ((key: Buffer, offset: number) => Buffer) | undefined;
}

export type BinaryPlanChoice = { plan: BinaryPlan } | { unsupported: string[] };

/** The int16 field count; the upsert suffix (offset, operation). */
function writeCount(w: Out, n: number): void {
  w.need(2);
  w.out.writeInt16BE(n, w.o);
  w.o += 2;
}

export function writeUpsertSuffix(w: Out, offset: number, op: 'u' | 'd'): void {
  writeInt8(w, offset);
  // The operation, a "char": length 1, one byte.
  w.need(5);
  w.out.writeInt32BE(1, w.o);
  w.out[w.o + 4] = op === 'u' ? 0x75 : 0x64;
  w.o += 5;
}

/** The writer and getter of a metadata column, or why it has none. */
function metaColumn(column: Column, wire: WireType, keyAs: 'text' | 'bytea'): BinaryColumn | string {
  const meta = column.source.kind === 'meta' ? column.source.meta : undefined;
  const no = `metadata ${meta} into ${wire.declared}`;
  switch (meta) {
    case 'topic': {
      const write = TEXT_LIKE.has(wire.name) ? stringWriter(wire) : undefined;
      return write ? { column, wire, get: (_r, m) => m.topic, write } : no;
    }
    case 'partition': {
      const write = integerWriter(wire, 32);
      return write ? { column, wire, get: (_r, m) => m.partition, write } : no;
    }
    case 'offset': {
      const write = integerWriter(wire, 64);
      return write && wire.name !== 'float8' ? { column, wire, get: (_r, m) => m.offset, write } : no;
    }
    case 'timestamp': {
      if (wire.name !== 'timestamptz' && wire.name !== 'timestamp') return no;
      // Kafka writes -1 for a record without a timestamp: NULL, as text COPY writes it.
      return {
        column,
        wire,
        get: (_r, m) => {
          const ms = Number(m.timestamp);
          return ms >= 0 ? ms : null;
        },
        write: (v, w) => writeTimestamp(w, v as number, false, true),
      };
    }
    case 'key': {
      if (keyAs === 'bytea') {
        return wire.name === 'bytea'
          ? { column, wire, get: (_r, m) => m.key, write: (v, w) => writeBytesField(w, v as Buffer) }
          : no;
      }
      const text = stringWriter(wire, true);
      return text
        ? { column, wire, get: (_r, m) => m.key, write: (v, w) => text(keyText(v as Buffer), w) }
        : no;
    }
  }
  return no;
}

/**
 * The binary plan of a route whose table has the column types `wire` (by column name), or the
 * columns that have no binary writer.
 */
export function buildBinaryPlan(
  readerType: avro.Type,
  route: RouteConfig,
  wire: ReadonlyMap<string, WireType>,
  opts: ColumnOptions = {},
): BinaryPlanChoice {
  const columns = routeColumns(readerType, route, opts);
  const out: BinaryColumn[] = [];
  const unsupported: string[] = [];
  for (const column of columns) {
    const w = wire.get(column.name);
    if (!w) {
      unsupported.push(`column ${column.name}: not in the table`);
      continue;
    }
    if (column.source.kind === 'meta') {
      const m = metaColumn(column, w, opts.key ?? 'text');
      if (typeof m === 'string') unsupported.push(`column ${column.name} (${w.declared}): ${m}`);
      else out.push(m);
      continue;
    }
    const choice = binaryWriterFor(column.source.type, w);
    if ('unsupported' in choice) unsupported.push(`column ${column.name}: ${choice.unsupported}`);
    else out.push({ column, wire: w, get: column.get, write: choice.writer });
  }
  const upsert = route.mode === 'upsert';
  let deleteTuple: BinaryPlan['deleteTuple'];
  if (upsert && route.deleteOnTombstone) {
    const keyName = route.keyColumns?.[0];
    const index = columns.findIndex((c) => c.name === keyName);
    const keyWire = index >= 0 ? wire.get(columns[index]!.name) : undefined;
    const keyWrite = keyWire ? stringWriter(keyWire, true) : undefined;
    if (!keyWrite) {
      unsupported.push(
        `key column ${keyName} (${keyWire?.declared ?? 'missing'}): a tombstone's key text has no binary writer for it`,
      );
    } else {
      const buf = new TupleBuffer();
      const n = columns.length;
      deleteTuple = (key, offset) => {
        buf.o = 0;
        writeCount(buf, n + 2);
        for (let i = 0; i < n; i++) {
          if (i === index) keyWrite(keyText(key), buf);
          else writeNullField(buf);
        }
        writeUpsertSuffix(buf, offset, 'd');
        return buf.out.subarray(0, buf.o);
      };
    }
  }
  if (unsupported.length) return { unsupported };
  const n = out.length;
  const gets = out.map((c) => c.get);
  const writes = out.map((c) => c.write);
  const fields = out.map((c) => (c.column.source.kind === 'field' ? c.column.source.field : undefined));
  const buf = new TupleBuffer();
  return {
    plan: {
      columns: out,
      stageTypes: out.map((c) => c.wire.stageType),
      upsert,
      deleteTuple,
      encode(record, meta) {
        buf.o = 0;
        writeCount(buf, upsert ? n + 2 : n);
        let i = 0;
        try {
          for (; i < n; i++) {
            const v = gets[i]!(record, meta);
            if (v === null || v === undefined) writeNullField(buf);
            else writes[i]!(v, buf);
          }
        } catch (err) {
          const field = fields[i];
          if (field !== undefined) throw atField(field, err);
          if (err instanceof BodyFault) throw new RecordError('avro', err.code, err.message, err);
          throw err;
        }
        if (upsert) writeUpsertSuffix(buf, meta.offset, 'u');
        return buf.out.subarray(0, buf.o);
      },
    },
  };
}
