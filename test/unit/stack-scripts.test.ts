// The stack scripts fail fast with a message that names the fix, never hang.
import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
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

  it('kafka.sh names a taken port', async () => {
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as { port: number }).port;
    try {
      const stderr = await fails(['./stack/kafka.sh', 'start'], {
        KAFKA_PORT: String(port),
        KAFKA_STACK_DIR: `${root}.stack/unit-port`,
      });
      expect(stderr).toContain(`port ${port} on 127.0.0.1 is taken`);
      expect(stderr).toContain('KAFKA_PORT=');
    } finally {
      srv.close();
    }
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
