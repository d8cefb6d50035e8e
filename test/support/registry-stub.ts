// A minimal Confluent-compatible Schema Registry for tests: exactly the endpoints pgsink's
// client uses — GET /schemas/ids/{id} and, for schema references,
// GET /subjects/{subject}/versions/{version} — with switches to make it fail or go away.
// Answers as Confluent's (and Apicurio's compatible API) do: 40403 for an unknown id, 40401 for
// an unknown subject, 40402 for an unknown version of a known one.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface StubReference {
  name: string;
  subject: string;
  version: number;
}

export interface StubVersion {
  id: number;
  schema: object;
  references?: StubReference[];
}

export interface RegistryStub {
  url: string;
  port: number;
  requests: number;
  /** Every request's path and query, in order. */
  paths: string[];
  /** 'up' answers; 'error' answers 503. */
  mode: 'up' | 'error';
  schemas: Map<number, object>;
  /** The references listed with an id's schema (none when absent). */
  references: Map<number, StubReference[]>;
  /** Subject → version → registered schema (GET /subjects/{subject}/versions/{version}). */
  subjects: Map<string, Map<number, StubVersion>>;
  /** Subjects answered 503 (a registry that cannot serve them now). */
  failingSubjects: Set<string>;
  /**
   * Registers `schema` under subject/version (and its id, with its references), as a
   * registry's POST would: afterwards both endpoints serve it.
   */
  register(subject: string, version: number, id: number, schema: object, references?: StubReference[]): void;
  /** Ids answered 200 with an HTML page (a proxy's or a login page), not a schema. */
  html: Set<number>;
  /** Stops listening (connections are refused) / listens again on the same port. */
  goAway(): Promise<void>;
  comeBack(): Promise<void>;
  close(): Promise<void>;
}

export async function startRegistryStub(
  schemas: Record<number, object>,
  opts: { listen?: boolean } = {},
): Promise<RegistryStub> {
  let server: Server | undefined;
  const stub: RegistryStub = {
    url: '',
    port: 0,
    requests: 0,
    paths: [],
    mode: 'up',
    schemas: new Map(Object.entries(schemas).map(([k, v]) => [Number(k), v])),
    references: new Map(),
    subjects: new Map(),
    failingSubjects: new Set(),
    register: (subject, version, id, schema, references) => {
      const versions = stub.subjects.get(subject) ?? new Map<number, StubVersion>();
      versions.set(version, { id, schema, ...(references ? { references } : {}) });
      stub.subjects.set(subject, versions);
      stub.schemas.set(id, schema);
      if (references) stub.references.set(id, references);
    },
    html: new Set(),
    goAway: () => close(),
    comeBack: () => listen(stub.port),
    close: () => close(),
  };
  const handler = (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => {
    stub.requests++;
    stub.paths.push(req.url ?? '');
    const m = /^\/schemas\/ids\/(\d+)$/.exec(req.url ?? '');
    if (stub.mode === 'error') {
      res
        .writeHead(503, { 'content-type': 'application/json' })
        .end('{"error_code":50301,"message":"unavailable"}');
      return;
    }
    const sv = /^\/subjects\/([^/?]+)\/versions\/([^/?]+)(?:\?.*)?$/.exec(req.url ?? '');
    if (sv) {
      subjectVersion(decodeURIComponent(sv[1]!), decodeURIComponent(sv[2]!), res);
      return;
    }
    if (m && stub.html.has(Number(m[1]))) {
      res.writeHead(200, { 'content-type': 'text/html' }).end('<html><body>Please sign in</body></html>');
      return;
    }
    const schema = m ? stub.schemas.get(Number(m[1])) : undefined;
    if (!schema) {
      res
        .writeHead(404, { 'content-type': 'application/json' })
        .end('{"error_code":40403,"message":"Schema not found"}');
      return;
    }
    const references = stub.references.get(Number(m![1]));
    res
      .writeHead(200, { 'content-type': 'application/vnd.schemaregistry.v1+json' })
      .end(JSON.stringify({ schema: JSON.stringify(schema), ...(references ? { references } : {}) }));
  };
  const subjectVersion = (subject: string, version: string, res: import('node:http').ServerResponse) => {
    const json = (status: number, body: object) =>
      res
        .writeHead(status, { 'content-type': 'application/vnd.schemaregistry.v1+json' })
        .end(JSON.stringify(body));
    if (stub.failingSubjects.has(subject)) return json(503, { error_code: 50301, message: 'unavailable' });
    const versions = stub.subjects.get(subject);
    if (!versions) return json(404, { error_code: 40401, message: `Subject '${subject}' not found.` });
    const n = version === 'latest' ? Math.max(...versions.keys()) : Number(version);
    const v = versions.get(n);
    if (!v) return json(404, { error_code: 40402, message: `Version ${version} not found.` });
    return json(200, {
      subject,
      version: n,
      id: v.id,
      schema: JSON.stringify(v.schema),
      ...(v.references ? { references: v.references } : {}),
    });
  };
  const listen = (port: number) =>
    new Promise<void>((resolve, reject) => {
      server = createServer(handler);
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        stub.port = (server!.address() as AddressInfo).port;
        stub.url = `http://127.0.0.1:${stub.port}`;
        resolve();
      });
    });
  const close = () =>
    new Promise<void>((resolve) => {
      if (!server) return resolve();
      server.closeAllConnections();
      server.close(() => resolve());
      server = undefined;
    });
  await listen(0);
  if (opts.listen === false) await close();
  return stub;
}
