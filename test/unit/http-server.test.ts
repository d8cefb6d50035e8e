// The probe and metrics server, with fake readiness callbacks: no Kafka, no Postgres.
import { afterEach, describe, expect, it } from 'vitest';
import { HttpServer, type HttpServerOptions } from '../../src/telemetry/http-server.ts';
import * as N from '../../src/telemetry/names.ts';
import { createTelemetry, type Telemetry } from '../../src/telemetry/otel.ts';

let server: HttpServer | undefined;
let tel: Telemetry | undefined;
afterEach(async () => {
  await server?.stop();
  await tel?.shutdown();
  server = undefined;
  tel = undefined;
});

async function start(
  opts: Omit<HttpServerOptions, 'port' | 'host'>,
): Promise<
  (
    path: string,
    init?: RequestInit,
  ) => Promise<{ status: number; text: string; json: () => Record<string, unknown> }>
> {
  server = new HttpServer({ port: 0, host: '127.0.0.1', ...opts });
  await server.start();
  const base = `http://127.0.0.1:${server.port}`;
  return async (path, init) => {
    const res = await fetch(base + path, init);
    const text = await res.text();
    return { status: res.status, text, json: () => JSON.parse(text) as Record<string, unknown> };
  };
}

const refused = (): Promise<void> =>
  Promise.reject(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }));

describe('HTTP server', () => {
  it('answers /healthz while the loop runs, and 404/405 for what it does not serve', async () => {
    const get = await start({ ready: () => false });
    const h = await get('/healthz');
    expect(h.status).toBe(200);
    expect(h.json()).toEqual({ status: 'ok' });
    expect((await get('/nope')).status).toBe(404);
    expect((await get('/metrics')).status).toBe(404); // no metrics handler given
    expect((await get('/healthz', { method: 'POST' })).status).toBe(405);
    const head = await get('/healthz', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.text).toBe('');
  });

  it('/readyz is 503 until the consumer joined and while Postgres fails, 200 when both are fine', async () => {
    let ready = false;
    let pg: () => Promise<void> = async () => {};
    let pgCalls = 0;
    const get = await start({
      ready: () => ready,
      checkPostgres: () => {
        pgCalls++;
        return pg();
      },
      postgresCacheMs: 50,
    });
    let r = await get('/readyz');
    expect(r.status).toBe(503);
    expect(r.json()).toMatchObject({
      status: 'not ready',
      checks: { consumer: 'not joined', postgres: 'ok' },
    });

    ready = true;
    r = await get('/readyz');
    expect(r.status).toBe(200);
    expect(r.json()).toEqual({ status: 'ready', checks: { consumer: 'ok', postgres: 'ok' } });

    // Cached for postgresCacheMs: back-to-back probes make one query.
    const before = pgCalls;
    await Promise.all([get('/readyz'), get('/readyz'), get('/readyz')]);
    expect(pgCalls - before).toBeLessThanOrEqual(1);

    pg = refused;
    await new Promise((res) => setTimeout(res, 60));
    r = await get('/readyz');
    expect(r.status).toBe(503);
    expect(r.json()).toMatchObject({ checks: { consumer: 'ok', postgres: 'failed: ECONNREFUSED' } });
    expect(r.text).not.toContain('127.0.0.1');
    expect((await get('/healthz')).status).toBe(200);

    pg = async () => {};
    await new Promise((res) => setTimeout(res, 60));
    expect((await get('/readyz')).status).toBe(200);
  });

  it('fails a hanging Postgres check by timeout without stacking queries', async () => {
    let calls = 0;
    let release: () => void = () => {};
    const get = await start({
      ready: () => true,
      checkPostgres: () => {
        calls++;
        return calls === 1 ? new Promise<void>((res) => (release = res)) : Promise.resolve();
      },
      postgresTimeoutMs: 50,
      postgresCacheMs: 0,
    });
    const r = await get('/readyz');
    expect(r.status).toBe(503);
    expect(r.json()).toMatchObject({ checks: { postgres: 'timeout' } });
    expect((await get('/readyz')).status).toBe(503);
    expect(calls).toBe(1);
    release();
    await new Promise((res) => setTimeout(res, 10));
    expect((await get('/readyz')).status).toBe(200);
    expect(calls).toBe(2);
  });

  it('/healthz is 503 for a while after the event loop stalled', async () => {
    const get = await start({ ready: () => true, maxEventLoopStallMs: 300, stallWindowMs: 600 });
    const until = performance.now() + 700;
    while (performance.now() < until) {
      // Block the loop, as a runaway synchronous task would.
    }
    const r = await get('/healthz');
    expect(r.status).toBe(503);
    expect(r.json()).toMatchObject({ status: 'unhealthy', reason: 'event loop stalled' });
    // Healthy again once the stall is older than the window (polled: this machine is shared).
    const by = Date.now() + 5_000;
    let status = r.status;
    while (status !== 200 && Date.now() < by) {
      await new Promise((res) => setTimeout(res, 100));
      status = (await get('/healthz')).status;
    }
    expect(status).toBe(200);
  });

  it('serves the Prometheus exposition with the sink metrics', async () => {
    tel = createTelemetry({ groupId: 'g1' });
    const o = tel.observer;
    o.rebalanced(1);
    o.recordsConsumed('orders', 0, 10);
    o.flushed({
      topic: 'orders',
      partition: 0,
      firstOffset: 0,
      lastOffset: 9,
      rows: 10,
      bytes: 2_000,
      reason: 'linger',
      durationMs: 12,
      outcome: {
        nextOffset: 10,
        rowsWritten: 9,
        deadLettered: 1,
        skippedBelowFence: 0,
        isolated: true,
        gaps: [],
      },
      table: 'public.orders',
      mode: 'append',
      traceparents: [],
    });
    o.committed('orders', 0, 10, 3);
    o.lag('orders', 0, 0);
    o.paused('orders', 0, 'buffer full');
    o.buffered(2_000);
    const get = await start({ ready: () => true, metrics: tel.metricsHandler });
    const r = await get('/metrics');
    expect(r.status).toBe(200);
    const expected: Array<[string, 'counter' | 'gauge' | 'histogram']> = [
      [N.METRIC_CONSUMED_MESSAGES, 'counter'],
      [N.METRIC_ROWS_WRITTEN, 'counter'],
      [N.METRIC_DEAD_LETTERS, 'counter'],
      [N.METRIC_REBALANCES, 'counter'],
      [N.METRIC_BATCH_ROWS, 'histogram'],
      [N.METRIC_BATCH_SIZE, 'histogram'],
      [N.METRIC_FLUSH_DURATION, 'histogram'],
      [N.METRIC_COMMIT_DURATION, 'histogram'],
      [N.METRIC_CONSUMER_LAG, 'gauge'],
      [N.METRIC_PARTITIONS_PAUSED, 'gauge'],
      [N.METRIC_BUFFER_USAGE, 'gauge'],
    ];
    for (const [name, kind] of expected)
      expect(r.text).toContain(`# TYPE ${N.prometheusName(name, kind)} ${kind}`);
    expect(r.text).toMatch(/^pgsink_rows_written_total\{[^}]*messaging_destination_name="orders"[^}]*\} 9$/m);
    expect(r.text).toMatch(/^pgsink_batch_rows_bucket\{[^}]*le="10"\} 1$/m);
    // The resource, host attributes settled, names the service.
    const target = /^target_info\{([^}]*)\}/m.exec(r.text)?.[1] ?? '';
    expect(target).toContain('service_name="pgsink"');
    expect(target).toMatch(/host_id="[^"]+"/);
  });

  it('start() and stop() are idempotent, and a taken port is a clear error', async () => {
    server = new HttpServer({ port: 0, host: '127.0.0.1', ready: () => true });
    await Promise.all([server.start(), server.start()]);
    const other = new HttpServer({ port: server.port, host: '127.0.0.1', ready: () => true });
    await expect(other.start()).rejects.toThrow(/cannot listen on 127\.0\.0\.1:\d+ \(EADDRINUSE\)/);
    await other.stop();
    await Promise.all([server.stop(), server.stop()]);
    await server.stop();
    await expect(server.start()).rejects.toThrow(/stopped/);
  });
});
