// The CLI rejects bad configuration with exit code 2 and a message that names the key —
// never a stack trace. No services needed: validation happens before any connection.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'pgsink-cli-'));
function configFile(text: string): string {
  const f = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(f, text);
  return f;
}

const valid = `
kafka: { brokers: ["127.0.0.1:1"], groupId: g }
postgres: { url: "postgres://u:hunter2@127.0.0.1:1/db" }
routes:
  - { topic: orders, table: public.orders, schema: ${JSON.stringify(join(process.cwd(), 'schemas/orders.avsc'))} }
`;

describe('pgsink CLI configuration errors', () => {
  it('exits 2 naming an unknown key', async () => {
    const r = await runCli([
      'run',
      '--config',
      configFile(`${valid}\nbatch: { maxRows: 10, lingerMS: 5 }\n`),
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("batch: unknown key 'lingerMS'");
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('exits 2 naming a bad value and the expected form', async () => {
    const r = await runCli(['run', '--config', configFile(valid.replace('127.0.0.1:1"]', 'not a broker"]'))]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('kafka.brokers[0]: expected host:port');
    expect(r.stderr).toContain('"not a broker"');
  });

  it('exits 2 for an unknown PGSINK_ variable and for a missing file', async () => {
    const r1 = await runCli(['run', '--config', configFile(valid)], { PGSINK_BATCH_MAXROWS: '5' });
    expect(r1.code).toBe(2);
    expect(r1.stderr).toContain('unknown environment variable PGSINK_BATCH_MAXROWS');
    const r2 = await runCli(['run', '--config', join(dir, 'nope.yaml')]);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toContain('cannot read config file');
  });

  it('check prints the config with the password redacted', async () => {
    const r = await runCli(['check', '--config', configFile(valid)]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('"groupId": "g"');
    expect(r.stdout).not.toContain('hunter2');
    expect(r.stdout).toContain('u:***@');
  });

  it('check rejects offline everything run rejects before connecting', { timeout: 30_000 }, async () => {
    const schemaDir = mkdtempSync(join(tmpdir(), 'pgsink-cli-schemas-'));
    const notJson = join(schemaDir, 'not-json.avsc');
    writeFileSync(notJson, '{ "type": "record", ');
    const notAvro = join(schemaDir, 'not-avro.avsc');
    writeFileSync(notAvro, '{ "type": "recrod", "name": "x", "fields": [] }');
    const orders = JSON.stringify(join(process.cwd(), 'schemas/orders.avsc'));
    const route = (extra: string) => `
kafka: { brokers: ["127.0.0.1:1"], groupId: g }
postgres: { url: "postgres://u@127.0.0.1:1/db" }
routes:
  - { topic: orders, table: public.orders, ${extra} }
`;
    const cases: Array<[string, string]> = [
      [route(`schema: ${JSON.stringify(join(schemaDir, 'missing.avsc'))}`), 'cannot read Avro schema'],
      [route(`schema: ${JSON.stringify(notJson)}`), 'is not valid JSON'],
      [route(`schema: ${JSON.stringify(notAvro)}`), 'is not a valid Avro schema'],
      [
        route(`schema: ${orders}, schemaIds: { "7": ${JSON.stringify(join(schemaDir, 'nope.avsc'))} }`),
        'cannot read Avro schema',
      ],
      [route(`schema: ${orders}, metadata: { offset: item_count }`), "two fields map to column 'item_count'"],
      [route(`schema: ${orders}, columns: { no_such_field: x }`), "field 'no_such_field'"],
    ];
    for (const [text, expected] of cases) {
      const r = await runCli(['check', '--config', configFile(text)]);
      expect({ code: r.code, stderr: r.stderr.includes(expected) }, r.stderr).toEqual({
        code: 2,
        stderr: true,
      });
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
  });

  it('exits 2 for an unknown command', async () => {
    const r = await runCli(['frobnicate']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown command 'frobnicate'");
  });
});
