// Values nested inside records, maps, arrays and unions go to jsonb. One mapping, the same at
// every depth (the README's "Nested values in jsonb" table), chosen so that every value comes
// back exactly and the Avro type says how to read it:
//
//   null, boolean, string, enum, uuid   JSON null, true/false, strings (enums as their symbol)
//   int, long                           JSON numbers with every digit (jsonb keeps numeric exactly)
//   float, double                       JSON numbers (shortest round-trip form); "NaN",
//                                       "Infinity", "-Infinity" and "-0" as strings (JSON has no
//                                       such numbers, and jsonb's numeric no negative zero)
//   decimal(p, s)                       JSON numbers with exactly s fraction digits (1.50 stays 1.50)
//   bytes, fixed                        "\\x" + lowercase hex (Postgres' bytea hex format)
//   date                                "YYYY-MM-DD"
//   time-millis / -micros               "HH:MM:SS.fff" / "HH:MM:SS.ffffff"
//   timestamp-millis / -micros          "YYYY-MM-DDTHH:MM:SS.fffZ" / ".ffffffZ"
//   local-timestamp-millis / -micros    the same without "Z"
//   (years 0000..9999 in four digits, others as ISO 8601's expanded years: a sign and at
//   least six digits, astronomical numbering: 0000 is 1 BC, -000001 is 2 BC)
//   record, map                         objects (a record's fields by name)
//   array                               arrays
//   union of null and one type          that type's value, or null
//   any other union                     {"<branch name>": value} as in Avro's JSON encoding
//                                       (null as null; names as avsc spells them: the primitive
//                                       or underlying type's name, a named type's full name)
//
// The encoder is compiled from the reader type once per route; values are what avsc decodes
// with src/avro/types.ts (BigInt longs, Buffers, wrapped unions).
import avro from 'avsc';
import { PassthroughLogicalType } from '../avro/logical.ts';
import {
  formatDecimal,
  formatTime,
  isoDate,
  isoTimestamp,
  jsonBytes,
  jsonFloat,
  jsonString,
} from './copy-text.ts';

export type JsonEncoder = (value: unknown) => string;

const jsonNumber = (v: unknown): string => String(v as number | bigint);

function logical(type: PassthroughLogicalType, compiling: Map<avro.Type, JsonEncoder>): JsonEncoder {
  switch (type.logical) {
    case 'decimal': {
      const scale = type.scale;
      return (v) => formatDecimal(v as Buffer, scale);
    }
    case 'uuid':
      return (v) => jsonString(v as string);
    case 'date':
      return (v) => `"${isoDate(BigInt(v as number))}"`;
    case 'time-millis':
      return (v) => `"${formatTime(BigInt(v as number), 1000n)}"`;
    case 'time-micros':
      return (v) => `"${formatTime(BigInt(v as number | bigint), 1000000n)}"`;
    case 'timestamp-millis':
    case 'timestamp-micros':
    case 'local-timestamp-millis':
    case 'local-timestamp-micros': {
      const units = type.logical.endsWith('millis') ? 1000n : 1000000n;
      const utc = !type.logical.startsWith('local');
      return (v) => `"${isoTimestamp(v as number | bigint, units, utc)}"`;
    }
  }
  return compile(type.underlyingType, compiling);
}

function compile(type: avro.Type, compiling: Map<avro.Type, JsonEncoder>): JsonEncoder {
  if (type instanceof PassthroughLogicalType) return logical(type, compiling);
  if (type instanceof avro.types.LogicalType) return compile(type.underlyingType, compiling);
  if (type instanceof avro.types.UnwrappedUnionType) {
    // src/avro/types.ts unwraps only a union of null and one other type.
    const inner = type.types.find((t) => t.typeName !== 'null');
    const enc = inner ? compile(inner, compiling) : () => 'null';
    return (v) => (v === null ? 'null' : enc(v));
  }
  if (type instanceof avro.types.WrappedUnionType) {
    const branches = new Map<string, { key: string; enc: JsonEncoder }>();
    for (const t of type.types) {
      const name = t.branchName!;
      branches.set(name, { key: JSON.stringify(name), enc: compile(t, compiling) });
    }
    return (v) => {
      if (v === null) return 'null';
      const name = Object.keys(v as object)[0]!;
      const b = branches.get(name)!;
      return `{${b.key}:${b.enc((v as Record<string, unknown>)[name])}}`;
    };
  }
  switch (type.typeName) {
    case 'null':
      return () => 'null';
    case 'boolean':
      return (v) => (v ? 'true' : 'false');
    case 'int':
    case 'long':
    case 'abstract:long':
      return jsonNumber;
    case 'float':
    case 'double':
      return (v) => jsonFloat(v as number);
    case 'string':
    case 'enum':
      return (v) => jsonString(v as string);
    case 'bytes':
    case 'fixed':
      return (v) => jsonBytes(v as Buffer);
    case 'array': {
      const item = compile((type as avro.types.ArrayType).itemsType, compiling);
      return (v) => {
        const items = v as unknown[];
        let out = '[';
        for (let i = 0; i < items.length; i++) out += (i === 0 ? '' : ',') + item(items[i]);
        return `${out}]`;
      };
    }
    case 'map': {
      const value = compile((type as avro.types.MapType).valuesType as avro.Type, compiling);
      return (v) => {
        const map = v as Record<string, unknown>;
        let out = '{';
        let first = true;
        for (const k of Object.keys(map)) {
          out += `${first ? '' : ','}${jsonString(k)}:${value(map[k])}`;
          first = false;
        }
        return `${out}}`;
      };
    }
    case 'record':
    case 'error': {
      const known = compiling.get(type);
      if (known) return known;
      let fields: Array<{ name: string; key: string; enc: JsonEncoder }> = [];
      const self: JsonEncoder = (v) => {
        const rec = v as Record<string, unknown>;
        let out = '{';
        for (let i = 0; i < fields.length; i++) {
          const f = fields[i]!;
          out += `${i === 0 ? '' : ','}${f.key}:${f.enc(rec[f.name])}`;
        }
        return `${out}}`;
      };
      compiling.set(type, self);
      fields = (type as avro.types.RecordType).fields.map((f) => ({
        name: f.name,
        key: JSON.stringify(f.name),
        enc: compile(f.type, compiling),
      }));
      compiling.delete(type);
      return self;
    }
  }
  throw new Error(`internal: no jsonb mapping for Avro type ${type.typeName}`);
}

/** The JSON text (for a jsonb column) of values of `type`, per the mapping above. */
export function jsonEncoder(type: avro.Type): JsonEncoder {
  return compile(type, new Map());
}
