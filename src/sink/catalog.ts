// Reads the target table's column types from the catalog (pg_attribute, pg_type), resolved to
// what COPY binary sends for each (src/sink/copy-binary.ts): read at start-up and again when a
// binary COPY says the bytes no longer match a column (the table was altered).
import type pg from 'pg';
import { quoteQualified } from './columns.ts';
import { resolveWireType, type TypeRow, type WireType } from './copy-binary.ts';

export async function readWireTypes(client: pg.ClientBase, table: string): Promise<Map<string, WireType>> {
  const { rows: cols } = await client.query<{ name: string; oid: number; declared: string }>(
    `SELECT a.attname AS name, a.atttypid::int AS oid, format_type(a.atttypid, a.atttypmod) AS declared
       FROM pg_attribute a
      WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`,
    [quoteQualified(table)],
  );
  const types = new Map<number, TypeRow>();
  let wanted = [...new Set(cols.map((c) => c.oid))];
  // Domains and arrays name further types; a few rounds reach them all.
  for (let round = 0; wanted.length > 0 && round < 16; round++) {
    const { rows } = await client.query<TypeRow>(
      `SELECT t.oid::int AS oid, t.typname AS name, t.typtype AS kind, t.typbasetype::int AS base,
              t.typelem::int AS elem, t.typcategory AS category, t.typlen::int AS len,
              n.nspname AS schema, format_type(t.oid, NULL) AS formatted
         FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE t.oid = ANY($1::oid[])`,
      [wanted],
    );
    for (const r of rows) types.set(r.oid, r);
    wanted = [...new Set(rows.flatMap((r) => [r.base, r.elem]).filter((o) => o !== 0 && !types.has(o)))];
  }
  return new Map(cols.map((c) => [c.name, resolveWireType(c.oid, c.declared, types)]));
}
