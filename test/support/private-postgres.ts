// Private PostgreSQL clusters for tests that must stop, kill or promote a server: never the
// shared one. initdb/pg_ctl refuse to run as root, so as root they run as 'postgres' (which
// then owns the data directories). Every wait is bounded.
import { execFile, execFileSync } from 'node:child_process';
import {
  appendFileSync,
  chmodSync,
  chownSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const asRoot = process.getuid?.() === 0;

function pgBin(name: string): string {
  const base = '/usr/lib/postgresql';
  let versions: string[] = [];
  try {
    versions = readdirSync(base).sort((a, b) => Number(b) - Number(a));
  } catch {
    // not a Debian layout: rely on PATH
  }
  return versions.length ? join(base, versions[0]!, 'bin', name) : name;
}

async function asOwner(args: string[], timeoutMs = 60_000): Promise<string> {
  const [cmd, rest] = asRoot ? ['runuser', ['-u', 'postgres', '--', ...args]] : [args[0]!, args.slice(1)];
  try {
    const { stdout } = await run(cmd, rest, { timeout: timeoutMs });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`, { cause: err });
  }
}

function ownByPostgres(path: string): void {
  if (!asRoot) return;
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  chownSync(path, id('-u'), id('-g'));
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export class PrivateCluster {
  readonly dir: string;
  readonly port: number;
  private readonly root: string;

  private constructor(root: string, dir: string, port: number) {
    this.root = root;
    this.dir = dir;
    this.port = port;
  }

  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  /** A new cluster (initdb) ready for streaming replicas, not started. */
  static async create(root?: string): Promise<PrivateCluster> {
    const base = root ?? PrivateCluster.root();
    const dir = join(base, `pg-${Math.random().toString(36).slice(2, 8)}`);
    await asOwner([
      pgBin('initdb'),
      '-D',
      dir,
      '-U',
      'postgres',
      '--auth=trust',
      '--encoding=UTF8',
      '--no-locale',
    ]);
    // Trust replication from loopback too (initdb's --auth=trust covers local sockets and host).
    appendFileSync(join(dir, 'pg_hba.conf'), '\nhost replication all 127.0.0.1/32 trust\n');
    return new PrivateCluster(base, dir, await freePort());
  }

  /** A streaming replica of `primary` (pg_basebackup -R), replicating through `viaPort`. */
  static async replicaOf(primary: PrivateCluster, viaPort = primary.port): Promise<PrivateCluster> {
    const dir = join(primary.root, `pg-${Math.random().toString(36).slice(2, 8)}`);
    await asOwner([
      pgBin('pg_basebackup'),
      '-h',
      '127.0.0.1',
      '-p',
      String(primary.port),
      '-U',
      'postgres',
      '-D',
      dir,
      '-R',
      '-X',
      'stream',
    ]);
    // -R wrote primary_conninfo with the primary's port; point it at viaPort instead.
    appendFileSync(
      join(dir, 'postgresql.auto.conf'),
      `\nprimary_conninfo = 'host=127.0.0.1 port=${viaPort} user=postgres'\n`,
    );
    return new PrivateCluster(primary.root, dir, await freePort());
  }

  private static root(): string {
    const root = mkdtempSync(join(tmpdir(), 'pgsink-pg-'));
    chmodSync(root, 0o755);
    ownByPostgres(root);
    return root;
  }

  async start(): Promise<void> {
    const opts = [
      `-p ${this.port}`,
      '-c listen_addresses=127.0.0.1',
      `-k ${this.dir}`,
      '-c max_connections=50',
      '-c wal_level=replica',
      '-c max_wal_senders=5',
      '-c hot_standby=on',
      '-c wal_receiver_status_interval=1s',
      '-c fsync=off',
      '-c shared_buffers=32MB',
    ].join(' ');
    await asOwner([
      pgBin('pg_ctl'),
      '-D',
      this.dir,
      '-l',
      join(this.dir, 'server.log'),
      '-w',
      '-t',
      '60',
      '-o',
      opts,
      'start',
    ]);
  }

  /** kill -9 of the server: the postmaster and its backends at once, no shutdown checkpoint. */
  async kill(): Promise<void> {
    const pid = Number(readFileSync(join(this.dir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    const { stdout } = await run('pgrep', ['-P', String(pid)]).catch(() => ({ stdout: '' }));
    const children = stdout.split('\n').filter(Boolean).map(Number);
    for (const p of [pid, ...children]) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    for (let i = 0; i < 100; i++) {
      try {
        process.kill(pid, 0);
      } catch {
        return;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async promote(): Promise<void> {
    await asOwner([pgBin('pg_ctl'), '-D', this.dir, '-w', '-t', '60', 'promote']);
  }

  async stop(): Promise<void> {
    await asOwner([pgBin('pg_ctl'), '-D', this.dir, '-m', 'immediate', '-w', '-t', '30', 'stop']).catch(
      () => undefined,
    );
  }

  /** Stops the server if it runs and removes every cluster made under the same root. */
  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.root, { recursive: true, force: true });
  }
}
