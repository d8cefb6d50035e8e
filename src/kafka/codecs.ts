// The four compression codecs of Kafka record batches (attributes & 0x07): 1 gzip, 2 snappy,
// 3 lz4, 4 zstd. kafkajs 2.2.4 ships only gzip and throws KafkaJSNotImplemented for the others
// inside its fetch response parsing, which fails the whole fetch and, after its retries, the
// consumer. pgsink's record batch decoder (record-batch-decoder.ts) decompresses through this
// module, and src/kafka/kafkajs.ts registers the same codecs in kafkajs' CompressionCodecs (for
// its producer and for PGSINK_KAFKAJS_DECODER=stock).
//
// Libraries (README "Compression"): gzip and zstd come from Node's zlib (zstd since Node 22.15 /
// 23.8); snappy from `snappy` and lz4 from `lz4-napi`, both napi-rs bindings whose prebuilt
// binaries are npm packages of their own (optional dependencies per platform), so nothing is
// downloaded at install time outside the npm registry and nothing is compiled.
//
// Framings, as the Java client writes them:
// - snappy: xerial's SnappyOutputStream framing (a 16-byte header, then blocks of int32 length +
//   raw snappy); librdkafka and old clients write one raw snappy block. Both are read, as Java's
//   SnappyInputStream does.
// - lz4: the LZ4 frame format (KafkaLZ4BlockOutputStream; magic v2 batches have the correct
//   header checksum).
// - gzip: a gzip stream (unzip also takes zlib/deflate, as kafkajs' own codec did).
// - zstd: zstd frames (zstd-jni's ZstdOutputStream).
//
// Every codec is synchronous: the decoder runs inside kafkajs' response parsing on the main
// thread either way, and a thread-pool hop per record batch costs more than these
// decompressors take on the batch sizes Kafka serves.
//
// Memory (DESIGN.md invariant 3): a compressed batch is bounded by the broker's
// message.max.bytes, but what it expands to is not; a producer could write a few kB that
// expand to gigabytes. Each batch is therefore limited to MAX_DECOMPRESSED_BYTES, checked
// before the output is allocated where the format says its size (snappy, lz4 block bounds)
// and by zlib's maxOutputLength otherwise.
import zlib from 'node:zlib';
import { compressFrameSync, decompressFrameSync } from 'lz4-napi';
import { compressSync as snappyCompress, uncompressSync as snappyUncompress } from 'snappy';
import { PgsinkError } from '../util/errors.ts';

export type CodecName = 'gzip' | 'snappy' | 'lz4' | 'zstd';

/** Kafka's codec ids (the low 3 bits of a record batch's attributes). */
export const CODEC_IDS: Readonly<Record<CodecName, number>> = { gzip: 1, snappy: 2, lz4: 3, zstd: 4 };
const NAMES: Readonly<Record<number, CodecName>> = { 1: 'gzip', 2: 'snappy', 3: 'lz4', 4: 'zstd' };
export const CODEC_MASK = 0x07;

/**
 * The most one record batch may expand to. Kafka's Java producer sizes batches by their
 * compressed size (batch.size, 16 KiB by default; 1 MiB is a common tuning), and Avro records
 * rarely compress better than 10:1, so valid batches stay far below this; the deployed
 * container has 512 MiB.
 */
export const MAX_DECOMPRESSED_BYTES = 64 * 1024 * 1024;

/**
 * Why a compressed batch cannot be read:
 * - UNKNOWN_CODEC: a codec id pgsink does not know (5..7);
 * - DECOMPRESS_FAILED: the codec's library refuses the payload;
 * - DECOMPRESSED_TOO_LARGE: it would expand beyond MAX_DECOMPRESSED_BYTES;
 * - CORRUPT_BATCH: it decompresses, but its records do not parse (record-batch-decoder.ts).
 * Retriable: the bytes are not going to change, but the partition is only held (the records
 * cannot be told apart, so none can be dead-lettered); a pgsink that can read them, or moving
 * the group past them (pgsink replay), lets it go on.
 */
export type CodecErrorCode =
  'UNKNOWN_CODEC' | 'DECOMPRESS_FAILED' | 'DECOMPRESSED_TOO_LARGE' | 'CORRUPT_BATCH';

export class CodecError extends PgsinkError {
  /** 'gzip', 'snappy', 'lz4', 'zstd', or 'codec <id>' for an unknown one. */
  readonly codec: string;

  constructor(code: CodecErrorCode, codec: string, message: string, cause?: unknown) {
    super('kafka', message, { code, retriable: true, cause });
    this.codec = codec;
  }
}

/** The name of a codec id: 'none', a codec's name, or 'codec <id>'. */
export function codecName(id: number): string {
  if (id === 0) return 'none';
  return NAMES[id] ?? `codec ${id}`;
}

/** A test hook: an error to throw instead of decompressing (real batches, made unreadable). */
export type DecompressFault = (codec: CodecName, payload: Buffer) => Error | undefined;

interface CodecState {
  /** Batches decompressed per codec (tests check that a codec was really used). */
  decompressed: Record<CodecName, number>;
  fault: DecompressFault | undefined;
}

// On globalThis: test runners evaluate modules again in one process, and the record batch
// decoder kafkajs keeps in its module cache may have been built by an earlier evaluation.
const STATE_KEY = Symbol.for('pgsink.codecs');
const registry = globalThis as Record<symbol, CodecState | undefined>;
const state: CodecState = (registry[STATE_KEY] ??= {
  decompressed: { gzip: 0, snappy: 0, lz4: 0, zstd: 0 },
  fault: undefined,
});

/** Record batches decompressed so far in this process, per codec. */
export function decompressedBatches(): Readonly<Record<CodecName, number>> {
  return { ...state.decompressed };
}

/** Tests only: make decompression fail (undefined restores it). */
export function setDecompressFault(fault: DecompressFault | undefined): void {
  state.fault = fault;
}

/** Decompresses a record batch's records section. Throws CodecError. */
export function decompress(codecId: number, payload: Buffer, limit = MAX_DECOMPRESSED_BYTES): Buffer {
  const name = NAMES[codecId];
  if (!name)
    throw new CodecError(
      'UNKNOWN_CODEC',
      codecName(codecId),
      `compression codec id ${codecId} is not one of Kafka's (1 gzip, 2 snappy, 3 lz4, 4 zstd)`,
    );
  const fault = state.fault?.(name, payload);
  if (fault) throw new CodecError('DECOMPRESS_FAILED', name, `${name}: ${fault.message}`, fault);
  let out: Buffer;
  try {
    out = decompressWith(name, payload, limit);
  } catch (err) {
    if (err instanceof CodecError) throw err;
    if ((err as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE') throw tooLarge(name, limit);
    throw new CodecError(
      'DECOMPRESS_FAILED',
      name,
      `${name}: the payload does not decompress: ${(err as Error).message}`,
      err,
    );
  }
  if (out.length > limit) throw tooLarge(name, limit);
  state.decompressed[name]++;
  return out;
}

function tooLarge(name: CodecName, limit: number): CodecError {
  return new CodecError(
    'DECOMPRESSED_TOO_LARGE',
    name,
    `${name}: the batch expands to more than ${limit} bytes (the limit of one record batch)`,
  );
}

function decompressWith(name: CodecName, payload: Buffer, limit: number): Buffer {
  switch (name) {
    case 'gzip':
      return zlib.unzipSync(payload, { maxOutputLength: limit });
    case 'zstd':
      // package.json's engines ask for Node >= 22.15; say so if a run ignored them.
      if (typeof zlib.zstdDecompressSync !== 'function')
        throw new Error(`zstd needs Node.js >= 22.15 (zlib.zstdDecompress); this is ${process.version}`);
      return zlib.zstdDecompressSync(payload, { maxOutputLength: limit });
    case 'snappy':
      return snappyDecompress(payload, limit);
    case 'lz4':
      if (lz4FrameBound(payload) > limit) throw tooLarge(name, limit);
      return decompressFrameSync(payload);
  }
}

/** Compresses as the Java client does (kafkajs' producer, tests). */
export function compress(codecId: number, data: Buffer): Buffer {
  switch (NAMES[codecId]) {
    case 'gzip':
      return zlib.gzipSync(data);
    case 'zstd':
      return zlib.zstdCompressSync(data);
    case 'snappy':
      return xerialFrame(data);
    case 'lz4':
      return compressFrameSync(data);
    default:
      throw new CodecError('UNKNOWN_CODEC', codecName(codecId), `cannot compress with ${codecName(codecId)}`);
  }
}

// ---------------------------------------------------------------- snappy (xerial framing)

/** SnappyOutputStream's header: magic, then int32 version 1 and int32 compatible version 1. */
const XERIAL_MAGIC = Buffer.from([0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00]);
const XERIAL_HEADER = 16;
/** SnappyOutputStream's default block size. */
const XERIAL_BLOCK = 32 * 1024;

const isXerialHeader = (buf: Buffer, at: number): boolean =>
  buf.length - at >= XERIAL_HEADER && buf.compare(XERIAL_MAGIC, 0, 8, at, at + 8) === 0;

function snappyDecompress(payload: Buffer, limit: number): Buffer {
  if (!isXerialHeader(payload, 0)) return rawSnappy(payload, limit);
  const blocks: Buffer[] = [];
  let total = 0;
  let p = XERIAL_HEADER;
  while (p < payload.length) {
    // Concatenated streams: SnappyInputStream accepts a new header at a block boundary.
    if (isXerialHeader(payload, p)) {
      p += XERIAL_HEADER;
      continue;
    }
    if (payload.length - p < 4) throw new Error(`truncated xerial block length at byte ${p}`);
    const n = payload.readInt32BE(p);
    p += 4;
    if (n < 0 || n > payload.length - p)
      throw new Error(`xerial block of ${n} bytes at byte ${p - 4} overruns the payload`);
    const block = rawSnappy(payload.subarray(p, p + n), limit - total);
    total += block.length;
    blocks.push(block);
    p += n;
  }
  return blocks.length === 1 ? blocks[0]! : Buffer.concat(blocks, total);
}

/** One raw snappy block; its varint preamble says how long it expands, checked first. */
function rawSnappy(block: Buffer, limit: number): Buffer {
  let length = 0;
  let shift = 1;
  for (let i = 0; i < 5; i++) {
    const b = block[i];
    if (b === undefined) throw new Error('truncated snappy length preamble');
    length += (b & 0x7f) * shift;
    if (b < 0x80) break;
    shift *= 128;
  }
  if (length > limit)
    throw new CodecError(
      'DECOMPRESSED_TOO_LARGE',
      'snappy',
      `snappy: a block expands to ${length} bytes, over the limit`,
    );
  return snappyUncompress(block, { asBuffer: true }) as Buffer;
}

function xerialFrame(data: Buffer): Buffer {
  const parts: Buffer[] = [XERIAL_MAGIC, Buffer.from([0, 0, 0, 1, 0, 0, 0, 1])];
  for (let p = 0; p < data.length; p += XERIAL_BLOCK) {
    const block = snappyCompress(data.subarray(p, Math.min(p + XERIAL_BLOCK, data.length)));
    const len = Buffer.alloc(4);
    len.writeInt32BE(block.length);
    parts.push(len, block);
  }
  return Buffer.concat(parts);
}

// ---------------------------------------------------------------- lz4 (frame format)

const LZ4_MAGIC = 0x184d2204;
const LZ4_BLOCK_SIZES: Readonly<Record<number, number>> = {
  4: 64 * 1024,
  5: 256 * 1024,
  6: 1024 * 1024,
  7: 4 * 1024 * 1024,
};

/**
 * The most an LZ4 frame can expand to, read from its descriptor and block headers without
 * decompressing: blocks × the frame's maximum block size (lz4-napi has no output limit).
 * Throws on anything that is not a well-formed frame; the decompressor checks the rest.
 */
function lz4FrameBound(buf: Buffer): number {
  if (buf.length < 7 || buf.readUInt32LE(0) !== LZ4_MAGIC) throw new Error('not an LZ4 frame (bad magic)');
  const flg = buf[4]!;
  const bd = buf[5]!;
  const blockMax = LZ4_BLOCK_SIZES[(bd >> 4) & 0x07];
  if (blockMax === undefined) throw new Error(`LZ4 frame: bad block size code ${(bd >> 4) & 0x07}`);
  const blockChecksum = (flg & 0x10) !== 0;
  let p = 6 + ((flg & 0x08) !== 0 ? 8 : 0) + ((flg & 0x01) !== 0 ? 4 : 0) + 1;
  let blocks = 0;
  for (;;) {
    if (buf.length - p < 4) throw new Error('LZ4 frame: truncated block header');
    const word = buf.readUInt32LE(p);
    p += 4;
    if (word === 0) break; // end mark
    const size = word & 0x7fffffff;
    p += size + (blockChecksum ? 4 : 0);
    if (p > buf.length) throw new Error('LZ4 frame: a block overruns the payload');
    blocks++;
  }
  return blocks * blockMax;
}
