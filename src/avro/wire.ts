// Confluent wire format: magic byte 0, a 4-byte big-endian schema id, then the Avro body.
import { RecordError } from '../util/errors.ts';

export const MAGIC_BYTE = 0;
export const HEADER_SIZE = 5;

export function schemaIdOf(value: Buffer): number {
  if (value.length < HEADER_SIZE) {
    throw new RecordError(
      'avro',
      'TRUNCATED_HEADER',
      `value has ${value.length} bytes, fewer than the 5-byte Confluent header`,
    );
  }
  const magic = value[0];
  if (magic !== MAGIC_BYTE) {
    throw new RecordError(
      'avro',
      'BAD_MAGIC_BYTE',
      `magic byte is ${magic}, expected 0 (Confluent wire format)`,
    );
  }
  return value.readInt32BE(1);
}

export function frame(schemaId: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(HEADER_SIZE + body.length);
  out[0] = MAGIC_BYTE;
  out.writeInt32BE(schemaId, 1);
  body.copy(out, HEADER_SIZE);
  return out;
}
