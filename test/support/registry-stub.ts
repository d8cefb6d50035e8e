// A minimal Confluent-compatible Schema Registry for tests: exactly the endpoint pgsink's
// client uses (GET /schemas/ids/{id}), with switches to make it fail or go away.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RegistryStub {
  url: string;
  port: number;
  requests: number;
  /** 'up' answers; 'error' answers 503. */
  mode: 'up' | 'error';
  schemas: Map<number, object>;
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
    mode: 'up',
    schemas: new Map(Object.entries(schemas).map(([k, v]) => [Number(k), v])),
    html: new Set(),
    goAway: () => close(),
    comeBack: () => listen(stub.port),
    close: () => close(),
  };
  const handler = (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => {
    stub.requests++;
    const m = /^\/schemas\/ids\/(\d+)$/.exec(req.url ?? '');
    if (stub.mode === 'error') {
      res
        .writeHead(503, { 'content-type': 'application/json' })
        .end('{"error_code":50301,"message":"unavailable"}');
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
    res
      .writeHead(200, { 'content-type': 'application/vnd.schemaregistry.v1+json' })
      .end(JSON.stringify({ schema: JSON.stringify(schema) }));
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
