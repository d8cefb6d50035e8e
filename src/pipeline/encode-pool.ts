// COPY lines encoded on worker threads (src/pipeline/encode-worker.ts), for the records a route
// can write on the direct path (written with its reader schema): the main thread keeps
// fetching, flushing and committing while a worker turns the previous batch into lines.
//
// A job carries one fetched batch's eligible keys and values, copied into one transferable
// buffer; the reply carries that buffer back (it becomes the batch's raw chunk, kept for dead
// letters) and one exactly sized buffer of lines. Nothing is shared between threads, so no
// buffer is ever written by one thread while the other reads it. The pipeline awaits each
// job inside its onBatch, so a partition's batches stay in offset order and every epoch check
// happens after the await, as for the registry look-up before it.
import { Worker } from 'node:worker_threads';
import type { RouteConfig } from '../config/schema.ts';
import { PgsinkError } from '../util/errors.ts';

export interface EncodeJob {
  topic: string;
  partition: number;
  /** Keys and values, back to back. */
  input: ArrayBuffer;
  /** Per record: value start, value end, key start, key end (-1, -1: null key). */
  index: Int32Array<ArrayBuffer>;
  offsets: Float64Array<ArrayBuffer>;
  timestamps: Float64Array<ArrayBuffer>;
}

/** Line end of a record that did not fit its reservation: encode it on the object path. */
export const LINE_OVERFLOW = -1;
/** Line end of a record that cannot be written: its failure is in `failures`. */
export const LINE_FAILED = -2;

export interface EncodeFailure {
  /** The record's position in the job. */
  at: number;
  source: 'avro' | 'registry' | 'internal';
  code: string;
  message: string;
  /** Not a RecordError: a bug, logged by the main thread. */
  unexpected: boolean;
}

export interface EncodeResult {
  /** The job's input, back. */
  input: ArrayBuffer;
  lines: ArrayBuffer;
  /** Per record: line start and end in `lines`, or an end of LINE_OVERFLOW / LINE_FAILED. */
  bounds: Int32Array<ArrayBuffer>;
  failures: EncodeFailure[];
}

export interface EncodeWorkerData {
  routes: RouteConfig[];
}

export type ToWorker = { id: number; job: EncodeJob };
export type FromWorker =
  | { id: number; ok: true; result: EncodeResult }
  | { id: number; ok: false; message: string };

interface Slot {
  worker: Worker | undefined;
  pending: Map<number, { resolve: (r: EncodeResult) => void; reject: (e: Error) => void }>;
}

// Node runs the TypeScript sources directly in development and the compiled JavaScript in the
// image: the worker file has the same extension as this one.
const WORKER_URL = new URL(
  import.meta.url.endsWith('.ts') ? './encode-worker.ts' : './encode-worker.js',
  import.meta.url,
);

/** The worker's own V8 heap: its garbage is short-lived and its buffers live outside. */
const WORKER_LIMITS = { maxOldGenerationSizeMb: 32, maxYoungGenerationSizeMb: 8 };

export class EncodePool {
  private readonly slots: Slot[];
  private readonly data: EncodeWorkerData;
  private next = 0;
  private ids = 0;
  private stopped: Promise<void> | undefined;

  constructor(threads: number, routes: RouteConfig[]) {
    this.data = { routes };
    this.slots = Array.from({ length: threads }, () => ({ worker: undefined, pending: new Map() }));
  }

  get threads(): number {
    return this.slots.length;
  }

  /**
   * Encodes one job on the next worker. Rejects with a retriable error when the worker died
   * or the pool is stopping; the caller holds the partition and the batch is fetched again.
   */
  encode(job: EncodeJob): Promise<EncodeResult> {
    if (this.stopped)
      return Promise.reject(
        new PgsinkError('internal', 'the encode pool is stopped', {
          code: 'ENCODE_POOL_STOPPED',
          retriable: true,
        }),
      );
    const slot = this.slots[this.next]!;
    this.next = (this.next + 1) % this.slots.length;
    const worker = (slot.worker ??= this.spawn(slot));
    const id = ++this.ids;
    return new Promise<EncodeResult>((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      const msg: ToWorker = { id, job };
      worker.postMessage(msg, [job.input, job.index.buffer, job.offsets.buffer, job.timestamps.buffer]);
    });
  }

  private spawn(slot: Slot): Worker {
    const worker = new Worker(WORKER_URL, { workerData: this.data, resourceLimits: WORKER_LIMITS });
    // A worker must not keep the process alive; stop() ends it in order anyway.
    worker.unref();
    const failAll = (why: string, cause?: unknown): void => {
      if (slot.worker === worker) slot.worker = undefined;
      const err = new PgsinkError('internal', `the encode worker ${why}`, {
        code: 'ENCODE_WORKER_FAILED',
        retriable: true,
        cause,
      });
      for (const p of slot.pending.values()) p.reject(err);
      slot.pending.clear();
    };
    worker.on('message', (m: FromWorker) => {
      const p = slot.pending.get(m.id);
      if (!p) return;
      slot.pending.delete(m.id);
      if (m.ok) p.resolve(m.result);
      else
        p.reject(
          new PgsinkError('internal', `the encode worker failed a job: ${m.message}`, {
            code: 'ENCODE_JOB_FAILED',
            retriable: true,
          }),
        );
    });
    worker.on('error', (err) => failAll(`failed: ${err.message}`, err));
    worker.on('messageerror', (err) => failAll(`could not read a message: ${err.message}`, err));
    worker.on('exit', (code) => failAll(`exited (code ${code})`));
    return worker;
  }

  /** Ends every worker; jobs still running are rejected. Idempotent. */
  stop(): Promise<void> {
    this.stopped ??= Promise.all(
      this.slots.map(async (slot) => {
        const w = slot.worker;
        slot.worker = undefined;
        if (w) await w.terminate();
      }),
    ).then(() => undefined);
    return this.stopped;
  }
}
