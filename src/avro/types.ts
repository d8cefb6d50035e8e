// avsc types whose 64-bit longs lose no precision: a long decodes to a number when it is
// below 2^52 in magnitude (ids, epoch millis and micros: no allocation) and to a BigInt
// beyond. Logical types are left to the column encoders (src/sink/columns.ts), which map them
// to Postgres exactly.
import { readFileSync } from 'node:fs';
import avro from 'avsc';
import { ConfigError } from '../util/errors.ts';
import { logicalTypes } from './logical.ts';

/** A long as pgsink holds it: exact either way. */
export type Long = number | bigint;

const frozenLong = avro.types.LongType.__with({
  fromBuffer: (buf: Buffer) => buf.readBigInt64LE(),
  toBuffer: (n: Long) => {
    const buf = Buffer.alloc(8);
    buf.writeBigInt64LE(BigInt(n));
    return buf;
  },
  fromJSON: (n: number | bigint | string) => BigInt(n),
  toJSON: (n: Long) => (Number.isSafeInteger(Number(n)) ? Number(n) : n.toString()),
  isValid: (n: unknown) => typeof n === 'bigint' || Number.isSafeInteger(n),
  compare: (a: Long, b: Long) => (a < b ? -1 : a > b ? 1 : 0),
});

interface Tap {
  buf: Buffer;
  pos: number;
  readLong(): number;
}

const TWO_52 = 2 ** 52;

// avsc's __with unpacks every long into a fresh 8-byte Buffer and then we made a BigInt of
// it: two allocations per long on the hottest path. Read the zigzag varint directly instead.
// avsc's float arithmetic is exact while the zigzag value stays below 2^53, i.e. |n| < 2^52.
// (avsc freezes its types; an object inheriting from one can carry the faster reader.)
const bigintLong = Object.create(frozenLong) as typeof frozenLong;
(bigintLong as unknown as { _read(tap: Tap): Long })._read = (tap: Tap): Long => {
  const start = tap.pos;
  const n = tap.readLong();
  if (n < TWO_52 && n > -TWO_52) return n;
  let pos = start;
  let shift = 0n;
  let z = 0n;
  let b: number;
  do {
    b = tap.buf[pos++] ?? 0;
    z |= BigInt(b & 0x7f) << shift;
    shift += 7n;
  } while (b & 0x80);
  return (z >> 1n) ^ -(z & 1n);
};

export type AvroType = avro.Type;
export type AvroSchema = avro.Schema;

/**
 * Named types by full name, as avsc's registry holds them: parsing a schema into one adds the
 * records, enums and fixed types it defines, and a later schema parsed with it can use them by
 * name (Confluent schema references). Starts with pgsink's long only.
 */
export type NamedTypes = Record<string, AvroType>;

export function namedTypes(): NamedTypes {
  return { long: bigintLong };
}

/** `named`: types defined earlier (schema references); this schema's own are added to it. */
export function typeForSchema(schema: AvroSchema, named: NamedTypes = namedTypes()): AvroType {
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
    registry: named,
    wrapUnions: 'auto',
    logicalTypes,
    typeHook,
  });
}

export function parseSchemaText(text: string, origin: string, named?: NamedTypes): AvroType {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${origin} is not valid JSON: ${(err as Error).message}`, err);
  }
  try {
    return typeForSchema(json as AvroSchema, named);
  } catch (err) {
    throw new ConfigError(`${origin} is not a valid Avro schema: ${(err as Error).message}`, err);
  }
}

/**
 * Parses an .avsc file. `references`: .avsc files whose named types it uses (offline schema
 * references), parsed first, in order, each able to use the ones before it.
 */
export function loadSchemaFile(path: string, references: readonly string[] = []): AvroType {
  const named = namedTypes();
  for (const ref of references) parseSchemaText(readSchemaText(ref), `${ref} (a schema reference)`, named);
  try {
    return parseSchemaText(readSchemaText(path), path, named);
  } catch (err) {
    // The usual cause: a type of another file that schemaReferences does not list (yet).
    if (/undefined type name/.test((err as Error).message))
      throw new ConfigError(
        `${(err as Error).message}; list the .avsc files that define the types it uses in the route's schemaReferences` +
          (references.length ? ` (now: ${references.join(', ')})` : ''),
        err,
      );
    throw err;
  }
}

function readSchemaText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read Avro schema ${path}: ${(err as Error).message}`, err);
  }
}
