// The registry client over https with a private CA: the test makes a CA and a server
// certificate with openssl and serves GET /schemas/ids/1 from a local https server.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../../src/avro/registry.ts';
import { PgsinkError } from '../../src/util/errors.ts';
import { makeCa, makeServerCert } from '../support/tls.ts';

const dir = mkdtempSync(join(tmpdir(), 'pgsink-reg-tls-'));
const read = (f: string) => readFileSync(join(dir, f), 'utf8');
let server: Server;
let url = '';

beforeAll(async () => {
  makeCa(dir, 'ca');
  makeCa(dir, 'other');
  makeServerCert(dir, 'ca', 'srv');
  server = createServer({ key: read('srv.key'), cert: read('srv.crt') }, (req, res) => {
    if (req.url === '/schemas/ids/1')
      res.end(
        JSON.stringify({ schema: '{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}' }),
      );
    else res.writeHead(404).end('{"error_code":40403}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `https://localhost:${(server.address() as AddressInfo).port}`;
}, 60_000);

afterAll(() => {
  server.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('schema registry over TLS', () => {
  it('loads a schema when the configured CA signs the server certificate', async () => {
    const c = new RegistryClient({
      url,
      timeoutMs: 5_000,
      tls: { ca: read('ca.crt'), rejectUnauthorized: true },
    });
    const t = await c.load(1);
    expect(JSON.stringify(t.schema())).toContain('"name":"R"');
  });

  it('fails retriably, naming the certificate problem, with another CA', async () => {
    const c = new RegistryClient({
      url,
      timeoutMs: 5_000,
      tls: { ca: read('other.crt'), rejectUnauthorized: true },
    });
    const err = await c.load(1).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PgsinkError);
    expect((err as PgsinkError).retriable).toBe(true);
    expect((err as PgsinkError).code).toBe('REGISTRY_UNREACHABLE');
    expect(
      String((err as Error).message) + String(((err as Error).cause as Error | undefined)?.cause ?? ''),
    ).toMatch(/certificate|self.signed|unable to verify|fetch failed/i);
  });
});
