// Off-heap storage for buffered rows. Each record's COPY line (and its raw key and value,
// kept for a dead letter) is written once, as UTF-8, into large Buffer chunks; an entry holds
// only positions. Buffered rows then cost the garbage collector almost nothing (no strings,
// no retained client objects), byte limits count real bytes, and a flush streams contiguous
// slices of the chunks to COPY without copying or encoding again.

const DEFAULT_CHUNK = 256 * 1024;
const EMPTY = Buffer.alloc(0);

export class RowArena {
  private chunk: Buffer;
  private pos = 0;
  private readonly chunkSize: number;

  constructor(chunkSize = DEFAULT_CHUNK) {
    this.chunkSize = chunkSize;
    // Allocated on first use: an assigned partition that never receives costs nothing.
    this.chunk = EMPTY;
  }

  /** The chunk the next write goes to, after ensuring `maxBytes` fit. */
  reserve(maxBytes: number): Buffer {
    if (this.pos + maxBytes > this.chunk.length) {
      this.chunk = Buffer.allocUnsafeSlow(Math.max(this.chunkSize, maxBytes));
      this.pos = 0;
    }
    return this.chunk;
  }

  get position(): number {
    return this.pos;
  }

  /** UTF-8 of `text` at the current position (call reserve(text.length * 3) first). */
  writeText(text: string): number {
    const start = this.pos;
    this.pos += this.chunk.write(text, start, 'utf8');
    return start;
  }

  /** Keeps what was written directly into the reserved chunk up to `end`. */
  advanceTo(end: number): void {
    if (end < this.pos || end > this.chunk.length) throw new Error(`internal: arena end ${end} out of range`);
    this.pos = end;
  }

  writeBytes(bytes: Uint8Array): number {
    const start = this.pos;
    this.chunk.set(bytes, start);
    this.pos += bytes.length;
    return start;
  }
}
