// avsc types with 64-bit longs as BigInt, so that no long loses precision. Logical types are
// left to the column encoders (src/sink/columns.ts), which map them to Postgres exactly.
import { readFileSync } from 'node:fs';
import avro from 'avsc';
import { ConfigError } from '../util/errors.ts';
import { logicalTypes } from './logical.ts';

const bigintLong = avro.types.LongType.__with({
  fromBuffer: (buf: Buffer) => buf.readBigInt64LE(),
  toBuffer: (n: bigint) => {
    const buf = Buffer.alloc(8);
    buf.writeBigInt64LE(n);
    return buf;
  },
  fromJSON: (n: number | bigint | string) => BigInt(n),
  toJSON: (n: bigint) => (Number.isSafeInteger(Number(n)) ? Number(n) : n.toString()),
  isValid: (n: unknown) => typeof n === 'bigint',
  compare: (a: bigint, b: bigint) => (a === b ? 0 : a < b ? -1 : 1),
});

export type AvroType = avro.Type;
export type AvroSchema = avro.Schema;

export function typeForSchema(schema: AvroSchema): AvroType {
  // avsc builds `{"type": "long", ...}` without consulting the registry, so the BigInt long
  // is swapped in by a hook. A long with a logical type is seen twice: first as the logical
  // type (left to avsc), then as its underlying long (swapped).
  const logicalSeen = new WeakSet<object>();
  const typeHook = (s: AvroSchema): AvroType | undefined => {
    if (s === 'long') return bigintLong;
    if (typeof s !== 'object' || s === null || Array.isArray(s) || (s as { type?: unknown }).type !== 'long')
      return undefined;
    const logical = (s as { logicalType?: string }).logicalType;
    if (logical && logical in logicalTypes && !logicalSeen.has(s)) {
      logicalSeen.add(s);
      return undefined;
    }
    return bigintLong;
  };
  return avro.Type.forSchema(schema, {
    registry: { long: bigintLong },
    wrapUnions: 'auto',
    logicalTypes,
    typeHook,
  });
}

export function parseSchemaText(text: string, origin: string): AvroType {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${origin} is not valid JSON: ${(err as Error).message}`, err);
  }
  try {
    return typeForSchema(json as AvroSchema);
  } catch (err) {
    throw new ConfigError(`${origin} is not a valid Avro schema: ${(err as Error).message}`, err);
  }
}

export function loadSchemaFile(path: string): AvroType {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read Avro schema ${path}: ${(err as Error).message}`, err);
  }
  return parseSchemaText(text, path);
}
