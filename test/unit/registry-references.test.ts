// Confluent schema references in RegistryClient (against an injected fetch that serves both
// endpoints from memory, as registry.test.ts does) and offline (.avsc files): nested references,
// one used twice, caching and shared look-ups, cycles, missing subjects or versions, outages.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RegistryClient, LocalSchemas } from '../../src/avro/registry.ts';
import { loadSchemaFile, typeForSchema, type AvroSchema } from '../../src/avro/types.ts';
import { ConfigError, PgsinkError, RecordError } from '../../src/util/errors.ts';

const MONEY = {
  type: 'record',
  name: 'Money',
  namespace: 'com.acme',
  fields: [
    { name: 'units', type: 'long' },
    { name: 'currency', type: { type: 'enum', name: 'Currency', symbols: ['EUR', 'USD'] } },
  ],
};
const ADDRESS = {
  type: 'record',
  name: 'Address',
  namespace: 'com.acme',
  fields: [
    { name: 'city', type: 'string' },
    { name: 'since', type: { type: 'long', logicalType: 'timestamp-micros' } },
  ],
};
// Level 2: uses Address (twice).
const CUSTOMER = {
  type: 'record',
  name: 'Customer',
  namespace: 'com.acme',
  fields: [
    { name: 'name', type: 'string' },
    { name: 'home', type: 'Address' },
    { name: 'work', type: ['null', 'com.acme.Address'], default: null },
  ],
};
// The writer: uses Customer (which uses Address), Money, and Address again directly.
const ORDER = {
  type: 'record',
  name: 'Order',
  namespace: 'com.acme.orders',
  fields: [
    { name: 'id', type: 'long' },
    { name: 'customer', type: 'com.acme.Customer' },
    { name: 'total', type: 'com.acme.Money' },
    { name: 'ship_to', type: 'com.acme.Address' },
  ],
};
/** The same schema with every type inline: what the references must amount to. */
const ORDER_INLINE = {
  ...ORDER,
  fields: [
    { name: 'id', type: 'long' },
    {
      name: 'customer',
      type: {
        ...CUSTOMER,
        fields: [CUSTOMER.fields[0], { name: 'home', type: ADDRESS }, CUSTOMER.fields[2]],
      },
    },
    { name: 'total', type: MONEY },
    { name: 'ship_to', type: 'com.acme.Address' },
  ],
};
const inlineType = typeForSchema(ORDER_INLINE as AvroSchema);

const ref = (name: string, subject: string, version: number) => ({ name, subject, version });
const REFS = {
  order: [
    ref('com.acme.Customer', 'customer', 1),
    ref('com.acme.Money', 'money', 3),
    ref('com.acme.Address', 'address', 2),
  ],
  customer: [ref('com.acme.Address', 'address', 2)],
};

interface Registered {
  schema: unknown;
  references?: unknown;
}

/** An in-memory registry: ids and subject versions; `hold` delays answers to test sharing. */
function memoryRegistry(
  ids: Record<number, Registered>,
  subjects: Record<string, Record<number, Registered>>,
  opts: { failing?: Set<string>; hold?: Promise<void>; down?: { yes: boolean } } = {},
) {
  const calls: string[] = [];
  const json = (status: number, body: unknown) =>
    new Response(JSON.stringify(body), {
      status,
      headers: { 'content-type': 'application/vnd.schemaregistry.v1+json' },
    });
  const impl = async (input: string | URL | Request): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    calls.push(url.pathname + url.search);
    if (opts.hold) await opts.hold;
    if (opts.down?.yes) throw new TypeError('fetch failed');
    const id = /\/schemas\/ids\/(\d+)$/.exec(url.pathname);
    if (id) {
      const r = ids[Number(id[1])];
      if (!r) return json(404, { error_code: 40403, message: 'Schema not found' });
      return json(200, {
        schema: JSON.stringify(r.schema),
        ...(r.references ? { references: r.references } : {}),
      });
    }
    const sv = /\/subjects\/([^/]+)\/versions\/([^/]+)$/.exec(url.pathname);
    if (sv) {
      const subject = decodeURIComponent(sv[1]!);
      if (opts.failing?.has(subject)) return new Response('<html>bad gateway</html>', { status: 502 });
      const versions = subjects[subject];
      if (!versions) return json(404, { error_code: 40401, message: 'Subject not found' });
      const r = versions[Number(sv[2])];
      if (!r) return json(404, { error_code: 40402, message: 'Version not found' });
      return json(200, {
        subject,
        version: Number(sv[2]),
        id: 1,
        schema: JSON.stringify(r.schema),
        ...(r.references ? { references: r.references } : {}),
      });
    }
    return new Response('not found', { status: 404 });
  };
  return { fetch: impl as typeof fetch, calls };
}

const SUBJECTS = {
  customer: { 1: { schema: CUSTOMER, references: REFS.customer } },
  money: { 3: { schema: MONEY } },
  address: { 2: { schema: ADDRESS } },
};

const client = (f: typeof fetch) =>
  new RegistryClient({ url: 'http://registry.test/api/ccompat/v7', timeoutMs: 1_000, fetch: f });

async function rejected(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

const sample = {
  id: 2n ** 60n + 1n,
  customer: { name: 'Ada', home: { city: 'Zürich', since: 1_700_000_000_000_000 }, work: null },
  total: { units: -(2n ** 62n), currency: 'EUR' },
  ship_to: { city: 'Bern', since: -1 },
};

describe('RegistryClient: schema references', () => {
  it('resolves nested references (two levels, one type used twice) into the schema they amount to', async () => {
    const { fetch, calls } = memoryRegistry({ 10: { schema: ORDER, references: REFS.order } }, SUBJECTS);
    const t = await client(fetch).load(10);
    expect(t.equals(inlineType)).toBe(true);
    expect(JSON.stringify(t.schema({ exportAttrs: true }))).toBe(
      JSON.stringify(inlineType.schema({ exportAttrs: true })),
    );
    // BigInt longs (beyond 2^53, in referenced types too) and the logical type kept as is.
    const bytes = inlineType.toBuffer(sample);
    expect(t.fromBuffer(bytes)).toEqual(sample);
    // Each subject version once, though address is used by the id and by customer; deleted
    // versions are asked for too, under the registry's base path.
    expect(calls).toEqual([
      '/api/ccompat/v7/schemas/ids/10',
      '/api/ccompat/v7/subjects/customer/versions/1?deleted=true',
      '/api/ccompat/v7/subjects/address/versions/2?deleted=true',
      '/api/ccompat/v7/subjects/money/versions/3?deleted=true',
    ]);
  });

  it('caches subject versions across ids, and ids themselves', async () => {
    const { fetch, calls } = memoryRegistry(
      {
        10: { schema: ORDER, references: REFS.order },
        11: { schema: CUSTOMER, references: REFS.customer },
      },
      SUBJECTS,
    );
    const reg = client(fetch);
    await reg.load(10);
    const n = calls.length;
    const customer = await reg.load(11);
    expect(calls.slice(n)).toEqual(['/api/ccompat/v7/schemas/ids/11']);
    expect(customer.name).toBe('com.acme.Customer');
    await reg.load(10);
    await reg.load(11);
    expect(calls.length).toBe(n + 1);
  });

  it('concurrent look-ups of ids that share a reference share its request', async () => {
    let release!: () => void;
    const hold = new Promise<void>((r) => (release = r));
    const { fetch, calls } = memoryRegistry(
      {
        10: { schema: ORDER, references: REFS.order },
        12: { schema: ORDER, references: REFS.order },
      },
      SUBJECTS,
      { hold },
    );
    const reg = client(fetch);
    const both = Promise.all([reg.load(10), reg.load(12)]);
    await new Promise((r) => setTimeout(r, 10));
    release();
    const [a, b] = await both;
    expect(a.equals(b)).toBe(true);
    expect(calls.filter((c) => c.includes('/subjects/customer/')).length).toBe(1);
    expect(calls.filter((c) => c.includes('/subjects/address/')).length).toBe(1);
  });

  it('refuses a cycle with SCHEMA_REFERENCE_CYCLE, naming the chain (the record is dead-lettered)', async () => {
    const { fetch } = memoryRegistry(
      { 20: { schema: ORDER, references: [ref('com.acme.Customer', 'a', 1)] } },
      {
        a: { 1: { schema: CUSTOMER, references: [ref('com.acme.Address', 'b', 1)] } },
        b: { 1: { schema: ADDRESS, references: [ref('com.acme.Customer', 'a', 1)] } },
      },
    );
    const err = await rejected(client(fetch).load(20));
    expect(err).toBeInstanceOf(RecordError);
    expect((err as RecordError).code).toBe('SCHEMA_REFERENCE_CYCLE');
    expect((err as Error).message).toBe(
      'schema references form a cycle: schema id 20 → subject a version 1 → subject b version 1 → subject a version 1',
    );
  });

  it('a subject or version the registry does not have is UNKNOWN_SCHEMA_REFERENCE (dead letter), asked again next time', async () => {
    const subjects: Record<string, Record<number, Registered>> = { ...SUBJECTS, money: {} };
    const { fetch, calls } = memoryRegistry(
      {
        30: { schema: ORDER, references: REFS.order },
        31: { schema: CUSTOMER, references: [ref('com.acme.Address', 'gone', 1)] },
      },
      subjects,
    );
    const reg = client(fetch);
    const version = await rejected(reg.load(30));
    expect(version).toBeInstanceOf(RecordError);
    expect((version as RecordError).code).toBe('UNKNOWN_SCHEMA_REFERENCE');
    expect((version as Error).message).toBe(
      'subject money version 3 (type com.acme.Money, referenced by schema id 30) is not in the registry',
    );
    const subject = await rejected(reg.load(31));
    expect((subject as RecordError).code).toBe('UNKNOWN_SCHEMA_REFERENCE');
    expect((subject as Error).message).toContain('subject gone version 1');
    // Registered meanwhile: the next look-up finds it.
    subjects['money'] = { 3: { schema: MONEY } };
    const n = calls.length;
    expect((await reg.load(30)).equals(inlineType)).toBe(true);
    expect(calls.slice(n)).toContain('/api/ccompat/v7/subjects/money/versions/3?deleted=true');
  });

  it('a reference the registry cannot serve now is retriable (the partition is held), and not cached', async () => {
    const failing = new Set(['address']);
    const down = { yes: false };
    const { fetch } = memoryRegistry({ 40: { schema: ORDER, references: REFS.order } }, SUBJECTS, {
      failing,
      down,
    });
    const reg = client(fetch);
    const bad = await rejected(reg.load(40));
    expect(bad).toBeInstanceOf(PgsinkError);
    expect(bad).not.toBeInstanceOf(RecordError);
    expect(bad).toMatchObject({ code: 'HTTP_502', retriable: true });
    expect((bad as Error).message).toContain('subject address version 2');
    failing.clear();
    down.yes = true;
    expect(await rejected(reg.load(40))).toMatchObject({ code: 'REGISTRY_UNREACHABLE', retriable: true });
    down.yes = false;
    expect((await reg.load(40)).equals(inlineType)).toBe(true);
  });

  it('malformed references are a retriable BAD_RESPONSE; a referenced schema that does not parse is INVALID_SCHEMA', async () => {
    const { fetch } = memoryRegistry(
      {
        50: { schema: ORDER, references: [{ name: 'x', subject: 3 }] },
        51: { schema: ORDER, references: [ref('com.acme.Customer', 'broken', 1)] },
        52: { schema: ORDER, references: [] },
      },
      {
        broken: {
          1: { schema: { type: 'record', name: 'Customer', fields: [{ name: 'a', type: 'nope' }] } },
        },
      },
    );
    const reg = client(fetch);
    expect(await rejected(reg.load(50))).toMatchObject({ code: 'BAD_RESPONSE', retriable: true });
    const invalid = await rejected(reg.load(51));
    expect(invalid).toMatchObject({ code: 'INVALID_SCHEMA', retriable: false });
    expect((invalid as Error).message).toContain('subject broken version 1');
    expect((invalid as Error).message).toContain('referenced by schema id 51');
    // Without the references it needs: the failure the issue reported, still a dead letter.
    const undef = await rejected(reg.load(52));
    expect(undef).toMatchObject({ code: 'INVALID_SCHEMA' });
    expect((undef as Error).message).toContain('undefined type name');
  });
});

describe('offline schema references (routes[].schemaReferences)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgsink-refs-'));
  const file = (name: string, schema: unknown) => {
    const path = join(dir, name);
    writeFileSync(path, JSON.stringify(schema));
    return path;
  };
  const money = file('money.avsc', MONEY);
  const address = file('address.avsc', ADDRESS);
  const customer = file('customer.avsc', CUSTOMER);
  const order = file('order.avsc', ORDER);

  it('loads the listed files first, in order, each using the ones before it', () => {
    const t = loadSchemaFile(order, [address, customer, money]);
    expect(t.equals(inlineType)).toBe(true);
    expect(t.fromBuffer(inlineType.toBuffer(sample))).toEqual(sample);
    const local = new LocalSchemas({ 10: order }, undefined, [address, customer, money]);
    expect(local.cached(10)?.equals(inlineType)).toBe(true);
  });

  it('names what is missing or out of order as a configuration error', () => {
    const missing = (() => {
      try {
        loadSchemaFile(order, [address, money]);
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    expect(missing).toBeInstanceOf(ConfigError);
    expect((missing as Error).message).toContain('undefined type name: com.acme.Customer');
    expect((missing as Error).message).toContain("the route's schemaReferences (now: ");
    expect(() => loadSchemaFile(order, [customer, address, money])).toThrow(
      /customer\.avsc \(a schema reference\)/,
    );
    expect(() => loadSchemaFile(order, [join(dir, 'nope.avsc')])).toThrow(
      /cannot read Avro schema .*nope\.avsc/,
    );
  });
});
