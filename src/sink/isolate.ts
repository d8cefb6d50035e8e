// Isolating the bad rows of a batch, in time linear in the batch and in bounded memory.
//
// A batch whose COPY (or COMMIT) failed on a data error is written again in the same kind of
// transaction, in two steps:
//
// 1. COPY into a temporary staging table with the target's column types (and typmods) but
//    none of its constraints: Postgres parses each field exactly as it would for the target,
//    so type errors (bad input syntax, out of range, too long) show here, at the line Postgres
//    names. Such a line is a dead letter; the lines before it are copied again in a window
//    of their own, and copying goes on after it. Windows adapt to where errors fall, so the
//    bytes sent in vain per bad row are bounded, and every good row is sent at most twice.
// 2. One server-side loop moves the staged rows into the target one statement per row, each
//    in its own exception block, with every deferrable constraint checked immediately (so a
//    DEFERRABLE INITIALLY DEFERRED violation, which would only surface at COMMIT, is caught at
//    its row): CHECK, NOT NULL, unique, foreign key, exclusion, and errors raised by triggers.
//    The failing rows come back as (offset, SQLSTATE, message); no round trip per row, and
//    a batch half of whose rows are bad costs one statement, not one per bad row.
//
// An error of a class that is not about the row (connection, server shutdown, deadlock,
// serialization, locks, missing table or privilege: see pg-errors.ts) is re-raised from the
// loop and the whole flush is retried, never dead-lettered.
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { quoteIdent, quoteQualified } from './columns.ts';
import { classifyPgError, copyLineOf, describePgError, HELD_CLASSES, sqlstateOf } from './pg-errors.ts';

const OFFSET_COL = '__pgsink_offset';
const OP_COL = '__pgsink_op';

export interface IsolationPlan {
  /** Unquoted name of the temporary staging table (one per route and connection). */
  stage: string;
  createStageSql: string;
  /** COPY into the staging table: the target's columns, then the offset and the operation. */
  copySql: string;
  /** Creates (or replaces) the per-connection function that moves staged rows one by one. */
  createApplySql: string;
  /** Runs it: rows of (offset, SQLSTATE, message) for the rows the target refused. */
  applySql: string;
  /** Whether lines are already staging lines (upsert: offset and operation appended). */
  stagedLines: boolean;
}

/** A dollar-quote tag that does not occur in `body`. */
function dollarTag(body: string): string {
  let n = 0;
  while (body.includes(`$pgsink${n}$`)) n++;
  return `$pgsink${n}$`;
}

/**
 * The statements that isolate the bad rows of one route. `keyColumns` given: upsert (the
 * last record per key wins, tombstones delete), as the route's one-statement merge does.
 */
export function buildIsolationPlan(
  routeIndex: number,
  table: string,
  columns: readonly string[],
  keyColumns: readonly string[] | undefined,
): IsolationPlan {
  const stage = `pgsink_iso_${routeIndex}`;
  const target = quoteQualified(table);
  const cols = columns.map(quoteIdent);
  const values = cols.map((c) => `r.${c}`).join(', ');
  let statement: string;
  let source = `pg_temp.${stage}`;
  if (keyColumns) {
    const keys = keyColumns.map(quoteIdent);
    const rest = columns.filter((c) => !keyColumns.includes(c)).map(quoteIdent);
    const onConflict = rest.length
      ? `DO UPDATE SET ${rest.map((c) => `${c} = EXCLUDED.${c}`).join(', ')}`
      : 'DO NOTHING';
    source = `(SELECT DISTINCT ON (${keys.join(', ')}) * FROM pg_temp.${stage}
                ORDER BY ${keys.join(', ')}, ${OFFSET_COL} DESC) AS last`;
    statement = `IF r.${OP_COL} = 'd' THEN
          DELETE FROM ${target} AS t WHERE ${keys.map((k) => `t.${k} = r.${k}`).join(' AND ')};
        ELSE
          INSERT INTO ${target} (${cols.join(', ')}) VALUES (${values})
            ON CONFLICT (${keys.join(', ')}) ${onConflict};
        END IF;`;
  } else {
    statement = `INSERT INTO ${target} (${cols.join(', ')}) VALUES (${values});`;
  }
  const held = [...HELD_CLASSES].map((c) => `'${c}'`).join(', ');
  const body = `
#variable_conflict use_column
DECLARE
  r record;
  detail text;
BEGIN
  SET CONSTRAINTS ALL IMMEDIATE;
  FOR r IN SELECT * FROM ${source} ORDER BY ${OFFSET_COL} LOOP
    BEGIN
      ${statement}
    EXCEPTION WHEN OTHERS THEN
      IF left(SQLSTATE, 2) IN (${held}) THEN
        RAISE;
      END IF;
      GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
      pgsink_offset := r.${OFFSET_COL};
      pgsink_state := SQLSTATE;
      pgsink_message := SQLERRM || CASE WHEN coalesce(detail, '') = '' THEN '' ELSE '; detail: ' || detail END;
      RETURN NEXT;
    END;
  END LOOP;
END`;
  const tag = dollarTag(body);
  const fn = `pg_temp.pgsink_apply_${routeIndex}`;
  return {
    stage,
    // Column types and typmods come from the target; none of its constraints do.
    createStageSql: `CREATE TEMP TABLE IF NOT EXISTS ${stage} ON COMMIT DELETE ROWS AS
        SELECT ${cols.join(', ')}, 0::bigint AS ${OFFSET_COL}, 'u'::"char" AS ${OP_COL} FROM ${target} WITH NO DATA`,
    copySql: `COPY pg_temp.${stage} (${[...cols, OFFSET_COL, OP_COL].join(', ')}) FROM STDIN`,
    createApplySql: `CREATE OR REPLACE FUNCTION ${fn}()
      RETURNS TABLE (pgsink_offset bigint, pgsink_state text, pgsink_message text)
      LANGUAGE plpgsql AS ${tag}${body}${tag}`,
    applySql: `SELECT pgsink_offset, pgsink_state, pgsink_message FROM ${fn}()`,
    stagedLines: keyColumns !== undefined,
  };
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

const staged = new WeakMap<pg.ClientBase, Set<string>>();

/** Outside a transaction: a CREATE TEMP TABLE rolled back with it would be forgotten. */
export async function ensureIsolationStage(client: pg.ClientBase, plan: IsolationPlan): Promise<void> {
  let set = staged.get(client);
  if (set?.has(plan.stage)) return;
  await client.query(plan.createStageSql);
  if (!set) staged.set(client, (set = new Set()));
  set.add(plan.stage);
}

const SUFFIX_U = Buffer.from('\tu\n');

/** A target line as a staging line: the offset and 'u' appended. */
function stagingLine(plan: IsolationPlan, row: IsolationRow): Buffer {
  if (plan.stagedLines) return row.line;
  const body = row.line.subarray(0, row.line.length - 1);
  return Buffer.concat([body, Buffer.from(`\t${row.offset}`), SUFFIX_U]);
}

async function copyPart(
  client: pg.ClientBase,
  plan: IsolationPlan,
  rows: readonly IsolationRow[],
  from: number,
  to: number,
): Promise<void> {
  function* lines(): Generator<Buffer> {
    for (let i = from; i < to; i++) yield stagingLine(plan, rows[i]!);
  }
  await pipeline(Readable.from(lines()), client.query(copyFrom(plan.copySql)));
}

/** The smallest window after an error, in rows: what a failing COPY may send in vain. */
const MIN_WINDOW = 32;

/**
 * Step 1: COPY into the staging table, skipping the lines Postgres names. Inside the caller's
 * transaction; every COPY runs under a savepoint. Returns the rejected rows; throws what is
 * not a data error.
 */
async function stageRows(
  client: pg.ClientBase,
  plan: IsolationPlan,
  rows: readonly IsolationRow[],
): Promise<Rejected[]> {
  const rejected: Rejected[] = [];
  await client.query(`TRUNCATE pg_temp.${plan.stage}`);
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
      await copyPart(client, plan, rows, i, end);
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
): Promise<Rejected[]> {
  if (rows.length === 0) return [];
  const rejected = await stageRows(client, plan, rows);
  await client.query(plan.createApplySql);
  const { rows: refused } = await client.query<{
    pgsink_offset: string;
    pgsink_state: string;
    pgsink_message: string;
  }>(plan.applySql);
  for (const r of refused)
    rejected.push({ offset: Number(r.pgsink_offset), code: r.pgsink_state, message: r.pgsink_message });
  await client.query(`TRUNCATE pg_temp.${plan.stage}`);
  return rejected.sort((a, b) => a.offset - b.offset);
}
