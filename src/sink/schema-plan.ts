// What a route's table needs: CREATE TABLE when it is missing, ADD COLUMN (nullable) for
// fields the table lacks, and a report of columns whose type differs from the mapping
// (reported, never changed: COPY text lets Postgres cast, and only a person can decide).
import type pg from 'pg';
import { quoteIdent, quoteQualified } from './columns.ts';
import { createTableSql } from './ddl.ts';
import { hasUniqueKey, uniqueKeySql } from './upsert.ts';

export interface TablePlan {
  table: string;
  exists: boolean;
  /** DDL that would make the table fit: CREATE TABLE, or ALTER TABLE … ADD COLUMN. */
  statements: string[];
  /** Columns that exist with a different type than the mapping would create. */
  mismatches: string[];
  /** DDL the route needs that pgsink does not run by itself (a unique index on an existing table). */
  advice: string[];
}

const CANONICAL: Record<string, string> = {
  timestamptz: 'timestamp with time zone',
  timestamp: 'timestamp without time zone',
  'time(3)': 'time(3) without time zone',
  'time(6)': 'time(6) without time zone',
};

/** The plan's type in the spelling of format_type(). */
export function canonicalType(pgType: string): string {
  const base = pgType.replace(/ NOT NULL$/, '');
  const array = base.endsWith('[]');
  const elem = array ? base.slice(0, -2) : base;
  return `${CANONICAL[elem] ?? elem}${array ? '[]' : ''}`;
}

/**
 * `keyColumns` for an upsert route: a new table gets its unique index with it; an existing one
 * without it gets the index as advice (creating it can fail on duplicates: a person decides).
 */
export async function planTable(
  client: pg.ClientBase,
  table: string,
  columns: readonly string[],
  pgTypes: readonly string[],
  keyColumns?: readonly string[],
): Promise<TablePlan> {
  const { rows } = await client.query<{ name: string; type: string }>(
    `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type
       FROM pg_attribute a
      WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`,
    [quoteQualified(table)],
  );
  if (rows.length === 0) {
    const statements = [createTableSql(table, columns, pgTypes)];
    if (table.includes('.'))
      statements.unshift(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(table.split('.')[0]!)}`);
    if (keyColumns?.length) statements.push(uniqueKeySql(table, keyColumns));
    return { table, exists: false, statements, mismatches: [], advice: [] };
  }
  const have = new Map(rows.map((r) => [r.name, r.type]));
  const statements: string[] = [];
  const mismatches: string[] = [];
  columns.forEach((c, i) => {
    const want = canonicalType(pgTypes[i]!);
    const got = have.get(c);
    if (got === undefined) {
      // Added columns are nullable: existing rows have no value for them.
      statements.push(`ALTER TABLE ${quoteQualified(table)} ADD COLUMN ${quoteIdent(c)} ${want}`);
    } else if (got !== want) {
      mismatches.push(`${table}.${c} is ${got}; the schema maps to ${want}`);
    }
  });
  const advice: string[] = [];
  if (keyColumns?.length && !(await hasUniqueKey(client, table, keyColumns)))
    advice.push(uniqueKeySql(table, keyColumns));
  return { table, exists: true, statements, mismatches, advice };
}
