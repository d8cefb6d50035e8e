// pgsink's own tables: the offset fence and the dead letters. Created at start-up under an
// advisory lock, so several consumers starting together do not race on CREATE.
import type pg from 'pg';
import { ConfigError, PgsinkError } from '../util/errors.ts';
import { quoteIdent, quoteQualified } from './columns.ts';

export interface SinkTables {
  schema: string;
  fence: string;
  deadLetters: string;
  /** Offset ranges deleted by retention before they were written. */
  gaps: string;
}

export function sinkTables(schema: string): SinkTables {
  const s = quoteIdent(schema);
  return {
    schema: s,
    fence: `${s}."offsets"`,
    deadLetters: `${s}."dead_letters"`,
    gaps: `${s}."gaps"`,
  };
}

export async function ensureSinkTables(client: pg.ClientBase, t: SinkTables): Promise<void> {
  await client.query('BEGIN');
  try {
    await client.query(`SELECT pg_advisory_xact_lock(hashtext('pgsink.ddl'))`);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${t.schema}`);
    await client.query(`CREATE TABLE IF NOT EXISTS ${t.fence} (
      group_id    text        NOT NULL,
      topic       text        NOT NULL,
      partition   integer     NOT NULL,
      next_offset bigint      NOT NULL,
      updated_at  timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (group_id, topic, partition)
    )`);
    await client.query(`CREATE TABLE IF NOT EXISTS ${t.deadLetters} (
      id            bigserial   PRIMARY KEY,
      group_id      text        NOT NULL,
      topic         text        NOT NULL,
      partition     integer     NOT NULL,
      "offset"      bigint      NOT NULL,
      key           bytea,
      value         bytea,
      header_keys   bytea[],
      header_values bytea[],
      headers       jsonb,
      error_source  text        NOT NULL,
      error_code    text        NOT NULL,
      error_message text        NOT NULL,
      failed_at     timestamptz NOT NULL DEFAULT now()
    )`);
    await client.query(
      `CREATE INDEX IF NOT EXISTS dead_letters_tpo ON ${t.deadLetters} (topic, partition, "offset")`,
    );
    await ensureGapsTable(client, t);
    await migrateDeadLetters(client, t);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** Offset ranges lost to retention, written in the transaction that moves the fence past them. */
export async function ensureGapsTable(client: pg.ClientBase, t: SinkTables): Promise<void> {
  await client.query(`CREATE TABLE IF NOT EXISTS ${t.gaps} (
      id           bigserial   PRIMARY KEY,
      group_id     text        NOT NULL,
      topic        text        NOT NULL,
      partition    integer     NOT NULL,
      first_offset bigint      NOT NULL,
      last_offset  bigint      NOT NULL,
      detected_at  timestamptz NOT NULL DEFAULT now()
    )`);
}

/**
 * Columns added to dead_letters since its first version, for tables an earlier pgsink created:
 * added (nullable: rows from before have no value), never dropped or changed. The catalog is
 * read first, so that a table that has them is not locked by an ALTER TABLE at every start.
 */
const DEAD_LETTER_COLUMNS: ReadonlyArray<[name: string, type: string, comment: string]> = [
  ['header_keys', 'bytea[]', 'Kafka header keys, in record order (repeated keys repeated), as bytes'],
  ['header_values', 'bytea[]', 'Kafka header values, one per header_keys element (NULL for a null value)'],
];

async function migrateDeadLetters(client: pg.ClientBase, t: SinkTables): Promise<void> {
  const { rows } = await client.query<{ attname: string }>(
    `SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped`,
    [t.deadLetters],
  );
  const have = new Set(rows.map((r) => r.attname));
  const missing = DEAD_LETTER_COLUMNS.filter(([name]) => !have.has(name));
  if (missing.length === 0) return;
  const sql = `ALTER TABLE ${t.deadLetters} ${missing.map(([name, type]) => `ADD COLUMN IF NOT EXISTS ${quoteIdent(name)} ${type}`).join(', ')}`;
  try {
    await client.query(sql);
    for (const [name, , comment] of missing) {
      await client.query(
        `COMMENT ON COLUMN ${t.deadLetters}.${quoteIdent(name)} IS ${client.escapeLiteral(comment)}`,
      );
    }
  } catch (err) {
    throw new PgsinkError(
      'postgres',
      `${t.deadLetters} lacks the column${missing.length > 1 ? 's' : ''} ${missing.map(([n]) => n).join(', ')} and pgsink cannot add ${missing.length > 1 ? 'them' : 'it'} (${(err as Error).message}); as the table's owner, run: ${sql}`,
      { code: (err as { code?: string }).code ?? 'MIGRATION_FAILED', retriable: false, cause: err },
    );
  }
}

/**
 * Fails start-up when the target table or one of the mapped columns does not exist; returns
 * the type of every column (format_type's spelling) by name.
 */
export async function assertTargetTable(
  client: pg.ClientBase,
  table: string,
  columns: readonly string[],
  topic: string,
): Promise<Map<string, string>> {
  const [schema, name] = table.includes('.') ? table.split('.', 2) : [undefined, table];
  const { rows } = await client.query<{ column_name: string; column_type: string }>(
    `SELECT a.attname AS column_name, format_type(a.atttypid, a.atttypmod) AS column_type
       FROM pg_attribute a
      WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`,
    [quoteQualified(schema ? `${schema}.${name}` : name!)],
  );
  if (rows.length === 0) {
    throw new ConfigError(
      `route ${topic}: table ${table} does not exist (or has no columns). Create it (\`pgsink schema plan\` prints the DDL) or set autoCreate: true on the route.`,
    );
  }
  const have = new Set(rows.map((r) => r.column_name));
  const missing = columns.filter((c) => !have.has(c));
  if (missing.length) {
    throw new ConfigError(
      `route ${topic}: table ${table} has no column${missing.length > 1 ? 's' : ''} ${missing.join(', ')} (it has ${[...have].join(', ')}). ` +
        'Add them (`pgsink schema plan` prints the DDL), set autoEvolve: true on the route, map the fields elsewhere with routes[].columns, or leave them out with routes[].exclude.',
    );
  }
  return new Map(rows.map((r) => [r.column_name, r.column_type]));
}

/** The CREATE TABLE a route's column plan needs (used by `pgsink schema plan` and the demo). */
export function createTableSql(
  table: string,
  columns: readonly string[],
  pgTypes: readonly string[],
): string {
  const cols = columns.map((c, i) => `  ${quoteIdent(c)} ${pgTypes[i]}`).join(',\n');
  return `CREATE TABLE IF NOT EXISTS ${quoteQualified(table)} (\n${cols}\n)`;
}
