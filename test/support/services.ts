// Helpers for integration tests: clients for the run's Kafka and Postgres, and unique names
// so that test files can run in parallel against the same broker and database.
import { randomBytes } from 'node:crypto';
import type { Producer } from 'kafkajs';
import { Kafka, logLevel, Partitioners } from '../../src/kafka/kafkajs.ts';
import pg from 'pg';
import { inject } from 'vitest';
import { createTopicAndWait } from '../../src/kafka/topics.ts';

export const kafkaBrokers = (): string[] => inject('kafkaBrokers').split(',');
export const databaseUrl = (): string => inject('databaseUrl');

export function uniqueName(prefix: string): string {
  return `${prefix}_${randomBytes(4).toString('hex')}`;
}

export function kafkaClient(clientId = uniqueName('test')): Kafka {
  return new Kafka({ clientId, brokers: kafkaBrokers(), logLevel: logLevel.NOTHING });
}

/**
 * Creates a topic and waits until every partition has a leader. On a loaded machine the
 * broker can answer "does not host this topic-partition" while leaders are elected, so
 * both steps retry (bounded).
 */
export async function createTopic(kafka: Kafka, topic: string, numPartitions: number): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await createTopicAndWait(admin, topic, numPartitions);
  } finally {
    await admin.disconnect();
  }
}

/**
 * Idempotent: a send that kafkajs retries (a timeout under load) must not write its records
 * twice, or the tests' exact counts would blame the sink for the producer's duplicates.
 */
export async function connectedProducer(kafka: Kafka): Promise<Producer> {
  const producer = kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    idempotent: true,
    maxInFlightRequests: 1,
  });
  await producer.connect();
  return producer;
}

export function pgPool(max = 4): pg.Pool {
  return new pg.Pool({ connectionString: databaseUrl(), max });
}
