// Logical types are registered as pass-through so that avsc keeps their name and attributes
// (it drops unknown ones) while the value stays the underlying primitive. The column
// encoders turn those primitives into exact Postgres text; nothing goes through a JS Date
// or a float on the way.
//
// A logical type on an underlying type it does not fit (a decimal on a string, a date on a
// long, a decimal with a scale above its precision) is ignored, as the Avro specification says:
// the constructor throws and avsc falls back to the underlying type.
import avro from 'avsc';

export const LOGICAL_NAMES = [
  'decimal',
  'uuid',
  'date',
  'time-millis',
  'time-micros',
  'timestamp-millis',
  'timestamp-micros',
  'local-timestamp-millis',
  'local-timestamp-micros',
] as const;
export type LogicalName = (typeof LOGICAL_NAMES)[number];

interface LogicalSchema {
  logicalType: LogicalName;
  precision?: number;
  scale?: number;
}

/** The underlying types each logical type applies to (avsc's long is 'abstract:long' here). */
const UNDERLYING: Record<LogicalName, readonly string[]> = {
  decimal: ['bytes', 'fixed'],
  uuid: ['string'],
  date: ['int'],
  'time-millis': ['int'],
  'time-micros': ['long', 'abstract:long'],
  'timestamp-millis': ['long', 'abstract:long'],
  'timestamp-micros': ['long', 'abstract:long'],
  'local-timestamp-millis': ['long', 'abstract:long'],
  'local-timestamp-micros': ['long', 'abstract:long'],
};

/** Whether `logical` can annotate a `typeName` ('long' for avsc's long too). */
export function logicalAppliesTo(logical: string, typeName: string): boolean {
  const under = (UNDERLYING as Record<string, readonly string[] | undefined>)[logical];
  return under !== undefined && under.includes(typeName);
}

export class PassthroughLogicalType extends avro.types.LogicalType {
  readonly logical: LogicalName;
  readonly precision: number | undefined;
  readonly scale: number;

  constructor(schema: avro.Schema, opts?: avro.ForSchemaOptions) {
    super(schema, opts);
    const s = schema as unknown as LogicalSchema;
    this.logical = s.logicalType;
    this.precision = s.precision;
    this.scale = s.scale ?? 0;
    const under = this.underlyingType.typeName;
    if (!UNDERLYING[this.logical].includes(under)) {
      throw new Error(`logical type ${this.logical} does not apply to ${under}`);
    }
    if (this.logical === 'decimal') {
      const p = this.precision;
      const ok = p === undefined || (Number.isInteger(p) && p > 0);
      if (!ok || !Number.isInteger(this.scale) || this.scale < 0 || (p !== undefined && this.scale > p)) {
        throw new Error(`decimal precision ${p} and scale ${this.scale} are not valid`);
      }
    }
  }

  protected override _fromValue(value: unknown): unknown {
    return value;
  }

  protected override _toValue(value: unknown): unknown {
    return value;
  }

  protected override _export(schema: avro.Schema): void {
    const s = schema as unknown as Record<string, unknown>;
    if (this.precision !== undefined) s['precision'] = this.precision;
    if (this.logical === 'decimal') s['scale'] = this.scale;
  }

  protected override _resolve(type: avro.Type): ((value: unknown) => unknown) | undefined {
    // Same underlying type is not enough: millis vs micros, or another decimal scale,
    // would be read silently wrong.
    if (type instanceof PassthroughLogicalType) {
      if (type.logical !== this.logical) return undefined;
      if (this.logical === 'decimal' && type.scale !== this.scale) return undefined;
    }
    const writer = type instanceof avro.types.LogicalType ? type.underlyingType : type;
    const reader = this.underlyingType;
    if (writer.typeName === reader.typeName) return (v) => v;
    // Numeric promotion of the underlying type (e.g. a date written as int read as long).
    const resolver = reader.createResolver(writer);
    return (v) => reader.fromBuffer(writer.toBuffer(v), resolver);
  }
}

export const logicalTypes: Record<string, typeof PassthroughLogicalType> = Object.fromEntries(
  LOGICAL_NAMES.map((name) => [name, PassthroughLogicalType]),
);
