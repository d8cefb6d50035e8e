// `make test` (npm test): the unit tests, the stack scripts' test (real brokers of both Kafka
// lines), then the integration suite once per Kafka version, one run after the other, so that
// the 2 cores carry one broker under test load at a time. Prints one line per run and a closing
// total ("Tests: N passed, N failed"); exits 1 when any run failed or did not report.
//
//   node test/run.ts [unit] [stack] [integration] [-- vitest args]   (all three when none named)
//   KAFKA_TEST_VERSIONS  the versions the integration suite runs on ("4.4.0 3.9.2"); each run
//                        sets KAFKA_VERSION for stack/kafka.sh
//   KAFKA_BROKERS        an existing broker: the integration suite runs once, against it, and
//                        the stack scripts' test (which starts brokers of its own) is not run
//   KAFKA_TEST_CLIENTS   the second Kafka clients whose runs follow ("platformatic
//                        platformatic/consumer"; "" for none): the files that exercise the
//                        Kafka source (SOURCE_FILES) once more per client, on the first version
//                        only (KIP-848, "/consumer": the membership and assignment files,
//                        KIP848_FILES, only where that version is 4.x), with
//                        PGSINK_TEST_KAFKA_CLIENT / PGSINK_TEST_KAFKA_GROUP_PROTOCOL set
//                        (test/support/kafka-client.ts); kafkajs runs the whole suite on every version
//                        (the benchmark smoke test on the first only)
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const VITEST = join(root, 'node_modules', 'vitest', 'vitest.mjs');
const STEPS = ['unit', 'stack', 'integration'] as const;
type Step = (typeof STEPS)[number];

const argv = process.argv.slice(2);
const dashes = argv.indexOf('--');
const named = dashes < 0 ? argv : argv.slice(0, dashes);
const vitestArgs = dashes < 0 ? [] : argv.slice(dashes + 1);
for (const n of named) {
  if (!(STEPS as readonly string[]).includes(n)) {
    process.stderr.write(`test/run.ts: unknown step ${JSON.stringify(n)}; use ${STEPS.join(', ')}\n`);
    process.exit(2);
  }
}
const steps = new Set<Step>(named.length ? (named as Step[]) : STEPS);
const versions = (process.env['KAFKA_TEST_VERSIONS'] ?? '4.4.0 3.9.2').split(/[\s,]+/).filter(Boolean);
const external = process.env['KAFKA_BROKERS'];
const clients = (process.env['KAFKA_TEST_CLIENTS'] ?? 'platformatic platformatic/consumer')
  .split(/[\s,]+/)
  .filter(Boolean);
/** The integration files that exercise the Kafka source: the second clients run these. */
const SOURCE_FILES = [
  'exactly-once',
  'chaos',
  'replay',
  'rebalance',
  'pipeline-basic',
  'pipeline-failures',
  'cli-shutdown',
  'lifecycle',
  'source-of-truth',
  'failover',
  'retention-gap',
  'transactions',
  'kafka-sasl',
  'strict', // dead letters' headers byte for byte, as each client hands them over
].map((f) => `test/integration/${f}.test.ts`);
/** KIP-848 changes membership and assignment only: the files about those. */
const KIP848_FILES = ['exactly-once', 'rebalance', 'pipeline-basic', 'transactions'].map(
  (f) => `test/integration/${f}.test.ts`,
);

interface Run {
  label: string;
  project: string;
  env: NodeJS.ProcessEnv;
  files?: string[];
  exclude?: string[];
}
interface Result {
  label: string;
  passed: number;
  failed: number;
  failures?: string[];
  skipped: number;
  seconds: number;
  note?: string;
}

const runs: Run[] = [];
const notRun: string[] = [];
if (steps.has('unit')) runs.push({ label: 'unit', project: 'unit', env: {} });
if (steps.has('stack')) {
  if (external) notRun.push('stack scripts: not run (KAFKA_BROKERS is set; it starts brokers of its own)');
  else runs.push({ label: 'stack scripts', project: 'stack', env: {} });
}
if (steps.has('integration')) {
  if (external) runs.push({ label: 'integration, KAFKA_BROKERS', project: 'integration', env: {} });
  else
    for (const [i, v] of versions.entries())
      runs.push({
        label: `integration, Kafka ${v}`,
        project: 'integration',
        env: { KAFKA_VERSION: v },
        // The benchmark's smoke run (80 s) checks the benchmark, not the broker: once is enough.
        ...(i > 0 ? { exclude: ['test/integration/bench-smoke.test.ts'] } : {}),
      });
  const first = versions[0];
  for (const c of clients) {
    const [client, protocol = 'classic'] = c.split('/');
    if (client !== 'platformatic' || (protocol !== 'classic' && protocol !== 'consumer')) {
      process.stderr.write(
        `test/run.ts: KAFKA_TEST_CLIENTS: unknown ${JSON.stringify(c)}; use platformatic or platformatic/consumer\n`,
      );
      process.exit(2);
    }
    // KIP-848 needs a 4.x broker (3.x has it only behind group.coordinator.rebalance.protocols).
    if (protocol === 'consumer' && !external && !first?.startsWith('4')) {
      notRun.push(
        `integration, ${c}: not run (KIP-848 needs Kafka 4.x; the first version is ${first ?? 'none'})`,
      );
      continue;
    }
    if (!external && !first) continue;
    runs.push({
      label: `integration, ${external ? 'KAFKA_BROKERS' : `Kafka ${first}`}, ${client}${protocol === 'consumer' ? ' (KIP-848)' : ''}`,
      project: 'integration',
      env: {
        ...(external ? {} : { KAFKA_VERSION: first }),
        PGSINK_TEST_KAFKA_CLIENT: client,
        PGSINK_TEST_KAFKA_GROUP_PROTOCOL: protocol,
      },
      files: protocol === 'consumer' ? KIP848_FILES : SOURCE_FILES,
    });
  }
}

let child: ReturnType<typeof spawn> | undefined;
let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    interrupted = true;
    child?.kill(sig);
  });
}

function exec(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve) => {
    child = spawn(cmd, args, { cwd: root, env: { ...process.env, ...env }, stdio: 'inherit' });
    child.on('error', (err) => {
      process.stderr.write(`test/run.ts: could not run ${cmd}: ${err.message}\n`);
      resolve(127);
    });
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

const dir = mkdtempSync(join(tmpdir(), 'pgsink-test-run-'));
/** Versions whose jars could not be fetched: their runs are not started (the fetch counts as failed). */
const unfetched = new Set<string>();
const results: Result[] = [];
const t0 = performance.now();
try {
  // The jars of every version first, so that a run's time is its own (a clean clone fetches
  // them once here, through Maven).
  if (!external && (steps.has('stack') || steps.has('integration'))) {
    const need = new Set([
      ...(steps.has('integration') ? versions : []),
      ...(steps.has('stack') ? ['4', '3.9'] : []),
    ]);
    for (const v of need) {
      const code = await exec(join(root, 'stack', 'kafka.sh'), ['fetch'], { KAFKA_VERSION: v });
      if (code !== 0) {
        unfetched.add(v);
        results.push({
          label: `fetch Kafka ${v}`,
          passed: 0,
          failed: 1,
          skipped: 0,
          seconds: 0,
          note: 'fetch failed (above)',
        });
      }
    }
  }
  for (const [i, r] of runs.entries()) {
    if (interrupted) break;
    const v = r.env['KAFKA_VERSION'];
    if ((v && unfetched.has(v)) || (r.project === 'stack' && (unfetched.has('4') || unfetched.has('3.9')))) {
      notRun.push(`${r.label}: not run (its Kafka jars could not be fetched)`);
      continue;
    }
    const file = join(dir, `${i}.json`);
    process.stdout.write(`\n=== ${r.label} ===\n`);
    const started = performance.now();
    const code = await exec(
      process.execPath,
      [
        VITEST,
        'run',
        '--project',
        r.project,
        ...(r.files ?? []),
        ...(r.exclude ?? []).flatMap((f) => ['--exclude', f]),
        ...vitestArgs,
      ],
      {
        ...r.env,
        PGSINK_TEST_RUN: r.label,
        PGSINK_TEST_SUMMARY_FILE: file,
      },
    );
    const seconds = (performance.now() - started) / 1000;
    let counts: { passed: number; failed: number; skipped: number; failures?: string[] } | undefined;
    try {
      counts = JSON.parse(readFileSync(file, 'utf8')) as typeof counts;
    } catch {
      counts = undefined;
    }
    if (!counts) {
      results.push({
        label: r.label,
        passed: 0,
        failed: 1,
        skipped: 0,
        seconds,
        note: `did not report (exit ${code})`,
      });
    } else if (code !== 0 && counts.failed === 0) {
      results.push({ label: r.label, ...counts, failed: 1, seconds, note: `vitest exited ${code}` });
    } else {
      results.push({ label: r.label, ...counts, seconds });
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const total = { passed: 0, failed: 0, skipped: 0 };
const width = Math.max(...results.map((r) => r.label.length), 10);
process.stdout.write(`\ntest runs: ${results.length} in ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
for (const r of results) {
  total.passed += r.passed;
  total.failed += r.failed;
  total.skipped += r.skipped;
  const counts = `${r.passed} passed, ${r.failed} failed${r.skipped ? `, ${r.skipped} skipped` : ''}`;
  process.stdout.write(
    `  ${r.label.padEnd(width)}  ${counts.padEnd(30)} ${r.seconds.toFixed(1).padStart(6)} s${r.note ? `  (${r.note})` : ''}\n`,
  );
}
for (const n of notRun) process.stdout.write(`  ${n}\n`);
for (const r of results) {
  for (const f of r.failures ?? []) process.stdout.write(`  failed in ${r.label}: ${f}\n`);
}
if (interrupted) {
  process.stdout.write('  interrupted: the runs after the last one above did not run\n');
  total.failed++;
}
process.stdout.write(
  `Tests: ${total.passed} passed, ${total.failed} failed${total.skipped ? `, ${total.skipped} skipped` : ''}\n`,
);
process.exit(total.failed > 0 || results.length === 0 ? 1 : 0);
