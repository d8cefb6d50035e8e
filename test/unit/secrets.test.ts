// Secrets in the configuration (a Postgres URL with a password, a schema-registry password)
// never show up in a log line or in an HTTP response of the probe/metrics server.
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { ORDERS_SCHEMA_PATH } from '../../src/cli/sample-data.ts';
import { applyEnv, parseConfig, redactConfig } from '../../src/config/load.ts';
import { createCheckPool, HttpServer, postgresCheck } from '../../src/telemetry/http-server.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { createTelemetry, type Telemetry } from '../../src/telemetry/otel.ts';

const PG_PASSWORD = 'pg-S3cret-Pw#1';
const REGISTRY_PASSWORD = 'reg-S3cret-Pw';
const REGISTRY_URL_PASSWORD = 'url-S3cret-Pw';
const SECRETS = [PG_PASSWORD, encodeURIComponent(PG_PASSWORD), REGISTRY_PASSWORD, REGISTRY_URL_PASSWORD];

let tel: Telemetry | undefined;
let server: HttpServer | undefined;
afterEach(async () => {
  await server?.stop();
  await tel?.shutdown();
});

function capture(): { stream: Writable; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  return { stream, text: () => chunks.join('') };
}

describe('secrets', () => {
  it('stay out of the logs and out of every HTTP response', async () => {
    // Port 1 on loopback refuses connections: the readiness check fails with this URL in hand.
    const pgUrl = `postgres://sink:${encodeURIComponent(PG_PASSWORD)}@127.0.0.1:1/app?sslmode=disable`;
    const raw = {
      kafka: { brokers: ['127.0.0.1:9092'], groupId: 'g' },
      schemaRegistry: {
        url: `https://reg-user:${REGISTRY_URL_PASSWORD}@registry.example:8081`,
        username: 'reg-user',
      },
      routes: [{ topic: 'orders', table: 'orders', schema: ORDERS_SCHEMA_PATH }],
    };
    const config = parseConfig(
      applyEnv(raw, { PGSINK_POSTGRES_URL: pgUrl, PGSINK_SCHEMA_REGISTRY_PASSWORD: REGISTRY_PASSWORD }),
      'test',
      process.cwd(),
    );
    expect(config.postgres.url).toBe(pgUrl);
    expect(config.schemaRegistry?.password).toBe(REGISTRY_PASSWORD);

    const out = capture();
    const logger = createLogger('debug', out.stream);
    // What `pgsink run` logs at start-up, and what a careless log call could pass.
    logger.info({ config: redactConfig(config) }, 'starting');
    logger.info({ config }, 'raw config logged by mistake');
    logger.warn(
      { schemaRegistry: config.schemaRegistry, postgres: config.postgres },
      'sections logged by mistake',
    );

    tel = createTelemetry({ groupId: config.kafka.groupId, logger });
    tel.observer.recordsConsumed('orders', 0, 1);
    const pool = createCheckPool(config.postgres.url, { logger, timeoutMs: 500 });
    server = new HttpServer({
      port: 0,
      host: '127.0.0.1',
      ready: () => true,
      checkPostgres: postgresCheck(pool),
      metrics: tel.metricsHandler,
      logger,
    });
    await server.start();
    const bodies: string[] = [];
    for (const path of ['/readyz', '/healthz', '/metrics', '/nope', '/readyz?x=1']) {
      const res = await fetch(`http://127.0.0.1:${server.port}${path}`);
      bodies.push(`${res.status} ${JSON.stringify([...res.headers])} ${await res.text()}`);
    }
    await pool.end();
    logger.flush();

    expect(bodies[0]).toMatch(/^503 .*"postgres":"failed: ECONNREFUSED"/);
    const logs = out.text();
    expect(logs).toContain('"msg":"starting"');
    expect(logs).toContain('sink:***@127.0.0.1:1/app');
    expect(logs).toContain('readiness: postgres check failed');
    for (const secret of SECRETS) {
      expect(logs).not.toContain(secret);
      for (const body of bodies) expect(body).not.toContain(secret);
    }
  });
});
