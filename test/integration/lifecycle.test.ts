// Start-up and shutdown within the deadline in every state (DESIGN.md invariant 6), through
// the real CLI as Kubernetes runs it: SIGTERM while connecting to a broker port nobody
// listens on, during the group join, and while every flush waits on a locked table; a
// Postgres that only comes up later; a topic that does not exist yet; a wrong SASL password;
// and one route's locked table next to another route that must keep flowing.
import pg from 'pg';
import { afterAll, describe, expect, inject, it } from 'vitest';
import type { ConfigInput } from '../../src/config/schema.ts';
import { createPipeline } from '../../src/pipeline/app.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { runCli, startCli, type Running } from '../support/cli.ts';
import {
  cliConfigFile,
  countRows,
  ordersFixture,
  produceOrders,
  testConfig,
  waitFor,
  type Fixture,
} from '../support/pipeline.ts';
import { freePort, PrivateCluster } from '../support/private-postgres.ts';
import { createTopic, kafkaClient, pgPool, uniqueName } from '../support/services.ts';

const kafka = kafkaClient();
const pool = pgPool();
afterAll(() => pool.end());

/** The deadline the tests give, and the margin documented for the exit after it. */
const DEADLINE_MS = 4_000;
const MARGIN_MS = 1_000;

function configFile(
  f: Pick<Fixture, 'groupId' | 'schema' | 'route'>,
  over: Partial<ConfigInput> = {},
): string {
  return cliConfigFile(f, {
    batch: { maxRows: 500, maxBytes: 1024 * 1024, lingerMs: 50 },
    retry: { initialMs: 200, maxMs: 1_000 },
    shutdown: { deadlineMs: DEADLINE_MS },
    ...over,
  } as Parameters<typeof cliConfigFile>[1]);
}

async function readyz(p: Running): Promise<{ status: number; body: Record<string, unknown> }> {
  const port = Number(/"port":(\d+),"msg":"serving \/metrics/.exec(p.stderr())?.[1]);
  if (!port) throw new Error('the process does not serve /readyz yet');
  const res = await fetch(`http://127.0.0.1:${port}/readyz`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** SIGTERM, and how long until the process was gone. */
async function terminate(p: Running): Promise<{ code: number | null; ms: number }> {
  const t0 = Date.now();
  p.child.kill('SIGTERM');
  const { code } = await p.exited;
  return { code, ms: Date.now() - t0 };
}

const noStackTrace = (text: string) => expect(text).not.toMatch(/\n\s+at [^\n]+:\d+:\d+/);
const logged = (p: Running, msg: string) => p.stderr().includes(`"msg":"${msg}"`);

describe('SIGTERM in every state exits within the deadline', () => {
  it('while connecting to a broker port nobody listens on (exit 0)', async () => {
    const f = {
      groupId: uniqueName('g'),
      schema: uniqueName('life_s'),
      route: (await ordersFixture(kafka, pool, 1, 'lc')).route,
    };
    const closed = await freePort();
    const p = startCli([
      'run',
      '--config',
      configFile(f, { kafka: { brokers: [`127.0.0.1:${closed}`] } as ConfigInput['kafka'] }),
    ]);
    const r = await waitFor(
      'waiting for Kafka',
      () => readyz(p).catch(() => undefined),
      (x) => x?.status === 503,
      30_000,
    );
    await waitFor(
      'waiting',
      async () => /waiting for Kafka/.test(String((await readyz(p)).body['reason'])),
      Boolean,
      30_000,
    );
    expect(r?.body['status']).toBe('not ready');
    const { code, ms } = await terminate(p);
    expect({ code, within: ms < DEADLINE_MS + MARGIN_MS }).toEqual({ code: 0, within: true });
    noStackTrace(p.stderr());
  });

  it('during the group join (exit 0, and nothing starts after "stopped")', async () => {
    const f = await ordersFixture(kafka, pool, 2, 'join');
    await produceOrders(kafka, f.topic, 0, 10);
    // A member that takes the partitions and then blocks in its batch: it stops heartbeating,
    // so the next member's join waits (its rebalance timeout) for it to rejoin.
    let release: () => void = () => undefined;
    const blocked = new Promise<void>((r) => (release = r));
    const blocker = kafka.consumer({
      groupId: f.groupId,
      sessionTimeout: 30_000,
      rebalanceTimeout: 30_000,
      heartbeatInterval: 3_000,
    });
    await blocker.connect();
    await blocker.subscribe({ topics: [f.topic], fromBeginning: true });
    let got = false;
    await blocker.run({
      eachBatch: async () => {
        got = true;
        await blocked;
      },
    });
    try {
      await waitFor('the blocker holds a batch', async () => got, Boolean, 30_000);
      const p = startCli([
        'run',
        '--config',
        configFile(f, { kafka: { rebalanceTimeoutMs: 30_000 } as ConfigInput['kafka'] }),
      ]);
      // Kafka answers, the consumer has sent its join and waits in it.
      await waitFor(
        'probing done',
        async () => logged(p, 'serving /metrics, /healthz, /readyz'),
        Boolean,
        30_000,
      );
      await new Promise((r) => setTimeout(r, 3_000));
      expect(logged(p, 'partitions assigned')).toBe(false);
      const { code, ms } = await terminate(p);
      expect({ code, within: ms < DEADLINE_MS + MARGIN_MS }).toEqual({ code: 0, within: true });
      const after = p.stderr().slice(p.stderr().indexOf('"msg":"stopped"'));
      expect(after).not.toContain('partitions assigned');
      expect(after).not.toContain('"msg":"consuming"');
      noStackTrace(p.stderr());
    } finally {
      release();
      await blocker.disconnect();
    }
  });

  it('while every flush waits on a locked table (exit 0; a restart loses nothing)', async () => {
    const f = await ordersFixture(kafka, pool, 3, 'lock');
    const file = configFile(f);
    const p = startCli(['run', '--config', file]);
    const locker = await pool.connect();
    try {
      await waitFor('consuming', async () => logged(p, 'consuming'), Boolean, 30_000);
      await locker.query('BEGIN');
      await locker.query(`LOCK TABLE ${f.table} IN ACCESS EXCLUSIVE MODE`);
      await produceOrders(kafka, f.topic, 0, 3_000);
      await waitFor(
        'every partition waiting on the lock',
        async () => {
          const { rows } = await pool.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`,
            [`pgsink:${f.groupId}`],
          );
          return rows[0]!.n;
        },
        (n) => n >= 3,
        30_000,
      );
      const backends = async () => {
        const { rows } = await pool.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1`,
          [`pgsink:${f.groupId}`],
        );
        return rows[0]!.n;
      };
      const before = await backends();
      const { code, ms } = await terminate(p);
      expect({ code, within: ms < DEADLINE_MS + MARGIN_MS }).toEqual({ code: 0, within: true });
      expect(p.stderr()).toContain('abandoning unflushed records');
      // No connection was opened after it gave up (a backend waiting on a lock only notices
      // its client is gone once it gets the lock).
      expect(await backends()).toBeLessThanOrEqual(before);
      await locker.query('ROLLBACK');
      // The abandoned transactions roll back: nothing of them lands.
      await waitFor('abandoned backends gone', backends, (n) => n === 0, 30_000);
      expect(await countRows(pool, f.table)).toBe(0);
    } finally {
      await locker.query('ROLLBACK').catch(() => undefined);
      locker.release();
    }
    const again = startCli(['run', '--config', file]);
    try {
      await waitFor(
        'all rows',
        () => countRows(pool, f.table),
        (n) => n >= 3_000,
        60_000,
      );
    } finally {
      await terminate(again);
    }
    const { rows } = await pool.query<{ n: string; d: string }>(
      `SELECT count(*) AS n, count(DISTINCT (_partition, _offset)) AS d FROM ${f.table}`,
    );
    expect(rows[0]).toEqual({ n: '3000', d: '3000' });
  });
});

describe('start-up waits for what is not there yet', () => {
  it('Postgres unreachable at start: stays up, not ready, and writes everything once it is up', async () => {
    const cluster = await PrivateCluster.create();
    try {
      const f = await ordersFixture(kafka, pool, 2, 'pgwait');
      f.route.autoCreate = true;
      await produceOrders(kafka, f.topic, 0, 500);
      const p = startCli([
        'run',
        '--config',
        configFile(f, {
          postgres: { url: cluster.url, schema: `${f.schema}_pgsink` },
        } as Partial<ConfigInput>),
      ]);
      try {
        const r = await waitFor(
          'not ready, waiting for Postgres',
          () => readyz(p).catch(() => undefined),
          (x) => /waiting for Postgres/.test(String(x?.body['reason'])),
          30_000,
        );
        expect(r?.status).toBe(503);
        await new Promise((res) => setTimeout(res, 1_500));
        expect(p.child.exitCode).toBeNull();
        noStackTrace(p.stderr());
        await cluster.start();
        const c = new pg.Client({ connectionString: cluster.url });
        await c.connect();
        try {
          // The table (and its schema) are auto-created.
          await waitFor(
            'all rows in the late Postgres',
            async () => {
              const { rows } = await c
                .query<{ n: string }>(`SELECT count(*) AS n FROM ${f.table}`)
                .catch(() => ({ rows: [{ n: '0' }] }));
              return Number(rows[0]!.n);
            },
            (n) => n >= 500,
            60_000,
          );
          await waitFor(
            'ready',
            () => readyz(p),
            (x) => x.status === 200,
            30_000,
          );
        } finally {
          await c.end();
        }
      } finally {
        expect((await terminate(p)).code).toBe(0);
      }
    } finally {
      await cluster.destroy();
    }
  });

  it('a topic that does not exist: waits with a clear message, no stack trace, and consumes once it is created', async () => {
    const f = await ordersFixture(kafka, pool, 1, 'notopic');
    const topic = uniqueName('later');
    f.route.topic = topic;
    const p = startCli(['run', '--config', configFile(f)]);
    try {
      await waitFor(
        'waiting for the topic',
        async () => p.stderr().includes(`topic '${topic}' does not exist`),
        Boolean,
        30_000,
      );
      const r = await readyz(p);
      expect(r.status).toBe(503);
      expect(r.body['reason']).toMatch(/waiting for Kafka \(UNKNOWN_TOPIC\)/);
      noStackTrace(p.stderr());
      await createTopic(kafka, topic, 1);
      await produceOrders(kafka, topic, 0, 50);
      await waitFor(
        'rows',
        () => countRows(pool, f.table),
        (n) => n >= 50,
        60_000,
      );
    } finally {
      expect((await terminate(p)).code).toBe(0);
    }
  });

  it('a wrong SASL password: exit 2 with one clear line', async () => {
    const sasl = inject('kafkaSaslBrokers');
    if (!sasl) throw new Error('the test broker has no SASL listener (KAFKA_SASL_BROKERS)');
    const f = await ordersFixture(kafka, pool, 1, 'badsasl');
    const p = startCli([
      'run',
      '--config',
      configFile(f, {
        kafka: {
          brokers: sasl.split(','),
          sasl: { mechanism: 'scram-sha-512', username: 'pgsink', password: 'wrong' },
        },
      } as Partial<ConfigInput>),
    ]);
    const { code } = await p.exited;
    expect(code).toBe(2);
    expect(p.stderr()).toMatch(/pgsink: Kafka at .* refused the SASL credentials: .*Check kafka\.sasl/);
    expect(p.stderr()).not.toContain('"wrong"');
    noStackTrace(p.stderr());
  });
});

describe('fair flush slots', () => {
  it("one route's locked table does not stall another route", async () => {
    const a = await ordersFixture(kafka, pool, 6, 'fair_a');
    const b = await ordersFixture(kafka, pool, 1, 'fair_b');
    const lingerMs = 50;
    const p = createPipeline(
      testConfig(a, {
        batch: { maxRows: 200, maxBytes: 1024 * 1024, lingerMs },
        backpressure: {
          maxPartitionBytes: 8 * 1024 * 1024,
          maxTotalBytes: 64 * 1024 * 1024,
          resumeRatio: 0.5,
          maxConcurrentFlushes: 4,
        },
        routes: [a.route, b.route],
      }),
      { logger: createLogger('silent') },
    );
    const locker = await pool.connect();
    await p.service.start();
    try {
      await waitFor('joined', async () => p.service.ready, Boolean, 30_000);
      await locker.query('BEGIN');
      await locker.query(`LOCK TABLE ${a.table} IN ACCESS EXCLUSIVE MODE`);
      // Route a's six partitions would take every slot, each flush waiting on the lock.
      await produceOrders(kafka, a.topic, 0, 6_000);
      await waitFor(
        "route a's flushes waiting",
        async () => {
          const { rows } = await pool.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`,
            [`pgsink:${a.groupId}`],
          );
          return rows[0]!.n;
        },
        (n) => n >= 3,
        30_000,
      );
      const t0 = Date.now();
      await produceOrders(kafka, b.topic, 0, 100);
      await waitFor(
        'route b lands',
        () => countRows(pool, b.table),
        (n) => n >= 100,
        30_000,
        20,
      );
      expect(Date.now() - t0).toBeLessThan(lingerMs + 2_000);
    } finally {
      await locker.query('ROLLBACK').catch(() => undefined);
      locker.release();
      await p.service.stop();
    }
  });
});

describe('pgsink check --connect and schema plan', () => {
  it('say what run would do, and exit 0 / 1 / 2 as run would start, wait or refuse', async () => {
    const f = await ordersFixture(kafka, pool, 2, 'chk');
    const ok = await runCli(['check', '--connect', '--config', configFile(f)]);
    expect({ code: ok.code, stderr: ok.stderr }).toEqual({ code: 0, stderr: '' });
    expect(ok.stdout).toMatch(/^ok\s+Kafka at .* answers$/m);
    expect(ok.stdout).toContain(`ok      topic ${f.topic}: 2 partitions`);
    expect(ok.stdout).toContain(`ok      table ${f.route.table}: every mapped column is there`);

    // A topic that does not exist yet: run would wait (1).
    const later = await runCli([
      'check',
      '--connect',
      '--config',
      configFile({ ...f, route: { ...f.route, topic: uniqueName('nope') } }),
    ]);
    expect(later.code).toBe(1);
    expect(later.stdout).toMatch(/WAITS\s+topic nope_\w+ does not exist: run would wait for it/);

    // A missing table without autoCreate, and an upsert table without a unique key: refused (2).
    const missing = await runCli([
      'check',
      '--connect',
      '--config',
      configFile({ ...f, route: { ...f.route, table: `${f.schema}.absent` } }),
    ]);
    expect(missing.code).toBe(2);
    expect(missing.stdout).toMatch(
      /REFUSED table .*absent: does not exist; run would refuse to start\. Run: CREATE SCHEMA IF NOT EXISTS .*CREATE TABLE IF NOT EXISTS/,
    );
    const upsert = await runCli([
      'check',
      '--connect',
      '--config',
      configFile({ ...f, route: { ...f.route, mode: 'upsert', keyColumns: ['order_id'] } }),
    ]);
    expect(upsert.code).toBe(2);
    expect(upsert.stdout).toMatch(
      /REFUSED table .*: upsert needs a unique key; run would refuse to start\. Run: CREATE UNIQUE INDEX IF NOT EXISTS .* \("order_id"\)/,
    );
    noStackTrace(missing.stderr + upsert.stderr + later.stderr);
  });

  it('autoCreate on an upsert route creates the table with its unique index, and schema plan prints both', async () => {
    const f = await ordersFixture(kafka, pool, 1, 'autoup');
    const route = {
      ...f.route,
      table: `${f.schema}.created`,
      mode: 'upsert' as const,
      keyColumns: ['order_id'],
      autoCreate: true,
    };
    const plan = await runCli(['schema', 'plan', '--config', configFile({ ...f, route })]);
    expect(plan.code).toBe(0);
    expect(plan.stdout).toMatch(/CREATE TABLE IF NOT EXISTS "[^"]+"\."created"/);
    expect(plan.stdout).toMatch(
      /CREATE UNIQUE INDEX IF NOT EXISTS "created_pgsink_key" ON "[^"]+"\."created" \("order_id"\);/,
    );
    const p = createPipeline(testConfig({ ...f, route }), { logger: createLogger('silent') });
    await p.service.start();
    try {
      await produceOrders(kafka, f.topic, 0, 20);
      await waitFor(
        'rows',
        () => countRows(pool, `"${f.schema}"."created"`),
        (n) => n >= 20,
      );
    } finally {
      await p.service.stop();
    }
  });
});
