// Writer schemas by id: from a Confluent-compatible Schema Registry (GET /schemas/ids/{id}),
// or from local files (offline mode). Each id is fetched once; concurrent look-ups of the
// same id share one request; a failed request is not cached, so the next look-up retries.
import { Agent, fetch as undiciFetch } from 'undici';
import { PgsinkError, RecordError } from '../util/errors.ts';
import { loadSchemaFile, parseSchemaText, type AvroType } from './types.ts';

export interface WriterSchemas {
  /** The cached writer type, without I/O; undefined when not loaded yet. */
  cached(id: number): AvroType | undefined;
  /**
   * Loads a writer type. Throws RecordError when the id does not exist (the record is
   * dead-lettered) and a retriable PgsinkError when the registry cannot be reached.
   */
  load(id: number): Promise<AvroType>;
}

export interface RegistryTls {
  ca?: string | undefined;
  cert?: string | undefined;
  key?: string | undefined;
  rejectUnauthorized: boolean;
}

export interface RegistryOptions {
  url: string;
  /** PEM contents (not paths) for https registries with a private CA or mutual TLS. */
  tls?: RegistryTls | undefined;
  username?: string | undefined;
  password?: string | undefined;
  timeoutMs: number;
  fetch?: typeof fetch;
}

export class RegistryClient implements WriterSchemas {
  private readonly types = new Map<number, AvroType>();
  private readonly pending = new Map<number, Promise<AvroType>>();
  private readonly authHeader: string | undefined;
  private readonly fetchImpl: typeof fetch;

  private readonly opts: RegistryOptions;

  constructor(opts: RegistryOptions) {
    this.opts = opts;
    this.authHeader =
      opts.username !== undefined
        ? `Basic ${Buffer.from(`${opts.username}:${opts.password ?? ''}`).toString('base64')}`
        : undefined;
    this.fetchImpl = opts.fetch ?? (opts.tls ? tlsFetch(opts.tls) : fetch);
  }

  cached(id: number): AvroType | undefined {
    return this.types.get(id);
  }

  /** Whether the registry answers as a Confluent-compatible one (GET /subjects), for `check --connect`. */
  async ping(): Promise<void> {
    const url = new URL('subjects', this.opts.url.endsWith('/') ? this.opts.url : `${this.opts.url}/`);
    const headers: Record<string, string> = {
      accept: 'application/vnd.schemaregistry.v1+json, application/json',
    };
    if (this.authHeader) headers['authorization'] = this.authHeader;
    let res: Response;
    try {
      res = await this.fetchImpl(url, { headers, signal: AbortSignal.timeout(this.opts.timeoutMs) });
    } catch (err) {
      throw new PgsinkError(
        'registry',
        `schema registry ${url.origin} unreachable: ${(err as Error).message}`,
        {
          code: 'REGISTRY_UNREACHABLE',
          retriable: true,
          cause: err,
        },
      );
    }
    const body = await res.text();
    let list: unknown;
    try {
      list = JSON.parse(body);
    } catch {
      list = undefined;
    }
    if (!res.ok || !Array.isArray(list))
      throw new PgsinkError(
        'registry',
        `schema registry ${url.origin} answered HTTP ${res.status} ${Array.isArray(list) ? '' : 'without a list of subjects '}to GET /subjects: is schemaRegistry.url a Confluent-compatible API (Apicurio: …/apis/ccompat/v7)?`,
        { code: `HTTP_${res.status}`, retriable: true },
      );
  }

  load(id: number): Promise<AvroType> {
    const hit = this.types.get(id);
    if (hit) return Promise.resolve(hit);
    let p = this.pending.get(id);
    if (!p) {
      p = this.fetchSchema(id).then(
        (t) => {
          this.types.set(id, t);
          this.pending.delete(id);
          return t;
        },
        (err: unknown) => {
          this.pending.delete(id);
          throw err;
        },
      );
      this.pending.set(id, p);
    }
    return p;
  }

  private async fetchSchema(id: number): Promise<AvroType> {
    const url = new URL(
      `schemas/ids/${id}`,
      this.opts.url.endsWith('/') ? this.opts.url : `${this.opts.url}/`,
    );
    const headers: Record<string, string> = {
      accept: 'application/vnd.schemaregistry.v1+json, application/json',
    };
    if (this.authHeader) headers['authorization'] = this.authHeader;
    let res: Response;
    try {
      res = await this.fetchImpl(url, { headers, signal: AbortSignal.timeout(this.opts.timeoutMs) });
    } catch (err) {
      throw new PgsinkError(
        'registry',
        `schema registry ${url.origin} unreachable: ${(err as Error).message}`,
        {
          code: 'REGISTRY_UNREACHABLE',
          retriable: true,
          cause: err,
        },
      );
    }
    const body = await res.text();
    // Only the registry's own "schema not found" (40403) condemns the record; any other 404
    // (a wrong URL path, a proxy) is a deployment problem to wait out, not a data error.
    if (res.status === 404 && /"error_code"\s*:\s*40403\b/.test(body)) {
      throw new RecordError('registry', 'UNKNOWN_SCHEMA_ID', `schema id ${id} is not in the registry`);
    }
    if (res.status === 401 || res.status === 403) {
      throw new PgsinkError('registry', `schema registry refused the credentials (HTTP ${res.status})`, {
        code: `HTTP_${res.status}`,
        retriable: true,
      });
    }
    if (!res.ok) {
      throw new PgsinkError('registry', `schema registry answered HTTP ${res.status} for id ${id}`, {
        code: `HTTP_${res.status}`,
        retriable: true,
      });
    }
    let parsed: { schema?: string; schemaType?: string };
    try {
      parsed = JSON.parse(body) as { schema?: string; schemaType?: string };
    } catch (err) {
      throw new PgsinkError('registry', `schema registry answer for id ${id} is not JSON`, {
        code: 'BAD_RESPONSE',
        retriable: true,
        cause: err,
      });
    }
    if (parsed.schemaType && parsed.schemaType !== 'AVRO') {
      throw new RecordError('registry', 'NOT_AVRO', `schema id ${id} is ${parsed.schemaType}, not AVRO`);
    }
    if (typeof parsed.schema !== 'string') {
      throw new PgsinkError('registry', `schema registry answer for id ${id} has no schema`, {
        code: 'BAD_RESPONSE',
        retriable: true,
      });
    }
    try {
      return parseSchemaText(parsed.schema, `registry schema id ${id}`);
    } catch (err) {
      throw new RecordError('registry', 'INVALID_SCHEMA', (err as Error).message, err);
    }
  }
}

/** Node's fetch takes no CA; undici's, with its own Agent, does. */
function tlsFetch(tls: RegistryTls): typeof fetch {
  const dispatcher = new Agent({
    connect: {
      rejectUnauthorized: tls.rejectUnauthorized,
      ...(tls.ca ? { ca: tls.ca } : {}),
      ...(tls.cert ? { cert: tls.cert } : {}),
      ...(tls.key ? { key: tls.key } : {}),
    },
  });
  return ((input: string | URL, init?: RequestInit) =>
    undiciFetch(input, {
      ...(init as Parameters<typeof undiciFetch>[1]),
      dispatcher,
    })) as unknown as typeof fetch;
}

/** Offline: ids map to .avsc files; with no map at all, every id is the reader schema. */
export class LocalSchemas implements WriterSchemas {
  private readonly types = new Map<number, AvroType>();

  private readonly fallback: AvroType | undefined;

  constructor(files: Record<string, string>, fallback: AvroType | undefined) {
    this.fallback = fallback;
    for (const [id, file] of Object.entries(files)) this.types.set(Number(id), loadSchemaFile(file));
  }

  cached(id: number): AvroType | undefined {
    return this.types.get(id) ?? this.fallback;
  }

  load(id: number): Promise<AvroType> {
    const t = this.cached(id);
    if (t) return Promise.resolve(t);
    return Promise.reject(
      new RecordError(
        'avro',
        'UNKNOWN_SCHEMA_ID',
        `schema id ${id} is not in the route's schemaIds and no registry is configured`,
      ),
    );
  }
}
