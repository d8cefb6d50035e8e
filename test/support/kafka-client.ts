// The Kafka client an integration run exercises. test/run.ts runs the source-exercising files
// once more per second client; PGSINK_TEST_KAFKA_CLIENT (kafkajs | platformatic) and
// PGSINK_TEST_KAFKA_GROUP_PROTOCOL (classic | consumer) say which. PGSINK_TEST_* is the
// tests' own family (src/config/load.ts never reads it as configuration); the config the
// tests build (testConfig) and the CLI processes they start (startCli: as PGSINK_KAFKA_CLIENT
// and PGSINK_KAFKA_GROUP_PROTOCOL overrides) both take it from here.
const CLIENTS = ['kafkajs', 'platformatic'] as const;
const PROTOCOLS = ['classic', 'consumer'] as const;
export type TestClient = (typeof CLIENTS)[number];
export type TestGroupProtocol = (typeof PROTOCOLS)[number];

function pick<T extends string>(name: string, allowed: readonly T[], fallback: T): T {
  const v = process.env[name];
  if (v === undefined || v === '') return fallback;
  if (!(allowed as readonly string[]).includes(v))
    throw new Error(`${name}=${v}: expected one of ${allowed.join(', ')}`);
  return v as T;
}

export const testKafkaClient: TestClient = pick('PGSINK_TEST_KAFKA_CLIENT', CLIENTS, 'kafkajs');
export const testGroupProtocol: TestGroupProtocol = pick(
  'PGSINK_TEST_KAFKA_GROUP_PROTOCOL',
  PROTOCOLS,
  'classic',
);

/** The kafka.* keys of the client under test, for a test's config. */
export function clientConfig(): { client: TestClient; groupProtocol: TestGroupProtocol } {
  return { client: testKafkaClient, groupProtocol: testGroupProtocol };
}

/** The same, as the overrides a `pgsink` child process reads. */
export function clientEnv(): NodeJS.ProcessEnv {
  return { PGSINK_KAFKA_CLIENT: testKafkaClient, PGSINK_KAFKA_GROUP_PROTOCOL: testGroupProtocol };
}

/** How the client under test rebalances: kafkajs' eager joins reset every partition. */
export const incremental = testKafkaClient !== 'kafkajs';
