// The OpenTelemetry observer: one span per flush with the batch's attributes and bounded
// links to producer contexts, and metric values read through a pull reader.
import { SpanKind, SpanStatusCode, type Attributes } from '@opentelemetry/api';
import { MetricReader, type DataPoint, type Histogram } from '@opentelemetry/sdk-metrics';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace';
import { afterEach, describe, expect, it } from 'vitest';
import type { FlushReport } from '../../src/pipeline/observer.ts';
import * as N from '../../src/telemetry/names.ts';
import { createTelemetry, errorType, otlpFromEnv, type Telemetry } from '../../src/telemetry/otel.ts';

class PullReader extends MetricReader {
  protected override async onShutdown(): Promise<void> {}
  protected override async onForceFlush(): Promise<void> {}
}

let tel: Telemetry | undefined;
afterEach(async () => {
  await tel?.shutdown();
  tel = undefined;
});

function setup(maxLinks?: number) {
  const exporter = new InMemorySpanExporter();
  const processor = new SimpleSpanProcessor({ exporter });
  const reader = new PullReader();
  tel = createTelemetry({
    groupId: 'g1',
    bufferLimitBytes: 1024,
    spanProcessors: [processor],
    metricReaders: [reader],
    ...(maxLinks !== undefined ? { maxLinks } : {}),
  });
  const spans = async () => {
    // Export waits for the resource's async attributes (host id), so flush first.
    await processor.forceFlush();
    return exporter.getFinishedSpans();
  };
  const points = async (name: string): Promise<Array<DataPoint<unknown>>> => {
    const { resourceMetrics } = await reader.collect();
    const found = resourceMetrics.scopeMetrics
      .flatMap((s) => s.metrics)
      .find((m) => m.descriptor.name === name);
    return (found?.dataPoints ?? []) as Array<DataPoint<unknown>>;
  };
  const sum = async (name: string, where: Attributes = {}): Promise<number> =>
    (await points(name))
      .filter((p) => Object.entries(where).every(([k, v]) => p.attributes[k] === v))
      .reduce((n, p) => n + (typeof p.value === 'number' ? p.value : (p.value as Histogram).sum!), 0);
  return { observer: tel.observer, spans, points, sum };
}

function report(over: Partial<FlushReport> = {}): FlushReport {
  return {
    topic: 'orders',
    partition: 1,
    firstOffset: 100,
    lastOffset: 199,
    rows: 100,
    bytes: 20_000,
    reason: 'rows',
    durationMs: 250,
    outcome: {
      nextOffset: 200,
      rowsWritten: 98,
      deadLettered: 2,
      skippedBelowFence: 0,
      isolated: true,
      gaps: [],
    },
    table: 'public.orders',
    mode: 'append',
    traceparents: [],
    ...over,
  };
}

const traceId = (i: number): string => (i + 1).toString(16).padStart(32, '0');
const spanId = (i: number): string => (i + 1).toString(16).padStart(16, 'a');
const traceparent = (i: number): string => `00-${traceId(i)}-${spanId(i)}-01`;

describe('flush spans', () => {
  it('creates one consumer span per flush, back-dated by the flush duration, with the batch attributes', async () => {
    const { observer, spans } = setup();
    const before = Date.now();
    for (let i = 0; i < 3; i++)
      observer.flushed(report({ partition: i, firstOffset: i * 100, lastOffset: i * 100 + 99 }));
    const done = await spans();
    expect(done).toHaveLength(3);
    for (const [i, s] of done.entries()) {
      expect(s.name).toBe('flush orders');
      expect(s.kind).toBe(SpanKind.CONSUMER);
      expect(s.parentSpanContext).toBeUndefined();
      expect(s.status.code).toBe(SpanStatusCode.UNSET);
      expect(s.attributes).toMatchObject({
        [N.ATTR_MESSAGING_SYSTEM]: 'kafka',
        [N.ATTR_MESSAGING_DESTINATION_NAME]: 'orders',
        [N.ATTR_MESSAGING_DESTINATION_PARTITION_ID]: String(i),
        [N.ATTR_MESSAGING_CONSUMER_GROUP_NAME]: 'g1',
        [N.ATTR_MESSAGING_OPERATION_NAME]: 'flush',
        [N.ATTR_MESSAGING_OPERATION_TYPE]: 'process',
        [N.ATTR_MESSAGING_BATCH_MESSAGE_COUNT]: 100,
        [N.ATTR_DB_SYSTEM_NAME]: 'postgresql',
        [N.ATTR_DB_COLLECTION_NAME]: 'public.orders',
        [N.ATTR_WRITE_MODE]: 'append',
        [N.ATTR_FIRST_OFFSET]: i * 100,
        [N.ATTR_LAST_OFFSET]: i * 100 + 99,
        [N.ATTR_BATCH_BYTES]: 20_000,
        [N.ATTR_FLUSH_REASON]: 'rows',
        [N.ATTR_ROWS_WRITTEN]: 98,
        [N.ATTR_ROWS_DEAD_LETTERED]: 2,
        [N.ATTR_BATCH_ISOLATED]: true,
      });
      const startMs = s.startTime[0] * 1000 + s.startTime[1] / 1e6;
      const durationMs = s.duration[0] * 1000 + s.duration[1] / 1e6;
      expect(durationMs).toBeGreaterThanOrEqual(249);
      expect(durationMs).toBeLessThan(400);
      expect(startMs).toBeGreaterThanOrEqual(before - 260);
      expect(s.links).toEqual([]);
    }
  });

  it('links the span to the producers’ trace contexts, distinct, valid and at most maxLinks', async () => {
    const { observer, spans } = setup(16);
    const tps = [
      ...Array.from({ length: 20 }, (_, i) => traceparent(i)),
      traceparent(0), // duplicate
      'not-a-traceparent',
      `00-${'0'.repeat(32)}-${spanId(1)}-01`, // all-zero trace id: invalid
    ];
    observer.flushed(report({ traceparents: tps }));
    observer.flushed(report({ traceparents: [traceparent(5), traceparent(6)] }));
    const [many, two] = await spans();
    expect(many!.links).toHaveLength(16);
    expect(many!.links.map((l) => l.context.traceId)).toEqual(
      Array.from({ length: 16 }, (_, i) => traceId(i)),
    );
    expect(many!.links[3]!.context).toMatchObject({ traceId: traceId(3), spanId: spanId(3), traceFlags: 1 });
    expect(many!.attributes[N.ATTR_LINKS_DROPPED]).toBe(4);
    expect(two!.links.map((l) => l.context.spanId)).toEqual([spanId(5), spanId(6)]);
    expect(two!.attributes[N.ATTR_LINKS_DROPPED]).toBeUndefined();
  });

  it('makes an error span for a failed flush when the batch is given, and only counts other failures', async () => {
    const { observer, spans, sum } = setup();
    const err = Object.assign(new Error('deadlock detected'), { code: '40P01' });
    const { outcome: _o, ...batch } = report({ durationMs: 40 });
    observer.flushFailed('orders', 1, err, 3, { stage: 'flush', batch });
    observer.flushFailed('orders', 1, new Error('registry down'), 1, { stage: 'schema registry' });
    observer.flushFailed('orders', 2, new TypeError('x'), 1);
    const done = await spans();
    expect(done).toHaveLength(1);
    const s = done[0]!;
    expect(s.name).toBe('flush orders');
    expect(s.status).toEqual({ code: SpanStatusCode.ERROR, message: 'deadlock detected' });
    expect(s.attributes).toMatchObject({
      [N.ATTR_ERROR_TYPE]: '40P01',
      [N.ATTR_ATTEMPT]: 3,
      [N.ATTR_FIRST_OFFSET]: 100,
    });
    expect(s.events.map((e) => e.name)).toContain('exception');
    expect(await sum(N.METRIC_FLUSH_FAILURES)).toBe(3);
    expect(
      await sum(N.METRIC_FLUSH_FAILURES, { [N.ATTR_ERROR_TYPE]: '40P01', [N.ATTR_FAILURE_STAGE]: 'flush' }),
    ).toBe(1);
    expect(await sum(N.METRIC_FLUSH_FAILURES, { [N.ATTR_ERROR_TYPE]: 'TypeError' })).toBe(1);
    // The failed flush's duration is recorded too, marked with its error type.
    expect(await sum(N.METRIC_FLUSH_DURATION, { [N.ATTR_ERROR_TYPE]: '40P01' })).toBeCloseTo(0.04);
  });
});

describe('metrics', () => {
  it('counts the records re-read after Postgres lost commits and the records lost to retention', async () => {
    const { observer, sum } = setup();
    observer.notice({ kind: 'reread', topic: 'orders', partition: 0, first: 500, last: 999 });
    observer.notice({ kind: 'reread', topic: 'orders', partition: 1, first: 10, last: 10 });
    observer.notice({
      kind: 'retention-gap',
      topic: 'orders',
      partition: 0,
      first: 200,
      last: 599,
      action: 'continue',
    });
    expect(await sum(N.METRIC_RECORDS_REREAD)).toBe(501);
    expect(await sum(N.METRIC_RECORDS_REREAD, { [N.ATTR_MESSAGING_DESTINATION_PARTITION_ID]: '0' })).toBe(
      500,
    );
    expect(await sum(N.METRIC_RETENTION_GAP_RECORDS)).toBe(400);
  });

  it('counts, histograms and gauges follow the reports', async () => {
    const { observer, points, sum } = setup();
    observer.rebalanced(2);
    observer.recordsConsumed('orders', 0, 500);
    observer.recordsConsumed('orders', 1, 300);
    observer.recordsConsumed('orders', 0, 200);
    observer.flushed(report({ partition: 0, rows: 500, bytes: 50_000, durationMs: 100 }));
    observer.flushed(
      report({
        partition: 1,
        rows: 300,
        bytes: 30_000,
        durationMs: 300,
        outcome: {
          nextOffset: 1,
          rowsWritten: 300,
          deadLettered: 0,
          skippedBelowFence: 0,
          isolated: false,
          gaps: [],
        },
      }),
    );
    observer.committed('orders', 0, 700, 20);
    observer.committed('orders', 1, 300, 40);
    observer.lag('orders', 0, 42);
    observer.lag('orders', 1, 0);
    observer.buffered(512);
    observer.paused('orders', 0, 'buffer full');
    observer.paused('orders', 1, 'flush');

    expect(await sum(N.METRIC_CONSUMED_MESSAGES)).toBe(1_000);
    expect(
      await sum(N.METRIC_CONSUMED_MESSAGES, {
        [N.ATTR_MESSAGING_DESTINATION_PARTITION_ID]: '0',
        [N.ATTR_MESSAGING_OPERATION_NAME]: 'poll',
      }),
    ).toBe(700);
    expect(await sum(N.METRIC_ROWS_WRITTEN)).toBe(98 + 300);
    expect(
      await sum(N.METRIC_ROWS_WRITTEN, {
        [N.ATTR_DB_COLLECTION_NAME]: 'public.orders',
        [N.ATTR_MESSAGING_CONSUMER_GROUP_NAME]: 'g1',
      }),
    ).toBe(398);
    expect(await sum(N.METRIC_DEAD_LETTERS)).toBe(2);
    const rows = (await points(N.METRIC_BATCH_ROWS)) as Array<DataPoint<Histogram>>;
    expect(rows).toHaveLength(1);
    expect(rows[0]!.value).toMatchObject({ count: 2, sum: 800, min: 300, max: 500 });
    expect(await sum(N.METRIC_BATCH_SIZE)).toBe(80_000);
    expect(await sum(N.METRIC_FLUSH_DURATION)).toBeCloseTo(0.4);
    expect(await sum(N.METRIC_COMMIT_DURATION, { [N.ATTR_MESSAGING_OPERATION_NAME]: 'commit' })).toBeCloseTo(
      0.06,
    );
    expect(await sum(N.METRIC_CONSUMER_LAG, { [N.ATTR_MESSAGING_DESTINATION_PARTITION_ID]: '0' })).toBe(42);
    expect(await sum(N.METRIC_PARTITIONS_PAUSED)).toBe(2);
    expect(await sum(N.METRIC_PARTITIONS_PAUSED, { [N.ATTR_PAUSE_REASON]: 'buffer full' })).toBe(1);
    expect(await sum(N.METRIC_BUFFER_USAGE)).toBe(512);
    expect(await sum(N.METRIC_BUFFER_LIMIT)).toBe(1024);
    expect(await sum(N.METRIC_PARTITIONS_ASSIGNED)).toBe(2);
    expect(await sum(N.METRIC_REBALANCES)).toBe(1);

    // Resumed partitions go back to 0 (the series stays, at 0, rather than going stale).
    observer.resumed('orders', 0);
    observer.resumed('orders', 1);
    expect(await sum(N.METRIC_PARTITIONS_PAUSED)).toBe(0);
    expect((await points(N.METRIC_PARTITIONS_PAUSED)).length).toBe(2);

    // A new assignment zeroes the old partitions' lag and pauses (series never vanish from a
    // cumulative reader, so they must not keep a stale value); the new owner reports again.
    observer.paused('orders', 0, 'buffer full');
    observer.rebalanced(1);
    expect((await points(N.METRIC_CONSUMER_LAG)).map((p) => p.value)).toEqual([0, 0]);
    observer.lag('orders', 1, 7);
    expect(await sum(N.METRIC_CONSUMER_LAG, { [N.ATTR_MESSAGING_DESTINATION_PARTITION_ID]: '1' })).toBe(7);
    expect(await sum(N.METRIC_PARTITIONS_PAUSED)).toBe(0);
    expect(await sum(N.METRIC_REBALANCES)).toBe(2);
    expect(await sum(N.METRIC_PARTITIONS_ASSIGNED)).toBe(1);
  });
});

describe('set-up', () => {
  it('exports OTLP only when an endpoint is set, and lets the exporter variables turn it off', () => {
    expect(otlpFromEnv({})).toEqual({ traces: false, metrics: false });
    expect(otlpFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })).toEqual({
      traces: true,
      metrics: true,
    });
    expect(otlpFromEnv({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/v1/traces' })).toEqual({
      traces: true,
      metrics: false,
    });
    expect(otlpFromEnv({ OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'http://c:4318/v1/metrics' })).toEqual({
      traces: false,
      metrics: true,
    });
    expect(
      otlpFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_EXPORTER: 'none' }),
    ).toEqual({ traces: false, metrics: true });
    expect(
      otlpFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_METRICS_EXPORTER: 'prometheus' }),
    ).toEqual({ traces: true, metrics: false });
    expect(otlpFromEnv({ OTEL_TRACES_EXPORTER: 'otlp' })).toEqual({ traces: false, metrics: false });
    expect(otlpFromEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'true' })).toEqual({
      traces: false,
      metrics: false,
    });
  });

  it('runs one instance at a time and can start again after shutdown', async () => {
    setup();
    expect(() => createTelemetry({ groupId: 'g2' })).toThrow(/already running/);
    await tel!.shutdown();
    await tel!.shutdown();
    tel = createTelemetry({ groupId: 'g2' });
    expect(tel.export).toEqual({ otlpTraces: false, otlpMetrics: false, disabled: false });
  });

  it('names error types by SQLSTATE or code, else by class, label-safe', () => {
    expect(errorType(Object.assign(new Error('x'), { code: '23505' }))).toBe('23505');
    expect(errorType(Object.assign(new Error('x'), { code: 'ECONNREFUSED' }))).toBe('ECONNREFUSED');
    expect(errorType(new RangeError('x'))).toBe('RangeError');
    expect(errorType(Object.assign(new Error('x'), { code: 'a b"c' }))).toBe('a_b_c');
  });
});
