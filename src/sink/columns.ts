// Maps an Avro reader schema and a route to the target columns and one COPY-text encoder
// per column, built once per route. The per-record work is one call per column.
import avro from 'avsc';
import type { RouteConfig } from '../config/schema.ts';
import { PassthroughLogicalType } from '../avro/logical.ts';
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
  toJson,
} from './copy-text.ts';

/** The Kafka side of a record, for metadata columns. */
export interface RecordMeta {
  topic: string;
  partition: number;
  offset: number;
  /** Milliseconds since the epoch, as kafkajs gives it. */
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

const str = (v: unknown): string => escapeText(v as string);

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
    default:
      return { encode: (v) => escapeText(toJson(v)), pgType: 'jsonb' };
  }
}

function encoderFor(type: avro.Type): { encode: FieldEncoder; pgType: string; nullable: boolean } {
  if (type instanceof avro.types.UnwrappedUnionType) {
    const branches = type.types;
    const nonNull = branches.filter((t) => t.typeName !== 'null');
    const nullable = nonNull.length < branches.length;
    if (nonNull.length === 1) {
      const inner = encoderFor(nonNull[0]!);
      return { encode: (v) => (v === null ? NULL_FIELD : inner.encode(v)), pgType: inner.pgType, nullable };
    }
    return { encode: (v) => (v === null ? NULL_FIELD : escapeText(toJson(v))), pgType: 'jsonb', nullable };
  }
  if (type instanceof avro.types.ArrayType) {
    const items = type.itemsType;
    const itemNullable = items instanceof avro.types.UnwrappedUnionType;
    const itemBase = itemNullable
      ? (items as avro.types.UnwrappedUnionType).types.filter((t) => t.typeName !== 'null')
      : [items];
    if (itemBase.length === 1) {
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
    return { encode: (v) => escapeText(toJson(v)), pgType: 'jsonb', nullable: false };
  }
  const prim = primitiveEncoder(type);
  const nullable =
    type.typeName === 'null' ||
    (type instanceof avro.types.WrappedUnionType && type.types.some((t) => t.typeName === 'null'));
  return { encode: prim.encode, pgType: prim.pgType, nullable };
}

const quoteIdent = (name: string): string => `"${name.replace(/"/g, '""')}"`;

/** The route's columns in COPY order: the reader's fields (minus exclude), then metadata. */
export function routeColumns(readerType: avro.Type, route: RouteConfig): Column[] {
  if (!(readerType instanceof avro.types.RecordType)) {
    throw new ConfigError(
      `route ${route.topic}: reader schema ${route.schema} must be an Avro record, not ${readerType.typeName}`,
    );
  }
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
      (v) => formatTimestamp(Number(v as string), 1000n, true),
    ],
    [
      'key',
      m.key,
      'text',
      (_r, x) => x.key,
      (v) => (v === null ? NULL_FIELD : escapeText((v as Buffer).toString('utf8'))),
    ],
  ];
  for (const [which, name, pgType, get, encode] of meta) {
    if (name) {
      const source = { kind: 'meta', meta: which } as const;
      columns.push({ name, pgType, source, get, encode, nullable: which === 'key' });
    }
  }
  const seen = new Set<string>();
  for (const c of columns) {
    if (seen.has(c.name)) throw new ConfigError(`route ${route.topic}: two fields map to column '${c.name}'`);
    seen.add(c.name);
  }
  return columns;
}

export function buildColumnPlan(readerType: avro.Type, route: RouteConfig): ColumnPlan {
  const columns = routeColumns(readerType, route);
  const n = columns.length;
  const gets = columns.map((c) => c.get);
  const encs = columns.map((c) => c.encode);
  return {
    columns: columns.map((c) => c.name),
    pgTypes: columns.map((c) => c.pgType + (c.nullable ? '' : ' NOT NULL')),
    encode(record, recordMeta) {
      let line = '';
      for (let i = 0; i < n; i++) {
        const v = gets[i]!(record, recordMeta);
        line += (i === 0 ? '' : '\t') + (v === null || v === undefined ? NULL_FIELD : encs[i]!(v));
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
