// Wires config → Postgres pool, Kafka source, routes and the sink service.
import pg from 'pg';
import type { Config } from '../config/schema.ts';
import { kafkaConnection } from '../kafka/client-options.ts';
import { createPlatformaticSource } from '../kafka/platformatic-source.ts';
import { createKafkaSource, type KafkaSource, type KafkaSourceOptions } from '../kafka/source.ts';
import { pgClientConfig } from '../sink/connection.ts';
import type { Logger } from '../telemetry/logger.ts';
import { systemClock, type Clock } from '../util/clock.ts';
import { errorMessage } from '../util/errors.ts';
import { SinkStats, observers, type SinkObserver } from './observer.ts';
import { buildRoutes } from './routes.ts';
import { SinkService } from './sink-service.ts';

export interface Pipeline {
  service: SinkService;
  stats: SinkStats;
  pool: pg.Pool;
}

export interface PipelineOptions {
  logger: Logger;
  clock?: Clock;
  observer?: SinkObserver;
  /** Replaces the Kafka source (tests that inject faults wrap the real one). */
  wrapSource?: (source: KafkaSource) => KafkaSource;
}

export function createPool(config: Config, logger: Logger): pg.Pool {
  const pool = new pg.Pool({
    ...pgClientConfig(config),
    max: config.postgres.poolSize ?? config.backpressure.maxConcurrentFlushes + 1,
    idleTimeoutMillis: 30_000,
    application_name: `pgsink:${config.kafka.groupId}`,
    ...(config.postgres.statementTimeoutMs ? { statement_timeout: config.postgres.statementTimeoutMs } : {}),
  });
  // An idle client whose server goes away emits 'error' on the pool; unhandled, it would
  // crash the process. The next checkout reconnects.
  pool.on('error', (err) => logger.warn({ err: errorMessage(err) }, 'idle Postgres connection lost'));
  return pool;
}

export function createPipeline(config: Config, opts: PipelineOptions): Pipeline {
  const routes = buildRoutes(config);
  const pool = createPool(config, opts.logger);
  const sourceOptions: KafkaSourceOptions = {
    connection: kafkaConnection(config),
    clientId: config.kafka.clientId,
    groupId: config.kafka.groupId,
    topics: [...routes.keys()],
    fromBeginning: config.kafka.fromBeginning,
    sessionTimeoutMs: config.kafka.sessionTimeoutMs,
    heartbeatIntervalMs: config.kafka.heartbeatIntervalMs,
    rebalanceTimeoutMs: config.kafka.rebalanceTimeoutMs,
    maxBytesPerPartition: config.kafka.maxBytesPerPartition,
    logger: opts.logger,
  };
  // kafka.client, validated once by the config schema.
  let source: KafkaSource =
    config.kafka.client === 'platformatic'
      ? createPlatformaticSource({
          ...sourceOptions,
          groupProtocol: config.kafka.groupProtocol,
          groupInstanceId: config.kafka.groupInstanceId,
        })
      : createKafkaSource(sourceOptions);
  if (opts.wrapSource) source = opts.wrapSource(source);
  const stats = new SinkStats();
  const service = new SinkService({
    config,
    routes,
    source,
    pool,
    clock: opts.clock ?? systemClock,
    logger: opts.logger,
    observer: opts.observer ? observers(stats, opts.observer) : stats,
  });
  return { service, stats, pool };
}
