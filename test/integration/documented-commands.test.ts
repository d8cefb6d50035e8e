// The README's development commands, run as a user runs them, so that they cannot rot:
// `make chaos KILLS=3 SEED=1` (its PGSINK_CHAOS_* variables reach the pgsink processes it
// starts), with unrelated PGSINK_* variables in the environment as a user's shell may have.
import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../support/cli.ts';
import { databaseUrl, kafkaBrokers } from '../support/services.ts';

/** The environment of a user's shell: this run's servers, none of vitest's own variables. */
function userEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env))
    if (!k.startsWith('VITEST') && k !== 'NODE_ENV') env[k] = v;
  return { ...env, KAFKA_BROKERS: kafkaBrokers().join(','), DATABASE_URL: databaseUrl(), ...extra };
}

function make(args: string[], env: NodeJS.ProcessEnv, timeoutMs: number) {
  return new Promise<{ code: number | null; out: string }>((resolve) => {
    execFile(
      'make',
      args,
      { cwd: repoRoot, env, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? ((err as { code?: number }).code ?? null) : 0;
        resolve({ code: typeof code === 'number' ? code : null, out: `${stdout}\n${stderr}` });
      },
    );
  });
}

describe('documented commands', () => {
  it(
    'make chaos KILLS=3 SEED=1 passes, with unrelated PGSINK_* variables set',
    { timeout: 300_000 },
    async () => {
      const { code, out } = await make(
        ['chaos', 'KILLS=3', 'SEED=1'],
        userEnv({ PGSINK_SOMETHING: 'unrelated', PGSINK_DIR: '/opt/pgsink' }),
        280_000,
      );
      expect({ code, tail: code === 0 ? '' : out.slice(-4_000) }).toEqual({ code: 0, tail: '' });
      expect(out).toContain('loses and duplicates nothing across 3 kills (seed 1)');
      expect(out).toMatch(/Tests( \([^)]*\))?: 1 passed, 0 failed/);
    },
  );
});
