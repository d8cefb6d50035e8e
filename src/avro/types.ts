// avsc types as pgsink reads them. Where avsc's defaults would change a value, pgsink's own
// types take their place (a typeHook swaps them in while avsc builds a schema):
//
// - longs lose no precision: a long decodes to a number when it is below 2^52 in magnitude
//   (ids, epoch millis and micros: no allocation) and to a BigInt beyond;
// - a map key "__proto__" is kept as a key (a plain object would take it as its prototype);
// - a writer's int or long read as a float or double, and a writer's bytes read as a string, are
//   read only when that is exact: the value must be representable (INEXACT_PROMOTION) and the
//   bytes well-formed UTF-8 (INVALID_UTF8). Everything else the writer wrote is checked before
//   avsc decodes it (src/avro/strict.ts);
// - one rule for unions: a union of null and one other type decodes to that type's value or
//   null; every other union (three branches or more, two non-null branches, a single branch)
//   decodes wrapped, { "<branch name>": value } as in Avro's JSON encoding, so that the branch a
//   producer chose is never guessed from the value (an int and a long are both numbers in JS);
//   an evolved writer's value goes to the reader's branch of its own type when there is one.
//
// Logical types are left to the column encoders (src/sink/columns.ts), which map them to
// Postgres exactly.
import { isUtf8 } from 'node:buffer';
import { readFileSync } from 'node:fs';
import avro from 'avsc';
import { ConfigError } from '../util/errors.ts';
import { logicalAppliesTo, logicalTypes } from './logical.ts';
import { BodyCode, BodyFault, invalidUtf8 } from './strict.ts';

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

/** The parts of avsc's internal Tap (lib/utils.js) these types use. */
interface Tap {
  buf: Buffer;
  pos: number;
  readLong(): number;
  readString(): string;
  skipLong(): void;
}

/** avsc's internal reader protocol: `_read` decodes, `_update` wires a writer → reader resolver. */
interface Internal {
  _read(tap: Tap): unknown;
  _update(resolver: { _read?: (tap: Tap) => unknown }, writer: avro.Type, opts: unknown): void;
}
const internal = (t: object): Internal => t as Internal;

const TWO_52 = 2 ** 52;

// avsc's __with unpacks every long into a fresh 8-byte Buffer and then we made a BigInt of
// it: two allocations per long on the hottest path. Read the zigzag varint directly instead.
// avsc's float arithmetic is exact while the zigzag value stays below 2^53, i.e. |n| < 2^52.
// (avsc freezes its types; an object inheriting from one can carry the faster reader.)
const bigintLong = Object.create(frozenLong) as typeof frozenLong;
internal(bigintLong)._read = (tap: Tap): Long => {
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

function inexact(value: Long, from: string, to: string): BodyFault {
  return new BodyFault(
    BodyCode.INEXACT_PROMOTION,
    `the writer's ${from} ${value} has no exact ${to} value for the reader schema`,
    '',
  );
}

/** A reader float/double whose resolvers from int and long writers refuse to round. */
function exactFloating(name: 'float' | 'double'): avro.Type {
  const t = Object.create(avro.Type.forSchema(name)) as avro.Type;
  const single = name === 'float';
  internal(t)._update = (resolver, writer) => {
    const w = internal(writer);
    switch (writer.typeName) {
      case 'float':
      case 'double':
        if (single && writer.typeName === 'double') return; // not a promotion: incompatible
        resolver._read = (tap) => w._read(tap);
        return;
      case 'int':
      case 'long':
      case 'abstract:long':
        resolver._read = (tap) => {
          const n = w._read(tap) as Long;
          const d = Number(n);
          const exact = (typeof n === 'number' || BigInt(d) === n) && (!single || Math.fround(d) === d);
          if (!exact) throw inexact(n, writer.typeName === 'int' ? 'int' : 'long', name);
          return d;
        };
    }
  };
  return t;
}

/** A reader string whose resolver from a bytes writer refuses bytes that are not UTF-8. */
function exactString(): avro.Type {
  const t = Object.create(avro.Type.forSchema('string')) as avro.Type;
  const base = internal(t);
  base._update = (resolver, writer) => {
    const w = internal(writer);
    if (writer.typeName === 'string') resolver._read = (tap) => base._read(tap);
    if (writer.typeName === 'bytes') {
      resolver._read = (tap) => {
        const bytes = w._read(tap) as Buffer | undefined;
        if (bytes === undefined) return undefined; // past the end: avsc reports the truncation
        if (!isUtf8(bytes)) throw invalidUtf8(bytes, 0, bytes.length, '', 'bytes read as a string');
        return bytes.toString('utf8');
      };
    }
  };
  return t;
}

/** avsc's map with "__proto__" kept as a key (avsc assigns keys, which sets the prototype). */
class ExactMapType extends avro.types.MapType {}
internal(ExactMapType.prototype)._read = function (this: { valuesType: Internal }, tap: Tap) {
  const values = this.valuesType;
  const map: Record<string, unknown> = {};
  for (;;) {
    let n = tap.readLong();
    if (n === 0) return map;
    if (n < 0) {
      n = -n;
      tap.skipLong(); // the block's byte size
    }
    while (n--) {
      const key = tap.readString();
      const value = values._read(tap);
      if (key === '__proto__') {
        Object.defineProperty(map, key, { value, writable: true, enumerable: true, configurable: true });
      } else {
        map[key] = value;
      }
    }
  }
};

/**
 * avsc's wrapped union, resolving a writer's (non-union) type to the reader's branch of the same
 * type when there is one, before any branch it could only be promoted to: avsc takes the first
 * branch that can read it, so a long would be read into the double of ["null", "double", "long"]
 * (another branch, and rounded). The Avro specification's resolution picks the matching branch.
 */
class ExactUnionType extends avro.types.WrappedUnionType {}
internal(ExactUnionType.prototype)._update = function (
  this: { types: avro.Type[] },
  resolver: { _read?: (tap: Tap) => unknown },
  writer: avro.Type,
  opts: unknown,
) {
  const name = writer.branchName;
  const order = this.types
    .map((_, i) => i)
    .sort((a, b) => {
      const exact = (i: number) => (this.types[i]!.branchName === name ? 0 : 1);
      return exact(a) - exact(b) || a - b;
    });
  for (const i of order) {
    const branch = this.types[i]!;
    let inner: { _read(tap: Tap): unknown };
    try {
      inner = branch.createResolver(
        writer,
        opts as Parameters<avro.Type['createResolver']>[1],
      ) as unknown as typeof inner;
    } catch {
      continue;
    }
    const Branch = (branch as unknown as { _branchConstructor: (new (v: unknown) => object) | null })
      ._branchConstructor;
    resolver._read = Branch ? (tap) => new Branch(inner._read(tap)) : () => null;
    return;
  }
};

const PRIMITIVES: Record<string, avro.Type> = {
  long: bigintLong,
  float: exactFloating('float'),
  double: exactFloating('double'),
  string: exactString(),
};

const isNullBranch = (s: unknown): boolean =>
  s === 'null' || (typeof s === 'object' && s !== null && (s as { type?: unknown }).type === 'null');

export type AvroType = avro.Type;
export type AvroSchema = avro.Schema;

/**
 * Named types by full name, as avsc's registry holds them: parsing a schema into one adds the
 * records, enums and fixed types it defines, and a later schema parsed with it can use them by
 * name (Confluent schema references). Starts with pgsink's own primitives (exact longs, floats, strings).
 */
export type NamedTypes = Record<string, AvroType>;

export function namedTypes(): NamedTypes {
  return { ...PRIMITIVES };
}

/** `named`: types defined earlier (schema references); this schema's own are added to it. */
export function typeForSchema(schema: AvroSchema, named: NamedTypes = namedTypes()): AvroType {
  // avsc builds `{"type": "long", ...}` without consulting the registry, so pgsink's primitives
  // are swapped in by a hook. A primitive with a logical type is seen twice: first as the
  // logical type (left to avsc), then as its underlying primitive (swapped).
  const logicalSeen = new WeakSet<object>();
  const typeHook = (s: AvroSchema, opts: avro.ForSchemaOptions): AvroType | undefined => {
    if (typeof s === 'string') return Object.hasOwn(PRIMITIVES, s) ? PRIMITIVES[s] : undefined;
    if (Array.isArray(s)) {
      const nullPair = s.length === 2 && isNullBranch(s[0]) !== isNullBranch(s[1]);
      return nullPair ? undefined : new ExactUnionType(s, opts);
    }
    if (typeof s !== 'object' || s === null) return undefined;
    const name = (s as { type?: unknown }).type;
    if (name === 'map') return new ExactMapType(s, opts);
    if (typeof name !== 'string' || !Object.hasOwn(PRIMITIVES, name)) return undefined;
    const logical = (s as { logicalType?: unknown }).logicalType;
    // A logical type that does not apply (a date on a long) is ignored, and so is its name.
    const applies = typeof logical === 'string' && logical in logicalTypes && logicalAppliesTo(logical, name);
    if (applies && !logicalSeen.has(s)) {
      logicalSeen.add(s);
      return undefined;
    }
    return PRIMITIVES[name];
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
