// The one configuration schema: file (YAML/JSON) and PGSINK_* environment overrides are
// merged, then validated here once at start-up. Unknown keys are errors, not ignored.
import { z } from 'zod';

const identifier = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[^\0]+$/, 'must not contain NUL');

/** `table` or `schema.table`; each part is quoted when used, never interpolated raw. */
const qualifiedName = z
  .string()
  .regex(/^[^.\0]{1,63}(\.[^.\0]{1,63})?$/, 'expected "table" or "schema.table"');

const positiveInt = z.number().int().positive();

/** TLS material is given as file paths (Kubernetes Secrets mount as files). */
const tlsFiles = {
  /** CA bundle that signs the server's certificate. */
  ca: z.string().min(1).optional(),
  /** Client certificate and key, for mutual TLS. */
  cert: z.string().min(1).optional(),
  key: z.string().min(1).optional(),
};

const metadataColumns = z.strictObject({
  topic: identifier.optional(),
  partition: identifier.optional(),
  offset: identifier.optional(),
  timestamp: identifier.optional(),
  key: identifier.optional(),
});

export const routeSchema = z.strictObject({
  topic: z.string().min(1),
  table: qualifiedName,
  /** Path of the reader schema (.avsc), relative to the config file. */
  schema: z.string().min(1),
  mode: z.enum(['append', 'upsert']).default('append'),
  /** Key columns for upsert mode. */
  keyColumns: z.array(identifier).optional(),
  deleteOnTombstone: z.boolean().default(false),
  /** Avro field name → column name, for the fields whose column is named differently. */
  columns: z.record(z.string(), identifier).default({}),
  /** Avro fields that are not written. */
  exclude: z.array(z.string()).default([]),
  metadata: metadataColumns.default({}),
  /** Create the table when it is missing (from the reader schema's type mapping). */
  autoCreate: z.boolean().default(false),
  /** Add missing columns (nullable) when the reader schema gained fields. Never drops or alters. */
  autoEvolve: z.boolean().default(false),
  /**
   * Above this many dead letters in a minute the deployment is clearly broken (a wrong
   * schema, a wrong table): the route stops consuming and the process reports not ready.
   */
  maxDeadLettersPerMinute: positiveInt.optional(),
  /**
   * Records deleted by retention before pgsink wrote them are always recorded (the gaps table,
   * a metric, an error in the log). Then `continue` writes on from the log's first offset;
   * `stop` holds the partition (not ready) until an operator moves it (pgsink replay).
   */
  onRetentionGap: z.enum(['continue', 'stop']).default('continue'),
  /**
   * COPY format. `auto` (the default): binary, with each column's encoder chosen from the
   * catalog, unless a column's type has none (a user-defined or enum type, …), when the route
   * uses text and says so at start-up. `text`: always text (Postgres parses every field).
   */
  copyFormat: z.enum(['auto', 'text']).default('auto'),
  /** Offline mode: writer schema id → .avsc file, for ids the registry would otherwise resolve. */
  schemaIds: z.record(z.string().regex(/^\d+$/, 'schema ids are integers'), z.string()).default({}),
  /**
   * .avsc files that define named types the route's own schema files use (Confluent schema
   * references, offline): parsed in this order — each may use the types of the ones before it —
   * before `schema` and every `schemaIds` file. Relative to the config file.
   */
  schemaReferences: z.array(z.string().min(1)).default([]),
});

export const configSchema = z
  .strictObject({
    kafka: z.strictObject({
      brokers: z.array(z.string().regex(/^[^\s:]+:\d+$/, 'expected host:port')).min(1),
      /**
       * The Kafka client under the source (src/kafka/): kafkajs 2.2.4 (eager rebalancing: every
       * join stops every member and drops every buffer) or @platformatic/kafka (incremental:
       * cooperative-sticky or KIP-848, only the partitions that move start over).
       */
      client: z.enum(['kafkajs', 'platformatic']).default('kafkajs'),
      /**
       * platformatic only: 'classic' (JoinGroup/SyncGroup with the cooperative-sticky assignor,
       * any Kafka ≥ 2.4) or 'consumer' (KIP-848: the broker assigns; Kafka ≥ 4.0, or 3.7+ with
       * group.coordinator.rebalance.protocols including consumer).
       */
      groupProtocol: z.enum(['classic', 'consumer']).default('classic'),
      /**
       * KIP-345 static membership (platformatic with the classic protocol): a member that stops
       * does not leave, and the one that comes back under the same id within
       * kafka.sessionTimeoutMs gets its partitions back without a rebalance. Unique per
       * process and stable across its restarts: the pod name of a StatefulSet.
       */
      groupInstanceId: z
        .string()
        .regex(/^[a-zA-Z0-9._-]{1,249}$/, 'letters, digits, ".", "_" and "-" only (at most 249)')
        .optional(),
      clientId: z.string().min(1).default('pgsink'),
      groupId: z.string().min(1),
      /** Where a group without a committed offset starts. */
      fromBeginning: z.boolean().default(true),
      sessionTimeoutMs: positiveInt.default(30_000),
      heartbeatIntervalMs: positiveInt.default(3_000),
      rebalanceTimeoutMs: positiveInt.default(60_000),
      /**
       * Upper bound of one fetch for one partition: the most a paused partition can overshoot.
       * kafkajs holds a whole fetch response (up to 8× this) and its decoded messages at once,
       * outside the backpressure budget, long enough for the garbage collector to promote them.
       * In paired runs 256 KiB peaked about 14 MiB lower than 512 KiB, and 512 KiB lower than
       * 1 MiB, at the same throughput; raise it for a partition behind a slow link (one fetch
       * per round trip).
       */
      maxBytesPerPartition: positiveInt.default(256 * 1024),
      connectionTimeoutMs: positiveInt.default(10_000),
      /** TLS to the brokers; omit for plaintext. */
      ssl: z.strictObject({ ...tlsFiles, rejectUnauthorized: z.boolean().default(true) }).optional(),
      sasl: z
        .strictObject({
          mechanism: z.enum(['plain', 'scram-sha-256', 'scram-sha-512']),
          username: z.string().min(1),
          password: z.string().min(1),
        })
        .optional(),
    }),
    postgres: z.strictObject({
      url: z.string().regex(/^postgres(ql)?:\/\//, 'expected a postgres:// URL'),
      /** Schema of pgsink's own tables (offset fence, dead letters). */
      schema: identifier.default('pgsink'),
      poolSize: positiveInt.optional(),
      statementTimeoutMs: z.number().int().nonnegative().default(0),
      connectionTimeoutMs: positiveInt.default(10_000),
      /**
       * TLS to Postgres, as libpq's sslmode: require (encrypt, trust any certificate),
       * verify-ca (the certificate chains to `ca`), verify-full (and names the host).
       */
      ssl: z
        .strictObject({ mode: z.enum(['disable', 'require', 'verify-ca', 'verify-full']), ...tlsFiles })
        .optional(),
    }),
    schemaRegistry: z
      .strictObject({
        url: z.string().regex(/^https?:\/\//, 'expected an http(s):// URL'),
        username: z.string().optional(),
        password: z.string().optional(),
        timeoutMs: positiveInt.default(10_000),
        /** TLS to the registry: CA, client cert/key; omit to use the system CAs for https. */
        ssl: z.strictObject({ ...tlsFiles, rejectUnauthorized: z.boolean().default(true) }).optional(),
      })
      .optional(),
    batch: z
      .strictObject({
        maxRows: positiveInt.default(10_000),
        maxBytes: positiveInt.default(4 * 1024 * 1024),
        lingerMs: z.number().int().nonnegative().default(250),
        /**
         * Each partition's row limit follows its flush latency (src/batch/adaptive-rows.ts):
         * smaller batches while flushes take longer than half the linger, back up to maxRows
         * while they are fast. Off by default (see the README's Performance section).
         */
        adaptiveRows: z.boolean().default(false),
      })
      .default({ maxRows: 10_000, maxBytes: 4 * 1024 * 1024, lingerMs: 250, adaptiveRows: false }),
    backpressure: z
      .strictObject({
        maxPartitionBytes: positiveInt.default(8 * 1024 * 1024),
        maxTotalBytes: positiveInt.default(32 * 1024 * 1024),
        /** A paused partition resumes when its buffer falls below this share of the limit. */
        resumeRatio: z.number().gt(0).lt(1).default(0.5),
        maxConcurrentFlushes: positiveInt.default(4),
      })
      .default({
        maxPartitionBytes: 8 * 1024 * 1024,
        maxTotalBytes: 32 * 1024 * 1024,
        resumeRatio: 0.5,
        maxConcurrentFlushes: 4,
      }),
    retry: z
      .strictObject({ initialMs: positiveInt.default(200), maxMs: positiveInt.default(10_000) })
      .default({ initialMs: 200, maxMs: 10_000 }),
    shutdown: z.strictObject({ deadlineMs: positiveInt.default(25_000) }).default({ deadlineMs: 25_000 }),
    http: z
      .strictObject({
        /** /metrics, /healthz, /readyz; 0 picks a free port. */
        port: z.number().int().min(0).max(65535).default(9464),
        host: z.string().min(1).optional(),
        readyTimeoutMs: positiveInt.default(1_000),
        maxEventLoopStallMs: positiveInt.default(5_000),
        /**
         * A partition with records to write that has not advanced for this long is stuck:
         * /readyz answers 503 naming it, and it is logged and counted.
         */
        stuckAfterMs: positiveInt.default(60_000),
      })
      .default({ port: 9464, readyTimeoutMs: 1_000, maxEventLoopStallMs: 5_000, stuckAfterMs: 60_000 }),
    log: z
      .strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info') })
      .default({ level: 'info' }),
    routes: z.array(routeSchema).min(1),
  })
  .superRefine((c, ctx) => {
    const topics = new Set<string>();
    c.routes.forEach((r, i) => {
      if (topics.has(r.topic)) {
        ctx.addIssue({
          code: 'custom',
          path: ['routes', i, 'topic'],
          message: `topic '${r.topic}' has two routes`,
        });
      }
      topics.add(r.topic);
      if (r.mode === 'upsert' && !r.keyColumns?.length) {
        ctx.addIssue({
          code: 'custom',
          path: ['routes', i, 'keyColumns'],
          message: 'upsert mode needs keyColumns',
        });
      }
      if (r.deleteOnTombstone && (r.keyColumns?.length ?? 0) !== 1) {
        ctx.addIssue({
          code: 'custom',
          path: ['routes', i, 'keyColumns'],
          message:
            'deleteOnTombstone needs exactly one key column (the Kafka key, as text, identifies the row)',
        });
      }
      if (r.mode === 'append' && r.deleteOnTombstone) {
        ctx.addIssue({
          code: 'custom',
          path: ['routes', i, 'deleteOnTombstone'],
          message: 'deleteOnTombstone needs mode: upsert (a delete needs a key)',
        });
      }
    });
    if (c.batch.maxBytes > c.backpressure.maxPartitionBytes) {
      ctx.addIssue({
        code: 'custom',
        path: ['batch', 'maxBytes'],
        message: `must not exceed backpressure.maxPartitionBytes (${c.backpressure.maxPartitionBytes}), or a batch could never fill`,
      });
    }
    if (c.backpressure.maxPartitionBytes > c.backpressure.maxTotalBytes) {
      ctx.addIssue({
        code: 'custom',
        path: ['backpressure', 'maxPartitionBytes'],
        message: `must not exceed backpressure.maxTotalBytes (${c.backpressure.maxTotalBytes})`,
      });
    }
    if (c.postgres.poolSize !== undefined && c.postgres.poolSize < c.backpressure.maxConcurrentFlushes) {
      ctx.addIssue({
        code: 'custom',
        path: ['postgres', 'poolSize'],
        message: `must be at least backpressure.maxConcurrentFlushes (${c.backpressure.maxConcurrentFlushes})`,
      });
    }
    const pgSsl = c.postgres.ssl;
    if (pgSsl && (pgSsl.mode === 'verify-ca' || pgSsl.mode === 'verify-full') && !pgSsl.ca) {
      ctx.addIssue({
        code: 'custom',
        path: ['postgres', 'ssl', 'ca'],
        message: `sslmode ${pgSsl.mode} needs a CA file to verify against`,
      });
    }
    for (const [path, tls] of [
      [['kafka', 'ssl'], c.kafka.ssl],
      [['postgres', 'ssl'], c.postgres.ssl],
    ] as const) {
      if (tls && Boolean(tls.cert) !== Boolean(tls.key)) {
        ctx.addIssue({
          code: 'custom',
          path: [...path, tls.cert ? 'key' : 'cert'],
          message: 'client cert and key go together',
        });
      }
    }
    if (c.shutdown.deadlineMs <= c.batch.lingerMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['shutdown', 'deadlineMs'],
        message: `must exceed batch.lingerMs (${c.batch.lingerMs})`,
      });
    }
    if (c.http.stuckAfterMs <= c.batch.lingerMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['http', 'stuckAfterMs'],
        message: `must exceed batch.lingerMs (${c.batch.lingerMs}): a partition waits that long before it flushes`,
      });
    }
    if (c.kafka.client !== 'platformatic' && c.kafka.groupProtocol !== 'classic') {
      ctx.addIssue({
        code: 'custom',
        path: ['kafka', 'groupProtocol'],
        message: `the KIP-848 consumer protocol needs kafka.client: platformatic (kafkajs has only the classic protocol)`,
      });
    }
    if (c.kafka.client === 'platformatic' && /\s/.test(c.kafka.groupId)) {
      ctx.addIssue({
        code: 'custom',
        path: ['kafka', 'groupId'],
        message:
          '@platformatic/kafka refuses a group id with whitespace; use another id or kafka.client: kafkajs',
      });
    }
    if (c.kafka.groupInstanceId !== undefined && c.kafka.client !== 'platformatic') {
      ctx.addIssue({
        code: 'custom',
        path: ['kafka', 'groupInstanceId'],
        message:
          'static membership needs kafka.client: platformatic (kafkajs 2.2.4 does not implement KIP-345)',
      });
    } else if (c.kafka.groupInstanceId !== undefined && c.kafka.groupProtocol !== 'classic') {
      ctx.addIssue({
        code: 'custom',
        path: ['kafka', 'groupInstanceId'],
        message:
          'static membership needs kafka.groupProtocol: classic: with the consumer protocol @platformatic/kafka 2.12.1 always leaves the group for good when it stops (member epoch -1, not the -2 of a temporary leave), so a restart would still move the partitions',
      });
    }
    if (c.kafka.heartbeatIntervalMs * 3 > c.kafka.sessionTimeoutMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['kafka', 'heartbeatIntervalMs'],
        message: `should be at most a third of kafka.sessionTimeoutMs (${c.kafka.sessionTimeoutMs})`,
      });
    }
  });

export type Config = z.infer<typeof configSchema>;
export type RouteConfig = z.infer<typeof routeSchema>;
export type ConfigInput = z.input<typeof configSchema>;
