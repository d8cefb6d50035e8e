// A record's headers exactly as the producer wrote them, for dead letters: keys and values as
// bytes, in order, repeated keys repeated, null values null. kafkajs' headers object cannot give
// that (keys decoded as UTF-8 with U+FFFD, repeated keys grouped, integer-like keys reordered),
// so pgsink's record batch decoder keeps the wire bytes of the header section
// (DecodedRecord.rawHeaders) and this module reads them.
import type { IHeaders } from 'kafkajs';

/** [key, value] pairs in record order; a null key or value as null. */
export type HeaderList = Array<[Buffer | null, Buffer | null]>;

/** The wire bytes of a message's headers, when pgsink's record batch decoder read it. */
export function rawHeadersOf(message: object): Buffer | undefined {
  const raw = (message as { rawHeaders?: unknown }).rawHeaders;
  return Buffer.isBuffer(raw) ? raw : undefined;
}

/**
 * The header section of a record (a varint count, then per header a varint key length, the
 * key, a varint value length, the value; -1 is null), read as the record batch decoder reads it.
 */
export function parseRawHeaders(raw: Buffer): HeaderList {
  let pos = 0;
  const varint = (): number => {
    let result = 0;
    let shift = 0;
    let b: number;
    do {
      b = pos < raw.length ? raw[pos]! : 0;
      pos++;
      result += (b & 0x7f) * 2 ** shift;
      shift += 7;
    } while (b >= 0x80 && shift < 35);
    return result % 2 === 0 ? result / 2 : -(result + 1) / 2;
  };
  const bytes = (): Buffer | null => {
    const n = varint();
    if (n < 0) return null;
    const v = raw.subarray(pos, Math.min(pos + n, raw.length));
    pos += n;
    return v;
  };
  const count = varint();
  const out: HeaderList = [];
  for (let i = 0; i < count && pos < raw.length; i++) {
    const key = bytes();
    out.push([key, bytes()]);
  }
  return out;
}

/**
 * The header section's wire bytes for pairs (the inverse of parseRawHeaders), for a client that
 * hands over exact pairs rather than the bytes (@platformatic/kafka): its dead letters then keep
 * null keys, binary keys and the order of repeated keys as the kafkajs path does.
 */
export function encodeRawHeaders(pairs: HeaderList): Buffer {
  const parts: Buffer[] = [];
  const varint = (n: number): void => {
    // Zigzag, then 7 bits a byte, low first (Kafka's varint).
    let z = n >= 0 ? n * 2 : -n * 2 - 1;
    const out: number[] = [];
    while (z >= 0x80) {
      out.push((z % 0x80) | 0x80);
      z = Math.floor(z / 0x80);
    }
    out.push(z);
    parts.push(Buffer.from(out));
  };
  const bytes = (b: Buffer | null): void => {
    if (b === null) return varint(-1);
    varint(b.length);
    parts.push(b);
  };
  varint(pairs.length);
  for (const [k, v] of pairs) {
    bytes(k);
    bytes(v);
  }
  return Buffer.concat(parts);
}

/**
 * kafkajs' headers object as pairs: the best there is without the wire bytes (kafkajs' own
 * record decoder, PGSINK_KAFKAJS_DECODER=stock). Keys are their UTF-8 text; repeated keys come
 * out grouped.
 */
export function headersFromObject(headers: IHeaders | undefined): HeaderList {
  const out: HeaderList = [];
  if (!headers) return out;
  for (const [k, v] of Object.entries(headers)) {
    const key = Buffer.from(k, 'utf8');
    for (const x of Array.isArray(v) ? v : [v]) {
      out.push([key, x === undefined || x === null ? null : Buffer.isBuffer(x) ? x : Buffer.from(String(x))]);
    }
  }
  return out;
}
