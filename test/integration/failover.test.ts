// A real asynchronous failover (DESIGN.md invariant 2: Postgres is the source of truth). A
// private primary streams WAL to a replica made with pg_basebackup -R. pgsink writes to the
// primary through a stable address (a TCP forwarder standing in for a Kubernetes Service or a
// pooler). Then the replica falls behind — its replay is paused and its WAL stream cut — while
// pgsink goes on writing and committing offsets to Kafka; the primary is killed (-9), the
// replica promoted, and the address moved to it. The promoted database has lost the last
// commits, and Kafka's committed offsets are ahead of it: pgsink, still running, must find
// that out at its next flush and write those records again. At the end the promoted
// database holds every record of the topic exactly once (append) or the last value per key
// (upsert).
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createPipeline } from '../../src/pipeline/app.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import {
  checkFinalState,
  ordersFixture,
  produceKeyedOrders,
  testConfig,
  waitCommittedToEnd,
  waitFor,
  type Fixture,
} from '../support/pipeline.ts';
import { PrivateCluster } from '../support/private-postgres.ts';
import { kafkaClient } from '../support/services.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';

const kafka = kafkaClient();
const logger = createLogger('error');
// More keys than records in the lost range: in upsert mode a record that was not re-read
// leaves its key's row old (no later record of that key covers for it).
const KEYS = 1_000;
const PARTITIONS = 2;

const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

async function fences(pool: pg.Pool, f: Fixture): Promise<Map<number, number>> {
  const { rows } = await pool.query<{ partition: number; next_offset: string }>(
    `SELECT partition, next_offset FROM "${f.schema}_pgsink"."offsets" WHERE group_id = $1`,
    [f.groupId],
  );
  return new Map(rows.map((r) => [r.partition, Number(r.next_offset)]));
}

const total = (m: Map<number, number>) => [...m.values()].reduce((a, b) => a + b, 0);

describe.each(['append', 'upsert'] as const)('asynchronous failover (%s)', (mode) => {
  it('writes every record exactly once into the promoted replica, though it lost commits Kafka kept', async () => {
    const primary = await PrivateCluster.create();
    cleanups.push(() => primary.destroy());
    await primary.start();
    const walLink: TcpProxy = await startTcpProxy(primary.port);
    cleanups.push(() => walLink.close());
    const replica = await PrivateCluster.replicaOf(primary, walLink.port);
    cleanups.push(() => replica.stop());
    await replica.start();
    const address = await startTcpProxy(primary.port);
    cleanups.push(() => address.close());

    const primaryPool = new pg.Pool({ connectionString: primary.url, max: 2 });
    primaryPool.on('error', () => undefined);
    const replicaPool = new pg.Pool({ connectionString: replica.url, max: 2 });
    replicaPool.on('error', () => undefined);
    cleanups.push(
      () => primaryPool.end(),
      () => replicaPool.end(),
    );

    const f = await ordersFixture(kafka, primaryPool, PARTITIONS, `fo_${mode[0]}`);
    if (mode === 'upsert') {
      f.route.mode = 'upsert';
      f.route.keyColumns = ['order_id'];
      await primaryPool.query(`ALTER TABLE ${f.table} ADD PRIMARY KEY (order_id)`);
    }
    const p = createPipeline(
      testConfig(f, {
        postgres: {
          url: `postgres://postgres@127.0.0.1:${address.port}/postgres`,
          schema: `${f.schema}_pgsink`,
        },
        batch: { maxRows: 150, maxBytes: 1024 * 1024, lingerMs: 50 },
      }),
      { logger },
    );
    await p.service.start();
    let lostOnReplica: Map<number, number> | undefined;
    let writtenOnPrimary: Map<number, number> | undefined;
    try {
      await produceKeyedOrders(kafka, f.topic, 0, 600, KEYS);
      await waitFor(
        '600 on the primary',
        async () => total(await fences(primaryPool, f)),
        (n) => n === 600,
      );
      await waitFor(
        '600 on the replica',
        async () => total(await fences(replicaPool, f)),
        (n) => n === 600,
      );

      // The replica falls behind: replay paused, and no more WAL reaches it.
      await replicaPool.query('SELECT pg_wal_replay_pause()');
      walLink.freeze();
      await produceKeyedOrders(kafka, f.topic, 600, 600, KEYS);
      await waitFor(
        '1200 on the primary',
        async () => total(await fences(primaryPool, f)),
        (n) => n === 1_200,
      );
      await waitCommittedToEnd(kafka, f.groupId, f.topic);
      writtenOnPrimary = await fences(primaryPool, f);
      lostOnReplica = await fences(replicaPool, f);
      expect(total(lostOnReplica)).toBe(600);

      await primary.kill();
      await replica.promote();
      address.switchTo(replica.port);

      await produceKeyedOrders(kafka, f.topic, 1_200, 300, KEYS);
      await waitFor(
        '1500 on the promoted replica',
        async () => total(await fences(replicaPool, f)),
        (n) => n === 1_500,
        90_000,
      );
      await waitCommittedToEnd(kafka, f.groupId, f.topic);
    } finally {
      await p.service.stop();
    }
    await checkFinalState(replicaPool, f, mode, 1_500, KEYS);
    // Each partition's lost range was read again, and said so.
    for (const [partition, written] of writtenOnPrimary!) {
      const from = lostOnReplica!.get(partition)!;
      if (written === from) continue;
      expect(p.stats.notices).toContainEqual({
        kind: 'reread',
        topic: f.topic,
        partition,
        first: from,
        last: written - 1,
      });
    }
  });
});
