// The stack scripts fail fast with a message that names the fix, never hang.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../..', import.meta.url));

async function fails(args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  try {
    await run(args[0]!, args.slice(1), { cwd: root, env: { ...process.env, ...env }, timeout: 30_000 });
  } catch (err) {
    return (err as { stderr: string }).stderr;
  }
  throw new Error(`${args.join(' ')} succeeded`);
}

describe('stack scripts', () => {
  it('kafka.sh names a missing java', async () => {
    const stderr = await fails(['./stack/kafka.sh', 'start'], {
      JAVA: '/nonexistent/java',
      KAFKA_STACK_DIR: `${root}.stack/unit-nojava`,
    });
    expect(stderr).toMatch(/\/nonexistent\/java not found.*KAFKA_BROKERS/);
  });

  it('kafka.sh names an unsupported KAFKA_VERSION and the versions to use', async () => {
    const stderr = await fails(['./stack/kafka.sh', 'start'], { KAFKA_VERSION: '3.7.0' });
    expect(stderr).toContain('KAFKA_VERSION=3.7.0 is not supported');
    expect(stderr).toMatch(/KAFKA_VERSION=4\.\d+\.\d+ \(the default\) or KAFKA_VERSION=3\.9\.\d+/);
  });

  it('kafka.sh resolves the line aliases to the pinned releases', async () => {
    const version = async (v: string) =>
      (
        await run('./stack/kafka.sh', ['version'], { cwd: root, env: { ...process.env, KAFKA_VERSION: v } })
      ).stdout.trim();
    expect(await version('4')).toBe('4.4.0');
    expect(await version('3.9')).toBe('3.9.2');
    expect(await version('3.9.1')).toBe('3.9.1');
  });

  it('kafka.sh names a KAFKA_PORT that is not a port', async () => {
    const stderr = await fails(['./stack/kafka.sh', 'start'], { KAFKA_PORT: '19o92' });
    expect(stderr).toContain('KAFKA_PORT=19o92 is not a port number');
  });

  it('kafka.sh address says when no broker runs for the state dir', async () => {
    const stderr = await fails(['./stack/kafka.sh', 'address'], {
      KAFKA_STACK_DIR: `${root}.stack/unit-none`,
    });
    expect(stderr).toContain(`no broker is running for ${root}.stack/unit-none`);
    expect(stderr).toContain('stack/kafka.sh start');
  });

  it('postgres.sh names a DATABASE_URL that refuses connections', async () => {
    const stderr = await fails(['./stack/postgres.sh', 'url'], {
      DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none',
    });
    expect(stderr).toMatch(/DATABASE_URL is set but its server does not accept connections/);
  });

  it('kafka.sh rejects an unknown command', async () => {
    const stderr = await fails(['./stack/kafka.sh', 'bogus'], {});
    expect(stderr).toMatch(/usage: stack\/kafka.sh/);
  });
});
