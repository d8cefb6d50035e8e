// `pgsink replay` against the real broker and server: a dry run changes nothing, a live
// group is refused, and a replay from a time re-writes exactly the records after it.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createPipeline } from '../../src/pipeline/app.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { runCli } from '../support/cli.ts';
import {
  committedOffsets,
  countRows,
  ordersFixture,
  produceOrders,
  testConfig,
  waitFor,
  type Fixture,
  waitCommittedToEnd,
} from '../support/pipeline.ts';
import { databaseUrl, kafkaBrokers, kafkaClient, pgPool } from '../support/services.ts';

const kafka = kafkaClient();
const pool = pgPool();
const logger = createLogger('error');
afterAll(() => pool.end());

function writeConfig(f: Fixture): string {
  const file = join(mkdtempSync(join(tmpdir(), 'pgsink-replay-')), 'pgsink.json');
  writeFileSync(
    file,
    JSON.stringify({
      kafka: { brokers: kafkaBrokers(), groupId: f.groupId },
      postgres: { url: databaseUrl(), schema: `${f.schema}_pgsink` },
      routes: [f.route],
    }),
  );
  return file;
}

async function fences(f: Fixture): Promise<Record<number, number>> {
  const { rows } = await pool.query<{ partition: number; next_offset: string }>(
    `SELECT partition, next_offset FROM "${f.schema}_pgsink".offsets WHERE group_id = $1`,
    [f.groupId],
  );
  return Object.fromEntries(rows.map((r) => [r.partition, Number(r.next_offset)]));
}

async function ingestAll(f: Fixture, n: number): Promise<void> {
  const p = createPipeline(testConfig(f), { logger });
  await p.service.start();
  try {
    await waitFor(
      'rows',
      () => countRows(pool, f.table),
      (c) => c >= n,
    );
    await waitCommittedToEnd(kafka, f.groupId, f.topic);
  } finally {
    await p.service.stop();
  }
}

describe('pgsink replay', () => {
  it('dry-runs, refuses a live group, and replays exactly the records after a time', async () => {
    const f = await ordersFixture(kafka, pool, 3, 'replay');
    const config = writeConfig(f);
    await produceOrders(kafka, f.topic, 0, 600);
    await new Promise((r) => setTimeout(r, 50));
    const cut = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 50));
    await produceOrders(kafka, f.topic, 600, 900);
    await ingestAll(f, 1_500);
    const fencesBefore = await fences(f);
    const committedBefore = await committedOffsets(kafka, f.groupId, f.topic);

    const dry = await runCli([
      'replay',
      '--config',
      config,
      '--topic',
      f.topic,
      '--to-datetime',
      cut,
      '--dry-run',
    ]);
    expect(dry.stderr).toBe('');
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(
      /partition\s+kafka committed\s+pg fence\s+current\s+target\s+records to replay/,
    );
    expect(dry.stdout).toContain('dry run: nothing changed; 900 records would be written again');
    expect(await fences(f)).toEqual(fencesBefore);
    expect(await committedOffsets(kafka, f.groupId, f.topic)).toEqual(committedBefore);

    // A live member: refused with exit code 2, naming it.
    const live = createPipeline(testConfig(f), { logger });
    await live.service.start();
    try {
      await waitFor('member joined', async () => live.service.ready, Boolean, 30_000);
      const refused = await runCli(['replay', '--config', config, '--topic', f.topic, '--to-earliest']);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toMatch(/has 1 live member: pgsink@/);
    } finally {
      await live.service.stop();
    }

    // Bad requests are clear errors.
    const badPart = await runCli([
      'replay',
      '--config',
      config,
      '--topic',
      f.topic,
      '--partition',
      '9',
      '--to-earliest',
    ]);
    expect(badPart).toMatchObject({ code: 2 });
    expect(badPart.stderr).toContain('partition 9 does not exist');
    const badOffset = await runCli([
      'replay',
      '--config',
      config,
      '--topic',
      f.topic,
      '--partition',
      '0',
      '--to-offset',
      '999999',
    ]);
    expect(badOffset.code).toBe(2);
    expect(badOffset.stderr).toContain('out of range');
    const badTopic = await runCli(['replay', '--config', config, '--topic', 'nope', '--to-earliest']);
    expect(badTopic.code).toBe(2);
    expect(badTopic.stderr).toContain("topic 'nope' has no route");
    const badGroup = await runCli([
      'replay',
      '--config',
      config,
      '--group',
      'no-such-group',
      '--topic',
      f.topic,
      '--to-earliest',
    ]);
    expect(badGroup.code).toBe(2);
    expect(badGroup.stderr).toContain("group 'no-such-group' is unknown");

    // Replay into a clean table: exactly the 900 records after the cut come back.
    await pool.query(`TRUNCATE ${f.table}`);
    const moved = await runCli(['replay', '--config', config, '--topic', f.topic, '--to-datetime', cut]);
    expect(moved.stderr).toBe('');
    expect(moved.code).toBe(0);
    expect(moved.stdout).toContain('900 records will be written again');
    await ingestAll(f, 900);
    const { rows } = await pool.query<{ n: string; lo: string; hi: string; d: string }>(
      `SELECT count(*) AS n, min(order_id) AS lo, max(order_id) AS hi, count(DISTINCT order_id) AS d FROM ${f.table}`,
    );
    expect(rows[0]).toEqual({ n: '900', lo: '600', hi: '1499', d: '900' });

    const status = await runCli(['offsets', '--config', config, '--json']);
    expect(status.code).toBe(0);
    const parsed = JSON.parse(status.stdout) as Array<{
      partition: number;
      lag: number;
      fence: number;
      high: number;
    }>;
    expect(parsed).toHaveLength(3);
    expect(parsed.every((r) => r.lag === 0 && r.fence === r.high)).toBe(true);
  });
});
