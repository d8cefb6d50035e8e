// OpenTelemetry for the sink: the Node SDK configured by the standard OTEL_* variables, a
// Prometheus reader whose text our own HTTP server serves (one port for metrics and probes),
// and a SinkObserver that turns the pipeline's reports into metrics and one span per flush.
//
// Export policy: OTLP (traces and metrics) only when an OTLP endpoint variable is set, so a
// plain deployment never dials localhost:4318 and logs export failures forever. Prometheus
// is always on. OTEL_SDK_DISABLED=true turns all of it off (the observer records into no-ops).
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  context,
  diag,
  DiagLogLevel,
  logs,
  metrics,
  propagation,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Counter,
  type DiagLogger,
  type Histogram,
  type Link,
  type Meter,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import { parseTraceParent } from '@opentelemetry/core';
import { OTLPMetricExporter as OtlpGrpcMetricExporter } from '@opentelemetry/exporter-metrics-otlp-grpc';
import { OTLPMetricExporter as OtlpJsonMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPMetricExporter as OtlpProtoMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import {
  defaultResource,
  detectResources,
  hostDetector,
  osDetector,
  processDetector,
  resourceAttributesEnvDetector,
  resourceFromAttributes,
  serviceInstanceIdDetector,
  serviceNameEnvDetector,
  type Resource,
  type ResourceDetector,
} from '@opentelemetry/resources';
import {
  PeriodicExportingMetricReader,
  type IMetricReader,
  type PushMetricExporter,
} from '@opentelemetry/sdk-metrics';
import { NodeSDK } from '@opentelemetry/sdk-node';
import type { SpanProcessor } from '@opentelemetry/sdk-trace';
import type {
  FailedFlush,
  FailureDetail,
  FlushReport,
  PartitionHealth,
  PartitionNotice,
  SinkObserver,
} from '../pipeline/observer.ts';
import type { Logger } from './logger.ts';
import * as N from './names.ts';

export type { FailedFlush, FailureDetail } from '../pipeline/observer.ts';

export interface TelemetryOptions {
  /** Consumer group: an attribute on every metric and span. */
  groupId: string;
  /** backpressure.maxTotalBytes, exported as pgsink.buffer.limit. */
  bufferLimitBytes?: number;
  serviceVersion?: string;
  /** OpenTelemetry's own warnings (export failures, ...) go here unless OTEL_LOG_LEVEL is set. */
  logger?: Logger;
  /**
   * Replaces the span export chosen from the environment; tests pass
   * `[new SimpleSpanProcessor({ exporter: new InMemorySpanExporter() })]`.
   */
  spanProcessors?: SpanProcessor[];
  /** Readers added next to Prometheus (and OTLP); tests pass a pull reader. */
  metricReaders?: IMetricReader[];
  /** Producer links per flush span; default names.MAX_FLUSH_LINKS. */
  maxLinks?: number;
  /** Bound on shutdown(), which flushes OTLP exports that may hang on a dead collector. */
  shutdownTimeoutMs?: number;
}

export interface Telemetry {
  observer: SinkObserver & {
    flushFailed(topic: string, partition: number, err: Error, attempt: number, detail?: FailureDetail): void;
  };
  /** Serves the Prometheus exposition; mount it on the HTTP server's /metrics. */
  metricsHandler(req: IncomingMessage, res: ServerResponse): void;
  /** What the environment turned on, for the start-up log line. */
  readonly export: { otlpTraces: boolean; otlpMetrics: boolean; disabled: boolean };
  /** Flushes and stops exporters; idempotent. */
  shutdown(): Promise<void>;
}

// The SDK registers process-wide globals (tracer, meter and logger providers, context
// manager, propagator); a second SDK would silently lose that race, so one at a time.
let active: object | undefined;

export function createTelemetry(opts: TelemetryOptions): Telemetry {
  if (active)
    throw new Error('telemetry is already running in this process; shut the other instance down first');
  const env = process.env;
  const disabled = isTrue(env['OTEL_SDK_DISABLED']);
  const otlp = otlpFromEnv(env);
  const diagRouted = opts.logger !== undefined && !env['OTEL_LOG_LEVEL'];
  if (diagRouted) diag.setLogger(diagToPino(opts.logger!), DiagLogLevel.WARN);

  const prometheus = new PrometheusExporter({ preventServerStart: true });
  const readers: IMetricReader[] = [prometheus, ...(opts.metricReaders ?? [])];
  if (otlp.metrics) readers.push(otlpMetricReader(env));

  // Our own resource, detected here rather than inside the SDK, so that /metrics can wait for
  // its asynchronous attributes (host.id) instead of serializing a half-built target_info.
  const resource = buildResource(env, opts.serviceVersion);
  let settled = resource.asyncAttributesPending
    ? (resource.waitForAsyncAttributes?.() ?? Promise.resolve())
    : undefined;
  void settled?.then(() => (settled = undefined));

  const sdk = new NodeSDK({
    resource,
    autoDetectResources: false,
    metricReaders: readers,
    // undefined: the SDK builds the span export from OTEL_TRACES_EXPORTER & co.; []: no tracing.
    ...(opts.spanProcessors
      ? { spanProcessors: opts.spanProcessors }
      : otlp.traces
        ? {}
        : { spanProcessors: [] }),
    // Logs go to stderr through pino; the SDK's default would be an OTLP log exporter.
    logRecordProcessors: [],
  });
  sdk.start();

  const meter = metrics.getMeter(N.SCOPE_NAME, opts.serviceVersion);
  const tracer = trace.getTracer(N.SCOPE_NAME, opts.serviceVersion);
  const observer = new OtelObserver(meter, tracer, opts);

  let stopped: Promise<void> | undefined;
  const token = {};
  active = token;
  const shutdown = (): Promise<void> => {
    stopped ??= (async () => {
      try {
        await withTimeout(sdk.shutdown(), opts.shutdownTimeoutMs ?? 5_000);
      } catch (err) {
        opts.logger?.warn(
          { err: err instanceof Error ? err.message : String(err) },
          'telemetry shutdown incomplete',
        );
      } finally {
        // Unregister the globals so that a later SDK in this process (tests) can register.
        trace.disable();
        metrics.disable();
        logs.disable();
        propagation.disable();
        context.disable();
        if (diagRouted) diag.disable();
        if (active === token) active = undefined;
      }
    })();
    return stopped;
  };

  return {
    observer,
    metricsHandler(req, res) {
      if (disabled || stopped) {
        res.statusCode = 200;
        res.setHeader('content-type', 'text/plain; charset=utf-8');
        res.end(disabled ? '# metrics disabled (OTEL_SDK_DISABLED=true)\n' : '# telemetry stopped\n');
        return;
      }
      if (settled) void settled.then(() => prometheus.getMetricsRequestHandler(req, res));
      else prometheus.getMetricsRequestHandler(req, res);
    },
    export: {
      otlpTraces: !disabled && !opts.spanProcessors && otlp.traces,
      otlpMetrics: !disabled && otlp.metrics,
      disabled,
    },
    shutdown,
  };
}

/**
 * service.name "pgsink" unless OTEL_SERVICE_NAME says otherwise, the detectors named by
 * OTEL_NODE_RESOURCE_DETECTORS (host, os, process, serviceinstance, env, all, none; as the
 * SDK reads it), and OTEL_RESOURCE_ATTRIBUTES over everything.
 */
function buildResource(env: NodeJS.ProcessEnv, serviceVersion: string | undefined): Resource {
  const byName: Record<string, ResourceDetector[]> = {
    host: [hostDetector],
    os: [osDetector],
    process: [processDetector],
    serviceinstance: [serviceInstanceIdDetector],
    env: [],
  };
  const names = (env['OTEL_NODE_RESOURCE_DETECTORS'] ?? '')
    .split(',')
    .map((n) => n.trim().toLowerCase())
    .filter(Boolean);
  // Default without the process detector: it puts the command line into every export and
  // into Prometheus' target_info; nothing needs it, and command lines can carry secrets.
  let chosen = names.length === 0 ? ['host', 'os', 'serviceinstance'] : names;
  if (chosen.includes('none')) chosen = [];
  if (chosen.includes('all')) chosen = Object.keys(byName);
  const detectors = [...new Set(chosen.flatMap((n) => byName[n] ?? []))];
  return defaultResource()
    .merge(
      resourceFromAttributes({
        'service.name': 'pgsink',
        ...(serviceVersion ? { 'service.version': serviceVersion } : {}),
      }),
    )
    .merge(
      detectResources({ detectors: [...detectors, serviceNameEnvDetector, resourceAttributesEnvDetector] }),
    );
}

/**
 * Which OTLP signals to export. An endpoint (generic or per signal) turns a signal on;
 * OTEL_{TRACES,METRICS}_EXPORTER can still turn it off ("none", or a list without "otlp").
 */
export function otlpFromEnv(env: NodeJS.ProcessEnv): { traces: boolean; metrics: boolean } {
  const set = (k: string): boolean => (env[k] ?? '').trim() !== '';
  const endpoint = set('OTEL_EXPORTER_OTLP_ENDPOINT');
  const wanted = (exporterVar: string): boolean => {
    const names = (env[exporterVar] ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    return names.length === 0 || names.includes('otlp');
  };
  return {
    traces:
      !isTrue(env['OTEL_SDK_DISABLED']) &&
      (endpoint || set('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT')) &&
      wanted('OTEL_TRACES_EXPORTER'),
    metrics:
      !isTrue(env['OTEL_SDK_DISABLED']) &&
      (endpoint || set('OTEL_EXPORTER_OTLP_METRICS_ENDPOINT')) &&
      wanted('OTEL_METRICS_EXPORTER'),
  };
}

/** As the SDK does it from the environment (protocol, interval, timeout); exporters read the rest. */
function otlpMetricReader(env: NodeJS.ProcessEnv): PeriodicExportingMetricReader {
  const protocol =
    (env['OTEL_EXPORTER_OTLP_METRICS_PROTOCOL'] ?? env['OTEL_EXPORTER_OTLP_PROTOCOL'] ?? '').trim() ||
    'http/protobuf';
  let exporter: PushMetricExporter;
  if (protocol === 'grpc') exporter = new OtlpGrpcMetricExporter();
  else if (protocol === 'http/json') exporter = new OtlpJsonMetricExporter();
  else {
    if (protocol !== 'http/protobuf')
      diag.warn(`unsupported OTLP metrics protocol "${protocol}"; using http/protobuf`);
    exporter = new OtlpProtoMetricExporter();
  }
  const positive = (k: string): number | undefined => {
    const v = Number(env[k]);
    return env[k] && Number.isFinite(v) && v > 0 ? v : undefined;
  };
  const exportIntervalMillis = positive('OTEL_METRIC_EXPORT_INTERVAL') ?? 60_000;
  const exportTimeoutMillis = Math.min(
    positive('OTEL_METRIC_EXPORT_TIMEOUT') ?? 30_000,
    exportIntervalMillis,
  );
  return new PeriodicExportingMetricReader({ exporter, exportIntervalMillis, exportTimeoutMillis });
}

function isTrue(v: string | undefined): boolean {
  return (v ?? '').trim().toLowerCase() === 'true';
}

function diagToPino(logger: Logger): DiagLogger {
  const text = (args: unknown[]): string[] =>
    args.map((a) => (a instanceof Error ? a.message : String(a)).slice(0, 500));
  const at =
    (level: 'error' | 'warn' | 'info' | 'debug') =>
    (message: string, ...args: unknown[]): void => {
      logger[level]({ component: 'opentelemetry', ...(args.length ? { details: text(args) } : {}) }, message);
    };
  return { error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug'), verbose: at('debug') };
}

function withTimeout(p: Promise<void>, ms: number): Promise<void> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<void>((_, reject) => {
      t = setTimeout(() => reject(new Error(`not done within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(t));
}

/** error.type: a SQLSTATE or our error code when there is one, else the error's class. */
export function errorType(err: Error): string {
  const code = (err as { code?: unknown }).code;
  const raw = typeof code === 'string' && code !== '' ? code : err.name || 'Error';
  // Bounded and label-safe: it becomes a Prometheus label value.
  return raw.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 64);
}

const SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const ROWS = [1, 10, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000];
const BYTES = [1, 4, 16, 64, 256, 1_024, 4_096, 16_384, 65_536].map((k) => k * 1_024);

interface PartitionKey {
  topic: string;
  partition: number;
}

/** The SinkObserver that records OpenTelemetry metrics and flush spans. */
class OtelObserver implements SinkObserver {
  private readonly tracer: Tracer;
  private readonly groupId: string;
  private readonly maxLinks: number;
  private readonly consumed: Counter;
  private readonly rowsWritten: Counter;
  private readonly deadLetters: Counter;
  private readonly failures: Counter;
  private readonly rebalances: Counter;
  private readonly reread: Counter;
  private readonly gapRecords: Counter;
  private readonly batchRows: Histogram;
  private readonly batchSize: Histogram;
  private readonly flushDuration: Histogram;
  private readonly commitDuration: Histogram;

  private readonly lagByPartition = new Map<string, { attrs: Attributes; lag: number }>();
  private readonly stalledByPartition = new Map<
    string,
    { attrs: Attributes; seconds: number; stuck: boolean }
  >();
  private readonly pausedByPartition = new Map<string, { topic: string; reason: string }>();
  /** Every (topic, reason) ever paused: reported as 0 once nothing is, not left stale. */
  private readonly pauseSeries = new Map<string, Attributes>();
  /** batch.adaptiveRows: each partition's row limit after its last flush here. */
  private readonly rowLimits = new Map<string, [number, Attributes]>();
  private bufferedBytes = 0;
  private assignedPartitions = 0;
  private readonly attrCache = new Map<string, Attributes>();

  constructor(meter: Meter, tracer: Tracer, opts: TelemetryOptions) {
    this.tracer = tracer;
    this.groupId = opts.groupId;
    this.maxLinks = opts.maxLinks ?? N.MAX_FLUSH_LINKS;
    this.consumed = meter.createCounter(N.METRIC_CONSUMED_MESSAGES, {
      description: 'Records delivered by Kafka to the sink.',
      unit: '{message}',
    });
    this.rowsWritten = meter.createCounter(N.METRIC_ROWS_WRITTEN, {
      description: 'Rows committed to the target tables.',
      unit: '{row}',
    });
    this.deadLetters = meter.createCounter(N.METRIC_DEAD_LETTERS, {
      description: 'Records committed to the dead-letter table.',
      unit: '{record}',
    });
    this.failures = meter.createCounter(N.METRIC_FLUSH_FAILURES, {
      description: 'Failed flush, decode or schema-registry attempts; each one is retried with backoff.',
      unit: '{failure}',
    });
    this.rebalances = meter.createCounter(N.METRIC_REBALANCES, {
      description: 'Consumer group assignments received.',
      unit: '{rebalance}',
    });
    this.reread = meter.createCounter(N.METRIC_RECORDS_REREAD, {
      description:
        "Offsets read and written again because Postgres' fence was behind Kafka's committed offset (a restore or a failover).",
      unit: '{record}',
    });
    this.gapRecords = meter.createCounter(N.METRIC_RETENTION_GAP_RECORDS, {
      description: 'Offsets deleted by retention before they were written (recorded in the gaps table).',
      unit: '{record}',
    });
    this.batchRows = meter.createHistogram(N.METRIC_BATCH_ROWS, {
      description: 'Records per flushed batch.',
      unit: '{row}',
      advice: { explicitBucketBoundaries: ROWS },
    });
    this.batchSize = meter.createHistogram(N.METRIC_BATCH_SIZE, {
      description: 'Buffered bytes per flushed batch.',
      unit: 'By',
      advice: { explicitBucketBoundaries: BYTES },
    });
    this.flushDuration = meter.createHistogram(N.METRIC_FLUSH_DURATION, {
      description: 'Duration of one flush transaction (fence, COPY, merge, dead letters, offset row).',
      unit: 's',
      advice: { explicitBucketBoundaries: SECONDS },
    });
    this.commitDuration = meter.createHistogram(N.METRIC_COMMIT_DURATION, {
      description: 'Duration of Kafka offset commits.',
      unit: 's',
      advice: { explicitBucketBoundaries: SECONDS },
    });

    meter
      .createObservableGauge(N.METRIC_CONSUMER_LAG, {
        description: 'High watermark minus committed offset, per assigned partition.',
        unit: '{message}',
      })
      .addCallback((r) => {
        for (const { attrs, lag } of this.lagByPartition.values()) r.observe(lag, attrs);
      });
    meter
      .createObservableGauge(N.METRIC_PARTITION_STALLED, {
        description:
          'Per partition: how long it has had records to write without advancing (0 with nothing to write).',
        unit: 's',
      })
      .addCallback((r) => {
        for (const { attrs, seconds } of this.stalledByPartition.values()) r.observe(seconds, attrs);
      });
    meter
      .createObservableGauge(N.METRIC_PARTITIONS_STUCK, {
        description: 'Partitions with records to write that have not advanced for http.stuckAfterMs.',
        unit: '{partition}',
      })
      .addCallback((r) => {
        let n = 0;
        for (const p of this.stalledByPartition.values()) if (p.stuck) n++;
        r.observe(n, this.groupAttrs());
      });
    meter
      .createObservableGauge(N.METRIC_PARTITIONS_PAUSED, {
        description: 'Partitions paused now (buffer full, or a failing stage being retried).',
        unit: '{partition}',
      })
      .addCallback((r) => {
        const counts = new Map<string, number>();
        for (const { topic, reason } of this.pausedByPartition.values()) {
          const k = `${topic}\0${reason}`;
          counts.set(k, (counts.get(k) ?? 0) + 1);
        }
        for (const [k, attrs] of this.pauseSeries) r.observe(counts.get(k) ?? 0, attrs);
      });
    meter
      .createObservableGauge(N.METRIC_BATCH_ROW_LIMIT, {
        description: "A partition's batch row limit under batch.adaptiveRows, after its last flush.",
        unit: '{row}',
      })
      .addCallback((r) => {
        for (const [value, attrs] of this.rowLimits.values()) r.observe(value, attrs);
      });
    meter
      .createObservableGauge(N.METRIC_PARTITIONS_ASSIGNED, {
        description: 'Partitions assigned to this consumer.',
        unit: '{partition}',
      })
      .addCallback((r) => r.observe(this.assignedPartitions, this.groupAttrs()));
    meter
      .createObservableGauge(N.METRIC_BUFFER_USAGE, {
        description: 'Bytes buffered, in-flight batches included: what backpressure limits.',
        unit: 'By',
      })
      .addCallback((r) => r.observe(this.bufferedBytes, this.groupAttrs()));
    if (opts.bufferLimitBytes !== undefined) {
      const limit = opts.bufferLimitBytes;
      meter
        .createObservableGauge(N.METRIC_BUFFER_LIMIT, {
          description: 'backpressure.maxTotalBytes.',
          unit: 'By',
        })
        .addCallback((r) => r.observe(limit, this.groupAttrs()));
    }
  }

  recordsConsumed(topic: string, partition: number, count: number): void {
    this.consumed.add(
      count,
      this.cached(`c\0${topic}\0${partition}`, () => ({
        ...this.partitionAttrs({ topic, partition }),
        [N.ATTR_MESSAGING_OPERATION_NAME]: N.OPERATION_POLL,
        [N.ATTR_MESSAGING_OPERATION_TYPE]: N.OPERATION_TYPE_RECEIVE,
      })),
    );
  }

  flushed(r: FlushReport): void {
    const perPartition = this.cached(`w\0${r.topic}\0${r.partition}\0${r.table}`, () => ({
      ...this.partitionAttrs(r),
      [N.ATTR_DB_SYSTEM_NAME]: N.DB_SYSTEM_POSTGRESQL,
      [N.ATTR_DB_COLLECTION_NAME]: r.table,
    }));
    if (r.outcome.rowsWritten > 0) this.rowsWritten.add(r.outcome.rowsWritten, perPartition);
    if (r.outcome.deadLettered > 0) this.deadLetters.add(r.outcome.deadLettered, perPartition);
    const perTopic = this.flushAttrs(r);
    this.batchRows.record(r.rows, perTopic);
    this.batchSize.record(r.bytes, perTopic);
    this.flushDuration.record(r.durationMs / 1000, perTopic);
    if (r.rowLimit !== undefined) this.rowLimits.set(`${r.topic}:${r.partition}`, [r.rowLimit, perPartition]);

    const span = this.startFlushSpan(r);
    span.setAttributes({
      [N.ATTR_ROWS_WRITTEN]: r.outcome.rowsWritten,
      [N.ATTR_ROWS_DEAD_LETTERED]: r.outcome.deadLettered,
      [N.ATTR_ROWS_SKIPPED]: r.outcome.skippedBelowFence,
      [N.ATTR_BATCH_ISOLATED]: r.outcome.isolated,
    });
    span.end(Date.now());
  }

  flushFailed(topic: string, partition: number, err: Error, attempt: number, detail?: FailureDetail): void {
    const type = errorType(err);
    this.failures.add(1, {
      ...this.partitionAttrs({ topic, partition }),
      [N.ATTR_ERROR_TYPE]: type,
      ...(detail ? { [N.ATTR_FAILURE_STAGE]: detail.stage } : {}),
    });
    const b = detail?.batch;
    if (!b) return;
    this.flushDuration.record(b.durationMs / 1000, { ...this.flushAttrs(b), [N.ATTR_ERROR_TYPE]: type });
    const span = this.startFlushSpan(b);
    span.setAttributes({ [N.ATTR_ERROR_TYPE]: type, [N.ATTR_ATTEMPT]: attempt });
    span.recordException(err);
    span.setStatus({ code: SpanStatusCode.ERROR, message: err.message });
    span.end(Date.now());
  }

  committed(topic: string, _partition: number, _offset: number, durationMs: number): void {
    this.commitDuration.record(
      durationMs / 1000,
      this.cached(`k\0${topic}`, () => ({
        ...this.topicAttrs(topic),
        [N.ATTR_MESSAGING_OPERATION_NAME]: N.OPERATION_COMMIT,
        [N.ATTR_MESSAGING_OPERATION_TYPE]: N.OPERATION_TYPE_SETTLE,
      })),
    );
  }

  paused(topic: string, partition: number, reason: string): void {
    const k = `${topic}\0${reason}`;
    if (!this.pauseSeries.has(k)) {
      this.pauseSeries.set(k, { ...this.topicAttrs(topic), [N.ATTR_PAUSE_REASON]: reason });
    }
    this.pausedByPartition.set(`${topic}:${partition}`, { topic, reason });
  }

  resumed(topic: string, partition: number): void {
    this.pausedByPartition.delete(`${topic}:${partition}`);
  }

  rebalanced(assigned: number): void {
    this.rebalances.add(1, this.groupAttrs());
    this.assignedPartitions = assigned;
    // The service starts every partition afresh on a new assignment. A partition that went to
    // another consumer must not keep showing its old lag here, and the SDK keeps reporting
    // every series it has seen (cumulative), so its lag goes to 0 rather than away; the
    // partitions still ours report their lag again with their next fetch.
    this.pausedByPartition.clear();
    for (const entry of this.lagByPartition.values()) entry.lag = 0;
  }

  lag(topic: string, partition: number, lag: number): void {
    this.lagByPartition.set(`${topic}:${partition}`, {
      attrs: this.partitionAttrs({ topic, partition }),
      lag,
    });
  }

  buffered(totalBytes: number): void {
    this.bufferedBytes = totalBytes;
  }

  partitionHealth(partitions: readonly PartitionHealth[]): void {
    // Partitions no longer reported (revoked) go to 0 rather than away, like lag.
    for (const entry of this.stalledByPartition.values()) {
      entry.seconds = 0;
      entry.stuck = false;
    }
    for (const p of partitions) {
      this.stalledByPartition.set(`${p.topic}:${p.partition}`, {
        attrs: this.partitionAttrs(p),
        seconds: Math.round(p.stalledMs / 100) / 10,
        stuck: p.stuck,
      });
    }
  }

  notice(n: PartitionNotice): void {
    const count = n.last - n.first + 1;
    if (count <= 0) return;
    const attrs = this.partitionAttrs(n);
    if (n.kind === 'reread') this.reread.add(count, attrs);
    else this.gapRecords.add(count, attrs);
  }

  // ---------------------------------------------------------------- spans

  /** The flush span, started in the past: the pipeline reports a flush when it has ended. */
  private startFlushSpan(b: FailedFlush): Span {
    const { links, dropped } = this.links(b.traceparents);
    const end = Date.now();
    return this.tracer.startSpan(N.flushSpanName(b.topic), {
      root: true,
      kind: SpanKind.CONSUMER,
      startTime: end - Math.max(0, b.durationMs),
      links,
      attributes: {
        ...this.partitionAttrs(b),
        [N.ATTR_MESSAGING_OPERATION_NAME]: N.OPERATION_FLUSH,
        [N.ATTR_MESSAGING_OPERATION_TYPE]: N.OPERATION_TYPE_PROCESS,
        [N.ATTR_MESSAGING_BATCH_MESSAGE_COUNT]: b.rows,
        [N.ATTR_DB_SYSTEM_NAME]: N.DB_SYSTEM_POSTGRESQL,
        [N.ATTR_DB_COLLECTION_NAME]: b.table,
        [N.ATTR_WRITE_MODE]: b.mode,
        [N.ATTR_FIRST_OFFSET]: b.firstOffset,
        [N.ATTR_LAST_OFFSET]: b.lastOffset,
        [N.ATTR_BATCH_BYTES]: b.bytes,
        [N.ATTR_FLUSH_REASON]: b.reason,
        ...(dropped > 0 ? { [N.ATTR_LINKS_DROPPED]: dropped } : {}),
      },
    });
  }

  /** Valid, distinct producer contexts, at most maxLinks of them. */
  private links(traceparents: readonly string[] | undefined): { links: Link[]; dropped: number } {
    const links: Link[] = [];
    if (!traceparents?.length) return { links, dropped: 0 };
    const seen = new Set<string>();
    let dropped = 0;
    for (const tp of traceparents) {
      const ctx = typeof tp === 'string' && tp.length <= 128 ? parseTraceParent(tp.trim()) : null;
      if (!ctx) continue;
      const id = `${ctx.traceId}-${ctx.spanId}`;
      if (seen.has(id)) continue;
      seen.add(id);
      if (links.length >= this.maxLinks) dropped++;
      else links.push({ context: ctx });
    }
    return { links, dropped };
  }

  // ---------------------------------------------------------------- attributes

  private cached(key: string, make: () => Attributes): Attributes {
    let a = this.attrCache.get(key);
    if (!a) {
      a = make();
      this.attrCache.set(key, a);
    }
    return a;
  }

  private groupAttrs(): Attributes {
    return this.cached('g', () => ({
      [N.ATTR_MESSAGING_SYSTEM]: N.MESSAGING_SYSTEM_KAFKA,
      [N.ATTR_MESSAGING_CONSUMER_GROUP_NAME]: this.groupId,
    }));
  }

  private topicAttrs(topic: string): Attributes {
    return this.cached(`t\0${topic}`, () => ({
      ...this.groupAttrs(),
      [N.ATTR_MESSAGING_DESTINATION_NAME]: topic,
    }));
  }

  private partitionAttrs({ topic, partition }: PartitionKey): Attributes {
    return this.cached(`p\0${topic}\0${partition}`, () => ({
      ...this.topicAttrs(topic),
      [N.ATTR_MESSAGING_DESTINATION_PARTITION_ID]: String(partition),
    }));
  }

  /** Histograms are per topic and table, not per partition: buckets × partitions adds up. */
  private flushAttrs(b: FailedFlush): Attributes {
    return this.cached(`f\0${b.topic}\0${b.table}\0${b.mode}`, () => ({
      ...this.topicAttrs(b.topic),
      [N.ATTR_MESSAGING_OPERATION_NAME]: N.OPERATION_FLUSH,
      [N.ATTR_MESSAGING_OPERATION_TYPE]: N.OPERATION_TYPE_PROCESS,
      [N.ATTR_DB_SYSTEM_NAME]: N.DB_SYSTEM_POSTGRESQL,
      [N.ATTR_DB_COLLECTION_NAME]: b.table,
      [N.ATTR_WRITE_MODE]: b.mode,
    }));
  }
}
