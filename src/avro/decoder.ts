// Decodes Confluent-framed values into reader-schema records. Writer types and
// writer→reader resolvers are cached per schema id; decode() itself is synchronous and
// needs prepare() to have loaded the ids of the batch first. Every body is checked against
// its writer schema (src/avro/strict.ts) before avsc decodes it: avsc alone would land values
// the producer did not write.
import type avro from 'avsc';
import { PgsinkError, RecordError } from '../util/errors.ts';
import type { WriterSchemas } from './registry.ts';
import { BodyFault, bodyValidator } from './strict.ts';
import type { AvroType } from './types.ts';
import { HEADER_SIZE, schemaIdOf } from './wire.ts';

/** The dead-letter error for a body fault, naming the schema id and the field. */
export function bodyError(schemaId: number, fault: BodyFault): RecordError {
  return new RecordError(
    'avro',
    fault.code,
    `Avro body does not decode with schema id ${schemaId}: ${fault.message}`,
    fault,
  );
}

export class RouteDecoder {
  private readonly resolvers = new Map<number, avro.Resolver | null>();
  /** The strict check of bodies written with each id's writer schema. */
  private readonly validators = new Map<number, (body: Buffer, start: number) => void>();
  /** Ids whose load failed for the record (unknown id): every record with it is dead-lettered. */
  private readonly badIds = new Map<number, RecordError>();

  readonly readerType: AvroType;
  private readonly writers: WriterSchemas;

  constructor(readerType: AvroType, writers: WriterSchemas) {
    this.readerType = readerType;
    this.writers = writers;
  }

  /** Loads the writer schemas of these values. Throws only retriable errors (registry down). */
  async prepare(values: Iterable<Buffer | null>): Promise<void> {
    const missing = new Set<number>();
    for (const v of values) {
      if (!v || v.length < HEADER_SIZE || v[0] !== 0) continue;
      const id = v.readInt32BE(1);
      if (!this.resolvers.has(id) && !this.badIds.has(id) && !missing.has(id)) missing.add(id);
    }
    await Promise.all(
      [...missing].map(async (id) => {
        try {
          this.addWriter(id, await this.writers.load(id));
        } catch (err) {
          if (err instanceof RecordError) this.badIds.set(id, err);
          else throw err;
        }
      }),
    );
  }

  private addWriter(id: number, writer: AvroType): void {
    // equals() compares Parsing Canonical Form, which drops logical types and their attributes.
    const attrs = (t: AvroType): string => JSON.stringify(t.schema({ exportAttrs: true }));
    if (writer.equals(this.readerType) && attrs(writer) === attrs(this.readerType)) {
      this.validators.set(id, bodyValidator(this.readerType));
      this.resolvers.set(id, null);
      return;
    }
    this.validators.set(id, bodyValidator(writer));
    try {
      this.resolvers.set(id, this.readerType.createResolver(writer));
    } catch (err) {
      // Not the record's fault: the route's reader schema cannot read this writer. The
      // partition waits (retriable) until the route is fixed; nothing is dead-lettered.
      throw new PgsinkError(
        'avro',
        `writer schema id ${id} is incompatible with the route's reader schema: ${(err as Error).message}`,
        { code: 'SCHEMA_INCOMPATIBLE', retriable: true, cause: err },
      );
    }
  }

  /** The resolver for this value's writer, null when the writer is the reader schema itself. */
  private resolverOf(value: Buffer): avro.Resolver | null {
    const id = schemaIdOf(value);
    const bad = this.badIds.get(id);
    if (bad) throw bad;
    const resolver = this.resolvers.get(id);
    if (resolver !== undefined) return resolver;
    const writer = this.writers.cached(id);
    if (!writer) throw new Error(`internal: schema id ${id} used before prepare()`);
    this.addWriter(id, writer);
    return this.resolvers.get(id) ?? null;
  }

  /**
   * True when the value was written with the reader schema itself, so that its body can be
   * read field by field as the reader describes it (src/sink/direct-line.ts). Throws the
   * record's error for a bad header or an unknown id.
   */
  writtenWithReader(value: Buffer): boolean {
    return this.resolverOf(value) === null;
  }

  decode(value: Buffer): unknown {
    const resolver = this.resolverOf(value);
    try {
      this.validators.get(schemaIdOf(value))!(value, HEADER_SIZE);
      const body = value.subarray(HEADER_SIZE);
      return resolver === null
        ? this.readerType.fromBuffer(body)
        : this.readerType.fromBuffer(body, resolver);
    } catch (err) {
      // Faults of the body (or of a promotion that would not be exact, found while resolving).
      if (err instanceof BodyFault) throw bodyError(schemaIdOf(value), err);
      throw new RecordError(
        'avro',
        'MALFORMED_BODY',
        `Avro body does not decode with schema id ${schemaIdOf(value)}: ${(err as Error).message}`,
        err,
      );
    }
  }
}
