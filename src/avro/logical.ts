// Logical types are registered as pass-through so that avsc keeps their name and attributes
// (it drops unknown ones) while the value stays the underlying primitive. The column
// encoders turn those primitives into exact Postgres text; nothing goes through a JS Date
// or a float on the way.
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
