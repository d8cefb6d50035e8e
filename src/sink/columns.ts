// Maps an Avro reader schema and a route to the target columns and one COPY-text encoder
// per column, built once per route. The per-record work is one call per column.
import { isUtf8 } from 'node:buffer';
import avro from 'avsc';
import type { RouteConfig } from '../config/schema.ts';
import { PassthroughLogicalType } from '../avro/logical.ts';
import { BodyFault, invalidUtf8 } from '../avro/strict.ts';
import { ConfigError, RecordError } from '../util/errors.ts';
import {
  arrayLiteral,
  byteaField,
  escapeText,
  floatField,
  formatDate,
  formatDecimal,
  formatTime,
  formatTimestamp,
  NULL_FIELD,
} from './copy-text.ts';
import { jsonEncoder } from './jsonb.ts';

/** The Kafka side of a record, for metadata columns. */
export interface RecordMeta {
  topic: string;
  partition: number;
  offset: number;
  /** Milliseconds since the epoch, as kafkajs gives it; negative (-1) when the record has none. */
  timestamp: string;
  key: Buffer | null;
}

/** Encodes one value to a COPY text field (already escaped), or NULL_FIELD. */
type FieldEncoder = (value: unknown) => string;

export interface ColumnPlan {
  /** Column names in COPY order. */
  columns: string[];
  /** Postgres type each column needs when pgsink creates it (schema plan / auto-create). */
  pgTypes: string[];
  /** The row's COPY text line, LF included. */
  encode(record: Record<string, unknown>, meta: RecordMeta): string;
}

/** Where a column's value comes from: a field of the reader schema or the Kafka record. */
export type ColumnSource =
  | { kind: 'field'; field: string; type: avro.Type }
  | { kind: 'meta'; meta: 'topic' | 'partition' | 'offset' | 'timestamp' | 'key' };

export interface Column {
  name: string;
  pgType: string;
  source: ColumnSource;
  get: (record: Record<string, unknown>, meta: RecordMeta) => unknown;
  encode: FieldEncoder;
  nullable: boolean;
}

/** How the Kafka key is written to its metadata column (the column's type decides). */
export interface ColumnOptions {
  /** 'text' (the default): the key must be well-formed UTF-8 without NUL; 'bytea': any bytes. */
  key?: 'text' | 'bytea';
}

const str = (v: unknown): string => escapeText(v as string);

/**
 * A record error raised while encoding a field, with the field's name in front (the direct
 * line encoder builds the same message for the same record).
 */
export function atField(field: string, err: unknown): unknown {
  if (err instanceof RecordError || err instanceof BodyFault) {
    const source =
      err instanceof RecordError ? (err.source as 'avro' | 'kafka' | 'postgres' | 'internal') : 'avro';
    return new RecordError(source, err.code, `field '${field}': ${err.message}`, err);
  }
  return err;
}

/** The Kafka key as the text of a text column: well-formed UTF-8 without NUL, or a record error. */
export function keyText(key: Buffer): string {
  if (!isUtf8(key)) {
    const fault = invalidUtf8(key, 0, key.length, '', 'the Kafka key');
    throw new RecordError(
      'kafka',
      fault.code,
      `${fault.message} (a text key column cannot hold it; make the column bytea to keep any key)`,
    );
  }
  const text = key.toString('utf8');
  if (text.includes('\0')) {
    throw new RecordError(
      'kafka',
      'NUL_IN_STRING',
      'the Kafka key contains a NUL (U+0000) character, which a text key column cannot hold (make the column bytea to keep any key)',
    );
  }
  return text;
}

function primitiveEncoder(type: avro.Type): {
  encode: FieldEncoder;
  pgType: string;
  element?: (v: unknown) => string;
} {
  if (type instanceof PassthroughLogicalType) {
    const under = type.underlyingType.typeName;
    switch (type.logical) {
      case 'decimal': {
        const scale = type.scale;
        const pgType = type.precision ? `numeric(${type.precision},${scale})` : 'numeric';
        const e = (v: unknown) => formatDecimal(v as Buffer, scale);
        return { encode: e, element: e, pgType };
      }
      case 'uuid':
        return { encode: str, element: (v) => v as string, pgType: 'uuid' };
      case 'date': {
        const e = (v: unknown) => formatDate(BigInt(v as number));
        return { encode: e, element: e, pgType: 'date' };
      }
      case 'time-millis': {
        const e = (v: unknown) => formatTime(BigInt(v as number), 1000n);
        return { encode: e, element: e, pgType: 'time(3)' };
      }
      case 'time-micros': {
        const e = (v: unknown) => formatTime(BigInt(v as number | bigint), 1000000n);
        return { encode: e, element: e, pgType: 'time(6)' };
      }
      case 'timestamp-millis':
      case 'timestamp-micros':
      case 'local-timestamp-millis':
      case 'local-timestamp-micros': {
        const units = type.logical.endsWith('millis') ? 1000n : 1000000n;
        const utc = !type.logical.startsWith('local');
        const e = (v: unknown) => formatTimestamp(v as number | bigint, units, utc);
        return { encode: e, element: e, pgType: utc ? 'timestamptz' : 'timestamp' };
      }
    }
    throw new ConfigError(`unsupported logical type on ${under}`);
  }
  switch (type.typeName) {
    case 'boolean':
      return { encode: (v) => (v ? 't' : 'f'), element: (v) => (v ? 't' : 'f'), pgType: 'boolean' };
    case 'int':
      return { encode: String, element: String, pgType: 'integer' };
    case 'long':
    case 'abstract:long': // the BigInt long of src/avro/types.ts
      return { encode: String, element: String, pgType: 'bigint' };
    case 'float':
      return {
        encode: (v) => floatField(v as number),
        element: (v) => floatField(v as number),
        pgType: 'real',
      };
    case 'double':
      return {
        encode: (v) => floatField(v as number),
        element: (v) => floatField(v as number),
        pgType: 'double precision',
      };
    case 'string':
      return { encode: str, element: (v) => v as string, pgType: 'text' };
    case 'enum':
      return { encode: str, element: (v) => v as string, pgType: 'text' };
    case 'bytes':
    case 'fixed':
      return {
        encode: (v) => byteaField(v as Buffer),
        element: (v) => `\\x${(v as Buffer).toString('hex')}`,
        pgType: 'bytea',
      };
    default: {
      // Records and maps (and anything else without a column type of its own): jsonb.
      const json = jsonEncoder(type);
      return { encode: (v) => escapeText(json(v)), pgType: 'jsonb' };
    }
  }
}

function encoderFor(type: avro.Type): { encode: FieldEncoder; pgType: string; nullable: boolean } {
  if (type instanceof avro.types.UnwrappedUnionType) {
    // A union of null and one other type (src/avro/types.ts): that type's column, nullable.
    const inner = encoderFor(type.types.find((t) => t.typeName !== 'null')!);
    return {
      encode: (v) => (v === null ? NULL_FIELD : inner.encode(v)),
      pgType: inner.pgType,
      nullable: true,
    };
  }
  if (type instanceof avro.types.WrappedUnionType) {
    // Any other union: jsonb {"<branch>": value}; the null branch is SQL NULL.
    const json = jsonEncoder(type);
    const nullable = type.types.some((t) => t.typeName === 'null');
    return { encode: (v) => (v === null ? NULL_FIELD : escapeText(json(v))), pgType: 'jsonb', nullable };
  }
  if (type instanceof avro.types.ArrayType) {
    const items = type.itemsType;
    const itemBase =
      items instanceof avro.types.UnwrappedUnionType
        ? items.types.filter((t) => t.typeName !== 'null')
        : [items];
    if (itemBase.length === 1 && !(itemBase[0] instanceof avro.types.WrappedUnionType)) {
      const prim = primitiveEncoder(itemBase[0]!);
      const element = prim.element;
      if (element) {
        return {
          encode: (v) =>
            escapeText(arrayLiteral((v as unknown[]).map((e) => (e === null ? null : element(e))))),
          pgType: `${prim.pgType}[]`,
          nullable: false,
        };
      }
    }
    const json = jsonEncoder(type);
    return { encode: (v) => escapeText(json(v)), pgType: 'jsonb', nullable: false };
  }
  const prim = primitiveEncoder(type);
  return { encode: prim.encode, pgType: prim.pgType, nullable: type.typeName === 'null' };
}

/** Record field names JS objects cannot hold (avsc's records would drop the field). */
function assertFieldNames(type: avro.Type, topic: string, seen = new Set<avro.Type>()): void {
  if (seen.has(type)) return;
  seen.add(type);
  if (type instanceof avro.types.RecordType) {
    for (const f of type.fields) {
      if (f.name === '__proto__') {
        throw new ConfigError(
          `route ${topic}: a record field named __proto__ is not supported (in ${type.name ?? 'a record'})`,
        );
      }
      assertFieldNames(f.type, topic, seen);
    }
  } else if (type instanceof avro.types.ArrayType) {
    assertFieldNames(type.itemsType, topic, seen);
  } else if (type instanceof avro.types.MapType) {
    assertFieldNames(type.valuesType as avro.Type, topic, seen);
  } else if (type instanceof avro.types.UnwrappedUnionType || type instanceof avro.types.WrappedUnionType) {
    for (const t of type.types) assertFieldNames(t, topic, seen);
  }
}

const quoteIdent = (name: string): string => `"${name.replace(/"/g, '""')}"`;

/** The route's columns in COPY order: the reader's fields (minus exclude), then metadata. */
export function routeColumns(readerType: avro.Type, route: RouteConfig, opts: ColumnOptions = {}): Column[] {
  if (!(readerType instanceof avro.types.RecordType)) {
    throw new ConfigError(
      `route ${route.topic}: reader schema ${route.schema} must be an Avro record, not ${readerType.typeName}`,
    );
  }
  assertFieldNames(readerType, route.topic);
  const fieldNames = new Set(readerType.fields.map((f) => f.name));
  for (const name of [...Object.keys(route.columns), ...route.exclude]) {
    if (!fieldNames.has(name)) {
      throw new ConfigError(
        `route ${route.topic}: field '${name}' named in columns/exclude is not in ${route.schema} (fields: ${[...fieldNames].join(', ')})`,
      );
    }
  }
  const columns: Column[] = [];
  for (const field of readerType.fields) {
    if (route.exclude.includes(field.name)) continue;
    const enc = encoderFor(field.type);
    const name = field.name;
    columns.push({
      name: Object.hasOwn(route.columns, name) ? route.columns[name]! : name,
      pgType: enc.pgType,
      source: { kind: 'field', field: name, type: field.type },
      get: (r) => r[name],
      encode: enc.encode,
      nullable: enc.nullable,
    });
  }
  const m = route.metadata;
  type Meta = Extract<ColumnSource, { kind: 'meta' }>['meta'];
  const meta: Array<[Meta, string | undefined, string, Column['get'], FieldEncoder]> = [
    ['topic', m.topic, 'text', (_r, x) => x.topic, str],
    ['partition', m.partition, 'integer', (_r, x) => x.partition, String],
    ['offset', m.offset, 'bigint', (_r, x) => x.offset, String],
    [
      'timestamp',
      m.timestamp,
      'timestamptz',
      (_r, x) => x.timestamp,
      // Kafka writes -1 for a record without a timestamp: no time, not 1969-12-31 23:59:59.999.
      (v) => {
        const ms = Number(v as string);
        return ms >= 0 ? formatTimestamp(ms, 1000n, true) : NULL_FIELD;
      },
    ],
    [
      'key',
      m.key,
      opts.key === 'bytea' ? 'bytea' : 'text',
      (_r, x) => x.key,
      opts.key === 'bytea' ? (v) => byteaField(v as Buffer) : (v) => escapeText(keyText(v as Buffer)),
    ],
  ];
  for (const [which, name, pgType, get, encode] of meta) {
    if (name) {
      const source = { kind: 'meta', meta: which } as const;
      columns.push({ name, pgType, source, get, encode, nullable: which === 'key' || which === 'timestamp' });
    }
  }
  const seen = new Set<string>();
  for (const c of columns) {
    if (seen.has(c.name)) throw new ConfigError(`route ${route.topic}: two fields map to column '${c.name}'`);
    seen.add(c.name);
  }
  return columns;
}

export function buildColumnPlan(
  readerType: avro.Type,
  route: RouteConfig,
  opts: ColumnOptions = {},
): ColumnPlan {
  const columns = routeColumns(readerType, route, opts);
  const n = columns.length;
  const gets = columns.map((c) => c.get);
  const encs = columns.map((c) => c.encode);
  const fields = columns.map((c) => (c.source.kind === 'field' ? c.source.field : undefined));
  return {
    columns: columns.map((c) => c.name),
    pgTypes: columns.map((c) => c.pgType + (c.nullable ? '' : ' NOT NULL')),
    encode(record, recordMeta) {
      let line = '';
      let i = 0;
      try {
        for (; i < n; i++) {
          const v = gets[i]!(record, recordMeta);
          line += (i === 0 ? '' : '\t') + (v === null || v === undefined ? NULL_FIELD : encs[i]!(v));
        }
      } catch (err) {
        const field = fields[i];
        throw field === undefined ? err : atField(field, err);
      }
      return `${line}\n`;
    },
  };
}

export { quoteIdent };

/** `"schema"."table"` from `table` or `schema.table`. */
export function quoteQualified(name: string): string {
  return name.split('.').map(quoteIdent).join('.');
}

export function assertRecordValue(value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null) {
    throw new RecordError('avro', 'NOT_A_RECORD', 'decoded value is not a record');
  }
  return value as Record<string, unknown>;
}
