import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    reporters: [process.env['CI'] ? 'verbose' : 'default', './test/support/summary-reporter.ts'],
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
        },
      },
      {
        // stack/kafka.sh for real: reuse, free ports, stop-all (brokers of both Kafka lines).
        test: {
          name: 'stack',
          include: ['test/stack/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 700_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/support/global-setup.ts'],
          setupFiles: ['test/support/setup-each-file.ts'],
          testTimeout: 90_000,
          hookTimeout: 120_000,
          // Two cores: the broker, Postgres and the consumers under test share them.
          maxWorkers: 2,
        },
      },
    ],
  },
});
