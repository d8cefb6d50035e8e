// Isolating the bad rows of a batch, in time linear in the batch and in bounded memory.
//
// A batch whose COPY (or COMMIT) failed on a data error is written again in the same kind of
// transaction, in two steps:
//
// 1. COPY into a temporary staging table whose columns are all `text` (plus the offset and
//    the operation) — for COPY binary tuples, the types they were encoded for — made in this
//    transaction and dropped at its end: nothing about the target can make a line fail there,
//    and nothing about it goes stale between flushes.
//    (A line that still fails — an encoding the database cannot hold — is skipped at the line
//    Postgres names, the lines before it sent again: linear, and rare.)
// 2. One server-side loop moves the staged rows into the target one statement per row, each
//    in its own exception block, every field cast from text to its column's type (so a type
//    error is a refused row like any other: Postgres parses the text as COPY would, and the
//    assignment to the column applies its length, precision and domain), with every
//    deferrable constraint checked at once (so a DEFERRABLE INITIALLY DEFERRED violation, which
//    would only surface at COMMIT, is caught at its row). The refused rows come back as
//    (offset, SQLSTATE, message): no round trip per row.
//
// Which failures are the row's (src/sink/pg-errors.ts): an outage (connection, deadlock,
// serialization, locks, cancellation) is re-raised at once and the flush retried; an
// environment error (a missing table, a privilege) counts as the row's only if other rows go
// in — when every row fails with one, it is the deployment's and is re-raised. Rows refused by
// a foreign key get a second pass after the others (a child that came before its parent in the
// batch, which a deferred key would have accepted).
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { writeUpsertSuffix } from './binary-plan.ts';
import { quoteIdent, quoteQualified } from './columns.ts';
import { BINARY_HEADER, BINARY_TRAILER } from './copy-binary.ts';
import {
  classifyPgError,
  copyLineOf,
  describePgError,
  ENVIRONMENT_CLASSES,
  OUTAGE_CLASSES,
  sqlstateOf,
} from './pg-errors.ts';

export const OFFSET_COL = '__pgsink_offset';
export const OP_COL = '__pgsink_op';

export interface IsolationPlan {
  routeIndex: number;
  /** Quoted, qualified target table. */
  target: string;
  /** The target's columns in COPY order (unquoted). */
  columns: readonly string[];
  /** Upsert: the key columns (the last record per key wins, tombstones delete). */
  keyColumns: readonly string[] | undefined;
  /** Whether lines are already staging lines (upsert: offset and operation appended). */
  stagedLines: boolean;
  /**
   * Binary tuples: the type of each staging column, the type the tuples were encoded for (the
   * column's base type at start-up), so that staging cannot fail on a table altered since; the
   * apply casts to the column's type as it is now.
   */
  stageTypes?: readonly string[] | undefined;
}

export function buildIsolationPlan(
  routeIndex: number,
  table: string,
  columns: readonly string[],
  keyColumns: readonly string[] | undefined,
): IsolationPlan {
  return {
    routeIndex,
    target: quoteQualified(table),
    columns,
    keyColumns,
    stagedLines: keyColumns !== undefined,
  };
}

const stageName = (plan: IsolationPlan) => `pgsink_iso_${plan.routeIndex}`;

/** A dollar-quote tag that does not occur in `body`. */
export function dollarTag(body: string): string {
  let n = 0;
  while (body.includes(`$pgsink${n}$`)) n++;
  return `$pgsink${n}$`;
}

export interface TargetColumn {
  name: string;
  /** The type to cast the staged text to: the column's type without its modifier (the
   * assignment applies length and precision as COPY would). */
  castType: string;
}

/** The target's columns' types, read now (a column altered since the last flush counts). */
async function targetColumns(client: pg.ClientBase, plan: IsolationPlan): Promise<TargetColumn[]> {
  const { rows } = await client.query<{ name: string; type: string }>(
    // typmod -1, not NULL: format_type(…, NULL) spells char(n) as 'character', which is
    // char(1) in a cast, and an explicit cast to it truncates (bit(n) alike); with -1 they are
    // 'bpchar' and "bit", which carry no length, and the assignment applies the column's own.
    `SELECT a.attname AS name, format_type(a.atttypid, -1) AS type
       FROM pg_attribute a
      WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attname = ANY($2)`,
    [plan.target, plan.columns],
  );
  const byName = new Map(rows.map((r) => [r.name, r.type]));
  return plan.columns.map((name) => {
    const castType = byName.get(name);
    if (!castType) throw new Error(`internal: column ${name} of ${plan.target} is gone`);
    return { name, castType };
  });
}

/** The per-connection function that moves the staged rows (see the header comment). */
export function applyFunctionSql(plan: IsolationPlan, columns: readonly TargetColumn[]): string {
  const stage = `pg_temp.${stageName(plan)}`;
  const cols = columns.map((c) => quoteIdent(c.name));
  const values = columns.map((c) => `CAST(r.${quoteIdent(c.name)} AS ${c.castType})`).join(', ');
  // COPY writes identity columns as given; a plain INSERT would refuse them.
  const insert = `INSERT INTO ${plan.target} (${cols.join(', ')}) OVERRIDING SYSTEM VALUE VALUES (${values})`;
  let statement: string;
  let nullKey = 'false';
  if (plan.keyColumns) {
    const keyCols = columns.filter((c) => plan.keyColumns!.includes(c.name));
    const keys = plan.keyColumns.map(quoteIdent);
    const rest = cols.filter((c, i) => !plan.keyColumns!.includes(columns[i]!.name));
    const onConflict = rest.length
      ? `DO UPDATE SET ${rest.map((c) => `${c} = EXCLUDED.${c}`).join(', ')}`
      : 'DO NOTHING';
    nullKey = keys.map((k) => `r.${k} IS NULL`).join(' OR ');
    // Every record in offset order: the last one per key wins, as in the merge, and a refused
    // last one leaves the one before it written.
    statement = `IF r.${OP_COL} = 'd' THEN
            DELETE FROM ${plan.target} AS t
             WHERE ${keyCols.map((k) => `t.${quoteIdent(k.name)} = CAST(r.${quoteIdent(k.name)} AS ${k.castType})`).join(' AND ')};
          ELSE
            ${insert} ON CONFLICT (${keys.join(', ')}) ${onConflict};
          END IF;`;
  } else {
    statement = `${insert};`;
  }
  const outage = [...OUTAGE_CLASSES].map((c) => `'${c}'`).join(', ');
  const environment = [...ENVIRONMENT_CLASSES].map((c) => `'${c}'`).join(', ');
  const body = `
#variable_conflict use_column
DECLARE
  r record;
  st text;
  msg text;
  detail text;
  written bigint := 0;
  env_state text;
  env_message text;
  env_rows bigint := 0;
  refused bigint[] := '{}';
  states text[] := '{}';
  messages text[] := '{}';
  retry bigint[] := '{}';
  pass int;
  i int;
BEGIN
  SET CONSTRAINTS ALL IMMEDIATE;
  FOR pass IN 1..2 LOOP
    -- IN (SELECT unnest(...)) is a hashed subplan: linear in the rows, where = ANY (retry)
    -- would compare every staged row with every retried offset.
    FOR r IN SELECT * FROM ${stage}
              WHERE pass = 1 OR ${OFFSET_COL} IN (SELECT unnest(retry))
              ORDER BY ${OFFSET_COL} LOOP
      IF ${nullKey} THEN
        refused := refused || r.${OFFSET_COL};
        states := states || 'NULL_KEY'::text;
        messages := messages || 'a key column is null: there is no row to write or delete'::text;
        CONTINUE;
      END IF;
      BEGIN
        ${statement}
        written := written + 1;
      EXCEPTION WHEN OTHERS THEN
        st := SQLSTATE;
        IF left(st, 2) IN (${outage}) THEN
          RAISE;
        END IF;
        GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
        IF coalesce(detail, '') <> '' THEN
          msg := msg || '; detail: ' || detail;
        END IF;
        IF left(st, 2) IN (${environment}) THEN
          env_rows := env_rows + 1;
          env_state := st;
          env_message := msg;
        END IF;
        IF pass = 1 AND st = '23503' THEN
          -- A foreign key: its parent may come later in the batch.
          retry := retry || r.${OFFSET_COL};
        ELSE
          refused := refused || r.${OFFSET_COL};
          states := states || st;
          messages := messages || msg;
        END IF;
      END;
    END LOOP;
    EXIT WHEN cardinality(retry) = 0;
  END LOOP;
  -- Every row refused for a reason that is not about rows: the deployment's, not theirs.
  IF written = 0 AND env_rows > 0 AND env_rows = cardinality(refused) THEN
    RAISE EXCEPTION USING ERRCODE = env_state, MESSAGE = env_message;
  END IF;
  FOR i IN 1..coalesce(array_length(refused, 1), 0) LOOP
    pgsink_offset := refused[i];
    pgsink_state := states[i];
    pgsink_message := messages[i];
    RETURN NEXT;
  END LOOP;
END`;
  const tag = dollarTag(body);
  return `CREATE OR REPLACE FUNCTION pg_temp.pgsink_apply_${plan.routeIndex}()
      RETURNS TABLE (pgsink_offset bigint, pgsink_state text, pgsink_message text)
      LANGUAGE plpgsql AS ${tag}${body}${tag}`;
}

/** One row to isolate: its offset and its COPY text line (LF included). */
export interface IsolationRow {
  offset: number;
  line: Buffer;
}

export interface Rejected {
  offset: number;
  code: string;
  message: string;
}

const SUFFIX_U = Buffer.from('\tu\n');

/** A target line as a staging line: the offset and 'u' appended. */
function stagingLine(plan: IsolationPlan, row: IsolationRow): Buffer {
  if (plan.stagedLines) return row.line;
  const body = row.line.subarray(0, row.line.length - 1);
  return Buffer.concat([body, Buffer.from(`\t${row.offset}`), SUFFIX_U]);
}

/** A target tuple as a staging tuple: two more fields, the offset (int8) and 'u' ("char"). */
function stagingTuple(plan: IsolationPlan, row: IsolationRow): Buffer {
  if (plan.stagedLines) return row.line;
  const out = Buffer.allocUnsafe(row.line.length + 17);
  row.line.copy(out);
  out.writeInt16BE(row.line.readInt16BE(0) + 2, 0);
  writeUpsertSuffix({ out, o: row.line.length, need: () => undefined }, row.offset, 'u');
  return out;
}

async function copyPart(
  client: pg.ClientBase,
  plan: IsolationPlan,
  copySql: string,
  rows: readonly IsolationRow[],
  from: number,
  to: number,
  format: 'text' | 'binary',
): Promise<void> {
  function* lines(): Generator<Buffer> {
    if (format === 'binary') {
      yield BINARY_HEADER;
      for (let i = from; i < to; i++) yield stagingTuple(plan, rows[i]!);
      yield BINARY_TRAILER;
      return;
    }
    for (let i = from; i < to; i++) yield stagingLine(plan, rows[i]!);
  }
  await pipeline(Readable.from(lines()), client.query(copyFrom(copySql)));
}

/** The smallest window after an error, in rows: what a failing COPY may send in vain. */
const MIN_WINDOW = 32;

/**
 * Step 1: COPY into the staging table, skipping any line Postgres names. Inside the caller's
 * transaction; every COPY runs under a savepoint. Returns the rejected rows; throws what is
 * not about a row.
 */
async function stageRows(
  client: pg.ClientBase,
  plan: IsolationPlan,
  rows: readonly IsolationRow[],
  format: 'text' | 'binary',
): Promise<Rejected[]> {
  const stage = stageName(plan);
  const cols = [...plan.columns.map(quoteIdent), OFFSET_COL, OP_COL];
  const types = format === 'binary' ? plan.stageTypes : undefined;
  if (format === 'binary' && types?.length !== plan.columns.length) {
    throw new Error('internal: binary isolation without the staging types');
  }
  await client.query(
    `CREATE TEMP TABLE ${stage} (${plan.columns.map((c, i) => `${quoteIdent(c)} ${types ? types[i]! : 'text'}`).join(', ')}${
      plan.columns.length ? ', ' : ''
    }${OFFSET_COL} bigint, ${OP_COL} "char") ON COMMIT DROP`,
  );
  const copySql = `COPY pg_temp.${stage} (${cols.join(', ')}) FROM STDIN${format === 'binary' ? ' (FORMAT binary)' : ''}`;
  const rejected: Rejected[] = [];
  await client.query('SAVEPOINT pgsink_stage');
  let i = 0;
  let window = rows.length;
  let known: { index: number; err: unknown } | undefined;
  while (i < rows.length) {
    if (known && known.index === i) {
      rejected.push(rejection(rows[i]!.offset, known.err));
      known = undefined;
      i++;
      continue;
    }
    let end = Math.min(rows.length, i + window);
    if (known && known.index < end) end = known.index;
    try {
      await copyPart(client, plan, copySql, rows, i, end, format);
      await client.query('RELEASE SAVEPOINT pgsink_stage; SAVEPOINT pgsink_stage');
      i = end;
      window = Math.min(rows.length, window * 2);
    } catch (err) {
      const kind = classifyPgError(err);
      if (kind !== 'data' && kind !== 'unknown') throw err;
      await client.query('ROLLBACK TO SAVEPOINT pgsink_stage');
      const line = copyLineOf(err);
      if (line !== undefined && line >= 1 && line <= end - i) {
        // Lines before it went in: they are copied again, then this one is skipped.
        known = { index: i + line - 1, err };
        window = Math.max(MIN_WINDOW, 2 * line);
      } else if (end - i === 1) {
        rejected.push(rejection(rows[i]!.offset, err));
        i++;
      } else {
        // No line named (should not happen for a COPY): halve the window.
        window = Math.ceil((end - i) / 2);
      }
    }
  }
  await client.query('RELEASE SAVEPOINT pgsink_stage');
  return rejected;
}

function rejection(offset: number, err: unknown): Rejected {
  return { offset, code: sqlstateOf(err) ?? 'UNKNOWN', message: describePgError(err) };
}

/**
 * Writes `rows` (in offset order) inside the caller's open transaction, isolating the rows
 * the target refuses. Returns them; throws errors that are not about rows.
 */
export async function isolateRows(
  client: pg.ClientBase,
  plan: IsolationPlan,
  rows: readonly IsolationRow[],
  format: 'text' | 'binary' = 'text',
): Promise<Rejected[]> {
  if (rows.length === 0) return [];
  const rejected = await stageRows(client, plan, rows, format);
  await client.query(applyFunctionSql(plan, await targetColumns(client, plan)));
  const { rows: refused } = await client.query<{
    pgsink_offset: string;
    pgsink_state: string;
    pgsink_message: string;
  }>(`SELECT pgsink_offset, pgsink_state, pgsink_message FROM pg_temp.pgsink_apply_${plan.routeIndex}()`);
  for (const r of refused)
    rejected.push({ offset: Number(r.pgsink_offset), code: r.pgsink_state, message: r.pgsink_message });
  return rejected.sort((a, b) => a.offset - b.offset);
}
