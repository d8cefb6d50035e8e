// Classifies what Postgres (or the connection to it) said. Data errors isolate and
// dead-letter the records that caused them; everything else is retried with the
// partition paused, because it is not the records' fault.
import { PgsinkError } from '../util/errors.ts';

export type FailureKind = 'data' | 'outage' | 'other';

const OUTAGE_CLASSES = new Set(['08', '40', '53', '57', '58']);
const DATA_CLASSES = new Set(['22', '23']);
const NET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'EAI_AGAIN',
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
    if (DATA_CLASSES.has(cls)) return 'data';
    if (OUTAGE_CLASSES.has(cls)) return 'outage';
    return 'other';
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
  return 'other';
}

/** 1-based line of the COPY input that failed, from the error context ("COPY t, line 3..."). */
export function copyLineOf(err: unknown): number | undefined {
  const where = (err as PgErrorFields | undefined)?.where;
  const m = typeof where === 'string' ? /COPY [^,]+, line (\d+)/.exec(where) : null;
  return m ? Number(m[1]) : undefined;
}

export function describePgError(err: unknown): string {
  const e = err as PgErrorFields;
  const parts = [e.message ?? String(err)];
  if (e.detail) parts.push(`detail: ${e.detail}`);
  if (e.where) parts.push(`where: ${e.where}`);
  return parts.join('; ');
}

/** Wraps a Postgres failure in a typed error with its SQLSTATE and retriability. */
export function sinkError(err: unknown, context: string): PgsinkError {
  if (err instanceof PgsinkError) return err;
  const kind = classifyPgError(err);
  return new PgsinkError('postgres', `${context}: ${describePgError(err)}`, {
    code: sqlstateOf(err) ?? (err as { code?: string }).code ?? 'UNKNOWN',
    retriable: kind !== 'data',
    cause: err,
  });
}
