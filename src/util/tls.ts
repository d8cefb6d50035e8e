// Reads TLS files named in the config, with errors that name the file and the key.
import { readFileSync } from 'node:fs';
import { ConfigError } from './errors.ts';

export function readTlsFile(path: string, key: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`${key}: cannot read ${path}: ${(err as Error).message}`, err);
  }
}

/** Node's codes for a certificate that does not verify (not for a connection that drops). */
const CERTIFICATE_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'HOSTNAME_MISMATCH',
]);

export function isCertificateError(err: unknown, depth = 0): boolean {
  if (!err || depth >= 5) return false;
  const e = err as { code?: unknown; cause?: unknown; originalError?: unknown; errors?: unknown };
  if (typeof e.code === 'string' && CERTIFICATE_CODES.has(e.code)) return true;
  // An aggregate (one error per broker tried, as @platformatic/kafka's MultipleErrors) counts
  // when one of its errors does.
  if (Array.isArray(e.errors) && e.errors.some((x) => isCertificateError(x, depth + 1))) return true;
  return isCertificateError(e.cause ?? e.originalError, depth + 1);
}
