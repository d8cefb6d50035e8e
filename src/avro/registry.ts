// Writer schemas by id: from a Confluent-compatible Schema Registry (GET /schemas/ids/{id}),
// or from local files (offline mode). Each id is fetched once; concurrent look-ups of the
// same id share one request; a failed request is not cached, so the next look-up retries.
//
// Schema references (a writer schema that uses named types of other subjects): the id's answer
// lists `references: [{name, subject, version}]`; each is fetched from
// GET /subjects/{subject}/versions/{version} (with deleted=true, as Confluent's own client does:
// records written while a referenced version existed stay readable after a soft delete), whose
// answer may list references of its own. They are resolved depth first, each (subject, version)
// once per id however often it is used, and parsed dependencies first into one set of named
// types, so that every name is known when the schema using it is parsed. Versions are
// immutable, so each one is cached for good (and concurrent look-ups share a request); the
// parsed types are not shared between ids, whose names may differ in meaning.
//
// What a reference failure means for the records (README "Schema references"):
// - the registry cannot be asked (down, 5xx, a 404 that is not the registry's own, refused
//   credentials): retriable; the partition is held and retried, and reported stuck;
// - the registry says the subject or version does not exist (40401, 40402, 40403): the record is
//   dead-lettered with UNKNOWN_SCHEMA_REFERENCE — the id's schema names a version that is not
//   there, which waiting will not change (like UNKNOWN_SCHEMA_ID for the id itself);
// - the references form a cycle: dead-lettered with SCHEMA_REFERENCE_CYCLE, naming the chain.
import { Agent, fetch as undiciFetch } from 'undici';
import { PgsinkError, RecordError } from '../util/errors.ts';
import { loadSchemaFile, namedTypes, parseSchemaText, type AvroType, type NamedTypes } from './types.ts';

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

/** A Confluent schema reference: the named type `name` is defined by subject's version. */
export interface SchemaReference {
  name: string;
  subject: string;
  version: number | string;
}

/** A registered schema as the registry answers it (by id, or by subject and version). */
interface Registered {
  schema: string;
  references: SchemaReference[];
  /** Where it came from, for messages: "schema id 7", "subject common-value version 2". */
  label: string;
}

const refKey = (r: SchemaReference): string => `${r.subject}\u0000${String(r.version)}`;
const refLabel = (r: SchemaReference): string => `subject ${r.subject} version ${String(r.version)}`;

export class RegistryClient implements WriterSchemas {
  private readonly types = new Map<number, AvroType>();
  private readonly pending = new Map<number, Promise<AvroType>>();
  /** Referenced subject versions (immutable), and the look-ups in flight. */
  private readonly versions = new Map<string, Registered>();
  private readonly pendingVersions = new Map<string, Promise<Registered>>();
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

  /** One GET with the registry's headers and timeout; unreachable is retriable. */
  private async request(url: URL): Promise<{ res: Response; body: string }> {
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
    return { res, body: await res.text() };
  }

  /** Whether the registry answers as a Confluent-compatible one (GET /subjects), for `check --connect`. */
  async ping(): Promise<void> {
    const url = new URL('subjects', this.opts.url.endsWith('/') ? this.opts.url : `${this.opts.url}/`);
    const { res, body } = await this.request(url);
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
    const root = await this.get(`schemas/ids/${id}`, `schema id ${id}`, (body) =>
      /"error_code"\s*:\s*40403\b/.test(body)
        ? new RecordError('registry', 'UNKNOWN_SCHEMA_ID', `schema id ${id} is not in the registry`)
        : undefined,
    );
    // Dependencies first, each once: the order in which their named types must be known.
    const closure = new Map<string, Registered>();
    await this.resolve(root, [root.label], new Set(), closure);
    const named: NamedTypes = namedTypes();
    let current = root.label;
    try {
      for (const dep of closure.values()) {
        current = dep.label;
        parseSchemaText(dep.schema, `registry ${dep.label}`, named);
      }
      current = root.label;
      return parseSchemaText(root.schema, `registry ${root.label}`, named);
    } catch (err) {
      const via = current === root.label ? '' : ` (referenced by ${root.label})`;
      throw new RecordError('registry', 'INVALID_SCHEMA', `${(err as Error).message}${via}`, err);
    }
  }

  /** Adds the references of `of` to `out`, depth first, after their own; refuses cycles. */
  private async resolve(
    of: Registered,
    chain: string[],
    onPath: Set<string>,
    out: Map<string, Registered>,
  ): Promise<void> {
    for (const ref of of.references) {
      const key = refKey(ref);
      if (onPath.has(key)) {
        throw new RecordError(
          'registry',
          'SCHEMA_REFERENCE_CYCLE',
          `schema references form a cycle: ${[...chain, refLabel(ref)].join(' → ')}`,
        );
      }
      if (out.has(key)) continue;
      const dep = await this.version(ref, chain);
      onPath.add(key);
      await this.resolve(dep, [...chain, dep.label], onPath, out);
      onPath.delete(key);
      out.set(key, dep);
    }
  }

  /** A referenced subject version: cached for good, concurrent look-ups share one request. */
  private version(ref: SchemaReference, chain: readonly string[]): Promise<Registered> {
    const key = refKey(ref);
    const hit = this.versions.get(key);
    if (hit) return Promise.resolve(hit);
    let p = this.pendingVersions.get(key);
    if (!p) {
      const label = refLabel(ref);
      const path = `subjects/${encodeURIComponent(ref.subject)}/versions/${encodeURIComponent(String(ref.version))}?deleted=true`;
      p = this.get(path, label, (body) =>
        /"error_code"\s*:\s*4040[123]\b/.test(body)
          ? new RecordError(
              'registry',
              'UNKNOWN_SCHEMA_REFERENCE',
              `${label} (type ${ref.name}, referenced by ${chain.join(' → ')}) is not in the registry`,
            )
          : undefined,
      ).then(
        (r) => {
          this.versions.set(key, r);
          this.pendingVersions.delete(key);
          return r;
        },
        (err: unknown) => {
          this.pendingVersions.delete(key);
          throw err;
        },
      );
      this.pendingVersions.set(key, p);
    }
    return p;
  }

  /**
   * One GET that answers a registered schema. `notFound` turns the body of a 404 into the
   * record's error when it is the registry's own "not found"; any other failure is retriable.
   */
  private async get(
    path: string,
    label: string,
    notFound: (body: string) => RecordError | undefined,
  ): Promise<Registered> {
    const url = new URL(path, this.opts.url.endsWith('/') ? this.opts.url : `${this.opts.url}/`);
    const { res, body } = await this.request(url);
    // Only the registry's own "not found" condemns the record; any other 404 (a wrong URL
    // path, a proxy) is a deployment problem to wait out, not a data error.
    const gone = res.status === 404 ? notFound(body) : undefined;
    if (gone) throw gone;
    if (res.status === 401 || res.status === 403) {
      throw new PgsinkError('registry', `schema registry refused the credentials (HTTP ${res.status})`, {
        code: `HTTP_${res.status}`,
        retriable: true,
      });
    }
    if (!res.ok) {
      throw new PgsinkError('registry', `schema registry answered HTTP ${res.status} for ${label}`, {
        code: `HTTP_${res.status}`,
        retriable: true,
      });
    }
    let parsed: { schema?: unknown; schemaType?: unknown; references?: unknown };
    try {
      parsed = JSON.parse(body) as typeof parsed;
    } catch (err) {
      throw new PgsinkError('registry', `schema registry answer for ${label} is not JSON`, {
        code: 'BAD_RESPONSE',
        retriable: true,
        cause: err,
      });
    }
    if (parsed.schemaType !== undefined && parsed.schemaType !== null && parsed.schemaType !== 'AVRO') {
      throw new RecordError('registry', 'NOT_AVRO', `${label} is ${String(parsed.schemaType)}, not AVRO`);
    }
    if (typeof parsed.schema !== 'string') {
      throw new PgsinkError('registry', `schema registry answer for ${label} has no schema`, {
        code: 'BAD_RESPONSE',
        retriable: true,
      });
    }
    return { schema: parsed.schema, references: references(parsed.references, label), label };
  }
}

/** The references of an answer; a malformed list is the registry's answer problem (retried). */
function references(raw: unknown, label: string): SchemaReference[] {
  if (raw === undefined || raw === null) return [];
  const bad = () =>
    new PgsinkError('registry', `schema registry answer for ${label} has malformed references`, {
      code: 'BAD_RESPONSE',
      retriable: true,
    });
  if (!Array.isArray(raw)) throw bad();
  return raw.map((r: unknown) => {
    const { name, subject, version } = (r ?? {}) as Record<string, unknown>;
    if (
      typeof name !== 'string' ||
      typeof subject !== 'string' ||
      !(typeof version === 'number' || typeof version === 'string')
    )
      throw bad();
    return { name, subject, version };
  });
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

  /** `references`: .avsc files whose named types the schema files use, loaded first, in order. */
  constructor(
    files: Record<string, string>,
    fallback: AvroType | undefined,
    references: readonly string[] = [],
  ) {
    this.fallback = fallback;
    for (const [id, file] of Object.entries(files))
      this.types.set(Number(id), loadSchemaFile(file, references));
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
