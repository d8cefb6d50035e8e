import type { TestProject } from 'vitest/node';
import { startStack } from './stack.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    kafkaBrokers: string;
    kafkaSaslBrokers: string;
    databaseUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const stack = await startStack();
  project.provide('kafkaBrokers', stack.kafkaBrokers);
  project.provide('kafkaSaslBrokers', stack.kafkaSaslBrokers);
  project.provide('databaseUrl', stack.databaseUrl);
  return () => stack.stop();
}
