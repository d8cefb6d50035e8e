// The laptop path: Kafka and PostgreSQL in containers via testcontainers, used when
// PGSINK_TEST_STACK=docker and a Docker engine answers. CI here has no Docker engine and
// uses the local-process path (stack/*.sh) instead.
import { GenericContainer, Wait } from 'testcontainers';

export async function startDockerServices() {
  const pg = await new GenericContainer('postgres:16-alpine')
    .withEnvironment({ POSTGRES_HOST_AUTH_METHOD: 'trust' })
    .withExposedPorts(5432)
    .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2))
    .withStartupTimeout(120_000)
    .start();
  // apache/kafka runs a single-node KRaft broker by default; its advertised listener must
  // carry the host port docker mapped, so the port is fixed on both sides.
  const hostPort = 29092 + Math.floor(Math.random() * 1000);
  const kafka = await new GenericContainer('apache/kafka:3.9.1')
    .withExposedPorts({ container: hostPort, host: hostPort })
    .withEnvironment({
      KAFKA_NODE_ID: '1',
      KAFKA_PROCESS_ROLES: 'broker,controller',
      KAFKA_LISTENERS: `PLAINTEXT://:${hostPort},CONTROLLER://:9093`,
      KAFKA_ADVERTISED_LISTENERS: `PLAINTEXT://localhost:${hostPort}`,
      KAFKA_CONTROLLER_LISTENER_NAMES: 'CONTROLLER',
      KAFKA_LISTENER_SECURITY_PROTOCOL_MAP: 'CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
      KAFKA_CONTROLLER_QUORUM_VOTERS: '1@localhost:9093',
      KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR: '1',
      KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR: '1',
      KAFKA_TRANSACTION_STATE_LOG_MIN_ISR: '1',
      KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS: '0',
      KAFKA_AUTO_CREATE_TOPICS_ENABLE: 'false',
    })
    .withWaitStrategy(Wait.forLogMessage(/Kafka Server started/))
    .withStartupTimeout(120_000)
    .start();
  return {
    kafka: { url: `localhost:${hostPort}`, stop: async () => void (await kafka.stop()) },
    postgres: {
      url: `postgres://postgres@${pg.getHost()}:${pg.getMappedPort(5432)}/postgres`,
      stop: async () => void (await pg.stop()),
    },
  };
}
