// RegistryClient against an injected fetch stub (no network): caching, request sharing,
// error classification and the request it sends.
import { describe, expect, it } from 'vitest';
import { RouteDecoder } from '../../src/avro/decoder.ts';
import { RegistryClient, type RegistryOptions } from '../../src/avro/registry.ts';
import { typeForSchema, type AvroSchema } from '../../src/avro/types.ts';
import { frame } from '../../src/avro/wire.ts';
import { PgsinkError, RecordError } from '../../src/util/errors.ts';

const SCHEMA: AvroSchema = {
  type: 'record',
  name: 'Ping',
  namespace: 'test',
  fields: [
    { name: 'n', type: 'long' },
    { name: 's', type: 'string' },
  ],
} as AvroSchema;
const pingType = typeForSchema(SCHEMA);

interface Call {
  url: string;
  headers: Record<string, string>;
  signal: AbortSignal | null | undefined;
}

type Reply = { status: number; body: string } | Error | Promise<{ status: number; body: string }>;

/** A fetch stub: answers from `reply(id, call number)` and records every call. */
function stubFetch(reply: (id: number, n: number) => Reply): { fetch: typeof fetch; calls: Call[] } {
  const calls: Call[] = [];
  const impl = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = input instanceof Request ? input.url : String(input);
    const headers = Object.fromEntries(new Headers(init?.headers).entries());
    calls.push({ url, headers, signal: init?.signal });
    const id = Number(/\/schemas\/ids\/(\d+)$/.exec(url)?.[1]);
    const r = await reply(id, calls.length);
    if (r instanceof Error) throw r;
    return new Response(r.body, {
      status: r.status,
      headers: { 'content-type': 'application/vnd.schemaregistry.v1+json' },
    });
  };
  return { fetch: impl as typeof fetch, calls };
}

const ok = (
  schema: unknown = SCHEMA,
  extra: Record<string, unknown> = {},
): { status: number; body: string } => ({
  status: 200,
  body: JSON.stringify({ schema: JSON.stringify(schema), ...extra }),
});

const client = (f: typeof fetch, opts: Partial<RegistryOptions> = {}): RegistryClient =>
  new RegistryClient({ url: 'http://registry.test:8081', timeoutMs: 1_000, fetch: f, ...opts });

async function rejected(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe('RegistryClient: success and caching', () => {
  it('fetches a schema by id and parses it with BigInt longs', async () => {
    const { fetch, calls } = stubFetch(() => ok());
    const reg = client(fetch);
    const t = await reg.load(7);
    expect(t.equals(pingType)).toBe(true);
    expect(t.fromBuffer(pingType.toBuffer({ n: 2n ** 62n, s: 'x' }))).toMatchObject({ n: 2n ** 62n });
    expect(calls).toHaveLength(1);
    expect(calls[0]!.url).toBe('http://registry.test:8081/schemas/ids/7');
  });

  it('caches: the second load and cached() need no request', async () => {
    const { fetch, calls } = stubFetch(() => ok());
    const reg = client(fetch);
    expect(reg.cached(7)).toBeUndefined();
    const first = await reg.load(7);
    const second = await reg.load(7);
    expect(second).toBe(first);
    expect(reg.cached(7)).toBe(first);
    expect(calls).toHaveLength(1);
  });

  it('caches per id', async () => {
    const { fetch, calls } = stubFetch(() => ok());
    const reg = client(fetch);
    await reg.load(1);
    await reg.load(2);
    await reg.load(1);
    expect(calls.map((c) => c.url.split('/').pop())).toEqual(['1', '2']);
  });

  it('concurrent loads of one id share a single request', async () => {
    const gate = deferred<{ status: number; body: string }>();
    const { fetch, calls } = stubFetch(() => gate.promise);
    const reg = client(fetch);
    const loads = [reg.load(3), reg.load(3), reg.load(3)];
    await Promise.resolve();
    gate.resolve(ok());
    const types = await Promise.all(loads);
    expect(calls).toHaveLength(1);
    expect(types[1]).toBe(types[0]);
    expect(types[2]).toBe(types[0]);
  });

  it('concurrent loads of different ids are separate requests', async () => {
    const { fetch, calls } = stubFetch(() => ok());
    const reg = client(fetch);
    await Promise.all([reg.load(1), reg.load(2), reg.load(1)]);
    expect(calls.map((c) => c.url.split('/').pop()).sort()).toEqual(['1', '2']);
  });

  it('accepts an explicit AVRO schemaType', async () => {
    const { fetch } = stubFetch(() => ok(SCHEMA, { schemaType: 'AVRO' }));
    expect((await client(fetch).load(1)).equals(pingType)).toBe(true);
  });
});

describe('RegistryClient: the request', () => {
  it('joins the id onto a base URL with or without a trailing slash, keeping its path', async () => {
    for (const [base, expected] of [
      ['http://r:8081', 'http://r:8081/schemas/ids/5'],
      ['http://r:8081/', 'http://r:8081/schemas/ids/5'],
      ['https://r.example/registry', 'https://r.example/registry/schemas/ids/5'],
      ['https://r.example/registry/', 'https://r.example/registry/schemas/ids/5'],
    ] as const) {
      const { fetch, calls } = stubFetch(() => ok());
      await client(fetch, { url: base }).load(5);
      expect(calls[0]!.url).toBe(expected);
    }
  });

  it('asks for the registry media type', async () => {
    const { fetch, calls } = stubFetch(() => ok());
    await client(fetch).load(1);
    expect(calls[0]!.headers['accept']).toContain('application/vnd.schemaregistry.v1+json');
  });

  it('sends basic auth when a username is configured', async () => {
    const { fetch, calls } = stubFetch(() => ok());
    await client(fetch, { username: 'alice', password: 's3cr:t' }).load(1);
    const header = calls[0]!.headers['authorization']!;
    expect(header).toBe(`Basic ${Buffer.from('alice:s3cr:t').toString('base64')}`);
    expect(Buffer.from(header.slice('Basic '.length), 'base64').toString()).toBe('alice:s3cr:t');
  });

  it('sends an empty password when only a username is set', async () => {
    const { fetch, calls } = stubFetch(() => ok());
    await client(fetch, { username: 'bob' }).load(1);
    expect(calls[0]!.headers['authorization']).toBe(`Basic ${Buffer.from('bob:').toString('base64')}`);
  });

  it('sends no authorization header without credentials', async () => {
    const { fetch, calls } = stubFetch(() => ok());
    await client(fetch).load(1);
    expect(calls[0]!.headers).not.toHaveProperty('authorization');
  });

  it('bounds the request with an abort signal', async () => {
    const { fetch, calls } = stubFetch(() => ok());
    await client(fetch, { timeoutMs: 50 }).load(1);
    expect(calls[0]!.signal).toBeInstanceOf(AbortSignal);
    expect(calls[0]!.signal!.aborted).toBe(false);
  });
});

describe('RegistryClient: errors', () => {
  it('404 is a RecordError UNKNOWN_SCHEMA_ID (the record is dead-lettered, not retried)', async () => {
    const { fetch } = stubFetch(() => ({
      status: 404,
      body: '{"error_code":40403,"message":"Schema not found"}',
    }));
    const err = await rejected(client(fetch).load(404));
    expect(err).toBeInstanceOf(RecordError);
    expect((err as RecordError).code).toBe('UNKNOWN_SCHEMA_ID');
    expect((err as RecordError).source).toBe('registry');
    expect((err as RecordError).retriable).toBe(false);
    expect((err as RecordError).message).toContain('404');
  });

  it.each([500, 502, 503, 504, 429])(
    'HTTP %i is retriable and not cached: the next load retries',
    async (status) => {
      const { fetch, calls } = stubFetch((_id, n) => (n === 1 ? { status, body: 'busy' } : ok()));
      const reg = client(fetch);
      const err = await rejected(reg.load(1));
      expect(err).toBeInstanceOf(PgsinkError);
      expect(err).not.toBeInstanceOf(RecordError);
      expect((err as PgsinkError).retriable).toBe(true);
      expect((err as PgsinkError).code).toBe(`HTTP_${status}`);
      expect(reg.cached(1)).toBeUndefined();
      expect((await reg.load(1)).equals(pingType)).toBe(true);
      expect(calls).toHaveLength(2);
    },
  );

  it('a network error is retriable REGISTRY_UNREACHABLE and not cached', async () => {
    const { fetch, calls } = stubFetch((_id, n) => (n === 1 ? new TypeError('fetch failed') : ok()));
    const reg = client(fetch);
    const err = await rejected(reg.load(1));
    expect(err).toBeInstanceOf(PgsinkError);
    expect((err as PgsinkError).code).toBe('REGISTRY_UNREACHABLE');
    expect((err as PgsinkError).retriable).toBe(true);
    expect((err as PgsinkError).source).toBe('registry');
    expect((err as PgsinkError).cause).toBeInstanceOf(TypeError);
    expect((err as PgsinkError).message).toContain('registry.test');
    await reg.load(1);
    expect(calls).toHaveLength(2);
  });

  it('a failure shared by concurrent loads is retried by the next load', async () => {
    const gate = deferred<{ status: number; body: string }>();
    const { fetch, calls } = stubFetch((_id, n) => (n === 1 ? gate.promise : ok()));
    const reg = client(fetch);
    const a = reg.load(1);
    const b = reg.load(1);
    gate.resolve({ status: 503, body: '' });
    expect(((await rejected(a)) as PgsinkError).code).toBe('HTTP_503');
    expect(((await rejected(b)) as PgsinkError).code).toBe('HTTP_503');
    expect(calls).toHaveLength(1);
    await reg.load(1);
    expect(calls).toHaveLength(2);
  });

  it('refused credentials are retriable (fix the secret, do not dead-letter)', async () => {
    for (const status of [401, 403]) {
      const { fetch } = stubFetch(() => ({ status, body: '' }));
      const err = await rejected(client(fetch, { username: 'u', password: 'bad' }).load(1));
      expect((err as PgsinkError).code).toBe(`HTTP_${status}`);
      expect((err as PgsinkError).retriable).toBe(true);
      expect((err as PgsinkError).message).not.toContain('bad');
    }
  });

  it('a non-Avro schema is a RecordError NOT_AVRO', async () => {
    const { fetch } = stubFetch(() => ({
      status: 200,
      body: JSON.stringify({ schemaType: 'PROTOBUF', schema: 'syntax = "proto3";' }),
    }));
    const err = await rejected(client(fetch).load(1));
    expect(err).toBeInstanceOf(RecordError);
    expect((err as RecordError).code).toBe('NOT_AVRO');
  });

  it('an invalid Avro schema is a RecordError INVALID_SCHEMA', async () => {
    const { fetch } = stubFetch(() =>
      ok({ type: 'record', name: 'X', fields: [{ name: 'a', type: 'no_such_type' }] }),
    );
    const err = await rejected(client(fetch).load(1));
    expect(err).toBeInstanceOf(RecordError);
    expect((err as RecordError).code).toBe('INVALID_SCHEMA');
  });

  it('an answer without a schema is retriable BAD_RESPONSE', async () => {
    const { fetch } = stubFetch(() => ({ status: 200, body: '{"subject":"x"}' }));
    const err = await rejected(client(fetch).load(1));
    expect((err as PgsinkError).code).toBe('BAD_RESPONSE');
    expect((err as PgsinkError).retriable).toBe(true);
  });

  // BUG (src/avro/registry.ts fetchSchema: `JSON.parse(body)` outside any try): a 200 whose
  // body is not JSON (a proxy's HTML page, a truncated answer) escapes as a bare SyntaxError
  // instead of a typed, retriable PgsinkError (src/util/errors.ts: every error crossing a
  // module boundary says whether retrying can help).
  it('a 200 whose body is not JSON is a retriable PgsinkError', async () => {
    const { fetch } = stubFetch(() => ({ status: 200, body: '<html>proxy login</html>' }));
    const err = await rejected(client(fetch).load(1));
    expect(err).toBeInstanceOf(PgsinkError);
    expect((err as PgsinkError).retriable).toBe(true);
  });
});

describe('RegistryClient with RouteDecoder', () => {
  it('dead-letters records of unknown ids, holds the batch while the registry is down', async () => {
    let down = true;
    const { fetch, calls } = stubFetch((id) =>
      down ? { status: 503, body: '' } : id === 404 ? { status: 404, body: '{"error_code":40403}' } : ok(),
    );
    const decoder = new RouteDecoder(pingType, client(fetch));
    const good = frame(1, pingType.toBuffer({ n: 1n, s: 'a' }));
    const unknown = frame(404, pingType.toBuffer({ n: 2n, s: 'b' }));

    const err = await rejected(decoder.prepare([good, unknown]));
    expect((err as PgsinkError).retriable).toBe(true);

    down = false;
    await decoder.prepare([good, unknown]);
    expect(decoder.decode(good)).toMatchObject({ n: 1, s: 'a' });
    expect(() => decoder.decode(unknown)).toThrow(RecordError);
    const before = calls.length;
    await decoder.prepare([good, unknown]);
    expect(calls.length).toBe(before);
  });
});

describe('RegistryClient: a 404 that is not the registry saying "schema not found"', () => {
  it('is retriable (a wrong URL path must not dead-letter every record)', async () => {
    const fetchImpl = (async () => new Response('<html>Not Found</html>', { status: 404 })) as typeof fetch;
    const c = new RegistryClient({ url: 'http://registry.invalid', timeoutMs: 1000, fetch: fetchImpl });
    const err = await c.load(5).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PgsinkError);
    expect(err).not.toBeInstanceOf(RecordError);
    expect((err as PgsinkError).retriable).toBe(true);
    expect((err as PgsinkError).code).toBe('HTTP_404');
  });
});
