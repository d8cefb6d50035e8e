// Records deleted before pgsink wrote them (DESIGN.md invariant 8): retention is simulated with
// the broker's DeleteRecords (what kafka-delete-records.sh does), which moves a partition's
// log start. The lost range must be recorded in the gaps table in the transaction that moves
// the fence past it, counted and logged; by routes[].onRetentionGap the partition goes on
// from the log start or is held.
import { afterAll, describe, expect, it } from 'vitest';
import type { Kafka } from 'kafkajs';
import { createPipeline } from '../../src/pipeline/app.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import {
  ordersFixture,
  produceOrders,
  testConfig,
  waitCommittedToEnd,
  waitFor,
  type Fixture,
} from '../support/pipeline.ts';
import { kafkaClient, pgPool } from '../support/services.ts';

const kafka = kafkaClient();
const pool = pgPool();
const logger = createLogger('silent');
afterAll(() => pool.end());

async function deleteBelow(k: Kafka, topic: string, offset: number): Promise<void> {
  const admin = k.admin();
  await admin.connect();
  try {
    // kafkajs looks up the leaders in metadata it must have loaded first.
    await admin.fetchTopicMetadata({ topics: [topic] });
    await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: String(offset) }] });
  } finally {
    await admin.disconnect();
  }
}

async function fence(f: Fixture): Promise<number> {
  const { rows } = await pool.query<{ n: string }>(
    `SELECT next_offset AS n FROM "${f.schema}_pgsink"."offsets" WHERE group_id = $1`,
    [f.groupId],
  );
  return Number(rows[0]?.n ?? -1);
}

async function gaps(f: Fixture): Promise<Array<{ first: number; last: number }>> {
  const { rows } = await pool.query<{ first_offset: string; last_offset: string }>(
    `SELECT first_offset, last_offset FROM "${f.schema}_pgsink"."gaps" WHERE group_id = $1 ORDER BY id`,
    [f.groupId],
  );
  return rows.map((r) => ({ first: Number(r.first_offset), last: Number(r.last_offset) }));
}

async function offsets(f: Fixture): Promise<number[]> {
  const { rows } = await pool.query<{ o: string }>(`SELECT _offset AS o FROM ${f.table} ORDER BY _offset`);
  return rows.map((r) => Number(r.o));
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

describe('retention gaps', () => {
  it.each([
    ['continue', true],
    ['continue', false],
    ['stop', true],
  ] as const)(
    'records the range deleted below a paused partition (onRetentionGap %s, fromBeginning %s)',
    async (action, fromBeginning) => {
      const f = await ordersFixture(kafka, pool, 1, `gap${action[0]}${fromBeginning ? 'b' : 'e'}`);
      f.route.onRetentionGap = action;
      // A small partition budget: with the table locked the partition pauses after a few fetches.
      const p = createPipeline(
        testConfig(f, {
          batch: { maxRows: 100, maxBytes: 32 * 1024, lingerMs: 20 },
          backpressure: {
            maxPartitionBytes: 64 * 1024,
            maxTotalBytes: 1024 * 1024,
            resumeRatio: 0.5,
            maxConcurrentFlushes: 2,
          },
          kafka: { maxBytesPerPartition: 16 * 1024, fromBeginning },
        }),
        { logger },
      );
      const locker = await pool.connect();
      await p.service.start();
      let first = -1;
      try {
        await waitFor('joined', async () => p.service.ready, Boolean, 30_000);
        await locker.query('BEGIN');
        await locker.query(`LOCK TABLE ${f.table} IN ACCESS EXCLUSIVE MODE`);
        await produceOrders(kafka, f.topic, 0, 3_000);
        await waitFor(
          'partition paused',
          async () => p.service.pausedPartitions,
          (l) => l.length === 1,
          30_000,
        );
        // Everything up to offset 2500 goes; the partition had fetched far less than that.
        await deleteBelow(kafka, f.topic, 2_500);
        await locker.query('COMMIT');
        const notices = await waitFor(
          'gap noticed',
          async () => p.stats.notices,
          (n) => n.length > 0,
          30_000,
        );
        expect(notices).toEqual([
          {
            kind: 'retention-gap',
            topic: f.topic,
            partition: 0,
            first: expect.any(Number),
            last: 2_499,
            action,
          },
        ]);
        first = (notices[0] as { first: number }).first;
        expect(first).toBeGreaterThan(0);
        if (action === 'continue') {
          await waitFor(
            'fence at the end',
            () => fence(f),
            (n) => n === 3_000,
            60_000,
          );
          await waitCommittedToEnd(kafka, f.groupId, f.topic);
        } else {
          // What was fetched before the gap is still written; nothing past it.
          await waitFor(
            'fence at the gap',
            () => fence(f),
            (n) => n === first,
            30_000,
          );
          const r = p.service.readiness();
          expect(r.ready).toBe(false);
          expect(r.reason).toBe(`partition ${f.topic}:0 is stopped (RETENTION_GAP; see the log)`);
          expect(r.stopped).toEqual([{ topic: f.topic, partition: 0, code: 'RETENTION_GAP' }]);
        }
      } finally {
        await locker.query('ROLLBACK').catch(() => undefined);
        locker.release();
        await p.service.stop();
      }
      if (action === 'continue') {
        expect(await gaps(f)).toEqual([{ first, last: 2_499 }]);
        // Every offset is a row or in the gap, once.
        expect(await offsets(f)).toEqual([...range(0, first), ...range(2_500, 3_000)]);
      } else {
        expect(await gaps(f)).toEqual([]);
        expect(await offsets(f)).toEqual(range(0, first));
      }
    },
  );

  it('with onRetentionGap: stop, records nothing past the gap and holds the partition', async () => {
    const f = await ordersFixture(kafka, pool, 1, 'gapstop');
    f.route.onRetentionGap = 'stop';
    const config = testConfig(f, { batch: { maxRows: 100, maxBytes: 1024 * 1024, lingerMs: 20 } });
    await produceOrders(kafka, f.topic, 0, 200);
    const first = createPipeline(config, { logger });
    await first.service.start();
    try {
      await waitFor(
        '200 in',
        () => fence(f),
        (n) => n === 200,
      );
    } finally {
      await first.service.stop();
    }
    // While nothing consumes, records 200..599 are deleted unread.
    await produceOrders(kafka, f.topic, 200, 800);
    await deleteBelow(kafka, f.topic, 600);

    const second = createPipeline(config, { logger });
    await second.service.start();
    try {
      await waitFor(
        'gap noticed',
        async () => second.stats.notices,
        (n) => n.length > 0,
        30_000,
      );
      await waitFor(
        'partition held',
        async () => second.service.pausedPartitions,
        (l) => l.length === 1,
      );
      expect(second.service.readiness()).toMatchObject({
        ready: false,
        stopped: [{ topic: f.topic, partition: 0, code: 'RETENTION_GAP' }],
      });
      // Held: nothing more is written while it is.
      await new Promise((r) => setTimeout(r, 1_000));
      expect(await fence(f)).toBe(200);
    } finally {
      await second.service.stop();
    }
    expect(second.stats.notices).toEqual([
      { kind: 'retention-gap', topic: f.topic, partition: 0, first: 200, last: 599, action: 'stop' },
    ]);
    expect(await gaps(f)).toEqual([]);
    expect(await offsets(f)).toEqual(range(0, 200));

    // continue (the default) after the operator's decision: the gap is recorded, the rest lands.
    f.route.onRetentionGap = 'continue';
    const third = createPipeline(testConfig(f, { batch: config.batch }), { logger });
    await third.service.start();
    try {
      await waitFor(
        'fence at the end',
        () => fence(f),
        (n) => n === 1_000,
        60_000,
      );
    } finally {
      await third.service.stop();
    }
    expect(await gaps(f)).toEqual([{ first: 200, last: 599 }]);
    expect(await offsets(f)).toEqual([...range(0, 200), ...range(600, 1_000)]);
  });
});
