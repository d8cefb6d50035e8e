// Prints one plain closing line ("Tests: N passed, N failed[, N skipped]") after vitest's
// own summary, for tools that read the last lines of a CI log. Under test/run.ts (make test),
// which runs vitest once per suite and Kafka version, PGSINK_TEST_RUN names this run: the line
// is labelled with it ("Tests (integration, Kafka 4.4.0): …") and the counts also go to the
// JSON file PGSINK_TEST_SUMMARY_FILE, so that only the runner's total is the closing line.
import { writeFileSync } from 'node:fs';
import type { Reporter, TestModule } from 'vitest/node';

export default class SummaryReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>, errors: ReadonlyArray<unknown>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    // Names of what failed, with the first line of its error: the runner prints them after the
    // totals, so that a CI log cut to its last lines still says which test failed and why.
    const failures: string[] = [];
    for (const m of modules) {
      for (const t of m.children.allTests()) {
        const result = t.result();
        if (result.state === 'passed') passed++;
        else if (result.state === 'failed') {
          failed++;
          const first = result.errors?.[0]?.message?.split('\n')[0] ?? '';
          failures.push(
            `${m.moduleId.replace(/^.*\/test\//, 'test/')} > ${t.fullName}: ${first.slice(0, 300)}`,
          );
        } else skipped++;
      }
      if (m.state() === 'failed' && [...m.children.allTests()].length === 0) {
        failed++;
        const first = m.errors()[0]?.message?.split('\n')[0] ?? '';
        failures.push(`${m.moduleId.replace(/^.*\/test\//, 'test/')}: ${first.slice(0, 300)}`);
      }
    }
    for (const e of errors) {
      failed++;
      const message = e instanceof Error ? e.message : String(e);
      failures.push(`unhandled: ${message.split('\n')[0]?.slice(0, 300) ?? ''}`);
    }
    const run = process.env['PGSINK_TEST_RUN'];
    const file = process.env['PGSINK_TEST_SUMMARY_FILE'];
    if (file) writeFileSync(file, JSON.stringify({ passed, failed, skipped, failures }));
    process.stdout.write(
      `\nTests${run ? ` (${run})` : ''}: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`,
    );
  }
}
