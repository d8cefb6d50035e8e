// Classifies what Postgres (or the connection to it) said, for one rule (DESIGN.md invariant
// 5): an outage is waited out, a record's fault is dead-lettered, and nothing retries forever
// on a record.
//
// - outage: connection loss, server shutdown or overload, serialization failures, deadlocks,
//   locks not available, a read-only server (a failover in progress): classes 08, 25, 40,
//   53, 55, 57, 58 and socket errors. Retried with backoff, the partition paused.
// - environment: the statement cannot run whatever the rows are — a missing table or column,
//   a privilege, an unsupported feature, a configuration limit: classes 0A, 28, 2B, 2D, 34,
//   3B, 3D, 3F, 42, 54, F0, HV. Retried like an outage (fixing the table or the grant
//   resumes), reported as a stuck partition; never dead-lettered.
// - data: the row's fault — classes 22 (data exception), 23 (integrity), 09, 20, 21, 27, 2F,
//   38, 39, 44 and P0 (raised by a trigger or a function), and any error but an outage for
//   which Postgres names the failing COPY line (an index row too large, a trigger's error).
//   Isolated (src/sink/isolate.ts): the refused rows are dead-lettered — unless every row is
//   refused with an environment class, which is then the deployment's and held.
// - unknown: anything else (class XX, an error without a SQLSTATE). Retried; when it repeats
//   on the same records a bounded number of times while Postgres answers other queries, the
//   pipeline treats it as data (src/pipeline/sink-service.ts).
import { PgsinkError } from '../util/errors.ts';

export type FailureKind = 'data' | 'outage' | 'environment' | 'unknown';

export const OUTAGE_CLASSES: ReadonlySet<string> = new Set(['08', '25', '40', '53', '55', '57', '58']);
export const ENVIRONMENT_CLASSES: ReadonlySet<string> = new Set([
  '0A',
  '28',
  '2B',
  '2D',
  '34',
  '3B',
  '3D',
  '3F',
  '42',
  '54',
  'F0',
  'HV',
]);
const DATA_CLASSES = new Set(['22', '23', '09', '20', '21', '27', '2F', '38', '39', '44', 'P0']);
const NET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'EAI_AGAIN',
  'ENETUNREACH',
  'ECONNABORTED',
  'ERR_STREAM_PREMATURE_CLOSE',
]);
export interface PgErrorFields {
  code?: string;
  message?: string;
  detail?: string;
  where?: string;
  column?: string;
  constraint?: string;
}

export function sqlstateOf(err: unknown): string | undefined {
  const code = (err as PgErrorFields | undefined)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

export function classifyPgError(err: unknown): FailureKind {
  const state = sqlstateOf(err);
  if (state) {
    const cls = state.slice(0, 2);
    // A binary COPY field shorter than its column's type reads ("insufficient data left in
    // message") is the row's bytes, not the connection: the table was altered under the encoders.
    if (state === '08P01' && copyLineOf(err) !== undefined) return 'data';
    if (OUTAGE_CLASSES.has(cls)) return 'outage';
    // A COPY line named: something about that row (an index row too large, a trigger that
    // raises); isolation tells it from the deployment's fault (every row failing alike).
    if (DATA_CLASSES.has(cls) || copyLineOf(err) !== undefined) return 'data';
    if (ENVIRONMENT_CLASSES.has(cls)) return 'environment';
    return 'unknown';
  }
  const code = (err as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string' && NET_CODES.has(code)) return 'outage';
  const msg = err instanceof Error ? err.message : String(err);
  if (
    /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|not queryable/i.test(
      msg,
    )
  ) {
    return 'outage';
  }
  return 'unknown';
}

/** 1-based line of the COPY input that failed, from the error context ("COPY t, line 3..."). */
export function copyLineOf(err: unknown): number | undefined {
  const where = (err as PgErrorFields | undefined)?.where;
  // The table name may hold a comma: the line number follows the first ", line ".
  const m = typeof where === 'string' ? /^COPY .*?, line (\d+)/m.exec(where) : null;
  return m ? Number(m[1]) : undefined;
}

export function describePgError(err: unknown): string {
  const e = err as PgErrorFields;
  const parts = [e.message ?? String(err)];
  if (e.detail) parts.push(`detail: ${e.detail}`);
  if (e.where) parts.push(`where: ${e.where}`);
  return parts.join('; ');
}

/** A failed flush: its SQLSTATE (or socket code), and what kind of failure it is. */
export class SinkError extends PgsinkError {
  readonly kind: FailureKind;

  constructor(message: string, code: string, kind: FailureKind, cause: unknown) {
    super('postgres', message, { code, retriable: kind !== 'data', cause });
    this.kind = kind;
  }
}

/** Wraps a Postgres failure in a typed error with its SQLSTATE, kind and retriability. */
export function sinkError(err: unknown, context: string): PgsinkError {
  if (err instanceof PgsinkError) return err;
  const code = sqlstateOf(err) ?? (err as { code?: string }).code ?? 'UNKNOWN';
  return new SinkError(`${context}: ${describePgError(err)}`, code, classifyPgError(err), err);
}
