// Starts (or connects to) the Kafka broker and PostgreSQL server the integration tests use.
// Order of preference: KAFKA_BROKERS / DATABASE_URL when set; else the project's own
// local processes (stack/kafka.sh, stack/postgres.sh); else, with PGSINK_TEST_STACK=docker,
// testcontainers. Every wait is bounded.
import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../..', import.meta.url));

export interface Stack {
  kafkaBrokers: string;
  /** A SASL/SCRAM listener of the same broker (user pgsink / pgsink-secret), or '' when none. */
  kafkaSaslBrokers: string;
  /** The version of the broker this run started, or a description of where it came from. */
  kafkaVersion: string;
  /** URL of a database created for this run; dropped by stop(). */
  databaseUrl: string;
  stop(): Promise<void>;
}

interface Service {
  url: string;
  saslUrl?: string;
  /** The Kafka version of a broker started here. */
  version?: string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

async function script(args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<string> {
  try {
    const { stdout } = await run(args[0]!, args.slice(1), {
      cwd: root,
      env: { ...process.env, ...env },
      timeout: timeoutMs,
    });
    return stdout.trim();
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`, { cause: err });
  }
}

async function localKafka(): Promise<Service> {
  // Two consecutive free ports are not guaranteed; ask for each explicitly. stack/kafka.sh moves
  // to other free ports when one is taken by the time the broker starts, and prints where.
  const port = await freePort();
  const controllerPort = await freePort();
  const saslPort = await freePort();
  const dir = `${root}.stack/test-kafka-${process.pid}`;
  const env = {
    KAFKA_PORT: String(port),
    KAFKA_CONTROLLER_PORT: String(controllerPort),
    KAFKA_SASL_PORT: String(saslPort),
    KAFKA_STACK_DIR: dir,
    // Stopped by this run's teardown: a kept broker (make demo) never reuses it.
    KAFKA_TRANSIENT: '1',
  };
  // KAFKA_VERSION (from the environment, as make test sets it per run) chooses the line.
  const version = await script(['./stack/kafka.sh', 'version'], env, 10_000);
  await script(['./stack/kafka.sh', 'fetch'], env, 660_000);
  const url = await script(['./stack/kafka.sh', 'start'], env, 90_000);
  const saslUrl = await script(['./stack/kafka.sh', 'address', 'sasl'], env, 10_000);
  return {
    url,
    saslUrl,
    version,
    stop: async () => {
      await script(['./stack/kafka.sh', 'stop'], env, 60_000);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function localPostgres(): Promise<Service> {
  const ownedBefore = await script(['./stack/postgres.sh', 'owned'], {}, 30_000).then(
    () => true,
    () => false,
  );
  const url = await script(['./stack/postgres.sh', 'url'], {}, 60_000);
  return {
    url,
    stop: async () => {
      if (!ownedBefore) await script(['./stack/postgres.sh', 'stop'], {}, 60_000);
    },
  };
}

async function dockerServices(): Promise<{ kafka: Service; postgres: Service }> {
  const { startDockerServices } = await import('./docker-stack.ts');
  return startDockerServices();
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

async function createDatabase(adminUrl: string): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `pgsink_test_${process.pid}_${Date.now().toString(36)}`;
  const admin = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 10_000 });
  await admin.connect().catch((err: unknown) => {
    throw new Error(
      `PostgreSQL at ${new URL(adminUrl).host} refused the connection: ${String(err)}. ` +
        'Fix: start the server or set DATABASE_URL to one that accepts connections.',
      { cause: err },
    );
  });
  try {
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  return {
    url: withDatabase(adminUrl, name),
    drop: async () => {
      const c = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 10_000 });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

export async function startStack(): Promise<Stack> {
  const mode = process.env['PGSINK_TEST_STACK'] ?? 'local';
  if (mode !== 'local' && mode !== 'docker') {
    throw new Error(`PGSINK_TEST_STACK=${mode} is not valid; use 'local' (default) or 'docker'`);
  }
  const cleanups: Array<() => Promise<void>> = [];
  const stopAll = async (): Promise<void> => {
    const errors: unknown[] = [];
    for (const c of cleanups.reverse()) await c().catch((e: unknown) => errors.push(e));
    if (errors.length) throw new AggregateError(errors, 'stack teardown failed');
  };
  try {
    let kafkaBrokers = process.env['KAFKA_BROKERS'];
    let kafkaSaslBrokers = process.env['KAFKA_SASL_BROKERS'] ?? '';
    let kafkaVersion = kafkaBrokers ? 'KAFKA_BROKERS' : '';
    let adminUrl = process.env['DATABASE_URL'];
    if (mode === 'docker' && (!kafkaBrokers || !adminUrl)) {
      const { kafka, postgres } = await dockerServices();
      cleanups.push(kafka.stop, postgres.stop);
      if (!kafkaBrokers) kafkaVersion = kafka.version ?? 'docker';
      kafkaBrokers ??= kafka.url;
      adminUrl ??= postgres.url;
    }
    if (!adminUrl) {
      const pgService = await localPostgres();
      cleanups.push(pgService.stop);
      adminUrl = pgService.url;
    }
    if (!kafkaBrokers) {
      const kafka = await localKafka();
      cleanups.push(kafka.stop);
      kafkaBrokers = kafka.url;
      kafkaSaslBrokers = kafka.saslUrl ?? '';
      kafkaVersion = kafka.version ?? '';
    }
    const db = await createDatabase(adminUrl);
    cleanups.push(db.drop);
    return { kafkaBrokers, kafkaSaslBrokers, kafkaVersion, databaseUrl: db.url, stop: stopAll };
  } catch (err) {
    await stopAll().catch(() => undefined);
    throw err;
  }
}
