// Kafka SASL/SCRAM, for real: the test broker has a second listener that requires SCRAM
// (stack/kafka.sh KAFKA_SASL_PORT). pgsink ingests through it; a wrong password is a clear
// start-up failure. Against an external broker (KAFKA_BROKERS) this needs KAFKA_SASL_BROKERS
// with user pgsink / pgsink-secret; without one there is no SASL listener to test.
import { afterAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { createPipeline } from '../../src/pipeline/app.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { countRows, ordersFixture, produceOrders, testConfig, waitFor } from '../support/pipeline.ts';
import { kafkaClient, pgPool } from '../support/services.ts';

const saslBrokers = inject('kafkaSaslBrokers');
const kafka = kafkaClient();
const pool = pgPool();
afterAll(() => pool.end());

describe.runIf(saslBrokers !== '')('Kafka SASL/SCRAM', () => {
  it('ingests through a SCRAM-SHA-512 listener and refuses a wrong password clearly', async () => {
    const f = await ordersFixture(kafka, pool, 2, 'sasl');
    await produceOrders(kafka, f.topic, 0, 400);
    const sasl = (password: string) =>
      testConfig(f, {
        kafka: {
          brokers: saslBrokers.split(','),
          sasl: { mechanism: 'scram-sha-512', username: 'pgsink', password },
        },
      });
    const p = createPipeline(sasl('pgsink-secret'), { logger: createLogger('error') });
    await p.service.start();
    try {
      await waitFor(
        'rows through SASL',
        () => countRows(pool, f.table),
        (n) => n >= 400,
      );
    } finally {
      await p.service.stop();
    }

    const wrong = createPipeline(sasl('not-the-password'), { logger: createLogger('error') });
    const err = await wrong.service.start().then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    await wrong.service.stop();
    expect(err?.message).toMatch(/SASL SCRAM SHA512 authentication failed|Authentication failed/i);
    expect(err?.message).not.toContain('not-the-password');
  });
});
