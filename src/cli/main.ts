#!/usr/bin/env node
// pgsink command line. Exit codes: 0 done, 1 runtime failure, 2 bad usage or configuration.
import { parseArgs } from 'node:util';
import { ignoredEnv, loadConfig, redactConfig } from '../config/load.ts';
import { hideKafkajsTimeoutWarning } from '../kafka/quirks.ts';
import pg from 'pg';
import { createPipeline } from '../pipeline/app.ts';
import { buildRoutes } from '../pipeline/routes.ts';
import { pgClientConfig } from '../sink/connection.ts';
import { createCheckPool, HttpServer, postgresCheck } from '../telemetry/http-server.ts';
import { createTelemetry } from '../telemetry/otel.ts';
import { planTable } from '../sink/schema-plan.ts';
import { createLogger } from '../telemetry/logger.ts';
import { ConfigError, errorMessage } from '../util/errors.ts';
import { connectChecks, exitCodeOf, formatCheck } from './check.ts';
import { formatOffsets, offsetsStatus, parseTarget, replay, UsageError } from './replay.ts';

const USAGE = `usage: pgsink <command> [options]

commands:
  run      consume the configured topics into PostgreSQL until SIGTERM/SIGINT
           --config <file>   YAML or JSON config (or PGSINK_CONFIG); PGSINK_* env vars override it
  check    validate the configuration offline (schemas, schema ids, column mapping) and print
           it with secrets redacted; --connect also checks Kafka (topics, credentials), the
           tables and columns, and the registry, and says what run would do
           --config <file> [--connect]   exit 0 ok, 1 run would wait for something, 2 refused
  schema plan
           print the CREATE TABLE / ALTER TABLE ADD COLUMN each route needs, and type mismatches
           --config <file>
  offsets  per partition: the Postgres fence, Kafka's committed offset, watermarks and lag
           --config <file> [--group <id>] [--json]
  replay   move the group (Kafka offsets and Postgres fence together) so records are written again
           --config <file> --topic <t> [--partition <p>]... [--group <id>]
           (--to-earliest | --to-latest | --to-datetime <ISO> | --to-offset <n>) [--dry-run]
           refuses while the group has live members (scale the consumers to zero first)

exit codes: 0 ok, 1 runtime failure, 2 bad usage or configuration`;

function configPath(values: { config?: string | undefined }): string | undefined {
  return values.config ?? process.env['PGSINK_CONFIG'];
}

async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { config: { type: 'string', short: 'c' } },
    strict: true,
  });
  const config = loadConfig(configPath(values));
  const logger = createLogger(config.log.level);
  const telemetry = createTelemetry({
    groupId: config.kafka.groupId,
    bufferLimitBytes: config.backpressure.maxTotalBytes,
    logger,
    shutdownTimeoutMs: 3_000,
  });
  logger.info({ config: redactConfig(config), telemetry: telemetry.export }, 'starting');
  const { service } = createPipeline(config, { logger, observer: telemetry.observer });
  const checkPool = createCheckPool(pgClientConfig(config), {
    applicationName: `pgsink:${config.kafka.groupId}:readyz`,
    timeoutMs: config.http.readyTimeoutMs,
    logger,
  });
  const http = new HttpServer({
    port: config.http.port,
    ...(config.http.host ? { host: config.http.host } : {}),
    readiness: () => ({ ...service.readiness() }),
    checkPostgres: postgresCheck(checkPool),
    postgresTimeoutMs: config.http.readyTimeoutMs,
    maxEventLoopStallMs: config.http.maxEventLoopStallMs,
    metrics: telemetry.metricsHandler,
    logger,
  });
  // Every cleanup step runs, in order, whatever happened before it, together within `ms`.
  const closeAll = async (ms = 3_000): Promise<void> => {
    const by = Date.now() + ms;
    for (const [name, step] of [
      ['http server', () => http.stop()],
      ['readiness pool', () => checkPool.end()],
      ['telemetry', () => telemetry.shutdown()],
    ] as const) {
      await within(step(), Math.max(50, by - Date.now())).catch((err: unknown) =>
        logger.warn({ err: errorMessage(err) }, `closing ${name} failed`),
      );
    }
  };
  // Up before the consumer joins: the startup probe asks /healthz meanwhile.
  try {
    await http.start();
  } catch (err) {
    await closeAll();
    throw err;
  }
  logger.info({ port: http.port }, 'serving /metrics, /healthz, /readyz');

  // The deadline covers everything from the signal to the exit: the pipeline stops within
  // it, less a reserve for closing the HTTP server and flushing telemetry.
  const deadlineMs = config.shutdown.deadlineMs;
  const reserveMs = Math.min(1_000, Math.floor(deadlineMs * 0.1));
  let signals = 0;
  const done = new Promise<number>((resolve) => {
    const onSignal = (sig: NodeJS.Signals) => {
      signals++;
      if (signals > 1) {
        logger.warn({ signal: sig }, 'second signal: exiting now without draining');
        resolve(1);
        return;
      }
      logger.info({ signal: sig, deadlineMs, state: service.state }, 'draining and stopping');
      service.stop(deadlineMs - reserveMs).then(
        () => resolve(0),
        (err: unknown) => {
          logger.error({ err: errorMessage(err) }, 'shutdown failed');
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  // Start-up runs beside the signal handlers: a SIGTERM while it waits for Postgres or Kafka,
  // or while the group joins, stops it (DESIGN.md invariant 6).
  const startFailed = service.start().then(
    () => {
      if (service.state === 'running' && signals === 0) logger.info('consuming');
      return new Promise<never>(() => undefined);
    },
    (err: unknown) => err,
  );
  const failed = new Promise<number>((resolve) => {
    const t = setInterval(() => {
      if (service.failure) {
        clearInterval(t);
        void service.stop(deadlineMs - reserveMs).finally(() => resolve(1));
      }
    }, 500);
    t.unref();
  });
  const outcome = await Promise.race([done, failed, startFailed]);
  if (typeof outcome !== 'number') {
    await service.stop(Math.min(5_000, deadlineMs - reserveMs)).catch(() => undefined);
    await closeAll(reserveMs);
    throw outcome;
  }
  await closeAll(reserveMs);
  logger.flush();
  return outcome;
}

async function check(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { config: { type: 'string', short: 'c' }, connect: { type: 'boolean' } },
    strict: true,
  });
  const config = loadConfig(configPath(values));
  // Everything run validates before connecting: schema files, schema ids, the column plan.
  const routes = buildRoutes(config);
  process.stdout.write(`${JSON.stringify(redactConfig(config), null, 2)}\n`);
  for (const name of ignoredEnv(process.env))
    process.stderr.write(`pgsink: note: ${name} is not a configuration override; ignored\n`);
  if (!values.connect) return 0;
  const lines = await connectChecks(config, routes);
  process.stdout.write(`${formatCheck(lines)}\n`);
  return exitCodeOf(lines);
}

async function replayCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string', short: 'c' },
      group: { type: 'string' },
      topic: { type: 'string' },
      partition: { type: 'string', multiple: true },
      'to-earliest': { type: 'boolean' },
      'to-latest': { type: 'boolean' },
      'to-datetime': { type: 'string' },
      'to-offset': { type: 'string' },
      'dry-run': { type: 'boolean' },
    },
    strict: true,
  });
  const config = loadConfig(configPath(values));
  if (!values.topic) throw new UsageError('--topic <name> is required');
  const partitions = values.partition?.map((p) => {
    if (!/^\d+$/.test(p)) throw new UsageError(`--partition ${JSON.stringify(p)} is not a partition number`);
    return Number(p);
  });
  await replay({
    config,
    groupId: values.group ?? config.kafka.groupId,
    topic: values.topic,
    partitions,
    target: parseTarget(values),
    dryRun: values['dry-run'] ?? false,
    out: (s) => process.stdout.write(`${s}\n`),
  });
  return 0;
}

async function schemaCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'plan')
    throw new UsageError(
      `unknown 'schema' subcommand ${JSON.stringify(sub ?? '')}; use 'pgsink schema plan --config <file>'`,
    );
  const { values } = parseArgs({
    args: rest,
    options: { config: { type: 'string', short: 'c' } },
    strict: true,
  });
  const config = loadConfig(configPath(values));
  const routes = buildRoutes(config);
  const client = new pg.Client(pgClientConfig(config));
  await client.connect();
  try {
    for (const r of routes.values()) {
      const plan = await planTable(
        client,
        r.config.table,
        r.plan.columns,
        r.plan.pgTypes,
        r.config.mode === 'upsert' ? r.config.keyColumns : undefined,
      );
      process.stdout.write(
        `-- route ${r.config.topic} → ${r.config.table}: ${plan.statements.length ? (plan.exists ? 'missing columns' : 'table missing') : 'up to date'}\n`,
      );
      for (const s of plan.statements) process.stdout.write(`${s};\n`);
      for (const m of plan.mismatches) process.stdout.write(`-- type differs (not changed): ${m}\n`);
      for (const a of plan.advice) process.stdout.write(`-- upsert needs (not run by autoEvolve): ${a};\n`);
    }
  } finally {
    await client.end();
  }
  return 0;
}

async function offsetsCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { config: { type: 'string', short: 'c' }, group: { type: 'string' }, json: { type: 'boolean' } },
    strict: true,
  });
  const config = loadConfig(configPath(values));
  const rows = await offsetsStatus(config, values.group ?? config.kafka.groupId);
  process.stdout.write(values.json ? `${JSON.stringify(rows, null, 2)}\n` : `${formatOffsets(rows)}\n`);
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'run':
        return await run(rest);
      case 'check':
        return await check(rest);
      case 'replay':
        return await replayCommand(rest);
      case 'offsets':
        return await offsetsCommand(rest);
      case 'schema':
        return await schemaCommand(rest);
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        process.stdout.write(`${USAGE}\n`);
        return command === undefined ? 2 : 0;
      default:
        process.stderr.write(`pgsink: unknown command '${command}'\n\n${USAGE}\n`);
        return 2;
    }
  } catch (err) {
    const code = (err as { code?: unknown } | null)?.code;
    if (
      err instanceof ConfigError ||
      err instanceof UsageError ||
      (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS'))
    ) {
      process.stderr.write(`pgsink: ${errorMessage(err)}\n`);
      return 2;
    }
    process.stderr.write(`pgsink: ${errorMessage(err)}\n`);
    return 1;
  }
}

/** `p`, or a rejection after `ms`. */
function within(p: Promise<unknown>, ms: number): Promise<unknown> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise((_, reject) => {
      t = setTimeout(() => reject(new Error(`not done within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(t));
}

if (import.meta.main) {
  hideKafkajsTimeoutWarning();
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
