// Typed errors. Every error that crosses a module boundary says whether retrying can help
// (`retriable`) and where it came from (a SQLSTATE, a Kafka error type, or our own code).

export type ErrorSource = 'config' | 'postgres' | 'kafka' | 'avro' | 'registry' | 'internal';

export interface PgsinkErrorOptions {
  code: string;
  retriable: boolean;
  cause?: unknown;
}

export class PgsinkError extends Error {
  readonly source: ErrorSource;
  readonly code: string;
  readonly retriable: boolean;

  constructor(source: ErrorSource, message: string, opts: PgsinkErrorOptions) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.source = source;
    this.code = opts.code;
    this.retriable = opts.retriable;
  }
}

/** Bad configuration: never retriable; the CLI exits with code 2. */
export class ConfigError extends PgsinkError {
  constructor(message: string, cause?: unknown) {
    super('config', message, { code: 'CONFIG', retriable: false, cause });
  }
}

/** A record that cannot be decoded or mapped: it is dead-lettered, never retried. */
export class RecordError extends PgsinkError {
  constructor(
    source: 'avro' | 'registry' | 'kafka' | 'postgres' | 'internal',
    code: string,
    message: string,
    cause?: unknown,
  ) {
    super(source, message, { code, retriable: false, cause });
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
