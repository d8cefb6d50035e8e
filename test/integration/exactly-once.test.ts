// Invariant 2 (no duplicates) against the real broker and server: a zombie that lost its
// partition mid-flush, a Kafka commit that is lost after the Postgres commit, and upserts.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { frame } from '../../src/avro/wire.ts';
import { ordersType, prng, sampleOrder } from '../../src/cli/sample-data.ts';
import type { KafkaSource } from '../../src/kafka/source.ts';
import { createPipeline } from '../../src/pipeline/app.ts';
import { flushRecorder } from '../support/observers.ts';
import { formatDecimal } from '../../src/sink/copy-text.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { runCli } from '../support/cli.ts';
import { connectedProducer, kafkaClient, pgPool } from '../support/services.ts';
import {
  committedOffsets,
  countRows,
  ordersFixture,
  produceOrders,
  testConfig,
  waitFor,
  waitCommittedToEnd,
  expectExactlyOnce,
} from '../support/pipeline.ts';

const kafka = kafkaClient();
const pool = pgPool();
const logger = createLogger('error');
afterAll(() => pool.end());

async function waitingOnLocks(appName: string): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`,
    [appName],
  );
  return rows[0]!.n;
}

describe('exactly once', () => {
  it('a zombie stalled mid-flush and the new owner of its partition write nothing twice', async () => {
    const f = await ordersFixture(kafka, pool, 1, 'zombie');
    const appName = `pgsink:${f.groupId}`;
    let zombieSource: KafkaSource | undefined;
    const zombieLog = flushRecorder();
    const zombie = createPipeline(testConfig(f), {
      logger,
      observer: zombieLog,
      wrapSource: (s) => (zombieSource = s),
    });
    const locker = await pool.connect();
    let owner: ReturnType<typeof createPipeline> | undefined;
    const ownerLog = flushRecorder();
    try {
      await zombie.service.start();
      await waitFor('zombie joined', async () => zombie.service.ready, Boolean, 30_000);
      await locker.query('BEGIN');
      await locker.query(`LOCK TABLE ${f.table} IN ACCESS EXCLUSIVE MODE`);
      await produceOrders(kafka, f.topic, 0, 1_000);
      // The zombie's flush holds its fence row and waits for the table inside COPY.
      await waitFor(
        'zombie blocked in its flush',
        () => waitingOnLocks(appName),
        (n) => n >= 1,
        30_000,
      );
      // It loses the partition: its Kafka client leaves the group, its flush goes on.
      await zombieSource!.stop();
      owner = createPipeline(testConfig(f), { logger, observer: ownerLog });
      await owner.service.start();
      await waitFor(
        'new owner blocked behind the zombie',
        () => waitingOnLocks(appName),
        (n) => n >= 2,
        30_000,
      );
      await produceOrders(kafka, f.topic, 1_000, 500);
      await locker.query('COMMIT');
      await waitFor(
        'all rows',
        () => countRows(pool, f.table),
        (n) => n >= 1_500,
        60_000,
      );
      await waitCommittedToEnd(kafka, f.groupId, f.topic);
    } finally {
      await locker.query('ROLLBACK').catch(() => undefined);
      locker.release();
      await zombie.service.stop();
      await owner?.service.stop();
    }
    await expectExactlyOnce(pool, f.table, 1_500, { ids: true });
    const zombieRows = zombieLog.flushes.reduce((n, r) => n + r.outcome.rowsWritten, 0);
    const ownerSkipped = ownerLog.flushes.reduce((n, r) => n + r.outcome.skippedBelowFence, 0);
    expect(zombieRows).toBeGreaterThan(0);
    // Everything the zombie wrote, the owner had buffered too and dropped at the fence.
    expect(ownerSkipped).toBe(zombieRows);
  });

  it('writes nothing twice when the Kafka client hands over records that are already buffered', async () => {
    const f = await ordersFixture(kafka, pool, 3, 'redeliver');
    const N = 600;
    await produceOrders(kafka, f.topic, 0, N);
    let redelivered = 0;
    // Every batch reaches the pipeline twice: once as fetched, once more right after (as a
    // client that lost its fetch position would). Linger is long, so all of it is buffered.
    const p = createPipeline(
      testConfig(f, {
        batch: { maxRows: 100_000, maxBytes: 4 * 1024 * 1024, lingerMs: 30_000 },
        shutdown: { deadlineMs: 60_000 },
      }),
      {
        logger,
        wrapSource: (s): KafkaSource => ({
          ...s,
          start: (h) =>
            s.start({
              ...h,
              onBatch: async (b) => {
                await h.onBatch(b);
                redelivered += b.messages.length;
                await h.onBatch(b);
              },
            }),
        }),
      },
    );
    await p.service.start();
    try {
      await waitFor(
        'every record fetched',
        async () => redelivered,
        (n) => n >= N,
      );
    } finally {
      await p.service.stop();
    }
    await expectExactlyOnce(pool, f.table, N, { ids: true });
  });

  it('when the Kafka commit is lost after the Postgres commit, a restart writes nothing twice', async () => {
    const f = await ordersFixture(kafka, pool, 3, 'lost');
    const N = 3_000;
    await produceOrders(kafka, f.topic, 0, N);
    let commitsTried = 0;
    const first = createPipeline(testConfig(f), {
      logger,
      wrapSource: (s) => ({
        ...s,
        commit: async () => {
          commitsTried++;
          throw new Error('injected: Kafka commit lost');
        },
      }),
    });
    await first.service.start();
    try {
      await waitFor(
        'all rows',
        () => countRows(pool, f.table),
        (n) => n >= N,
      );
    } finally {
      await first.service.stop();
    }
    expect(commitsTried).toBeGreaterThan(0);
    expect([...(await committedOffsets(kafka, f.groupId, f.topic)).values()]).toEqual([-1, -1, -1]);

    const second = createPipeline(testConfig(f), { logger });
    await second.service.start();
    try {
      await waitCommittedToEnd(kafka, f.groupId, f.topic);
    } finally {
      await second.service.stop();
    }
    expect(second.stats.rowsWritten).toBe(0);
    await expectExactlyOnce(pool, f.table, N, { ids: true });
  });
});

describe('upsert', () => {
  async function produceKeyed(topic: string, from: number, count: number, keys: number): Promise<void> {
    const producer = await connectedProducer(kafka);
    const type = ordersType();
    const rand = prng(7 + from);
    const messages = [];
    for (let i = from; i < from + count; i++) {
      const k = i % keys;
      messages.push({
        key: String(k),
        value: frame(1, type.toBuffer({ ...sampleOrder(i, rand), order_id: BigInt(k), item_count: i })),
      });
    }
    await producer.send({ topic, messages });
    await producer.disconnect();
  }

  it('keeps one row per key with the last value, deletes on tombstones, and refuses a table without a unique key', async () => {
    const f = await ordersFixture(kafka, pool, 3, 'ups');
    f.route.mode = 'upsert';
    f.route.keyColumns = ['order_id'];
    f.route.deleteOnTombstone = true;

    const noKey = createPipeline(testConfig(f), { logger });
    await expect(noKey.service.start()).rejects.toThrow(
      /upsert needs a unique index or primary key on \(order_id\)/,
    );
    await noKey.service.stop();

    await pool.query(`ALTER TABLE ${f.table} ADD PRIMARY KEY (order_id)`);
    await produceKeyed(f.topic, 0, 1_000, 100);
    const p = createPipeline(
      testConfig(f, { batch: { maxRows: 150, maxBytes: 1024 * 1024, lingerMs: 50 } }),
      { logger },
    );
    await p.service.start();
    try {
      await waitFor(
        '1000 records consumed',
        async () => p.stats.rowsWritten,
        (n) => n >= 1_000,
      );
      const { rows } = await pool.query<{ order_id: string; item_count: number }>(
        `SELECT order_id, item_count FROM ${f.table} ORDER BY order_id`,
      );
      expect(rows).toHaveLength(100);
      // Per key, the last record produced (i = 900 + key) wins, across batches and within one.
      expect(rows.every((r) => r.item_count === 900 + Number(r.order_id))).toBe(true);

      const producer = await connectedProducer(kafka);
      await producer.send({
        topic: f.topic,
        messages: Array.from({ length: 10 }, (_, k) => ({ key: String(k), value: null })),
      });
      await producer.disconnect();
      await waitFor(
        'tombstones applied',
        () => countRows(pool, f.table),
        (n) => n === 90,
      );
    } finally {
      await p.service.stop();
    }
    const { rows: left } = await pool.query<{ min: string }>(`SELECT min(order_id) AS min FROM ${f.table}`);
    expect(Number(left[0]!.min)).toBe(10);
    const { rows: amounts } = await pool.query<{ amount: string }>(
      `SELECT amount::text FROM ${f.table} WHERE order_id = 10`,
    );
    const rand = prng(7);
    let expected = '';
    for (let i = 0; i < 1_000; i++) {
      const o = sampleOrder(i, rand);
      if (i === 910) expected = formatDecimal(o.amount, 2);
    }
    expect(amounts[0]!.amount).toBe(expected);

    // Replaying the whole topic into the upsert table changes nothing.
    const snapshot = async () => (await pool.query(`SELECT * FROM ${f.table} ORDER BY order_id`)).rows;
    const before = await snapshot();
    const configFile = join(mkdtempSync(join(tmpdir(), 'pgsink-ups-')), 'c.json');
    writeFileSync(configFile, JSON.stringify({ ...testConfig(f), routes: [{ ...f.route }] }));
    const moved = await runCli(['replay', '--config', configFile, '--topic', f.topic, '--to-earliest']);
    expect(moved.stderr).toBe('');
    expect(moved.stdout).toContain('1010 records will be written again');
    const again = createPipeline(testConfig(f), { logger });
    await again.service.start();
    try {
      await waitFor(
        'replayed',
        async () => again.stats.rowsWritten,
        (n) => n >= 1_010,
      );
    } finally {
      await again.service.stop();
    }
    expect(await snapshot()).toEqual(before);
  });
});
