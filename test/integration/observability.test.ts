// Observability against the real broker and server: the pipeline reports through the
// OpenTelemetry observer, our one HTTP server serves /metrics, /healthz and /readyz, and the
// numbers follow what happens: rows written climb, lag drains to 0, partitions pause while
// the table is locked and resume after, readiness follows the group join and Postgres.
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace';
import { afterAll, describe, expect, it } from 'vitest';
import { orderValues, ordersType } from '../../src/cli/sample-data.ts';
import { createPipeline } from '../../src/pipeline/app.ts';
import { createCheckPool, HttpServer, postgresCheck } from '../../src/telemetry/http-server.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import * as N from '../../src/telemetry/names.ts';
import { createTelemetry } from '../../src/telemetry/otel.ts';
import { connectedProducer, databaseUrl, kafkaClient, pgPool } from '../support/services.ts';
import { countRows, ordersFixture, produceOrders, testConfig, waitFor } from '../support/pipeline.ts';

const kafka = kafkaClient();
const pool = pgPool();
const logger = createLogger('error');

afterAll(async () => {
  await pool.end();
});

/** Sum of a metric's samples in a Prometheus exposition, over the series matching `labels`. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  let total: number | undefined;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const attrs = m[2] ?? '';
    if (!Object.entries(labels).every(([k, v]) => attrs.includes(`${k}="${v}"`))) continue;
    total = (total ?? 0) + Number(m[3]);
  }
  return total;
}

const ROWS = N.prometheusName(N.METRIC_ROWS_WRITTEN, 'counter');
const CONSUMED = N.prometheusName(N.METRIC_CONSUMED_MESSAGES, 'counter');
const LAG = N.prometheusName(N.METRIC_CONSUMER_LAG, 'gauge');
const PAUSED = N.prometheusName(N.METRIC_PARTITIONS_PAUSED, 'gauge');
const BUFFER = N.prometheusName(N.METRIC_BUFFER_USAGE, 'gauge');
const BATCH_ROWS = N.prometheusName(N.METRIC_BATCH_ROWS, 'histogram');
const BATCH_SIZE = N.prometheusName(N.METRIC_BATCH_SIZE, 'histogram');
const FLUSH_SECONDS = N.prometheusName(N.METRIC_FLUSH_DURATION, 'histogram');

describe('observability', () => {
  it('serves metrics that follow ingestion and backpressure, and probes that follow the group and Postgres', async () => {
    const f = await ordersFixture(kafka, pool, 3, 'obs');
    // Small limits, as in pipeline-failures: a locked table fills them within a few thousand records.
    const config = testConfig(f, {
      kafka: { maxBytesPerPartition: 32 * 1024 },
      batch: { maxRows: 1_000, maxBytes: 64 * 1024, lingerMs: 50 },
      backpressure: {
        maxPartitionBytes: 128 * 1024,
        maxTotalBytes: 512 * 1024,
        resumeRatio: 0.5,
        maxConcurrentFlushes: 3,
      },
    });
    const spans = new InMemorySpanExporter();
    const processor = new SimpleSpanProcessor({ exporter: spans });
    const tel = createTelemetry({
      groupId: f.groupId,
      bufferLimitBytes: config.backpressure.maxTotalBytes,
      spanProcessors: [processor],
      logger,
    });
    const { service } = createPipeline(config, { logger, observer: tel.observer });
    const checkPool = createCheckPool(databaseUrl(), { timeoutMs: 2_000 });
    const deadPool = createCheckPool('postgres://pgsink:secret@127.0.0.1:1/none', { timeoutMs: 500 });
    const server = new HttpServer({
      port: 0,
      host: '127.0.0.1',
      ready: () => service.ready,
      checkPostgres: postgresCheck(checkPool),
      metrics: tel.metricsHandler,
    });
    // Same process, Postgres unreachable: readiness must say so while liveness stays fine.
    const cutOff = new HttpServer({
      port: 0,
      host: '127.0.0.1',
      ready: () => service.ready,
      checkPostgres: postgresCheck(deadPool),
    });
    await server.start();
    await cutOff.start();
    const get = async (s: HttpServer, path: string): Promise<{ status: number; text: string }> => {
      const res = await fetch(`http://127.0.0.1:${s.port}${path}`);
      return { status: res.status, text: await res.text() };
    };
    const scrape = async (): Promise<string> => (await get(server, '/metrics')).text;
    const locker = await pool.connect();
    try {
      const before = await get(server, '/readyz');
      expect(before.status).toBe(503);
      expect(before.text).toContain('"consumer":"not joined"');

      await service.start();
      await waitFor(
        'readyz after the group join',
        () => get(server, '/readyz'),
        (r) => r.status === 200,
        30_000,
      );

      // Records with producer trace contexts: the flush spans link to them.
      const producer = await connectedProducer(kafka);
      const traced = [...orderValues(ordersType(), 1, 0, 3)].map((m, i) => ({
        ...m,
        headers: { traceparent: `00-${'ab'.repeat(15)}${String(i).padStart(2, '0')}-${'cd'.repeat(8)}-01` },
      }));
      await producer.send({ topic: f.topic, messages: traced });
      await producer.disconnect();

      // Ingestion: rows written climbs while it runs, then lag drains to 0.
      const N1 = 3_000;
      await produceOrders(kafka, f.topic, 3, N1 - 3);
      const seen: number[] = [];
      const text = await waitFor(
        'rows written metric at N1',
        async () => {
          const t = await scrape();
          seen.push(sample(t, ROWS) ?? 0);
          return t;
        },
        (t) => sample(t, ROWS) === N1,
        30_000,
        50,
      );
      expect(seen.every((v, i) => i === 0 || v >= seen[i - 1]!)).toBe(true);
      expect(sample(text, CONSUMED)).toBeGreaterThanOrEqual(N1);
      expect(sample(text, `${BATCH_ROWS}_count`)).toBeGreaterThan(0);
      expect(sample(text, `${BATCH_ROWS}_sum`)).toBe(N1);
      expect(sample(text, `${BATCH_SIZE}_bucket`, { le: '+Inf' })).toBe(sample(text, `${BATCH_ROWS}_count`));
      expect(sample(text, `${FLUSH_SECONDS}_count`)).toBeGreaterThan(0);
      await waitFor(
        'lag 0 on every partition',
        scrape,
        (t) => sample(t, LAG) === 0 && countSeries(t, LAG) === 3,
        30_000,
      );

      // Backpressure: a locked table stalls the flushes, buffers fill, partitions pause...
      await locker.query('BEGIN');
      await locker.query(`LOCK TABLE ${f.table} IN ACCESS EXCLUSIVE MODE`);
      const N2 = 6_000;
      await produceOrders(kafka, f.topic, N1, N2);
      const paused = await waitFor(
        'paused partitions > 0',
        scrape,
        (t) => (sample(t, PAUSED) ?? 0) > 0,
        30_000,
      );
      expect(sample(paused, PAUSED, { pgsink_pause_reason: 'buffer full' })).toBeGreaterThan(0);
      expect(sample(paused, BUFFER)).toBeGreaterThan(0);
      expect(sample(paused, LAG)).toBeGreaterThan(0);
      expect((await get(server, '/readyz')).status).toBe(200); // a busy sink is still ready
      // ...and after the unlock everything lands, the pauses end and lag drains again.
      await locker.query('COMMIT');
      await waitFor(
        'all rows after unlock',
        () => countRows(pool, f.table),
        (n) => n >= N1 + N2,
        60_000,
      );
      const after = await waitFor(
        'pauses over, lag 0',
        scrape,
        (t) => sample(t, PAUSED) === 0 && sample(t, LAG) === 0,
        30_000,
      );
      expect(sample(after, ROWS)).toBe(N1 + N2);

      // Postgres unreachable: not ready, still alive, and no secret in the answer.
      const cut = await get(cutOff, '/readyz');
      expect(cut.status).toBe(503);
      expect(cut.text).toContain('"postgres":"failed: ECONNREFUSED"');
      expect(cut.text).not.toContain('secret');
      expect((await get(cutOff, '/healthz')).status).toBe(200);
      expect((await get(server, '/healthz')).status).toBe(200);

      // One span per flush; together they account for every row, and the traced records' link.
      await processor.forceFlush();
      const done = spans.getFinishedSpans();
      expect(done.every((s) => s.name === `flush ${f.topic}`)).toBe(true);
      expect(done.reduce((n, s) => n + Number(s.attributes[N.ATTR_ROWS_WRITTEN]), 0)).toBe(N1 + N2);
      const links = done.flatMap((s) => s.links.map((l) => l.context.traceId));
      expect(links.sort()).toEqual(traced.map((m) => m.headers.traceparent.slice(3, 35)).sort());
    } finally {
      await locker.query('ROLLBACK').catch(() => undefined);
      locker.release();
      await service.stop();
    }
    try {
      const stopped = await get(server, '/readyz');
      expect(stopped.status).toBe(503);
    } finally {
      await server.stop();
      await cutOff.stop();
      await Promise.all([checkPool.end(), deadPool.end()]);
      await tel.shutdown();
    }
  });
});

function countSeries(text: string, name: string): number {
  return text.split('\n').filter((l) => l.startsWith(`${name}{`)).length;
}
