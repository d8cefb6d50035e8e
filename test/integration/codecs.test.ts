// Every codec a producer can write (issue 13): records produced by the Java client — compiled
// against the running broker's jars — with compression.type gzip, snappy, lz4 and zstd land
// exactly (every field of every record compared), and a partition whose batches cannot be
// decompressed is held and reported (log, metric, /readyz) while the other partitions and
// routes go on, then lands once its batches can be read again. No mocks: the broker stores the
// Java client's own batches; the unreadable ones are made so by the codec registry's test hook.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { typeForSchema, type AvroSchema } from '../../src/avro/types.ts';
import { frame } from '../../src/avro/wire.ts';
import { decimalBytes } from '../../src/cli/sample-data.ts';
import { routeSchema, type RouteConfig } from '../../src/config/schema.ts';
import { decompressedBatches, setDecompressFault, type CodecName } from '../../src/kafka/codecs.ts';
import { CompressionTypes } from '../../src/kafka/kafkajs.ts';
import { createPipeline, type Pipeline } from '../../src/pipeline/app.ts';
import { HttpServer } from '../../src/telemetry/http-server.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import * as N from '../../src/telemetry/names.ts';
import { createTelemetry } from '../../src/telemetry/otel.ts';
import {
  ALL_TYPES_SCHEMA,
  allTypesRecords,
  expectAllTypesLanded,
  type AllTypesRecord,
} from '../support/all-types.ts';
import { produceWithJava, type JavaRecord } from '../support/java.ts';
import { countRows, testConfig, waitFor } from '../support/pipeline.ts';
import { connectedProducer, createTopic, kafkaClient, pgPool, uniqueName } from '../support/services.ts';

const kafka = kafkaClient();
const pool = pgPool();
afterAll(() => pool.end());

const CODECS: CodecName[] = ['gzip', 'snappy', 'lz4', 'zstd'];
const COMPRESSION: Record<CodecName, CompressionTypes> = {
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD,
};
const type = typeForSchema(ALL_TYPES_SCHEMA as AvroSchema);
const dir = mkdtempSync(join(tmpdir(), 'pgsink-codecs-'));
const schemaFile = join(dir, 'all.avsc');
writeFileSync(schemaFile, JSON.stringify(ALL_TYPES_SCHEMA));

/** Confluent-framed Avro values of the records, partition by id. */
function javaRecords(records: readonly AllTypesRecord[], partitions: number): JavaRecord[] {
  return records.map((r) => ({
    partition: r.id % partitions,
    key: Buffer.from(String(r.id)),
    value: frame(1, type.toBuffer({ ...r, dec: decimalBytes(r.dec) })),
  }));
}

function route(topic: string, schema: string, table: string): RouteConfig {
  return routeSchema.parse({ topic, table: `${schema}.${table}`, schema: schemaFile, autoCreate: true });
}

async function newSchema(prefix: string): Promise<string> {
  const schema = uniqueName(prefix);
  await pool.query(`CREATE SCHEMA "${schema}"`);
  return schema;
}

describe('records the Java client (and kafkajs with pgsink’s codecs) compressed land exactly', () => {
  const records = allTypesRecords(300, 20261201);
  const schema = `codec_${Math.random().toString(16).slice(2, 10)}`;
  const topics = new Map(CODECS.map((c) => [c, uniqueName(`codec_${c}`)]));
  // The same records produced by kafkajs with pgsink's codecs (src/kafka/kafkajs.ts registers
  // them): the broker decompresses a produced batch to validate it, so it accepting them shows
  // that the Java side reads what pgsink's codecs write.
  const kafkajsTopics = new Map(CODECS.map((c) => [c, uniqueName(`codec_kjs_${c}`)]));
  let p: Pipeline;
  let before: Record<CodecName, number>;

  beforeAll(async () => {
    await pool.query(`CREATE SCHEMA "${schema}"`);
    for (const [codec, topic] of topics) {
      await createTopic(kafka, topic, 2);
      await produceWithJava(topic, codec, javaRecords(records, 2));
    }
    const producer = await connectedProducer(kafka);
    for (const [codec, topic] of kafkajsTopics) {
      await createTopic(kafka, topic, 2);
      await producer.send({
        topic,
        compression: COMPRESSION[codec],
        messages: javaRecords(records, 2).map((r) => ({
          partition: r.partition,
          key: r.key,
          value: r.value,
        })),
      });
    }
    await producer.disconnect();
    before = { ...decompressedBatches() };
    const routes = [
      ...[...topics].map(([codec, topic]) => route(topic, schema, codec)),
      ...[...kafkajsTopics].map(([codec, topic]) => route(topic, schema, `${codec}_kafkajs`)),
    ];
    const f = { topic: '', groupId: uniqueName('codec_g'), table: '', schema, route: routes[0]! };
    p = createPipeline(testConfig(f, { routes }), { logger: createLogger('error') });
    await p.service.start();
    try {
      await waitFor(
        'every record of every codec',
        async () => {
          let n = p.stats.deadLettered;
          for (const c of CODECS)
            for (const t of [c, `${c}_kafkajs`])
              n += await countRows(pool, `"${schema}".${t}`).catch(() => 0);
          return n;
        },
        (n) => n >= records.length * CODECS.length * 2,
        90_000,
      );
    } finally {
      await p.service.stop();
    }
  }, 180_000);

  for (const codec of CODECS)
    it(`${codec}: every field of every record as produced`, async () => {
      expect(p.stats.deadLettered).toBe(0);
      // The batches were the Java client's compressed ones, read by pgsink's codec.
      expect(decompressedBatches()[codec] - before[codec]).toBeGreaterThan(0);
      await expectAllTypesLanded(pool, `"${schema}".${codec}`, records);
      await expectAllTypesLanded(pool, `"${schema}".${codec}_kafkajs`, records);
    });
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

describe('a partition whose batches cannot be decompressed', () => {
  it(
    'is held and reported with topic, partition, offsets and codec while the other partitions and route land; it lands once readable',
    { timeout: 150_000 },
    async () => {
      const schema = await newSchema('unread_s');
      const held = uniqueName('unread_t');
      const other = uniqueName('unread_other');
      await createTopic(kafka, held, 3);
      await createTopic(kafka, other, 1);
      const records = allTypesRecords(84, 7);
      // Partition 0 of `held` gets lz4 batches (made unreadable), partition 1 zstd ones, and
      // partition 2 zstd ones then lz4 ones: one fetch brings both, and the records before the
      // unreadable batch land while the partition is held at it. The other route's topic: gzip.
      const all = javaRecords(records, 3);
      const inP = (n: number) => all.filter((r) => r.partition === n);
      const readableOf2 = Math.floor(inP(2).length / 2);
      await produceWithJava(held, 'lz4', inP(0));
      await produceWithJava(held, 'zstd', inP(1));
      await produceWithJava(held, 'zstd', inP(2).slice(0, readableOf2));
      await produceWithJava(held, 'lz4', inP(2).slice(readableOf2));
      await produceWithJava(other, 'gzip', javaRecords(records, 1));
      setDecompressFault((codec) => (codec === 'lz4' ? new Error('refused by the test') : undefined));

      const lines: string[] = [];
      const logger = createLogger(
        'warn',
        new Writable({
          write(chunk: Buffer, _enc, done) {
            lines.push(chunk.toString());
            done();
          },
        }),
      );
      const routes = [route(held, schema, 'held'), route(other, schema, 'other')];
      const f = { topic: held, groupId: uniqueName('unread_g'), table: '', schema, route: routes[0]! };
      const config = testConfig(f, { routes, http: { port: 0, stuckAfterMs: 1_500 } });
      const tel = createTelemetry({
        groupId: f.groupId,
        bufferLimitBytes: config.backpressure.maxTotalBytes,
        logger,
      });
      const p = createPipeline(config, { logger, observer: tel.observer });
      const http = new HttpServer({
        port: 0,
        host: '127.0.0.1',
        readiness: () => ({ ...p.service.readiness() }),
        metrics: tel.metricsHandler,
      });
      await http.start();
      const get = async (path: string) => {
        const res = await fetch(`http://127.0.0.1:${http.port}${path}`);
        return { status: res.status, text: await res.text() };
      };
      try {
        await p.service.start();
        const landBeforeHold = inP(1).length + readableOf2;
        // Partition 1, the readable half of partition 2 and the other route land...
        await waitFor(
          'partition 1, half of partition 2 and the other route',
          async () => {
            const a = await countRows(pool, `"${schema}".held`).catch(() => 0);
            const b = await countRows(pool, `"${schema}".other`).catch(() => 0);
            return [a, b];
          },
          ([a, b]) => a === landBeforeHold && b === records.length,
        );
        // ...while partitions 0 and 2 are held and reported stuck, by /readyz, the log and metrics.
        const ready = await waitFor(
          '/readyz naming the held partitions',
          () => get('/readyz'),
          (r) => r.status === 503 && (JSON.parse(r.text) as { stuck?: unknown[] }).stuck?.length === 2,
          30_000,
        );
        const body = JSON.parse(ready.text) as { stuck: Array<Record<string, unknown>>; reason: string };
        const sorted = [...body.stuck].sort((a, b) => Number(a['partition']) - Number(b['partition']));
        expect(sorted).toEqual(
          [0, 2].map((partition) =>
            expect.objectContaining({ topic: held, partition, code: 'DECOMPRESS_FAILED', stage: 'codec' }),
          ),
        );
        expect(body.reason).toMatch(new RegExp(`${held}:[02]`));
        const logged = (partition: number) => {
          const line = lines.find(
            (l) => l.includes('codec failed; partition paused') && l.includes(`"partition":${partition},`),
          );
          expect(line, `the log line of partition ${partition}`).toBeDefined();
          const entry = JSON.parse(line!) as Record<string, unknown>;
          expect(entry).toMatchObject({ topic: held, partition, code: 'DECOMPRESS_FAILED' });
          expect(entry['err']).toContain('refused by the test');
          return String(entry['err']);
        };
        // Partition 0 from its start; partition 2 from its first lz4 record, after the zstd ones.
        expect(logged(0)).toMatch(
          new RegExp(
            `^cannot read the record batch at offsets 0\\.\\.\\d+ of ${held}:0 \\(codec lz4, DECOMPRESS_FAILED\\)`,
          ),
        );
        expect(logged(2)).toMatch(
          new RegExp(
            `^cannot read the record batch at offsets ${readableOf2}\\.\\.\\d+ of ${held}:2 \\(codec lz4, DECOMPRESS_FAILED\\)`,
          ),
        );
        const metrics = (await get('/metrics')).text;
        const failures = N.prometheusName(N.METRIC_FLUSH_FAILURES, 'counter');
        expect(
          sample(metrics, failures, { error_type: 'DECOMPRESS_FAILED', pgsink_failure_stage: 'codec' }),
        ).toBeGreaterThan(0);
        // The gauge follows on the next health tick (every second).
        const stuck = N.prometheusName(N.METRIC_PARTITIONS_STUCK, 'gauge');
        await waitFor(
          'pgsink_partitions_stuck 2',
          async () => sample((await get('/metrics')).text, stuck),
          (n) => n === 2,
          10_000,
        );
        expect(p.service.readiness().consumer).toBe('ok');
        expect(await countRows(pool, `"${schema}".held`)).toBe(landBeforeHold);

        // Readable again (a pgsink that can read them): the held partitions land, all of them.
        setDecompressFault(undefined);
        await waitFor(
          'the held partitions',
          () => countRows(pool, `"${schema}".held`),
          (n) => n === records.length,
        );
        await waitFor(
          '/readyz 200',
          () => get('/readyz'),
          (r) => r.status === 200,
          30_000,
        );
        expect(p.stats.deadLettered).toBe(0);
        await expectAllTypesLanded(pool, `"${schema}".held`, records);
        await expectAllTypesLanded(pool, `"${schema}".other`, records);
      } finally {
        setDecompressFault(undefined);
        await p.service.stop();
        await http.stop();
        await tel.shutdown();
      }
    },
  );
});
