// `pgsink replay` and `pgsink offsets`: where a group stands, and moving it.
//
// Replay moves the Kafka group offsets and the Postgres fence together. The fence is
// updated inside a transaction that stays open while Kafka's offsets are set, and commits
// only if that succeeded; if the commit itself fails, Kafka is behind the fence and the
// consumer simply resumes at the fence (nothing replayed, nothing lost) — run it again.
import pg from 'pg';
import type { Config } from '../config/schema.ts';
import { connectAdmin, type GroupAdmin } from '../kafka/admin.ts';
import { kafkaConnection } from '../kafka/client-options.ts';
import { pgClientConfig } from '../sink/connection.ts';
import { ensureGapsTable, sinkTables } from '../sink/ddl.ts';
import { readFences } from '../sink/flush.ts';
import { ConfigError, PgsinkError } from '../util/errors.ts';
import {
  formatPlan,
  planReplay,
  ReplayPlanError,
  type PartitionFacts,
  type ReplayTarget,
} from './replay-plan.ts';

/** A usage or state error the operator must fix: exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export function parseTarget(opts: {
  'to-earliest'?: boolean | undefined;
  'to-latest'?: boolean | undefined;
  'to-datetime'?: string | undefined;
  'to-offset'?: string | undefined;
}): ReplayTarget {
  const given = (['to-earliest', 'to-latest', 'to-datetime', 'to-offset'] as const).filter(
    (k) => opts[k] !== undefined && opts[k] !== false,
  );
  if (given.length !== 1) {
    throw new UsageError(
      `give exactly one of --to-earliest, --to-latest, --to-datetime <ISO>, --to-offset <n> (got ${given.length ? given.map((g) => `--${g}`).join(', ') : 'none'})`,
    );
  }
  if (opts['to-earliest']) return { kind: 'earliest' };
  if (opts['to-latest']) return { kind: 'latest' };
  if (opts['to-datetime'] !== undefined) {
    const iso = opts['to-datetime'];
    const ms = Date.parse(iso);
    if (!/^\d{4}-\d{2}-\d{2}/.test(iso) || Number.isNaN(ms)) {
      throw new UsageError(
        `--to-datetime ${JSON.stringify(iso)} is not an ISO 8601 date-time (e.g. 2026-11-21T10:00:00Z)`,
      );
    }
    return { kind: 'datetime', ms, iso };
  }
  const raw = opts['to-offset']!;
  if (!/^\d+$/.test(raw))
    throw new UsageError(`--to-offset ${JSON.stringify(raw)} is not a non-negative integer`);
  return { kind: 'offset', offset: Number(raw) };
}

interface Gathered {
  facts: PartitionFacts[];
  admin: GroupAdmin;
}

async function fencesOf(
  client: pg.ClientBase,
  config: Config,
  groupId: string,
): Promise<Map<string, number>> {
  const exists = await client.query(`SELECT to_regclass($1) AS t`, [
    `${sinkTables(config.postgres.schema).fence}`,
  ]);
  if (!exists.rows[0]?.t) return new Map();
  return readFences(client, sinkTables(config.postgres.schema), groupId);
}

async function gather(
  admin: GroupAdmin,
  client: pg.ClientBase,
  config: Config,
  groupId: string,
  topic: string,
  only: number[] | undefined,
  target: ReplayTarget | undefined,
): Promise<Gathered> {
  let partitions: number[];
  try {
    partitions = await admin.partitions(topic);
  } catch (err) {
    if (err instanceof PgsinkError && err.code === 'UNKNOWN_TOPIC_OR_PARTITION')
      throw new UsageError(err.message);
    throw err;
  }
  if (only) {
    for (const p of only) {
      if (!partitions.includes(p)) {
        throw new UsageError(
          `partition ${p} does not exist in topic '${topic}' (it has partitions ${partitions.join(', ')})`,
        );
      }
    }
    partitions = partitions.filter((p) => only.includes(p));
  }
  const [marks, committed, fences, forTime] = await Promise.all([
    admin.watermarks(topic),
    admin.committed(groupId, topic),
    fencesOf(client, config, groupId),
    target?.kind === 'datetime' ? admin.offsetsForTime(topic, target.ms) : Promise.resolve(undefined),
  ]);
  const facts = partitions.map((partition) => ({
    partition,
    watermarks: marks.get(partition) ?? { low: 0, high: 0 },
    committed: committed.get(partition) ?? -1,
    fence: fences.get(`${topic}:${partition}`),
    offsetForTime: forTime?.get(partition),
  }));
  return { facts, admin };
}

export interface ReplayOptions {
  config: Config;
  groupId: string;
  topic: string;
  partitions: number[] | undefined;
  target: ReplayTarget;
  dryRun: boolean;
  out: (s: string) => void;
}

export async function replay(o: ReplayOptions): Promise<void> {
  if (!o.config.routes.some((r) => r.topic === o.topic)) {
    throw new ConfigError(
      `topic '${o.topic}' has no route in the configuration (routes: ${o.config.routes.map((r) => r.topic).join(', ')})`,
    );
  }
  const admin = await connectAdmin(kafkaConnection(o.config), `${o.config.kafka.clientId}-replay`);
  const client = new pg.Client(pgClientConfig(o.config));
  try {
    await client.connect();
    const group = await admin.groupMembers(o.groupId);
    if (group.members.length > 0) {
      const who = group.members.map((m) => `${m.clientId}@${m.clientHost} (${m.memberId})`).join(', ');
      throw new UsageError(
        `group '${o.groupId}' has ${group.members.length} live member${group.members.length > 1 ? 's' : ''}: ${who}. ` +
          'Stop its consumers first (e.g. kubectl scale deployment/pgsink --replicas=0), then replay.',
      );
    }
    const { facts } = await gather(admin, client, o.config, o.groupId, o.topic, o.partitions, o.target);
    if (group.state === 'Dead' && facts.every((f) => f.committed < 0 && f.fence === undefined)) {
      throw new UsageError(
        `group '${o.groupId}' is unknown: it has no committed offsets on '${o.topic}' and no pgsink fence; check the group id`,
      );
    }
    let plan;
    try {
      plan = planReplay(facts, o.target);
    } catch (err) {
      if (err instanceof ReplayPlanError) throw new UsageError(err.message);
      throw err;
    }
    o.out(formatPlan(o.topic, plan));
    const total = plan.reduce((n, r) => n + Math.max(0, r.replay), 0);
    if (o.dryRun) {
      o.out(`dry run: nothing changed; ${total} records would be written again`);
      return;
    }
    const tables = sinkTables(o.config.postgres.schema);
    await client.query('BEGIN');
    try {
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${tables.schema}`);
      await ensureGapsTable(client, tables);
      for (const r of plan) {
        // Moving a fence forward over offsets that retention deleted before they were
        // written accepts their loss: it is recorded as a gap, as pgsink does itself.
        const f = facts.find((x) => x.partition === r.partition);
        if (f?.fence !== undefined && r.target > f.fence && f.fence < f.watermarks.low) {
          await client.query(
            `INSERT INTO ${tables.gaps} (group_id, topic, partition, first_offset, last_offset) VALUES ($1, $2, $3, $4, $5)`,
            [o.groupId, o.topic, r.partition, f.fence, Math.min(r.target, f.watermarks.low) - 1],
          );
        }
        await client.query(
          `INSERT INTO ${tables.fence} AS f (group_id, topic, partition, next_offset) VALUES ($1, $2, $3, $4)
           ON CONFLICT (group_id, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()`,
          [o.groupId, o.topic, r.partition, r.target],
        );
      }
      await admin.setCommitted(o.groupId, o.topic, new Map(plan.map((r) => [r.partition, r.target])));
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      const msg = (err as Error).message;
      if (/no running instances|not empty|live members/i.test(msg))
        throw new UsageError(`Kafka refused to move the offsets: ${msg}`);
      throw err;
    }
    o.out(
      `moved group '${o.groupId}' on '${o.topic}': ${total} records will be written again when it restarts`,
    );
  } finally {
    await client.end().catch(() => undefined);
    await admin.close().catch(() => undefined);
  }
}

export interface OffsetsRow {
  topic: string;
  partition: number;
  fence: number | null;
  committed: number | null;
  low: number;
  high: number;
  lag: number;
}

export async function offsetsStatus(config: Config, groupId: string): Promise<OffsetsRow[]> {
  const admin = await connectAdmin(kafkaConnection(config), `${config.kafka.clientId}-status`);
  const client = new pg.Client(pgClientConfig(config));
  try {
    await client.connect();
    const rows: OffsetsRow[] = [];
    for (const route of config.routes) {
      const { facts } = await gather(admin, client, config, groupId, route.topic, undefined, undefined);
      for (const f of facts) {
        const position = Math.max(f.fence ?? -1, f.committed, f.watermarks.low);
        rows.push({
          topic: route.topic,
          partition: f.partition,
          fence: f.fence ?? null,
          committed: f.committed < 0 ? null : f.committed,
          low: f.watermarks.low,
          high: f.watermarks.high,
          lag: Math.max(0, f.watermarks.high - position),
        });
      }
    }
    return rows;
  } finally {
    await client.end().catch(() => undefined);
    await admin.close().catch(() => undefined);
  }
}

export function formatOffsets(rows: readonly OffsetsRow[]): string {
  const header = ['topic', 'partition', 'pg fence', 'kafka committed', 'low', 'high', 'lag'];
  const body = rows.map((r) => [
    r.topic,
    String(r.partition),
    String(r.fence ?? '-'),
    String(r.committed ?? '-'),
    String(r.low),
    String(r.high),
    String(r.lag),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i]!)).join('  ');
  return [line(header), ...body.map(line)].join('\n');
}
