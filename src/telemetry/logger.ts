// Structured JSON logs. Secrets never reach a log line: known secret fields are censored by
// path, and connection URLs are logged only through redactUrl/redactConfig.
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

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'pgsink' },
      redact: { paths: REDACT_PATHS, censor: '***' },
      formatters: { level: (label) => ({ level: label }) },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination ?? pino.destination({ fd: 2, sync: false }),
  );
}
