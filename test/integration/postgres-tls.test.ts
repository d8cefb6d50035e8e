// Postgres over TLS, for real: the test makes a CA and a server certificate with openssl,
// starts a private cluster with ssl=on (stack/postgres.sh), and runs the pipeline against
// it with sslmode verify-full. A certificate from another CA is a clear start-up error.
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { routeSchema } from '../../src/config/schema.ts';
import { ORDERS_SCHEMA_PATH, ordersType } from '../../src/cli/sample-data.ts';
import { parseConfig } from '../../src/config/load.ts';
import { createPipeline } from '../../src/pipeline/app.ts';
import { buildColumnPlan } from '../../src/sink/columns.ts';
import { pgClientConfig } from '../../src/sink/connection.ts';
import { createTableSql } from '../../src/sink/ddl.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { repoRoot } from '../support/cli.ts';
import { makeCa, makeServerCert } from '../support/tls.ts';
import { produceOrders, waitFor } from '../support/pipeline.ts';
import { createTopic, kafkaBrokers, kafkaClient, uniqueName } from '../support/services.ts';

const dir = mkdtempSync(join(tmpdir(), 'pgsink-tls-'));
const kafka = kafkaClient();
let env: NodeJS.ProcessEnv;
let url = '';

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

beforeAll(async () => {
  chmodSync(dir, 0o755);
  makeCa(dir, 'test-ca');
  makeCa(dir, 'other-ca');
  makeServerCert(dir, 'test-ca', 'server');
  chmodSync(join(dir, 'server.key'), 0o600);
  // initdb/pg_ctl refuse to run as root; stack/postgres.sh runs them as 'postgres', which must own the key.
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString());
    chownSync(join(dir, 'server.key'), uid, gid);
  }
  env = {
    ...process.env,
    DATABASE_URL: '',
    PG_STACK_DIR: join(dir, 'pg'),
    PG_LOCAL_PORT: String(await freePort()),
    PG_PRIVATE_PORT: String(await freePort()),
    PG_EXTRA_OPTS: `-c ssl=on -c ssl_cert_file=${join(dir, 'server.crt')} -c ssl_key_file=${join(dir, 'server.key')}`,
  };
  delete env['DATABASE_URL'];
  url = execFileSync(join(repoRoot, 'stack/postgres.sh'), ['url'], { env, encoding: 'utf8', timeout: 90_000 })
    .trim()
    .replace('127.0.0.1', 'localhost');
}, 120_000);

afterAll(() => {
  execFileSync(join(repoRoot, 'stack/postgres.sh'), ['stop'], { env, stdio: 'pipe', timeout: 60_000 });
  rmSync(dir, { recursive: true, force: true });
});

describe('Postgres over TLS', () => {
  it('ingests end to end with sslmode verify-full, and names a wrong CA clearly', async () => {
    const topic = uniqueName('tls_t');
    await createTopic(kafka, topic, 2);
    const route = routeSchema.parse({
      topic,
      table: 'public.orders_tls',
      schema: ORDERS_SCHEMA_PATH,
      metadata: { offset: '_offset', partition: '_partition' },
    });
    const configFor = (ca: string) =>
      parseConfig(
        {
          kafka: {
            brokers: kafkaBrokers(),
            groupId: uniqueName('tls_g'),
            sessionTimeoutMs: 10_000,
            heartbeatIntervalMs: 1_000,
          },
          postgres: { url, ssl: { mode: 'verify-full', ca: join(dir, ca) } },
          batch: { lingerMs: 50 },
          log: { level: 'error' },
          routes: [route],
        },
        'test',
        repoRoot,
      );
    const good = configFor('test-ca.crt');
    const admin = new pg.Client(pgClientConfig(good));
    await admin.connect();
    try {
      const { rows: tls } = await admin.query<{ ssl: boolean }>(
        'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()',
      );
      expect(tls[0]!.ssl).toBe(true);
      const plan = buildColumnPlan(ordersType(), route);
      await admin.query(createTableSql(route.table, plan.columns, plan.pgTypes));

      await produceOrders(kafka, topic, 0, 500);
      const p = createPipeline(good, { logger: createLogger('error') });
      await p.service.start();
      try {
        await waitFor(
          'rows over TLS',
          async () => Number((await admin.query('SELECT count(*) AS n FROM public.orders_tls')).rows[0].n),
          (n) => n >= 500,
        );
      } finally {
        await p.service.stop();
      }

      const wrong = createPipeline(configFor('other-ca.crt'), { logger: createLogger('error') });
      await expect(wrong.service.start()).rejects.toThrow(
        /cannot connect to PostgreSQL at localhost:\d+: .*(certificate|self.signed).*Check postgres\.ssl/,
      );
      await wrong.service.stop();
    } finally {
      await admin.end();
    }
  });
});
