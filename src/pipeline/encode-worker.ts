// The encode worker thread (see src/pipeline/encode-pool.ts): the direct line encoder of every
// route, run on jobs of one fetched batch each.
import { parentPort, workerData } from 'node:worker_threads';
import avro from 'avsc';
import { loadSchemaFile } from '../avro/types.ts';
import { routeColumns, type RecordMeta } from '../sink/columns.ts';
import { buildDirectLineEncoder, LineOverflow, type DirectLineEncoder } from '../sink/direct-line.ts';
import { errorMessage, PgsinkError, RecordError } from '../util/errors.ts';
import {
  LINE_FAILED,
  LINE_OVERFLOW,
  type EncodeFailure,
  type EncodeJob,
  type EncodeResult,
  type EncodeWorkerData,
  type FromWorker,
  type ToWorker,
} from './encode-pool.ts';

const encoders = new Map<string, DirectLineEncoder>();
for (const route of (workerData as EncodeWorkerData).routes) {
  const reader = loadSchemaFile(route.schema);
  if (reader instanceof avro.types.RecordType)
    encoders.set(route.topic, buildDirectLineEncoder(reader, routeColumns(reader, route), { upsert: route.mode === 'upsert' }));
}

/** Lines are written here, then copied out at their exact size (a reply keeps no slack). */
let scratch = Buffer.allocUnsafeSlow(1024 * 1024);

/** Record metadata for the encoder; the timestamp is formatted only when a column wants it. */
class JobMeta implements RecordMeta {
  topic = '';
  partition = 0;
  offset = 0;
  key: Buffer | null = null;
  ts = 0;
  get timestamp(): string {
    return String(this.ts);
  }
}
const meta = new JobMeta();

function encodeJob(job: EncodeJob): EncodeResult {
  const encoder = encoders.get(job.topic);
  if (!encoder) throw new Error(`no direct encoder for topic ${JSON.stringify(job.topic)}`);
  const input = Buffer.from(job.input);
  const n = job.offsets.length;
  const bounds = new Int32Array(2 * n);
  const failures: EncodeFailure[] = [];
  meta.topic = job.topic;
  meta.partition = job.partition;
  let o = 0;
  for (let i = 0; i < n; i++) {
    const value = input.subarray(job.index[4 * i]!, job.index[4 * i + 1]!);
    const keyStart = job.index[4 * i + 2]!;
    const key = keyStart < 0 ? null : input.subarray(keyStart, job.index[4 * i + 3]!);
    const need = encoder.maxBytes(value, key);
    if (o + need > scratch.length) {
      const bigger = Buffer.allocUnsafeSlow(Math.max(2 * scratch.length, o + need));
      scratch.copy(bigger, 0, 0, o);
      scratch = bigger;
    }
    meta.offset = job.offsets[i]!;
    meta.ts = job.timestamps[i]!;
    meta.key = key;
    bounds[2 * i] = o;
    try {
      o = encoder.encode(value, scratch, o, meta);
      bounds[2 * i + 1] = o;
    } catch (err) {
      if (err instanceof LineOverflow) {
        bounds[2 * i + 1] = LINE_OVERFLOW;
        continue;
      }
      // Anything retriable (none is known on this path) fails the job: the batch is retried.
      if (err instanceof PgsinkError && err.retriable && !(err instanceof RecordError)) throw err;
      bounds[2 * i + 1] = LINE_FAILED;
      failures.push(
        err instanceof RecordError
          ? { at: i, source: err.source as EncodeFailure['source'], code: err.code, message: err.message, unexpected: false }
          : { at: i, source: 'internal', code: 'ENCODE_FAILED', message: errorMessage(err), unexpected: true },
      );
    }
  }
  const lines = new ArrayBuffer(o);
  new Uint8Array(lines).set(scratch.subarray(0, o));
  return { input: job.input, lines, bounds, failures };
}

parentPort!.on('message', ({ id, job }: ToWorker) => {
  let reply: FromWorker;
  try {
    const result = encodeJob(job);
    reply = { id, ok: true, result };
    parentPort!.postMessage(reply, [result.input, result.lines, result.bounds.buffer]);
  } catch (err) {
    reply = { id, ok: false, message: errorMessage(err) };
    parentPort!.postMessage(reply);
  }
});
