// Every metric name, span name and attribute key pgsink emits, in one place, so dashboards,
// alerts and tests have one list to follow. Where the OpenTelemetry semantic conventions
// (messaging, database, error) define a name for the thing, that name is used; the rest
// live under `pgsink.`. Semconv names are written out rather than imported from
// @opentelemetry/semantic-conventions: most are in its unstable "incubating" entry point,
// which its authors ask consumers to copy, not import.
//
// Prometheus sees the same names with '.' turned into '_' and `_total` appended to counters
// (see prometheusName); the OpenTelemetry JS exporter does not append unit suffixes.

// ---------------------------------------------------------------- attribute keys (semconv)

export const ATTR_MESSAGING_SYSTEM = 'messaging.system';
export const ATTR_MESSAGING_DESTINATION_NAME = 'messaging.destination.name';
/** A string, as the conventions require, e.g. "3". */
export const ATTR_MESSAGING_DESTINATION_PARTITION_ID = 'messaging.destination.partition.id';
export const ATTR_MESSAGING_CONSUMER_GROUP_NAME = 'messaging.consumer.group.name';
export const ATTR_MESSAGING_OPERATION_NAME = 'messaging.operation.name';
export const ATTR_MESSAGING_OPERATION_TYPE = 'messaging.operation.type';
export const ATTR_MESSAGING_BATCH_MESSAGE_COUNT = 'messaging.batch.message_count';
export const ATTR_DB_SYSTEM_NAME = 'db.system.name';
/** The target table as configured (`table` or `schema.table`). */
export const ATTR_DB_COLLECTION_NAME = 'db.collection.name';
/** SQLSTATE for Postgres failures, else the error's code or class name. */
export const ATTR_ERROR_TYPE = 'error.type';

export const MESSAGING_SYSTEM_KAFKA = 'kafka';
export const DB_SYSTEM_POSTGRESQL = 'postgresql';

/** messaging.operation.name values. */
export const OPERATION_POLL = 'poll';
export const OPERATION_FLUSH = 'flush';
export const OPERATION_COMMIT = 'commit';
/** messaging.operation.type values (the conventions' fixed set). */
export const OPERATION_TYPE_RECEIVE = 'receive';
export const OPERATION_TYPE_PROCESS = 'process';
export const OPERATION_TYPE_SETTLE = 'settle';

// ---------------------------------------------------------------- attribute keys (pgsink)

export const ATTR_FIRST_OFFSET = 'pgsink.batch.first_offset';
export const ATTR_LAST_OFFSET = 'pgsink.batch.last_offset';
export const ATTR_BATCH_BYTES = 'pgsink.batch.bytes';
/** Why the batch was flushed: rows | bytes | linger | drain. */
export const ATTR_FLUSH_REASON = 'pgsink.flush.reason';
/** The route's write mode: append | upsert. */
export const ATTR_WRITE_MODE = 'pgsink.write.mode';
export const ATTR_ROWS_WRITTEN = 'pgsink.rows.written';
export const ATTR_ROWS_DEAD_LETTERED = 'pgsink.rows.dead_lettered';
/** Records the fence dropped because an earlier owner had written them already. */
export const ATTR_ROWS_SKIPPED = 'pgsink.rows.skipped';
/** The batch hit a data error and was split to isolate the bad records. */
export const ATTR_BATCH_ISOLATED = 'pgsink.batch.isolated';
/** Consecutive failed attempts for this partition, the failing one included. */
export const ATTR_ATTEMPT = 'pgsink.flush.attempt';
/** Why a partition is paused: "buffer full", or the stage being retried (flush, decode, ...). */
export const ATTR_PAUSE_REASON = 'pgsink.pause.reason';
/** Which stage failed, when the pipeline says (flush | decode | schema registry). */
export const ATTR_FAILURE_STAGE = 'pgsink.failure.stage';
/** Producer trace links that did not fit under the per-flush bound. */
export const ATTR_LINKS_DROPPED = 'pgsink.links.dropped';

// ---------------------------------------------------------------- metrics

/** Counter {message}: records delivered by Kafka to the pipeline (semconv). */
export const METRIC_CONSUMED_MESSAGES = 'messaging.client.consumed.messages';
/** Counter {row}: rows committed to the target tables. */
export const METRIC_ROWS_WRITTEN = 'pgsink.rows.written';
/** Counter {record}: records committed to the dead-letter table. */
export const METRIC_DEAD_LETTERS = 'pgsink.dead_letters';
/** Histogram {row}: records per flushed batch. */
export const METRIC_BATCH_ROWS = 'pgsink.batch.rows';
/** Histogram By: buffered bytes per flushed batch. */
export const METRIC_BATCH_SIZE = 'pgsink.batch.size';
/** Histogram s: one flush transaction, successful or failed (semconv's "process" duration). */
export const METRIC_FLUSH_DURATION = 'messaging.process.duration';
/** Histogram s: Kafka offset commits (semconv client operation, operation name "commit"). */
export const METRIC_COMMIT_DURATION = 'messaging.client.operation.duration';
/** Gauge {message}: high watermark minus committed offset, per assigned partition. */
export const METRIC_CONSUMER_LAG = 'pgsink.consumer.lag';
/** Gauge {partition}: partitions paused now, by topic and reason. */
export const METRIC_PARTITIONS_PAUSED = 'pgsink.partitions.paused';
/** Gauge {partition}: partitions assigned to this consumer by the last rebalance. */
export const METRIC_PARTITIONS_ASSIGNED = 'pgsink.partitions.assigned';
/** Gauge {row}: a partition's batch row limit under batch.adaptiveRows (after its last flush). */
export const METRIC_BATCH_ROW_LIMIT = 'pgsink.batch.row_limit';
/** Gauge By: bytes buffered (in flight included), what backpressure limits. */
export const METRIC_BUFFER_USAGE = 'pgsink.buffer.usage';
/** Gauge By: backpressure.maxTotalBytes, so dashboards can plot usage against it. */
export const METRIC_BUFFER_LIMIT = 'pgsink.buffer.limit';
/** Counter {failure}: failed flush / decode / registry attempts; each is retried. */
export const METRIC_FLUSH_FAILURES = 'pgsink.flush.failures';
/** Counter {rebalance}: group joins with a new assignment. */
export const METRIC_REBALANCES = 'pgsink.rebalances';
/**
 * Counter {record}: offsets read and written again because Postgres' fence was behind Kafka's
 * committed offset or behind what this process had written (a restore, a failover).
 */
export const METRIC_RECORDS_REREAD = 'pgsink.records.reread';
/**
 * Gauge s: per assigned partition, how long it has had records to write without advancing
 * (0 with nothing to write). Above http.stuckAfterMs the partition is stuck.
 */
export const METRIC_PARTITION_STALLED = 'pgsink.partition.stalled';
/** Gauge {partition}: partitions stuck now (records to write, no progress for http.stuckAfterMs). */
export const METRIC_PARTITIONS_STUCK = 'pgsink.partitions.stuck';
/** Counter {record}: offsets deleted by retention before they were written (retention gaps). */
export const METRIC_RETENTION_GAP_RECORDS = 'pgsink.retention_gap.records';

// ---------------------------------------------------------------- spans & scope

/** Instrumentation scope of every meter and tracer. */
export const SCOPE_NAME = 'pgsink';

/** One span per flush transaction; semconv's "{operation} {destination}" form. */
export function flushSpanName(topic: string): string {
  return `${OPERATION_FLUSH} ${topic}`;
}

/** Upper bound of producer links on one flush span (W3C traceparent headers). */
export const MAX_FLUSH_LINKS = 16;

/** The name a metric has in the Prometheus exposition of @opentelemetry/exporter-prometheus. */
export function prometheusName(metric: string, kind: 'counter' | 'gauge' | 'histogram'): string {
  const base = metric.replace(/[^a-zA-Z0-9_:]/g, '_');
  return kind === 'counter' && !base.endsWith('_total') ? `${base}_total` : base;
}
