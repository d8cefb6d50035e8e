import type { TestProject } from 'vitest/node';
import { startStack } from './stack.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    kafkaBrokers: string;
    kafkaSaslBrokers: string;
    kafkaVersion: string;
    databaseUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const stack = await startStack();
  process.stderr.write(`integration: Kafka ${stack.kafkaVersion} on ${stack.kafkaBrokers}\n`);
  project.provide('kafkaBrokers', stack.kafkaBrokers);
  project.provide('kafkaSaslBrokers', stack.kafkaSaslBrokers);
  project.provide('kafkaVersion', stack.kafkaVersion);
  project.provide('databaseUrl', stack.databaseUrl);
  return () => stack.stop();
}
