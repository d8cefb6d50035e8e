// A leaner decoder for Kafka record batches (magic 2), swapped in for kafkajs 2.2.4's own.
//
// Why: kafkajs decodes every record through its Long class — a varlong costs one Long per
// byte, and offset and timestamp each one more add() and toString() — plus a Decoder object
// and a Buffer view per record. Under pgsink's load that is about 1.1 kB of garbage per event,
// roughly half of all the process allocates, and the garbage collector's share of the CPU grows
// with it. This decoder returns exactly the same objects (same fields, same strings, same
// headers object, KafkaJSPartialMessageError for a partial batch) and does the arithmetic in doubles
// whenever the values are exact there (|x| < 2^53), falling back to Long beyond. One field is
// added: rawHeaders, a view of the record's header section on the wire, so that a dead letter
// can keep the headers byte for byte (kafkajs' headers object cannot: see record-headers.ts).
//
// On malformed records (a declared length that disagrees with the content, a negative count)
// it reads each record within its declared length as kafkajs does, and fails where kafkajs
// fails, though not always with the same error message.
//
// Compressed batches are decompressed by pgsink's codecs (codecs.ts: all four of Kafka's, where
// kafkajs has only gzip). A compressed batch that cannot be read (an unknown codec id, a payload
// that does not decompress or whose records do not parse) does not throw: a throw here fails the
// parsing of the whole fetch response, every partition in it, and in the end the consumer. It
// becomes one marker message instead (unreadableOf), which the source adapter turns into an
// error of that partition alone (source.ts, SourceHandlers.onUnreadable).
//
// The swap is done in the CommonJS module cache before kafkajs is first loaded, which is why
// every import of kafkajs' runtime goes through src/kafka/kafkajs.ts. kafkajs is unmaintained
// and pinned to 2.2.4 (package.json); the install refuses any other version, and
// test/unit/record-batch-decoder.test.ts compares this decoder with kafkajs' own on canned
// batches. PGSINK_KAFKAJS_DECODER=stock keeps kafkajs' decoder (for comparison).
import { createRequire, Module } from 'node:module';
import { dirname, join } from 'node:path';
import { CODEC_MASK, CodecError, codecName, decompress } from './codecs.ts';

const require = createRequire(import.meta.url);

export const KAFKAJS_VERSION = '2.2.4';

/** The parts of kafkajs' internal Decoder (src/protocol/decoder.js) this module uses. */
interface KafkajsLong {
  toString(): string;
  add(other: number | KafkajsLong): KafkajsLong;
  shiftLeft(bits: number): KafkajsLong;
  shiftRightUnsigned(bits: number): KafkajsLong;
  xor(other: KafkajsLong): KafkajsLong;
  and(other: KafkajsLong): KafkajsLong;
  negate(): KafkajsLong;
}
interface LongStatic {
  fromInt(v: number): KafkajsLong;
  fromValue(v: string | number): KafkajsLong;
}
export interface KafkajsDecoder {
  buffer: Buffer;
  offset: number;
  readInt32(): number;
  readInt64(): KafkajsLong;
  slice(size: number): KafkajsDecoder;
  forward(size: number): void;
}
interface DecoderClass {
  new (buffer: Buffer): KafkajsDecoder;
}

export interface DecodedRecord {
  magicByte: number;
  attributes: number;
  timestamp: string;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  headers: Record<string, Buffer | null | Array<Buffer | null>>;
  /**
   * The record's header section as it is on the wire (count, then each key and value), or null
   * when it has no headers: `headers` above is kafkajs' shape, which decodes keys as UTF-8
   * (lossy), groups repeated keys and loses their order. pgsink's own addition (kafkajs' decoder
   * has no such field); src/kafka/record-headers.ts reads it.
   */
  rawHeaders: Buffer | null;
  isControlRecord: boolean;
  batchContext: RecordContext;
}

export interface RecordContext {
  firstOffset: string;
  firstTimestamp: string;
  partitionLeaderEpoch: number;
  inTransaction: boolean;
  isControlBatch: boolean;
  lastOffsetDelta: number;
  producerId: string;
  producerEpoch: number;
  firstSequence: number;
  maxTimestamp: string;
  timestampType: number;
  magicByte?: number;
}

export type RecordBatchDecoder = (
  fetchDecoder: KafkajsDecoder,
) => Promise<RecordContext & { records: DecodedRecord[] }>;

const TIMESTAMP_TYPE_FLAG_MASK = 0x8;
const TRANSACTIONAL_FLAG_MASK = 0x10;
const CONTROL_FLAG_MASK = 0x20;
const CREATE_TIME = 0;
const LOG_APPEND_TIME = 1;
const TWO_POW_32 = 2 ** 32;

/** kafkajs' folder, and a require() of its internal modules by path. */
function kafkajsInternals(): {
  root: string;
  version: string;
  load: (path: string) => unknown;
} {
  const pkgPath = require.resolve('kafkajs/package.json');
  const root = dirname(pkgPath);
  const { version } = require(pkgPath) as { version: string };
  return { root, version, load: (path) => require(join(root, path)) };
}

/**
 * What a batch that cannot be read is replaced by (see unreadableOf): one message that stands
 * for the whole batch, so that the failure stays with its partition instead of failing the
 * fetch of every partition (a throw here would, and kafkajs would end by crashing the consumer).
 */
export interface UnreadableBatch {
  /** The batch's first and last offsets (as kafkajs writes offsets: decimal strings). */
  firstOffset: string;
  lastOffset: string;
  codec: string;
  error: CodecError;
}

// Symbol.for: a decoder built by an earlier evaluation of this module must be recognised too.
const UNREADABLE = Symbol.for('pgsink.unreadableBatch');

/** The unreadable batch this message stands for, if it is such a marker. */
export function unreadableOf(message: object): UnreadableBatch | undefined {
  return (message as Record<symbol, UnreadableBatch | undefined>)[UNREADABLE];
}

/** Builds the decoder against kafkajs' own Decoder, Long and errors, and pgsink's codecs. */
export function createRecordBatchDecoder(load: (path: string) => unknown): RecordBatchDecoder {
  const Decoder = load('src/protocol/decoder.js') as DecoderClass;
  const Long = load('src/utils/long.js') as LongStatic;
  const { KafkaJSPartialMessageError, KafkaJSInvalidLongError } = load('src/errors.js') as {
    KafkaJSPartialMessageError: new (message: string) => Error;
    KafkaJSInvalidLongError: new (message: string) => Error;
  };

  /**
   * The marker for a compressed batch that cannot be read. Its offset is the batch's last, so
   * that kafkajs' filter of offsets below the fetched one (a batch is served whole, from its
   * start) keeps it; it is no control record, so it is never filtered as one. Only the source
   * adapter (source.ts) sees it: it turns it into an error of that partition.
   */
  const unreadable = (
    ctx: RecordContext,
    magicByte: number,
    codecId: number,
    err: unknown,
  ): DecodedRecord => {
    const lastOffset = Long.fromValue(ctx.firstOffset).add(ctx.lastOffsetDelta).toString();
    const codec = codecName(codecId);
    const error =
      err instanceof CodecError
        ? err
        : new CodecError(
            'CORRUPT_BATCH',
            codec,
            `${codec}: the batch decompresses, but its records do not parse: ${(err as Error).message}`,
            err,
          );
    const marker: DecodedRecord = {
      magicByte,
      attributes: 0,
      timestamp: ctx.maxTimestamp,
      offset: lastOffset,
      key: null,
      value: null,
      headers: {},
      rawHeaders: null,
      isControlRecord: false,
      batchContext: ctx,
    };
    const info: UnreadableBatch = { firstOffset: ctx.firstOffset, lastOffset, codec, error };
    Object.defineProperty(marker, UNREADABLE, { value: info });
    return marker;
  };

  /** int64 big-endian at buf[p..p+8) as a string, exact at any size. */
  const int64String = (buf: Buffer, p: number): string => {
    const hi = buf.readInt32BE(p);
    const lo = buf.readUInt32BE(p + 4);
    if (hi >= -0x200000 && hi < 0x200000) return String(hi * TWO_POW_32 + lo);
    const d = new Decoder(buf);
    d.offset = p;
    return d.readInt64().toString();
  };

  /** The `count` records of one batch in buf[p..end); see kafkajs' record/v0 decoder. */
  const decodeRecords = (
    buf: Buffer,
    p: number,
    end: number,
    count: number,
    ctx: RecordContext,
    magicByte: number,
  ): DecodedRecord[] => {
    const firstOffset = Number(ctx.firstOffset);
    const firstOffsetExact = Number.isSafeInteger(firstOffset);
    const firstTimestamp = Number(ctx.firstTimestamp);
    const firstTimestampExact = Number.isSafeInteger(firstTimestamp);
    const appendTime = ctx.timestampType === LOG_APPEND_TIME && Boolean(ctx.maxTimestamp);
    const isControl = ctx.isControlBatch;
    const records = new Array<DecodedRecord>(count);
    let pos = p;
    // kafkajs reads each record from its own slice of the batch: a byte past the slice reads as
    // undefined, which ends a varint as a 0 byte would. `limit` is that slice's end.
    let limit = end;
    const byteAt = (at: number): number => (at < limit ? buf[at]! : 0);

    // Varints exactly as kafkajs reads them (its readVarInt / decodeZigZag).
    const varint = (): number => {
      let b: number;
      let result = 0;
      let i = 0;
      do {
        b = byteAt(pos++);
        result += (b & 0x7f) << i;
        i += 7;
      } while (b >= 0x80);
      return (result >>> 1) ^ -(result & 1);
    };

    for (let r = 0; r < count; r++) {
      limit = end;
      const length = varint();
      const recStart = pos;
      const recEnd = Math.min(recStart + Math.max(length, 0), end);
      // An empty or null record: kafkajs fails reading its attributes, and so does this.
      if (recEnd <= recStart)
        throw new RangeError(
          `record ${r} of the batch at offset ${ctx.firstOffset} declares ${length} bytes: it has no attributes byte`,
        );
      limit = recEnd;
      const attributes = (buf[pos]! << 24) >> 24;
      pos++;

      // timestampDelta: a zigzag varlong. Up to 7 bytes (49 bits) it is exact in a double.
      let timestamp: string;
      const tsStart = pos;
      let raw = 0;
      let scale = 1;
      let b: number;
      do {
        b = byteAt(pos++);
        raw += (b & 0x7f) * scale;
        scale *= 128;
      } while (b >= 0x80 && pos - tsStart < 7);
      if (appendTime) {
        if (b >= 0x80) {
          pos = tsStart;
          readVarLong();
        }
        timestamp = ctx.maxTimestamp;
      } else if (b < 0x80 && firstTimestampExact) {
        const delta = raw % 2 === 0 ? raw / 2 : -(raw + 1) / 2;
        const sum = firstTimestamp + delta;
        timestamp = Number.isSafeInteger(sum)
          ? String(sum)
          : Long.fromValue(ctx.firstTimestamp).add(delta).toString();
      } else {
        pos = tsStart;
        timestamp = Long.fromValue(ctx.firstTimestamp).add(readVarLong()).toString();
      }

      const offsetDelta = varint();
      let offset: string;
      const sum = firstOffset + offsetDelta;
      if (firstOffsetExact && Number.isSafeInteger(sum)) offset = String(sum);
      else offset = Long.fromValue(ctx.firstOffset).add(offsetDelta).toString();

      const key = bytesField(recEnd);
      const value = bytesField(recEnd);
      const headers: DecodedRecord['headers'] = {};
      const headersAt = pos;
      const headerCount = varint();
      // kafkajs allocates new Array(headerCount): -1 means none, below that it throws.
      if (headerCount < -1) throw new RangeError('Invalid array length');
      for (let h = 0; h < headerCount; h++) {
        const keyLength = varint();
        let name: string | null = null;
        if (keyLength !== -1) {
          name = buf.toString('utf8', pos, Math.min(pos + keyLength, recEnd));
          pos += keyLength;
        }
        const headerValue = bytesField(recEnd);
        addHeader(headers, String(name), headerValue);
      }
      const rawHeaders = headerCount > 0 ? buf.subarray(headersAt, Math.min(pos, recEnd)) : null;
      records[r] = {
        magicByte,
        attributes,
        timestamp,
        offset,
        key,
        value,
        headers,
        rawHeaders,
        isControlRecord: isControl,
        batchContext: ctx,
      };
      pos = recStart + length;
    }
    return records;

    function bytesField(recEnd: number): Buffer | null {
      const n = varint();
      if (n === -1) return null;
      const v = buf.subarray(pos, Math.min(pos + n, recEnd));
      pos += n;
      return v;
    }

    // kafkajs' readVarLong, for deltas that do not fit 49 bits.
    function readVarLong(): KafkajsLong {
      let result = Long.fromInt(0);
      let i = 0;
      let byte: number;
      do {
        if (i > 63) throw new KafkaJSInvalidLongError('Invalid Long, must contain 9 bytes or less');
        byte = byteAt(pos++);
        result = result.add(Long.fromInt(byte & 0x7f).shiftLeft(i));
        i += 7;
      } while (byte >= 0x80);
      return result.shiftRightUnsigned(1).xor(result.and(Long.fromInt(1)).negate());
    }
  };

  return async (fetchDecoder) => {
    const buf0 = fetchDecoder.buffer;
    const firstOffset = int64String(buf0, fetchDecoder.offset);
    fetchDecoder.offset += 8;
    const length = fetchDecoder.readInt32();
    const decoder = fetchDecoder.slice(length);
    fetchDecoder.forward(length);
    const buf = decoder.buffer;
    if (buf.length < length) {
      throw new KafkaJSPartialMessageError(
        `Tried to decode a partial record batch: remainingBytes(${buf.length}) < recordBatchLength(${length})`,
      );
    }
    const partitionLeaderEpoch = buf.readInt32BE(0);
    const magicByte = buf.readInt8(4);
    // CRC at 5..9 (kafkajs does not check it either)
    const attributes = buf.readInt16BE(9);
    const lastOffsetDelta = buf.readInt32BE(11);
    const firstTimestamp = int64String(buf, 15);
    const maxTimestamp = int64String(buf, 23);
    const producerId = int64String(buf, 31);
    const producerEpoch = buf.readInt16BE(39);
    const firstSequence = buf.readInt32BE(41);
    const recordContext: RecordContext = {
      firstOffset,
      firstTimestamp,
      partitionLeaderEpoch,
      inTransaction: (attributes & TRANSACTIONAL_FLAG_MASK) > 0,
      isControlBatch: (attributes & CONTROL_FLAG_MASK) > 0,
      lastOffsetDelta,
      producerId,
      producerEpoch,
      firstSequence,
      maxTimestamp,
      timestampType: (attributes & TIMESTAMP_TYPE_FLAG_MASK) > 0 ? LOG_APPEND_TIME : CREATE_TIME,
    };
    const codecId = attributes & CODEC_MASK;
    const context = { ...recordContext, magicByte };
    let records: DecodedRecord[];
    const count = buf.readInt32BE(45);
    if (codecId === 0) {
      records = count === -1 ? [] : decodeRecords(buf, 49, buf.length, count, context, magicByte);
    } else if (count <= 0) {
      records = [];
    } else {
      // Past this point a failure belongs to this batch alone: the fetch decoder has already
      // moved past it, so the other batches and partitions of the response are read as usual.
      try {
        const plain = decompress(codecId, buf.subarray(49));
        records = decodeRecords(plain, 0, plain.length, count, context, magicByte);
      } catch (err) {
        records = [unreadable(context, magicByte, codecId, err)];
      }
    }
    return { ...recordContext, records };
  };
}

/** kafkajs' header reduction: a repeated key collects its values into an array. */
function addHeader(headers: DecodedRecord['headers'], name: string, value: Buffer | null): void {
  const prev = Object.prototype.hasOwnProperty.call(headers, name) ? headers[name] : undefined;
  const next = prev === undefined ? value : Array.isArray(prev) ? prev.concat([value]) : [prev, value];
  // Defined, not assigned: a header named "__proto__" is a plain key, as in kafkajs.
  Object.defineProperty(headers, name, {
    value: next,
    writable: true,
    enumerable: true,
    configurable: true,
  });
}

let installed: 'fast' | 'stock' | undefined;

/** Marks the decoder this module put in the cache, for a later evaluation of the module. */
const MARK = Symbol.for('pgsink.recordBatchDecoder');
const isOurs = (x: unknown): boolean =>
  typeof x === 'function' && (x as unknown as Record<symbol, unknown>)[MARK] === true;

/**
 * Puts the lean decoder in kafkajs' place. Must run before kafkajs is first loaded (see
 * src/kafka/kafkajs.ts); throws when it is too late or the kafkajs version is not the one this
 * decoder was written against.
 */
export function installRecordBatchDecoder(env: NodeJS.ProcessEnv = process.env): 'fast' | 'stock' {
  const choice = env.PGSINK_KAFKAJS_DECODER ?? 'fast';
  if (choice !== 'fast' && choice !== 'stock')
    throw new Error(`PGSINK_KAFKAJS_DECODER must be "fast" or "stock", got ${JSON.stringify(choice)}`);
  if (installed) return installed;
  if (choice === 'stock') {
    const path = require.resolve('kafkajs/src/protocol/recordBatch/v0/decoder.js');
    if (isOurs(require.cache[path]?.exports))
      throw new Error(
        "PGSINK_KAFKAJS_DECODER=stock, but pgsink's record batch decoder is already in place in this process",
      );
    return (installed = 'stock');
  }
  const { root, version, load } = kafkajsInternals();
  const target = join(root, 'src/protocol/recordBatch/v0/decoder.js');
  if (version !== KAFKAJS_VERSION)
    throw new Error(
      `kafkajs ${version} is installed, but pgsink's record batch decoder replaces the one of kafkajs ${KAFKAJS_VERSION}: ` +
        `install kafkajs@${KAFKAJS_VERSION} (npm ci), or set PGSINK_KAFKAJS_DECODER=stock`,
    );
  const cache = require.cache;
  // Already ours: this module was evaluated again in the same process (test runners do that).
  if (isOurs(cache[target]?.exports)) return (installed = 'fast');
  if (cache[target] || cache[join(root, 'index.js')])
    throw new Error(
      'kafkajs was loaded before pgsink installed its record batch decoder: import kafkajs through src/kafka/kafkajs.ts',
    );
  const decoder = createRecordBatchDecoder(load);
  Object.defineProperty(decoder, MARK, { value: true });
  const m = new Module(target);
  m.filename = target;
  m.loaded = true;
  m.exports = decoder;
  cache[target] = m;
  return (installed = 'fast');
}
