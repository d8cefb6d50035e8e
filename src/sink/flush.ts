// The flush transaction: one partition's batch, exactly once.
//
//   BEGIN
//   lock the fence row (group, topic, partition) → next offset to write
//   a fence behind what this process wrote: Postgres lost commits → roll back, re-read
//   drop entries below the fence (an earlier owner already wrote them)
//   COPY the rows; on a data error, isolate the bad rows under savepoints
//   insert the dead letters and the retention gaps
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
import { PgsinkError } from '../util/errors.ts';
import { headersFromObject, parseRawHeaders, type HeaderList } from '../kafka/record-headers.ts';
import type { SinkTables } from './ddl.ts';
import { BINARY_HEADER, BINARY_TRAILER } from './copy-binary.ts';
import { isolateRows, type IsolationPlan } from './isolate.ts';
import { dropStage, ensureStage, type UpsertPlan } from './upsert.ts';
import { classifyPgError, sinkError } from './pg-errors.ts';

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
  /** The record's Kafka timestamp (ms; the client's string where a double would not be exact). */
  timestamp?: number | string | undefined;
  /**
   * The route's encoder generation the row was encoded with: a table altered while running
   * (CatalogChanged) makes a new one, and rows of an older one are encoded again from their
   * key and value before they are flushed.
   */
  gen?: number | undefined;
  failure?: Failure;
  /**
   * Not a record: offsets [first, offset] hold nothing to write. Either the client filtered
   * them (control records, aborted transactions: `lost` false), or retention deleted them
   * before they were written (`lost` true: the flush records the range as a gap). Either way
   * the flush that covers it moves the fence past it, so that the fence and the Kafka commit
   * reach the end of the log.
   */
  skip?: { first: number; lost: boolean };
}

/** An entry's raw key or value (positions in its raw chunk), or null. */
export const rawSlice = (e: Entry, from: number, to: number): Buffer | null =>
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
  /** How a batch that hit a data error is written again with its bad rows isolated. */
  isolation: IsolationPlan;
  /** The entries' rows: COPY text lines (the default), or COPY binary tuples. */
  format?: 'text' | 'binary' | undefined;
  /**
   * Binary: the declared type oid of every column the tuples were encoded for. Checked under
   * the table's lock in every flush: a table altered since would take the bytes as another
   * type (an int8's as a float8's); such a flush fails with CatalogChanged, writing nothing.
   */
  wireOids?: ReadonlyMap<string, number> | undefined;
  /**
   * The fence as this process last read or wrote it, when it has one. A locked fence below it
   * (or no fence row at all) means Postgres lost transactions that had committed (a failover
   * to an asynchronous replica, a restore): the flush is refused with FenceBehind.
   */
  expectedFence?: number | undefined;
}

/**
 * The fence in Postgres is behind what this process had written: Postgres lost commits. The
 * partition must be read again from the fence (`fence`, or undefined when the row is gone).
 */
export class FenceBehind extends PgsinkError {
  readonly fence: number | undefined;
  readonly expected: number;

  constructor(fence: number | undefined, expected: number, where: string) {
    super(
      'postgres',
      `${where}: the fence in Postgres is ${fence === undefined ? 'missing' : `at offset ${fence}`}, but this process had written up to offset ${expected}`,
      { code: 'FENCE_BEHIND', retriable: true },
    );
    this.fence = fence;
    this.expected = expected;
  }
}

export interface FlushOutcome {
  /** The offset to commit to Kafka: the fence after this transaction. */
  nextOffset: number;
  rowsWritten: number;
  deadLettered: number;
  skippedBelowFence: number;
  isolated: boolean;
  /** Retention gaps recorded: offset ranges lost before they were written. */
  gaps: Array<{ first: number; last: number }>;
  /** This flush created the partition's fence row (its first flush for the group). */
  createdFence?: boolean;
}

/**
 * Binary rows, and a column of the table has another type than the one they were encoded for
 * (ALTER TABLE … TYPE since): nothing is written. The caller reads the column types again,
 * encodes the batch again from its records, and flushes it.
 */
export class CatalogChanged extends PgsinkError {
  constructor(message: string) {
    super('postgres', message, { code: 'CATALOG_CHANGED', retriable: true });
  }
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

function* binaryFile(rows: readonly Entry[]): Generator<Buffer> {
  yield BINARY_HEADER;
  yield* copySlices(rows);
  yield BINARY_TRAILER;
}

async function copyRows(
  client: pg.ClientBase,
  table: string,
  columnList: string,
  rows: readonly Entry[],
  format: 'text' | 'binary',
): Promise<void> {
  if (format === 'binary') {
    const stream = client.query(copyFrom(`COPY ${table} (${columnList}) FROM STDIN (FORMAT binary)`));
    await pipeline(Readable.from(binaryFile(rows)), stream);
    return;
  }
  const stream = client.query(copyFrom(`COPY ${table} (${columnList}) FROM STDIN`));
  await pipeline(Readable.from(copySlices(rows)), stream);
}

/** Append: COPY into the target. Upsert: COPY into the staging table, then merge. */
async function writeRows(client: pg.ClientBase, t: FlushTarget, rows: readonly Entry[]): Promise<void> {
  if (rows.length === 0) return;
  if (!t.upsert) return copyRows(client, t.table, t.columnList, rows, t.format ?? 'text');
  const stage = `pg_temp.${t.upsert.stage}`;
  await client.query(`TRUNCATE ${stage}`);
  await copyRows(client, stage, t.upsert.stageColumnList, rows, t.format ?? 'text');
  await client.query(t.upsert.mergeSql);
}

/**
 * BEGIN, then the fence row created on first use and locked either way (upsert-as-lock), in
 * one round trip: a simple-protocol query of two statements, so the values are literals.
 * Every response a flush waits for also waits for the event loop, which decoding keeps busy;
 * fewer round trips make flushes shorter under load.
 */
async function beginAndLockFence(
  client: pg.ClientBase,
  t: FlushTarget,
): Promise<{ next: number; created: boolean; changed: string | undefined }> {
  // Binary rows: after the fence row (so that two owners of a partition still queue on the
  // fence, as they do when COPY waits for the table), the table is locked (COPY would take this
  // lock anyway, and it keeps an ALTER TABLE out until COMMIT), then its column types are read
  // as they are now.
  const check = t.wireOids !== undefined;
  const table = client.escapeLiteral(t.table);
  // xmax = 0 on the returned row: it was inserted now, not found and locked.
  const results = (await client.query(
    `BEGIN;
     INSERT INTO ${t.tables.fence} AS f (group_id, topic, partition, next_offset)
     VALUES (${client.escapeLiteral(t.groupId)}, ${client.escapeLiteral(t.topic)}, ${partitionLiteral(t.partition)}, 0)
     ON CONFLICT (group_id, topic, partition) DO UPDATE SET next_offset = f.next_offset
     RETURNING next_offset, (xmax = 0) AS created${
       check
         ? `;
     LOCK TABLE ${t.table} IN ROW EXCLUSIVE MODE;
     SELECT a.attname AS name, a.atttypid::int AS oid, format_type(a.atttypid, a.atttypmod) AS type
       FROM pg_attribute a
      WHERE a.attrelid = ${table}::regclass AND a.attnum > 0 AND NOT a.attisdropped`
         : ''
     }`,
  )) as unknown as Array<pg.QueryResult>;
  const row = results[1]!.rows[0] as { next_offset: string; created: boolean };
  let changed: string | undefined;
  if (check) {
    const rows = results[3]!.rows as Array<{ name: string; oid: number; type: string }>;
    const now = new Map(rows.map((r) => [r.name, r]));
    // A column that is gone is left to COPY, which fails on it as on a text route (42703: the
    // deployment's fault, held and reported); only a column of another type changes the bytes.
    for (const [name, oid] of t.wireOids!) {
      const column = now.get(name);
      if (column !== undefined && column.oid !== oid) {
        changed = `column ${name} of ${t.table} is now ${column.type}, not the type pgsink read at start-up`;
        break;
      }
    }
  }
  return { next: Number(row.next_offset), created: row.created, changed };
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
        rawSlice(e, e.keyStart, e.keyEnd),
        rawSlice(e, e.valueStart, e.valueEnd),
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

/** Records each retention gap (first..last offsets, as far as they are not below the fence). */
async function insertGaps(
  client: pg.ClientBase,
  t: FlushTarget,
  gaps: ReadonlyArray<{ first: number; last: number }>,
): Promise<void> {
  for (const g of gaps) {
    await client.query(
      `INSERT INTO ${t.tables.gaps} (group_id, topic, partition, first_offset, last_offset)
       VALUES ($1, $2, $3, $4, $5)`,
      [t.groupId, t.topic, t.partition, g.first, g.last],
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
  // Isolating an upsert batch: the cached typed stage may be what failed (the table was
  // altered since it was made): it is made again for the next batch.
  if (t.upsert) await (isolate ? dropStage(client, t.upsert) : ensureStage(client, t.upsert));
  try {
    const locked = await beginAndLockFence(client, t);
    if (locked.changed !== undefined) {
      await client.query('ROLLBACK');
      throw new CatalogChanged(locked.changed);
    }
    const fence = locked.next;
    if (t.expectedFence !== undefined && (locked.created || fence < t.expectedFence)) {
      // Commits this process saw succeed are gone: writing this batch would leave the records
      // between the fence and the batch unwritten for good. Nothing is written; the caller
      // reads the partition again from the fence.
      await client.query('ROLLBACK');
      throw new FenceBehind(
        locked.created ? undefined : fence,
        t.expectedFence,
        `flush ${t.topic}[${t.partition}]`,
      );
    }
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
        gaps: [],
      };
    }
    const rows: Entry[] = [];
    const dead: Entry[] = [];
    const gaps: Array<{ first: number; last: number }> = [];
    for (let i = start; i < entries.length; i++) {
      const e = entries[i]!;
      if (e.skip) {
        if (e.skip.lost) gaps.push({ first: Math.max(e.skip.first, fence), last: e.offset });
      } else (e.start < 0 ? dead : rows).push(e);
    }
    let written = rows.length;
    if (isolate) {
      const rejected = await isolateRows(
        client,
        t.isolation,
        rows.map((e) => ({ offset: e.offset, line: e.chunk.subarray(e.start, e.end) })),
        t.format ?? 'text',
      );
      if (rejected.length) {
        const byOffset = new Map(rows.map((e) => [e.offset, e]));
        for (const r of rejected) {
          const e = byOffset.get(r.offset);
          if (!e) throw new Error(`internal: isolation rejected offset ${r.offset}, not in the batch`);
          dead.push({ ...e, start: -1, failure: { source: 'postgres', code: r.code, message: r.message } });
        }
        dead.sort((a, b) => a.offset - b.offset);
        written -= rejected.length;
      }
    } else {
      await writeRows(client, t, rows);
    }
    if (dead.length) await insertDeadLetters(client, t, dead);
    if (gaps.length) await insertGaps(client, t, gaps);
    await advanceFenceAndCommit(client, t, last + 1);
    return {
      nextOffset: last + 1,
      rowsWritten: written,
      deadLettered: dead.length,
      skippedBelowFence: start,
      isolated: isolate,
      gaps,
      ...(locked.created ? { createdFence: true } : {}),
    };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/**
 * Writes one batch (entries in offset order) in one transaction. A data error — also one
 * raised at COMMIT by a deferred constraint — rolls back and runs the batch again with the bad
 * rows isolated into dead letters (src/sink/isolate.ts); `isolate` goes there at once (a
 * partition whose last batch needed it, or an unknown error that keeps repeating on these
 * records). Any other failure rolls back and is thrown as a SinkError (discard the client).
 */
export async function flushBatch(
  client: pg.ClientBase,
  target: FlushTarget,
  entries: readonly Entry[],
  opts: { isolate?: boolean } = {},
): Promise<FlushOutcome> {
  if (entries.length === 0) throw new Error('internal: empty batch');
  if (!opts.isolate) {
    try {
      return await attempt(client, target, entries, false);
    } catch (err) {
      if (err instanceof FenceBehind || err instanceof CatalogChanged) throw err;
      if (classifyPgError(err) !== 'data') throw sinkError(err, `flush ${target.topic}[${target.partition}]`);
    }
  }
  try {
    return await attempt(client, target, entries, true);
  } catch (err) {
    if (err instanceof FenceBehind || err instanceof CatalogChanged) throw err;
    throw sinkError(err, `flush ${target.topic}[${target.partition}] (isolating bad rows)`);
  }
}

/** The fences of one group that have a row, per `topic:partition`. */
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
