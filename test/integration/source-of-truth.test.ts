// Postgres is the source of truth (DESIGN.md invariant 2): when Postgres loses commits that
// Kafka kept — a restore, a failover to an asynchronous replica — pgsink reads the lost
// records again from its fence, whichever side is ahead. Here a restore is made for real
// inside the test database: a snapshot of the table and the fence taken when half the
// records were in, put back (in one transaction) after all of them were; once with pgsink
// stopped and restarted (a restored database), once with pgsink running (its next flush
// finds the fence behind what it wrote). Both write modes; the real failover is in
// failover.test.ts.
import { afterAll, describe, expect, it } from 'vitest';
import { createPipeline } from '../../src/pipeline/app.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { startCli } from '../support/cli.ts';
import {
  checkFinalState,
  cliConfigFile,
  committedOffsets,
  countRows,
  endOffsets,
  ordersFixture,
  produceKeyedOrders,
  testConfig,
  waitCommittedToEnd,
  waitFor,
  type Fixture,
} from '../support/pipeline.ts';
import { kafkaClient, pgPool } from '../support/services.ts';

const kafka = kafkaClient();
const pool = pgPool();
const logger = createLogger('error');
afterAll(() => pool.end());

// As many keys as records: in upsert mode too, a record that was not re-read leaves its key's
// row missing or old (no later record of the same key would cover for it).
const KEYS = 1_000;

async function fixture(mode: 'append' | 'upsert', prefix: string): Promise<Fixture> {
  const f = await ordersFixture(kafka, pool, 1, prefix);
  if (mode === 'upsert') {
    f.route.mode = 'upsert';
    f.route.keyColumns = ['order_id'];
    await pool.query(`ALTER TABLE ${f.table} ADD PRIMARY KEY (order_id)`);
  }
  return f;
}

const fenceTable = (f: Fixture) => `"${f.schema}_pgsink"."offsets"`;

/** What a backup holds: the table's rows and the fence, taken together. */
async function backup(f: Fixture): Promise<string> {
  const copy = `"${f.schema}"."backup"`;
  await pool.query(`CREATE TABLE ${copy} AS SELECT * FROM ${f.table}`);
  await pool.query(
    `CREATE TABLE "${f.schema}"."backup_fence" AS SELECT * FROM ${fenceTable(f)} WHERE group_id = $1`,
    [f.groupId],
  );
  return copy;
}

/** Puts the backup back, as a restore does: rows and fence together, in one transaction. */
async function restore(f: Fixture, copy: string): Promise<void> {
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    await c.query(`SELECT * FROM ${fenceTable(f)} WHERE group_id = $1 FOR UPDATE`, [f.groupId]);
    await c.query(`DELETE FROM ${f.table}`);
    await c.query(`INSERT INTO ${f.table} SELECT * FROM ${copy}`);
    await c.query(
      `UPDATE ${fenceTable(f)} o SET next_offset = b.next_offset
         FROM "${f.schema}"."backup_fence" b
        WHERE o.group_id = b.group_id AND o.topic = b.topic AND o.partition = b.partition`,
    );
    await c.query('COMMIT');
  } catch (err) {
    await c.query('ROLLBACK');
    throw err;
  } finally {
    c.release();
  }
}

async function fence(f: Fixture): Promise<number> {
  const { rows } = await pool.query<{ n: string }>(
    `SELECT next_offset AS n FROM ${fenceTable(f)} WHERE group_id = $1`,
    [f.groupId],
  );
  return Number(rows[0]?.n ?? -1);
}

function configFile(f: Fixture): string {
  return cliConfigFile(f, {
    batch: { maxRows: 200, maxBytes: 1024 * 1024, lingerMs: 50 },
    shutdown: { deadlineMs: 10_000 },
  });
}

async function endOf(f: Fixture): Promise<number> {
  return (await endOffsets(kafka, f.topic)).get(0)!;
}

async function runUntilCommitted(file: string, f: Fixture): Promise<void> {
  const end = await endOf(f);
  const p = startCli(['run', '--config', file]);
  try {
    await waitCommittedToEnd(kafka, f.groupId, f.topic);
    await waitFor(
      'fence at the end',
      () => fence(f),
      (n) => n === end,
      30_000,
    );
  } finally {
    p.child.kill('SIGTERM');
  }
  const { code } = await p.exited;
  expect({ code, stderr: code === 0 ? '' : p.stderr() }).toEqual({ code: 0, stderr: '' });
}

describe.each(['append', 'upsert'] as const)('Postgres restored behind Kafka (%s)', (mode) => {
  it('a restart reads the lost records again from the fence: every record exactly once, a warning and a metric', async () => {
    const f = await fixture(mode, `rst_${mode[0]}`);
    const file = configFile(f);
    await produceKeyedOrders(kafka, f.topic, 0, 500, KEYS);
    await runUntilCommitted(file, f);
    const copy = await backup(f);
    expect(await fence(f)).toBe(500);

    await produceKeyedOrders(kafka, f.topic, 500, 500, KEYS);
    await runUntilCommitted(file, f);
    expect(await countRows(pool, f.table)).toBe(mode === 'append' ? 1_000 : KEYS);

    // The restore: Postgres goes back to 500 records; Kafka keeps its commit at 1000.
    await restore(f, copy);
    expect(await fence(f)).toBe(500);
    expect([...(await committedOffsets(kafka, f.groupId, f.topic)).values()]).toEqual([1_000]);

    const p = startCli(['run', '--config', file]);
    let metrics: string | undefined;
    try {
      await waitFor(
        'fence back at the end',
        () => fence(f),
        (n) => n === 1_000,
        60_000,
      );
      await waitCommittedToEnd(kafka, f.groupId, f.topic);
      const port = Number(/"port":(\d+),"msg":"serving \/metrics/.exec(p.stderr())?.[1]);
      metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    } finally {
      p.child.kill('SIGTERM');
    }
    expect((await p.exited).code).toBe(0);
    expect(p.stderr()).toContain(
      `Postgres is behind the committed offset: records 500..999 of ${f.topic}:0 are re-read; was Postgres restored or failed over?`,
    );
    expect(metrics).toMatch(
      /pgsink_records_reread_total\{[^}]*messaging_destination_partition_id="0"[^}]*\} 500\b/,
    );
    await checkFinalState(pool, f, mode, 1_000, KEYS);
  });

  it('a running process whose next flush finds the fence behind what it wrote reads the partition again from it', async () => {
    const f = await fixture(mode, `run_${mode[0]}`);
    const p = createPipeline(
      testConfig(f, { batch: { maxRows: 200, maxBytes: 1024 * 1024, lingerMs: 50 } }),
      { logger },
    );
    await p.service.start();
    try {
      await produceKeyedOrders(kafka, f.topic, 0, 400, KEYS);
      await waitFor(
        '400 in',
        () => fence(f),
        (n) => n === 400,
      );
      const copy = await backup(f);
      await produceKeyedOrders(kafka, f.topic, 400, 400, KEYS);
      await waitFor(
        '800 in',
        () => fence(f),
        (n) => n === 800,
      );
      await restore(f, copy);
      // Only the next flush can notice: Postgres' fence is the only trace of the loss.
      await produceKeyedOrders(kafka, f.topic, 800, 200, KEYS);
      await waitFor(
        '1000 in',
        () => fence(f),
        (n) => n === 1_000,
        60_000,
      );
      await waitCommittedToEnd(kafka, f.groupId, f.topic);
    } finally {
      await p.service.stop();
    }
    expect(p.stats.notices).toContainEqual({
      kind: 'reread',
      topic: f.topic,
      partition: 0,
      first: 400,
      last: 799,
    });
    await checkFinalState(pool, f, mode, 1_000, KEYS);
  });

  it('a running process whose fence row is gone (Postgres restored from before pgsink ran) writes everything again', async () => {
    const f = await fixture(mode, `gone_${mode[0]}`);
    const p = createPipeline(
      testConfig(f, { batch: { maxRows: 200, maxBytes: 1024 * 1024, lingerMs: 50 } }),
      { logger },
    );
    await p.service.start();
    try {
      await produceKeyedOrders(kafka, f.topic, 0, 500, KEYS);
      await waitFor(
        '500 in',
        () => fence(f),
        (n) => n === 500,
      );
      await waitCommittedToEnd(kafka, f.groupId, f.topic);
      // The restore: no row of this group, no fence; Kafka keeps its commit at 500.
      const c = await pool.connect();
      try {
        await c.query('BEGIN');
        await c.query(`DELETE FROM ${fenceTable(f)} WHERE group_id = $1`, [f.groupId]);
        await c.query(`DELETE FROM ${f.table}`);
        await c.query('COMMIT');
      } finally {
        c.release();
      }
      // Nothing new comes: only the periodic fence check can notice.
      await waitFor(
        '500 in again',
        () => countRows(pool, f.table),
        (n) => n === 500,
        60_000,
      );
      await produceKeyedOrders(kafka, f.topic, 500, 100, KEYS);
      await waitFor(
        '600 in',
        () => fence(f),
        (n) => n === 600,
        60_000,
      );
      await waitCommittedToEnd(kafka, f.groupId, f.topic);
    } finally {
      await p.service.stop();
    }
    expect(p.stats.notices).toContainEqual({
      kind: 'reread',
      topic: f.topic,
      partition: 0,
      first: 0,
      last: 499,
    });
    await checkFinalState(pool, f, mode, 600, KEYS);
  });
});
