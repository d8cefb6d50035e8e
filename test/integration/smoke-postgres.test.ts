// Crosses the wire to the real server: a few thousand rows through COPY FROM STDIN
// (pg-copy-streams) come back exactly, and a failing COPY leaves nothing behind.
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { from as copyFrom } from 'pg-copy-streams';
import { afterAll, describe, expect, it } from 'vitest';
import { pgPool, uniqueName } from '../support/services.ts';

describe('PostgreSQL COPY smoke', () => {
  const pool = pgPool();
  const table = uniqueName('copy_smoke');

  afterAll(async () => {
    await pool.query(`DROP TABLE IF EXISTS "${table}"`);
    await pool.end();
  });

  it('COPYs 5000 rows and reads them back exactly', async () => {
    await pool.query(
      `CREATE TABLE "${table}" (id int PRIMARY KEY, name text, amount numeric(12,2), at timestamptz)`,
    );
    const rows = Array.from({ length: 5000 }, (_, i) => ({
      id: i,
      name: i % 7 === 0 ? null : `name\t${i}\\ é`,
      amount: `${i}.${String(i % 100).padStart(2, '0')}`,
      at: new Date(Date.UTC(2026, 0, 1) + i * 1000).toISOString(),
    }));
    const esc = (s: string) => s.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n');
    const text = rows
      .map((r) => `${r.id}\t${r.name === null ? '\\N' : esc(r.name)}\t${r.amount}\t${r.at}\n`)
      .join('');

    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await pipeline(
        Readable.from([Buffer.from(text)]),
        client.query(copyFrom(`COPY "${table}" FROM STDIN`)),
      );
      await client.query('COMMIT');
    } finally {
      client.release();
    }

    const { rows: back } = await pool.query<{ id: number; name: string | null; amount: string; at: Date }>(
      `SELECT id, name, amount::text AS amount, at FROM "${table}" ORDER BY id`,
    );
    expect(back.map((r) => ({ ...r, at: r.at.toISOString() }))).toEqual(rows);
  });

  it('rolls back a COPY that fails mid-stream', async () => {
    const t2 = `${table}_fail`;
    await pool.query(`CREATE TABLE "${t2}" (id int PRIMARY KEY)`);
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await expect(
        pipeline(
          Readable.from([Buffer.from('1\n2\n2\n')]),
          client.query(copyFrom(`COPY "${t2}" FROM STDIN`)),
        ),
      ).rejects.toMatchObject({ code: '23505' });
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
    const { rows } = await pool.query(`SELECT count(*)::int AS n FROM "${t2}"`);
    expect(rows[0]).toEqual({ n: 0 });
    await pool.query(`DROP TABLE "${t2}"`);
  });
});
