// Rebalancing with the client under test (test/support/kafka-client.ts): a member joins and
// one leaves while records flow; every record lands once. With an incremental client
// (platformatic: cooperative-sticky or KIP-848) the partitions a member keeps are never
// handed over again (no dropped buffer, no re-read); with kafkajs' eager joins they may be.
// Static membership (KIP-345, platformatic with the classic protocol): a member that restarts
// within the session timeout gets its partitions back and the other member sees no change.
import { afterAll, describe, expect, it } from 'vitest';
import type { AssignmentChange, KafkaSource } from '../../src/kafka/source.ts';
import { createPipeline } from '../../src/pipeline/app.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { incremental, testGroupProtocol, testKafkaClient } from '../support/kafka-client.ts';
import { kafkaClient, pgPool } from '../support/services.ts';
import {
  countRows,
  ordersFixture,
  produceOrders,
  testConfig,
  waitFor,
  waitCommittedToEnd,
  type Fixture,
  type TestOverrides,
  expectExactlyOnce,
} from '../support/pipeline.ts';

const kafka = kafkaClient();
const pool = pgPool();
const logger = createLogger('error');
afterAll(() => pool.end());

/** A member that records its assignment changes and, per partition, what it was handed. */
function member(f: Fixture, overrides: TestOverrides = {}) {
  const changes: AssignmentChange[] = [];
  /** Offsets handed over again below what this member had already taken, per partition. */
  const refetched = new Map<number, number>();
  const taken = new Map<number, number>();
  const wrapSource = (inner: KafkaSource): KafkaSource => ({
    ...inner,
    start: (h) =>
      inner.start({
        ...h,
        onAssignment: (c) => {
          changes.push(c);
          // A partition that starts over may be read again from its fence: forget it.
          const reset =
            c.kind === 'full' ? [...taken.keys()] : [...c.assigned, ...c.revoked].map((tp) => tp.partition);
          for (const p of reset) taken.delete(p);
          h.onAssignment(c);
        },
        onBatch: (b) =>
          h.onBatch({
            ...b,
            resolveOffset: (o) => {
              const had = taken.get(b.partition);
              if (had !== undefined && b.fetchedOffset <= had)
                refetched.set(b.partition, (refetched.get(b.partition) ?? 0) + (had - b.fetchedOffset + 1));
              taken.set(b.partition, Math.max(had ?? -1, Number(o)));
              b.resolveOffset(o);
            },
          }),
      }),
  });
  const p = createPipeline(testConfig(f, overrides), { logger, wrapSource });
  return { ...p, changes, refetched };
}

/** The partitions a member holds after these changes. */
function owned(changes: readonly AssignmentChange[]): number[] {
  const have = new Set<number>();
  for (const c of changes) {
    if (c.kind === 'full') {
      have.clear();
      for (const tp of c.partitions) have.add(tp.partition);
    } else {
      for (const tp of c.revoked) have.delete(tp.partition);
      for (const tp of c.assigned) have.add(tp.partition);
    }
  }
  return [...have].sort((x, y) => x - y);
}

describe(`rebalancing (${testKafkaClient}, ${testGroupProtocol})`, () => {
  it('a member joins and one leaves while records flow: all land once; kept partitions are not read again when the client is incremental', async () => {
    const f = await ordersFixture(kafka, pool, 6, 'reb');
    const a = member(f);
    const b = member(f);
    await a.service.start();
    await produceOrders(kafka, f.topic, 0, 3_000);
    await waitFor(
      'first rows',
      () => countRows(pool, f.table),
      (n) => n >= 3_000,
    );
    await b.service.start();
    await waitFor('b joined', async () => b.service.ready && b.changes.length > 0, Boolean, 30_000);
    await produceOrders(kafka, f.topic, 3_000, 3_000);
    await waitFor(
      'rows while both run',
      () => countRows(pool, f.table),
      (n) => n >= 6_000,
      60_000,
    );
    await a.service.stop();
    await produceOrders(kafka, f.topic, 6_000, 3_000);
    await waitFor(
      'all rows',
      () => countRows(pool, f.table),
      (n) => n >= 9_000,
      60_000,
    );
    await waitCommittedToEnd(kafka, f.groupId, f.topic);
    await b.service.stop();
    await expectExactlyOnce(pool, f.table, 9_000);
    const kinds = new Set([...a.changes, ...b.changes].map((c) => c.kind));
    if (incremental) {
      expect([...kinds]).toEqual(['incremental']);
      // Nothing a member kept was handed over to it again.
      expect(Object.fromEntries(a.refetched)).toEqual({});
      expect(Object.fromEntries(b.refetched)).toEqual({});
    } else {
      expect([...kinds]).toEqual(['full']);
    }
  });

  it('static membership: a member restarted within the session timeout takes its partitions back without a rebalance (refused by the config where the client cannot)', async () => {
    const f = await ordersFixture(kafka, pool, 4, 'static');
    const id = (x: string) => ({ kafka: { groupInstanceId: `${f.groupId}-${x}`, sessionTimeoutMs: 20_000 } });
    if (testKafkaClient !== 'platformatic' || testGroupProtocol !== 'classic') {
      expect(() => testConfig(f, id('a'))).toThrow(/groupInstanceId.*static membership needs/s);
      return;
    }
    const a = member(f, id('a'));
    const b = member(f, id('b'));
    await a.service.start();
    await b.service.start();
    await produceOrders(kafka, f.topic, 0, 2_000);
    await waitFor(
      'rows',
      () => countRows(pool, f.table),
      (n) => n >= 2_000,
      60_000,
    );
    await waitFor(
      'both hold partitions',
      async () =>
        [a, b].every(
          (m) => m.service.ready && m.changes.some((c) => c.kind === 'incremental' && c.assigned.length > 0),
        ),
      Boolean,
      30_000,
    );
    // Let the group settle (the second join's revoke-then-assign rounds), then note what b saw.
    await new Promise((r) => setTimeout(r, 3_000));
    const bSaw = b.changes.length;
    const aHad = owned(a.changes);
    await a.service.stop();
    const a2 = member(f, id('a'));
    await a2.service.start();
    await produceOrders(kafka, f.topic, 2_000, 2_000);
    await waitFor(
      'rows after the restart',
      () => countRows(pool, f.table),
      (n) => n >= 4_000,
      60_000,
    );
    await waitCommittedToEnd(kafka, f.groupId, f.topic);
    await a2.service.stop();
    await b.service.stop();
    await expectExactlyOnce(pool, f.table, 4_000);
    // b's assignment did not move; a's successor got the same partitions back.
    expect(b.changes.length).toBe(bSaw);
    expect(owned(a2.changes)).toEqual(aHad);
    expect(aHad.length).toBeGreaterThan(0);
  });
});
