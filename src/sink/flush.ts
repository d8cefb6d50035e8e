// The flush transaction: one partition's batch, exactly once.
//
//   BEGIN
//   lock the fence row (group, topic, partition) → next offset to write
//   drop entries below the fence (an earlier owner already wrote them)
//   COPY the rows; on a data error, isolate the bad rows under savepoints
//   insert the dead letters
//   advance the fence to last offset + 1
//   COMMIT
//
// The row lock serializes two owners of one partition (a rebalance zombie and the new
// owner): whoever commits second sees the advanced fence and writes nothing twice.
import { isUtf8 } from 'node:buffer';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { IHeaders } from 'kafkajs';
import { headersFromObject, parseRawHeaders, type HeaderList } from '../kafka/record-headers.ts';
import type { SinkTables } from './ddl.ts';
import { ensureStage, type UpsertPlan } from './upsert.ts';
import { classifyPgError, copyLineOf, describePgError, sinkError, sqlstateOf } from './pg-errors.ts';

export interface Failure {
  source: string;
  code: string;
  message: string;
}

/**
 * One buffered record, as positions in RowArena chunks: its COPY line [start, end) in
 * `chunk` — or start = -1 when it cannot be written, with the reason in `failure` — and its
 * raw key and value in `raw` (-1 when null), kept for a dead letter. Lines and raw bytes live
 * in separate arenas so that a batch's lines are contiguous.
 */
export interface Entry {
  offset: number;
  chunk: Buffer;
  start: number;
  end: number;
  raw: Buffer;
  keyStart: number;
  keyEnd: number;
  valueStart: number;
  valueEnd: number;
  headers: IHeaders | undefined;
  /** The headers' wire bytes (src/kafka/record-headers.ts), for an exact dead letter. */
  rawHeaders: Buffer | undefined;
  failure?: Failure;
}

const slice = (e: Entry, from: number, to: number): Buffer | null =>
  from < 0 ? null : e.raw.subarray(from, to);

export interface FlushTarget {
  groupId: string;
  topic: string;
  partition: number;
  /** Quoted, qualified target table. */
  table: string;
  /** Quoted column list for COPY. */
  columnList: string;
  tables: SinkTables;
  /** Set for upsert routes: rows go through the staging table and a merge. */
  upsert?: UpsertPlan | undefined;
}

export interface FlushOutcome {
  /** The offset to commit to Kafka: the fence after this transaction. */
  nextOffset: number;
  rowsWritten: number;
  deadLettered: number;
  skippedBelowFence: number;
  isolated: boolean;
}

/** Contiguous rows of one chunk go out as one slice: no copy, no re-encoding. */
function* copySlices(rows: readonly Entry[]): Generator<Buffer> {
  let chunk: Buffer | undefined;
  let from = 0;
  let to = 0;
  for (const r of rows) {
    if (r.chunk === chunk && r.start === to) {
      to = r.end;
      continue;
    }
    if (chunk && to > from) yield chunk.subarray(from, to);
    chunk = r.chunk;
    from = r.start;
    to = r.end;
  }
  if (chunk && to > from) yield chunk.subarray(from, to);
}

async function copyRows(
  client: pg.ClientBase,
  table: string,
  columnList: string,
  rows: readonly Entry[],
): Promise<void> {
  const stream = client.query(copyFrom(`COPY ${table} (${columnList}) FROM STDIN`));
  await pipeline(Readable.from(copySlices(rows)), stream);
}

/** Append: COPY into the target. Upsert: COPY into the staging table, then merge. */
async function writeRows(client: pg.ClientBase, t: FlushTarget, rows: readonly Entry[]): Promise<void> {
  if (rows.length === 0) return;
  if (!t.upsert) return copyRows(client, t.table, t.columnList, rows);
  const stage = `pg_temp.${t.upsert.stage}`;
  await client.query(`TRUNCATE ${stage}`);
  await copyRows(client, stage, t.upsert.stageColumnList, rows);
  await client.query(t.upsert.mergeSql);
}

/**
 * BEGIN, then the fence row created on first use and locked either way (upsert-as-lock), in
 * one round trip: a simple-protocol query of two statements, so the values are literals.
 * Every response a flush waits for also waits for the event loop, which decoding keeps busy;
 * fewer round trips make flushes shorter under load.
 */
async function beginAndLockFence(client: pg.ClientBase, t: FlushTarget): Promise<number> {
  const results = (await client.query(
    `BEGIN;
     INSERT INTO ${t.tables.fence} AS f (group_id, topic, partition, next_offset)
     VALUES (${client.escapeLiteral(t.groupId)}, ${client.escapeLiteral(t.topic)}, ${partitionLiteral(t.partition)}, 0)
     ON CONFLICT (group_id, topic, partition) DO UPDATE SET next_offset = f.next_offset
     RETURNING next_offset`,
  )) as unknown as Array<pg.QueryResult<{ next_offset: string }>>;
  return Number(results[1]!.rows[0]!.next_offset);
}

/** Moves the fence past the batch and commits, in one round trip (see beginAndLockFence). */
async function advanceFenceAndCommit(client: pg.ClientBase, t: FlushTarget, next: number): Promise<void> {
  if (!Number.isSafeInteger(next) || next < 0) throw new Error(`internal: bad next offset ${next}`);
  await client.query(
    `UPDATE ${t.tables.fence} SET next_offset = ${next}, updated_at = now()
      WHERE group_id = ${client.escapeLiteral(t.groupId)} AND topic = ${client.escapeLiteral(t.topic)}
        AND partition = ${partitionLiteral(t.partition)};
     COMMIT`,
  );
}

function partitionLiteral(partition: number): string {
  if (!Number.isInteger(partition) || partition < 0) throw new Error(`internal: bad partition ${partition}`);
  return String(partition);
}

function pgFailure(err: unknown): Failure {
  return { source: 'postgres', code: sqlstateOf(err) ?? 'UNKNOWN', message: describePgError(err) };
}

/** COPYs rows under savepoints, splitting on data errors; returns the rows Postgres rejects. */
async function isolateRows(client: pg.ClientBase, t: FlushTarget, rows: Entry[]): Promise<Entry[]> {
  if (rows.length === 0) return [];
  await client.query('SAVEPOINT pgsink_isolate');
  try {
    await writeRows(client, t, rows);
    await client.query('RELEASE SAVEPOINT pgsink_isolate');
    return [];
  } catch (err) {
    if (classifyPgError(err) !== 'data') throw err;
    await client.query('ROLLBACK TO SAVEPOINT pgsink_isolate');
    await client.query('RELEASE SAVEPOINT pgsink_isolate');
    if (rows.length === 1) return [{ ...rows[0]!, start: -1, failure: pgFailure(err) }];
    // Postgres names the failing line of the COPY input: the rows before it are good.
    const line = copyLineOf(err);
    if (line !== undefined && line >= 1 && line <= rows.length) {
      return [
        ...(await isolateRows(client, t, rows.slice(0, line - 1))),
        ...(await isolateRows(client, t, [rows[line - 1]!])),
        ...(await isolateRows(client, t, rows.slice(line))),
      ];
    }
    const mid = rows.length >> 1;
    return [
      ...(await isolateRows(client, t, rows.slice(0, mid))),
      ...(await isolateRows(client, t, rows.slice(mid))),
    ];
  }
}

/**
 * The `headers` jsonb column of earlier versions, kept for readers of it: {"key": "value"}, a
 * repeated key's values in an array. Written only when it is exact, i.e. every key and value is
 * well-formed UTF-8 without NUL (a value may be null); NULL otherwise. header_keys and
 * header_values hold the headers exactly, always.
 */
function legacyHeadersJson(list: HeaderList): string | null {
  if (list.length === 0) return null;
  const text = (b: Buffer): string | undefined =>
    isUtf8(b) && !b.includes(0) ? b.toString('utf8') : undefined;
  // No prototype: a header named "__proto__" is a key like any other.
  const out = Object.create(null) as Record<string, string | null | Array<string | null>>;
  for (const [k, v] of list) {
    const key = k === null ? undefined : text(k);
    const value = v === null ? null : text(v);
    if (key === undefined || value === undefined) return null;
    const prev = out[key];
    out[key] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
  }
  return JSON.stringify(out);
}

/**
 * Error messages are pgsink's text, which may quote a value: Postgres text cannot hold a NUL
 * (written as the two characters \0) nor a lone surrogate (U+FFFD).
 */
const messageText = (message: string): string => message.toWellFormed().replace(/\0/g, '\\0');

async function insertDeadLetters(
  client: pg.ClientBase,
  t: FlushTarget,
  dead: readonly Entry[],
): Promise<void> {
  const CHUNK = 500;
  const COLUMNS = 12;
  for (let i = 0; i < dead.length; i += CHUNK) {
    const part = dead.slice(i, i + CHUNK);
    const params: unknown[] = [];
    const tuples = part.map((e) => {
      const f = e.failure!;
      const base = params.length;
      const list = e.rawHeaders ? parseRawHeaders(e.rawHeaders) : headersFromObject(e.headers);
      params.push(
        t.groupId,
        t.topic,
        t.partition,
        e.offset,
        slice(e, e.keyStart, e.keyEnd),
        slice(e, e.valueStart, e.valueEnd),
        // bytea[]: node-postgres writes Buffers as \x… elements and null as NULL.
        list.map(([k]) => k),
        list.map(([, v]) => v),
        legacyHeadersJson(list),
        f.source,
        f.code,
        messageText(f.message),
      );
      return `(${Array.from({ length: COLUMNS }, (_, j) => `$${base + j + 1}`).join(',')})`;
    });
    await client.query(
      `INSERT INTO ${t.tables.deadLetters}
        (group_id, topic, partition, "offset", key, value, header_keys, header_values, headers,
         error_source, error_code, error_message)
       VALUES ${tuples.join(',')}`,
      params,
    );
  }
}

async function attempt(
  client: pg.ClientBase,
  t: FlushTarget,
  entries: readonly Entry[],
  isolate: boolean,
): Promise<FlushOutcome> {
  const last = entries[entries.length - 1]!.offset;
  // Outside the transaction: a CREATE TEMP TABLE rolled back with it would be forgotten.
  if (t.upsert) await ensureStage(client, t.upsert);
  try {
    const fence = await beginAndLockFence(client, t);
    let start = 0;
    while (start < entries.length && entries[start]!.offset < fence) start++;
    if (start === entries.length) {
      await client.query('ROLLBACK');
      return {
        nextOffset: fence,
        rowsWritten: 0,
        deadLettered: 0,
        skippedBelowFence: entries.length,
        isolated: false,
      };
    }
    const rows: Entry[] = [];
    const dead: Entry[] = [];
    for (let i = start; i < entries.length; i++) {
      const e = entries[i]!;
      (e.start < 0 ? dead : rows).push(e);
    }
    let written = rows.length;
    if (isolate) {
      const rejected = await isolateRows(client, t, rows);
      written -= rejected.length;
      dead.push(...rejected);
    } else {
      await writeRows(client, t, rows);
    }
    if (dead.length) await insertDeadLetters(client, t, dead);
    await advanceFenceAndCommit(client, t, last + 1);
    return {
      nextOffset: last + 1,
      rowsWritten: written,
      deadLettered: dead.length,
      skippedBelowFence: start,
      isolated: isolate,
    };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/**
 * Writes one batch (entries in offset order) in one transaction. A data error rolls back and
 * runs the batch again with the bad rows isolated into dead letters; any other failure
 * rolls back and is thrown as a retriable PgsinkError (the client should then be discarded).
 */
export async function flushBatch(
  client: pg.ClientBase,
  target: FlushTarget,
  entries: readonly Entry[],
): Promise<FlushOutcome> {
  if (entries.length === 0) throw new Error('internal: empty batch');
  try {
    return await attempt(client, target, entries, false);
  } catch (err) {
    if (classifyPgError(err) !== 'data') throw sinkError(err, `flush ${target.topic}[${target.partition}]`);
  }
  try {
    return await attempt(client, target, entries, true);
  } catch (err) {
    throw sinkError(err, `flush ${target.topic}[${target.partition}] (isolating bad rows)`);
  }
}

/** The fences of one group, per topic and partition. */
export async function readFences(
  client: pg.ClientBase,
  tables: SinkTables,
  groupId: string,
): Promise<Map<string, number>> {
  const { rows } = await client.query<{ topic: string; partition: number; next_offset: string }>(
    `SELECT topic, partition, next_offset FROM ${tables.fence} WHERE group_id = $1`,
    [groupId],
  );
  return new Map(rows.map((r) => [`${r.topic}:${r.partition}`, Number(r.next_offset)]));
}
