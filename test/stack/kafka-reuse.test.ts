// stack/kafka.sh beside brokers that already run (issue 18), for real: a broker started from one
// state dir (one checkout) is reused from a second one when it is the same version; another
// version, a port held by something that is not a broker, or a transient broker asked for by a
// kept one make it start on free ports and say so in one line; stop leaves a reused broker
// alone; stop-all stops every broker of a checkout and removes the transient state.
// The registry is private to this file (KAFKA_STACK_REGISTRY), so other checkouts' brokers on
// this machine cannot change what it sees.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kafka, logLevel } from '../../src/kafka/kafkajs.ts';
import { hideKafkajsTimeoutWarning } from '../../src/kafka/quirks.ts';

hideKafkajsTimeoutWarning();

const root = fileURLToPath(new URL('../..', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'pgsink-stack-test-'));
const registry = join(tmp, 'registry');
const home = join(tmp, 'home');
// Empty values mean the script's defaults: a developer's own KAFKA_* settings must not leak in.
const base = {
  KAFKA_STACK_REGISTRY: registry,
  KAFKA_STACK_HOME: home,
  KAFKA_START_TIMEOUT: '90',
  KAFKA_CONTROLLER_PORT: '',
  KAFKA_SASL_PORT: '',
  KAFKA_TRANSIENT: '0',
};

interface Out {
  code: number;
  stdout: string;
  stderr: string;
}

function kafkaSh(args: string[], env: Record<string, string>, timeout = 120_000): Promise<Out> {
  return new Promise((resolve) => {
    execFile(
      join(root, 'stack', 'kafka.sh'),
      args,
      { cwd: root, env: { ...process.env, ...base, ...env }, timeout },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout: stdout.trim(), stderr: stderr.trim() });
      },
    );
  });
}

async function ok(args: string[], env: Record<string, string>): Promise<Out> {
  const out = await kafkaSh(args, env);
  expect(out, `stack/kafka.sh ${args.join(' ')}`).toMatchObject({ code: 0 });
  return out;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** The port the broker at this address advertises, asked through the Kafka protocol. */
async function brokerPort(address: string): Promise<number> {
  const admin = new Kafka({
    clientId: 'stack-test',
    brokers: [address],
    logLevel: logLevel.NOTHING,
    retry: { retries: 2 },
  }).admin();
  await admin.connect();
  try {
    const { brokers } = await admin.describeCluster();
    expect(brokers).toHaveLength(1);
    return brokers[0]!.port;
  } finally {
    await admin.disconnect();
  }
}

function marker(port: number): Record<string, string> {
  const text = readFileSync(join(registry, `kafka-${port}`), 'utf8');
  return Object.fromEntries(
    text
      .trim()
      .split('\n')
      .map((l) => l.split(/=(.*)/s).slice(0, 2) as [string, string]),
  );
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const portOf = (address: string) => Number(/^127\.0\.0\.1:(\d+)$/.exec(address)?.[1]);

describe('stack/kafka.sh beside running brokers', () => {
  let first: number; // the kept 4.x broker's port
  const pids: number[] = [];

  beforeAll(async () => {
    // Both lines' jars (make test fetched them already; a direct vitest run may not have).
    for (const v of ['4', '3.9']) await ok(['fetch'], { KAFKA_VERSION: v });
  });

  afterAll(async () => {
    await kafkaSh(['stop-all'], {});
    // Whatever stop-all missed (it is under test): only the brokers this file started.
    for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
    rmSync(tmp, { recursive: true, force: true });
  });

  it('start prints the bootstrap address of the broker it started', async () => {
    first = await freePort();
    const a = await ok(['start'], {
      KAFKA_VERSION: '4',
      KAFKA_PORT: String(first),
      KAFKA_STACK_DIR: join(home, 'kafka-a'),
    });
    expect(a.stdout).toBe(`127.0.0.1:${first}`);
    expect(a.stderr).toContain(`Kafka 4.4.0 ready on 127.0.0.1:${first}`);
    expect(await brokerPort(a.stdout)).toBe(first);
    const m = marker(first);
    expect(m).toMatchObject({
      version: '4.4.0',
      port: String(first),
      state_dir: join(home, 'kafka-a'),
      transient: '0',
    });
    pids.push(Number(m['pid']));
    const again = await ok(['address'], { KAFKA_VERSION: '4', KAFKA_STACK_DIR: join(home, 'kafka-a') });
    expect(again.stdout).toBe(`127.0.0.1:${first}`);
  });

  it('a second state dir reuses it when it is the same version, and stop leaves it running', async () => {
    const env = { KAFKA_VERSION: '4', KAFKA_PORT: String(first), KAFKA_STACK_DIR: join(home, 'kafka-b') };
    const b = await ok(['start'], env);
    expect(b.stdout).toBe(`127.0.0.1:${first}`);
    expect(b.stderr.split('\n')).toEqual([
      `stack/kafka.sh: reusing this project's Kafka 4.4.0 on 127.0.0.1:${first} (pid ${pids[0]}, started from ${join(home, 'kafka-a')})`,
    ]);
    expect(existsSync(join(home, 'kafka-b', 'kafka.pid'))).toBe(false);
    // The owner's stop names the state dirs that still reuse its broker: they are listed here.
    expect(readFileSync(join(registry, `kafka-${first}.reusers`), 'utf8')).toBe(`${join(home, 'kafka-b')}\n`);
    expect((await ok(['address'], env)).stdout).toBe(`127.0.0.1:${first}`);

    const stop = await ok(['stop'], env);
    expect(stop.stderr).toContain(`leaving Kafka 4.4.0 on 127.0.0.1:${first} running`);
    expect(alive(pids[0]!)).toBe(true);
    expect(await brokerPort(`127.0.0.1:${first}`)).toBe(first);
    expect((await kafkaSh(['status'], env)).code).not.toBe(0);
  });

  let second: number; // the transient 3.9 broker's port
  it('another version on the port: it starts on free ports and says so', async () => {
    const c = await ok(['start'], {
      KAFKA_VERSION: '3.9',
      KAFKA_PORT: String(first),
      KAFKA_STACK_DIR: join(home, 'test-kafka-1'),
      KAFKA_TRANSIENT: '1',
    });
    second = portOf(c.stdout);
    expect(second).toBeGreaterThan(first);
    expect(c.stderr.split('\n')[0]).toBe(
      `stack/kafka.sh: 127.0.0.1:${first} is this project's Kafka 4.4.0 (from ${join(home, 'kafka-a')}), not 3.9.2; ` +
        `starting Kafka 3.9.2 on free ports instead: 127.0.0.1:${second} (controller ${second + 1})`,
    );
    expect(await brokerPort(c.stdout)).toBe(second);
    const m = marker(second);
    expect(m).toMatchObject({ version: '3.9.2', transient: '1' });
    pids.push(Number(m['pid']));
    // The 4.x broker still answers where it was.
    expect(await brokerPort(`127.0.0.1:${first}`)).toBe(first);
  });

  it('a kept broker is never a reuse of a transient one', async () => {
    const e = await ok(['start'], {
      KAFKA_VERSION: '3.9',
      KAFKA_PORT: String(second),
      KAFKA_STACK_DIR: join(home, 'kafka-e'),
    });
    const port = portOf(e.stdout);
    expect(port).not.toBe(second);
    expect(e.stderr.split('\n')[0]).toBe(
      `stack/kafka.sh: 127.0.0.1:${second} is this project's Kafka 3.9.2 (from ${join(home, 'test-kafka-1')}), ` +
        `but it stops when that run ends; starting Kafka 3.9.2 on free ports instead: 127.0.0.1:${port} (controller ${port + 1})`,
    );
    expect(await brokerPort(e.stdout)).toBe(port);
    pids.push(Number(marker(port)['pid']));
  });

  it('a port held by a process that is not a broker: free ports, with a SASL listener too', async () => {
    const squatter: Server = createServer((s) => s.destroy());
    await new Promise<void>((r) => squatter.listen(0, '127.0.0.1', r));
    const taken = (squatter.address() as { port: number }).port;
    try {
      const env = {
        KAFKA_VERSION: '4',
        KAFKA_PORT: String(taken),
        KAFKA_SASL_PORT: String(await freePort()),
        KAFKA_STACK_DIR: join(home, 'kafka-d'),
      };
      const d = await ok(['start'], env);
      const port = portOf(d.stdout);
      expect(port).not.toBe(taken);
      expect(d.stderr.split('\n')[0]).toBe(
        `stack/kafka.sh: port ${taken} on 127.0.0.1 is taken by a process that is not this project's Kafka 4.4.0; ` +
          `starting Kafka 4.4.0 on free ports instead: 127.0.0.1:${port} (controller ${port + 1}, SASL ${port + 2})`,
      );
      expect(await brokerPort(d.stdout)).toBe(port);
      expect((await ok(['address', 'sasl'], env)).stdout).toBe(`127.0.0.1:${port + 2}`);
      pids.push(Number(marker(port)['pid']));
    } finally {
      squatter.close();
    }
  });

  it('stop-all stops every broker of the checkout and removes the transient state', async () => {
    expect(pids).toHaveLength(4);
    expect(pids.every(alive)).toBe(true);
    const all = await ok(['stop-all'], {});
    expect(all.stderr.split('\n').filter((l) => l.includes('stopping the broker of'))).toHaveLength(4);
    expect(pids.filter(alive)).toEqual([]);
    expect(readdirSync(registry)).toEqual([]);
    expect(existsSync(join(home, 'test-kafka-1'))).toBe(false);
    // Kept state stays for the next start; it no longer names a broker.
    expect(existsSync(join(home, 'kafka-a', 'data', 'meta.properties'))).toBe(true);
    expect((await kafkaSh(['status'], { KAFKA_STACK_DIR: join(home, 'kafka-a') })).code).not.toBe(0);
  });
});
