// Failure behaviour against the real server: a failing flush commits no offset and retries
// until it succeeds; killed connections lose nothing and write nothing twice; a locked
// table pauses the partitions with memory under the limit, and everything lands after.
import { afterAll, describe, expect, it } from 'vitest';
import { createPipeline } from '../../src/pipeline/app.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { databaseUrl, kafkaClient, pgPool, uniqueName } from '../support/services.ts';
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

afterAll(async () => {
  await pool.end();
});

describe('pipeline failures', () => {
  it('opens its flush connections at start, and waits, not ready, while the server cannot give them', async () => {
    const f = await ordersFixture(kafka, pool, 1, 'conn');
    const started = createPipeline(testConfig(f, { backpressure: { maxConcurrentFlushes: 3 } }), { logger });
    await started.service.start();
    try {
      const { rows } = await pool.query<{ n: string }>(
        'SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1',
        [`pgsink:${f.groupId}`],
      );
      expect(Number(rows[0]!.n)).toBeGreaterThanOrEqual(3);
    } finally {
      await started.service.stop();
    }

    // A role that may hold 2 connections cannot give 3 concurrent flushes one each.
    const role = uniqueName('limited');
    const db = new URL(databaseUrl()).pathname.slice(1);
    await pool.query(`CREATE ROLE "${role}" LOGIN CONNECTION LIMIT 2`);
    try {
      await pool.query(`GRANT CREATE ON DATABASE "${db}" TO "${role}"`);
      await pool.query(`GRANT ALL ON SCHEMA "${f.schema}" TO "${role}"`);
      await pool.query(`GRANT ALL ON ALL TABLES IN SCHEMA "${f.schema}" TO "${role}"`);
      const url = new URL(databaseUrl());
      url.username = role;
      url.password = '';
      const limited = createPipeline(
        testConfig(
          { ...f, groupId: uniqueName('conn_g') },
          {
            postgres: { url: url.toString(), schema: `${f.schema}_limited` },
            backpressure: { maxConcurrentFlushes: 3 },
          },
        ),
        { logger },
      );
      // Start-up waits (not ready, naming what it waits for) rather than exiting: a restarted
      // pod would crash-loop for as long as the server is short of connections.
      const starting = limited.service.start();
      try {
        const r = await waitFor(
          'start-up waiting for connections',
          async () => limited.service.readiness(),
          (x) => /waiting for Postgres \(53300\)/.test(x.reason ?? ''),
          30_000,
        );
        expect(r.ready).toBe(false);
        expect(limited.service.state).toBe('starting');
        await pool.query(`ALTER ROLE "${role}" CONNECTION LIMIT 10`);
        await starting;
        expect(limited.service.state).toBe('running');
      } finally {
        await limited.service.stop();
      }
    } finally {
      await pool.query(`DROP OWNED BY "${role}"`);
      await pool.query(`DROP ROLE "${role}"`);
    }
  });

  it('commits no offset while the flush fails, retries with the partition paused, and lands everything after recovery', async () => {
    const f = await ordersFixture(kafka, pool, 2, 'fail');
    const N = 1_000;
    const { service, stats } = createPipeline(testConfig(f), { logger });
    await service.start();
    try {
      // The target goes missing (SQLSTATE 42P01): not the records' fault, so it is retried.
      await pool.query(`ALTER TABLE ${f.table} RENAME TO orders_away`);
      await produceOrders(kafka, f.topic, 0, N);
      await waitFor(
        'failing flushes',
        async () => stats.flushFailures,
        (n) => n >= 3,
        30_000,
      );
      expect(service.pausedPartitions.length).toBe(2);
      const committed = await committedOffsets(kafka, f.groupId, f.topic);
      expect([...committed.values()].every((o) => o === -1)).toBe(true);
      expect(stats.deadLettered).toBe(0);

      await pool.query(`ALTER TABLE "${f.schema}".orders_away RENAME TO orders`);
      await waitFor(
        'all rows after recovery',
        () => countRows(pool, f.table),
        (n) => n >= N,
        30_000,
      );
      await waitCommittedToEnd(kafka, f.groupId, f.topic);
      await waitFor(
        'partitions resumed',
        async () => service.pausedPartitions.length,
        (n) => n === 0,
        10_000,
      );
    } finally {
      await service.stop();
    }
    await expectExactlyOnce(pool, f.table, N);
  });

  it('loses nothing and duplicates nothing when its Postgres connections are killed mid-ingestion', async () => {
    const f = await ordersFixture(kafka, pool, 3, 'kill');
    const N = 20_000;
    const config = testConfig(f, { batch: { maxRows: 500, maxBytes: 1024 * 1024, lingerMs: 50 } });
    const { service, stats } = createPipeline(config, { logger });
    await service.start();
    let killed = 0;
    try {
      const producing = produceOrders(kafka, f.topic, 0, N);
      const appName = `pgsink:${f.groupId}`;
      while ((await countRows(pool, f.table)) < N) {
        const { rows } = await pool.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name = $1 AND state <> 'idle') t`,
          [appName],
        );
        killed += rows[0]!.n;
        await new Promise((r) => setTimeout(r, 30));
        if (killed > 200) break;
      }
      await producing;
      await waitFor(
        'all rows',
        () => countRows(pool, f.table),
        (n) => n >= N,
        60_000,
      );
    } finally {
      await service.stop();
    }
    expect(killed).toBeGreaterThan(0);
    expect(stats.flushFailures).toBeGreaterThan(0);
    await expectExactlyOnce(pool, f.table, N);
  });

  it('pauses partitions while the table is locked, keeps buffered bytes under the limit, and resumes after', async () => {
    const f = await ordersFixture(kafka, pool, 3, 'bp');
    const maxTotalBytes = 2 * 1024 * 1024;
    const maxBytesPerPartition = 64 * 1024;
    const config = testConfig(f, {
      kafka: { maxBytesPerPartition },
      batch: { maxRows: 2_000, maxBytes: 256 * 1024, lingerMs: 50 },
      backpressure: {
        maxPartitionBytes: 512 * 1024,
        maxTotalBytes,
        resumeRatio: 0.5,
        maxConcurrentFlushes: 3,
      },
    });
    const { service, stats } = createPipeline(config, { logger });
    await service.start();
    const locker = await pool.connect();
    const N = 60_000;
    try {
      await produceOrders(kafka, f.topic, 0, 1_000);
      await waitFor(
        'first rows',
        () => countRows(pool, f.table),
        (n) => n >= 1_000,
      );
      await locker.query('BEGIN');
      await locker.query(`LOCK TABLE ${f.table} IN ACCESS EXCLUSIVE MODE`);
      await produceOrders(kafka, f.topic, 1_000, N - 1_000);
      await waitFor(
        'partitions paused',
        async () => service.pausedPartitions.length,
        (n) => n === 3,
        30_000,
      );
      // Hold the lock a while: fetching must stay stopped and memory bounded.
      const samples: number[] = [];
      for (let i = 0; i < 20; i++) {
        samples.push(service.bufferedBytes);
        await new Promise((r) => setTimeout(r, 100));
      }
      // One fetch per partition may land after the pause (kafkajs delivers fetched batches).
      const bound = maxTotalBytes + 3 * (maxBytesPerPartition * 4);
      expect(Math.max(...samples, stats.maxBufferedBytes)).toBeLessThan(bound);
      await locker.query('COMMIT');
      await waitFor(
        'all rows after unlock',
        () => countRows(pool, f.table),
        (n) => n >= N,
        60_000,
      );
      await waitFor(
        'partitions resumed',
        async () => service.pausedPartitions.length,
        (n) => n === 0,
        10_000,
      );
    } finally {
      await locker.query('ROLLBACK').catch(() => undefined);
      locker.release();
      await service.stop();
    }
    await expectExactlyOnce(pool, f.table, N);
  });
});
