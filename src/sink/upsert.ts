// Upsert through COPY: the batch is COPYed into a per-connection temporary staging table
// with each row's offset and operation, then merged in one statement that keeps the last
// offset per key, deletes on tombstones and INSERTs … ON CONFLICT DO UPDATE the rest.
import type pg from 'pg';
import { ConfigError } from '../util/errors.ts';
import { keyText, quoteIdent, quoteQualified } from './columns.ts';
import { escapeText, NULL_FIELD } from './copy-text.ts';
import { dollarTag, OFFSET_COL, OP_COL } from './isolate.ts';

export interface UpsertPlan {
  /** Unquoted name of the temporary staging table (one per route and connection). */
  stage: string;
  stageColumnList: string;
  createStageSql: string;
  mergeSql: string;
  keyIndex: number;
  columnCount: number;
}

export function buildUpsertPlan(
  routeIndex: number,
  table: string,
  columns: readonly string[],
  keyColumns: readonly string[],
): UpsertPlan {
  for (const k of keyColumns) {
    if (!columns.includes(k)) {
      throw new ConfigError(
        `route for ${table}: key column '${k}' is not one of the mapped columns (${columns.join(', ')})`,
      );
    }
  }
  const stage = `pgsink_stage_${routeIndex}`;
  const target = quoteQualified(table);
  const cols = columns.map(quoteIdent);
  const keys = keyColumns.map(quoteIdent);
  const rest = columns.filter((c) => !keyColumns.includes(c)).map(quoteIdent);
  const onConflict = rest.length
    ? `DO UPDATE SET ${rest.map((c) => `${c} = EXCLUDED.${c}`).join(', ')}`
    : 'DO NOTHING';
  // A record whose key is NULL has no row to write or delete (and DISTINCT ON would take all
  // NULL keys for one): it fails the batch as a data error, and isolation dead-letters it.
  const nullKey = keys.map((k) => `${k} IS NULL`).join(' OR ');
  const check = ` BEGIN
      IF EXISTS (SELECT 1 FROM pg_temp.${stage} WHERE ${OP_COL} = 'u' AND (${nullKey})) THEN
        RAISE EXCEPTION USING ERRCODE = '23502', MESSAGE = 'a key column is null';
      END IF;
    END `;
  const tag = dollarTag(check);
  const mergeSql = `DO ${tag}${check}${tag};
    WITH last AS (
      SELECT DISTINCT ON (${keys.join(', ')}) * FROM pg_temp.${stage}
       ORDER BY ${keys.join(', ')}, ${OFFSET_COL} DESC
    ), deleted AS (
      DELETE FROM ${target} t USING last l
       WHERE l.${OP_COL} = 'd' AND ${keys.map((k) => `t.${k} = l.${k}`).join(' AND ')}
    )
    INSERT INTO ${target} (${cols.join(', ')})
    SELECT ${cols.join(', ')} FROM last WHERE ${OP_COL} = 'u'
    ON CONFLICT (${keys.join(', ')}) ${onConflict}`;
  return {
    stage,
    stageColumnList: [...cols, OFFSET_COL, OP_COL].join(', '),
    // Column types come from the target; its constraints do not (a delete row has NULLs).
    createStageSql: `CREATE TEMP TABLE IF NOT EXISTS ${stage} ON COMMIT DELETE ROWS AS
        SELECT ${cols.join(', ')}, 0::bigint AS ${OFFSET_COL}, 'u'::"char" AS ${OP_COL} FROM ${target} WITH NO DATA`,
    mergeSql,
    keyIndex: keyColumns.length === 1 ? columns.indexOf(keyColumns[0]!) : -1,
    columnCount: columns.length,
  };
}

/** A COPY line of the target's columns → the staging line (offset and 'u' appended). */
export function upsertLine(line: string, offset: number): string {
  return `${line.slice(0, -1)}\t${offset}\tu\n`;
}

/**
 * A tombstone as a staging line: the key from the Kafka key (as text, so it must be well-formed
 * UTF-8 without NUL: never altered), everything else NULL.
 */
export function deleteLine(plan: UpsertPlan, key: Buffer, offset: number): string {
  const fields = new Array<string>(plan.columnCount).fill(NULL_FIELD);
  fields[plan.keyIndex] = escapeText(keyText(key));
  return `${fields.join('\t')}\t${offset}\td\n`;
}

const staged = new WeakMap<pg.ClientBase, Set<string>>();

/** Forgets (and drops) a connection's staging table, so that the next flush makes it again. */
export async function dropStage(client: pg.ClientBase, plan: UpsertPlan): Promise<void> {
  staged.get(client)?.delete(plan.stage);
  await client.query(`DROP TABLE IF EXISTS pg_temp.${plan.stage}`);
}

export async function ensureStage(client: pg.ClientBase, plan: UpsertPlan): Promise<void> {
  let set = staged.get(client);
  if (set?.has(plan.stage)) return;
  await client.query(plan.createStageSql);
  if (!set) staged.set(client, (set = new Set()));
  set.add(plan.stage);
}

/** Whether a unique index (or primary key) without a predicate covers exactly the key columns. */
export async function hasUniqueKey(
  client: pg.ClientBase,
  table: string,
  keyColumns: readonly string[],
): Promise<boolean> {
  const { rows } = await client.query<{ cols: string[] }>(
    `SELECT array_agg(a.attname::text ORDER BY a.attname) AS cols
       FROM pg_index i
       JOIN LATERAL unnest(i.indkey) AS k(attnum) ON true
       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
      WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indpred IS NULL
      GROUP BY i.indexrelid`,
    [quoteQualified(table)],
  );
  const want = [...keyColumns].sort().join(',');
  return rows.some((r) => [...r.cols].sort().join(',') === want);
}

/** The unique index an upsert route needs on its key columns. */
export function uniqueKeySql(table: string, keyColumns: readonly string[]): string {
  return `CREATE UNIQUE INDEX IF NOT EXISTS ${quoteIdent(`${table.split('.').pop()!}_pgsink_key`.slice(0, 63))} ON ${quoteQualified(table)} (${keyColumns.map(quoteIdent).join(', ')})`;
}

/** Fails start-up unless a unique index (or primary key) covers exactly the key columns. */
export async function assertUniqueKey(
  client: pg.ClientBase,
  table: string,
  keyColumns: readonly string[],
  topic: string,
): Promise<void> {
  if (await hasUniqueKey(client, table, keyColumns)) return;
  throw new ConfigError(
    `route ${topic}: upsert needs a unique index or primary key on (${keyColumns.join(', ')}) of ${table}; ` +
      `create one: ${uniqueKeySql(table, keyColumns)}`,
  );
}
