// `make demo`: start the local stack, produce sample orders, sink them into Postgres with
// pgsink, and print what landed and how fast.
//   PGSINK_DEMO_EVENTS (200000), PGSINK_DEMO_PARTITIONS (6); KAFKA_VERSION (4.4.0; 3.9.2) the
//   local broker's; KAFKA_BROKERS / DATABASE_URL point it at existing servers.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel, Partitioners } from '../kafka/kafkajs.ts';
import pg from 'pg';
import { parseConfig } from '../config/load.ts';
import { createPipeline } from '../pipeline/app.ts';
import { buildColumnPlan } from '../sink/columns.ts';
import { createTableSql } from '../sink/ddl.ts';
import { hideKafkajsTimeoutWarning } from '../kafka/quirks.ts';
import { createLogger } from '../telemetry/logger.ts';
import { produceAll } from './produce.ts';
import { ORDERS_SCHEMA_PATH, orderValues, ordersType } from './sample-data.ts';
import { routeSchema, type RouteConfig } from '../config/schema.ts';
import { createTopicAndWait } from '../kafka/topics.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const EVENTS = Number(process.env['PGSINK_DEMO_EVENTS'] ?? 200_000);
const PARTITIONS = Number(process.env['PGSINK_DEMO_PARTITIONS'] ?? 6);

/** The documented memory bound of one pgsink process (README, "Bounded memory"). */
const RSS_BOUND_MIB = 256;
const out = (s: string) => process.stdout.write(`${s}\n`);
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

/**
 * KAFKA_BROKERS, else the project's broker: stack/kafka.sh start reuses this project's broker
 * of the same version on KAFKA_PORT (19092) or starts one (on free ports when that port is
 * taken), says which on stderr and prints the bootstrap address on stdout.
 */
function stack(): { brokers: string; databaseUrl: string } {
  const script = (name: string, args: string[]): string => {
    try {
      return execFileSync(`${root}stack/${name}`, args, {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
      }).trim();
    } catch {
      throw new Error(`stack/${name} ${args.join(' ')} failed (its message is above)`);
    }
  };
  const brokers = process.env['KAFKA_BROKERS'] ?? script('kafka.sh', ['start']);
  const databaseUrl = process.env['DATABASE_URL'] ?? script('postgres.sh', ['url']);
  return { brokers, databaseUrl };
}

function bar(done: number, total: number, width = 30): string {
  const f = Math.min(1, done / total);
  return `[${'#'.repeat(Math.round(f * width)).padEnd(width, '.')}] ${(f * 100).toFixed(0).padStart(3)}%`;
}

async function main(): Promise<void> {
  hideKafkajsTimeoutWarning();
  const { brokers, databaseUrl } = stack();
  const runId = Date.now().toString(36);
  const topic = `pgsink-demo-orders-${runId}`;
  const groupId = `pgsink-demo-${runId}`;
  const table = 'pgsink_demo.orders';

  const route: RouteConfig = routeSchema.parse({
    topic,
    table,
    schema: ORDERS_SCHEMA_PATH,
    metadata: { partition: '_partition', offset: '_offset' },
  });
  const plan = buildColumnPlan(ordersType(), route);
  const admin = new pg.Client({ connectionString: databaseUrl });
  await admin.connect();
  await admin.query('CREATE SCHEMA IF NOT EXISTS pgsink_demo');
  await admin.query(`DROP TABLE IF EXISTS ${table}`);
  await admin.query(createTableSql(table, plan.columns, plan.pgTypes));

  const kafka = new Kafka({
    clientId: 'pgsink-demo',
    brokers: brokers.split(','),
    logLevel: logLevel.NOTHING,
  });
  const kadmin = kafka.admin();
  await kadmin.connect();
  try {
    await createTopicAndWait(kadmin, topic, PARTITIONS);
  } finally {
    await kadmin.disconnect();
  }

  out(
    `pgsink demo: ${fmt(EVENTS)} order events → Kafka topic ${topic} (${PARTITIONS} partitions) → ${table}`,
  );
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const type = ordersType();
  const p0 = performance.now();
  let producedBytes: number;
  try {
    producedBytes = (await produceAll(producer, topic, orderValues(type, 1, 0, EVENTS))).bytes;
  } finally {
    await producer.disconnect();
  }
  const produceSec = (performance.now() - p0) / 1000;
  out(
    `produced  ${fmt(EVENTS)} events (${(producedBytes / EVENTS).toFixed(0)} B each) in ${produceSec.toFixed(1)} s`,
  );

  const config = parseConfig(
    {
      kafka: { brokers: brokers.split(','), groupId, clientId: 'pgsink-demo' },
      postgres: { url: databaseUrl },
      // Batches, buffers and flushes as shipped (the defaults), so the figures are a user's.
      log: { level: 'error' },
      routes: [route],
    },
    'demo',
    root,
  );
  const { service, stats } = createPipeline(config, { logger: createLogger('error') });
  const c0 = performance.now();
  let firstFetch: number | undefined;
  await service.start();
  await new Promise<void>((resolve) => {
    const t = setInterval(() => {
      if (firstFetch === undefined && stats.consumedTotal > 0) firstFetch = performance.now();
      process.stderr.write(`\rconsuming ${bar(stats.rowsWritten, EVENTS)} ${fmt(stats.rowsWritten)} rows`);
      if (stats.rowsWritten + stats.deadLettered >= EVENTS || service.failure) {
        clearInterval(t);
        resolve();
      }
    }, 100);
  });
  const c1 = performance.now();
  process.stderr.write('\n');
  await service.stop();

  const {
    rows: [count],
  } = await admin.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`);
  const { rows: sample } = await admin.query(
    `SELECT order_id, status, amount, currency, created_at, shipping_city, note, _partition, _offset FROM ${table} ORDER BY order_id LIMIT 3`,
  );
  await admin.end();
  const consumeSec = (c1 - (firstFetch ?? c0)) / 1000;
  const peakRss = process.resourceUsage().maxRSS / 1024;
  out('');
  out(`events produced     ${fmt(EVENTS)}`);
  out(`rows in Postgres    ${fmt(Number(count!.n))}   (SELECT count(*) FROM ${table})`);
  out(`dead letters        ${fmt(stats.deadLettered)}`);
  out(
    `throughput          ${fmt(EVENTS / consumeSec)} events/s (first fetch → last commit, ${consumeSec.toFixed(2)} s)`,
  );
  out(
    `batches             ${fmt(stats.batches)} (by rows ${stats.flushReasons.rows}, bytes ${stats.flushReasons.bytes}, linger ${stats.flushReasons.linger}, drain ${stats.flushReasons.drain}); avg ${fmt(stats.rowsWritten / Math.max(1, stats.batches))} rows`,
  );
  out(
    `peak buffered       ${(stats.maxBufferedBytes / 1048576).toFixed(1)} MiB;  peak RSS ${peakRss.toFixed(0)} MiB (the producer included; bound ${RSS_BOUND_MIB} MiB: ${peakRss <= RSS_BOUND_MIB ? 'within' : 'EXCEEDED'})`,
  );
  out('sample rows:');
  console.table(
    sample.map((r: Record<string, unknown>) => ({
      ...r,
      created_at: (r['created_at'] as Date).toISOString(),
    })),
  );
  if (!process.env['KAFKA_BROKERS'])
    out(
      `Kafka on ${brokers} is still running for you to explore; \`make stack-down\` in the checkout that started it stops it.`,
    );
  if (Number(count!.n) !== EVENTS) {
    out(`MISMATCH: expected ${EVENTS} rows`);
    process.exitCode = 1;
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
