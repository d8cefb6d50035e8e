// Structured JSON logs. Secrets never reach a log line: known secret fields are censored by
// path, and connection URLs are logged only through redactUrl/redactConfig. As a second line
// of defence, a `url` field logged raw (a whole config, by mistake) loses its password here.
import pino, { type Logger } from 'pino';

export type { Logger };

export const REDACT_PATHS = [
  'password',
  '*.password',
  '*.*.password',
  'sasl',
  '*.sasl',
  '*.*.sasl',
  'ssl.key',
  '*.ssl.key',
  'connectionString',
  '*.connectionString',
  'authorization',
  '*.authorization',
  '*.headers.authorization',
];

/** Fields holding URLs: only the password part (and secret-looking query values) is masked. */
export const URL_PATHS = ['url', '*.url', '*.*.url'];

const CENSORED = '***';

/** Masks `user:password@` and secret-looking query parameters; the rest stays readable. */
export function maskUrl(url: string): string {
  // Up to the last '@': an unencoded '#', '/' or '?' in a password must not end the match.
  const masked = url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/?#@]*):.*@/is, `$1:${CENSORED}@`);
  return masked.replace(/([?&][^=&#]*(?:pass|secret|key|token)[^=&#]*=)[^&#]*/gi, `$1${CENSORED}`);
}

function censor(value: unknown, path: string[]): unknown {
  if (path[path.length - 1] === 'url') return typeof value === 'string' ? maskUrl(value) : CENSORED;
  return CENSORED;
}

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'pgsink' },
      redact: { paths: [...REDACT_PATHS, ...URL_PATHS], censor },
      formatters: { level: (label) => ({ level: label }) },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination ?? pino.destination({ fd: 2, sync: false }),
  );
}
