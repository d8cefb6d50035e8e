// `pgsink check --connect`: what `run` would find, without consuming anything. Each check
// prints one line; the exit code says whether `run` would start (0), wait for something
// unreachable (1), or refuse the configuration (2).
import pg from 'pg';
import type { Config } from '../config/schema.ts';
import { connectAdmin } from '../kafka/admin.ts';
import { kafkaConnection } from '../kafka/client-options.ts';
import { pgClientConfig } from '../sink/connection.ts';
import { sinkTables } from '../sink/ddl.ts';
import { planTable } from '../sink/schema-plan.ts';
import { RegistryClient } from '../avro/registry.ts';
import { ConfigError, errorMessage, PgsinkError } from '../util/errors.ts';
import { connectError } from '../pipeline/sink-service.ts';
import { readWireTypes } from '../sink/catalog.ts';
import { registryTls, useCopyFormat, type RouteRuntime } from '../pipeline/routes.ts';

type Verdict = 'ok' | 'waits' | 'refused';

export interface CheckLine {
  verdict: Verdict;
  what: string;
}

const worst = (lines: readonly CheckLine[]): Verdict =>
  lines.some((l) => l.verdict === 'refused')
    ? 'refused'
    : lines.some((l) => l.verdict === 'waits')
      ? 'waits'
      : 'ok';

export function exitCodeOf(lines: readonly CheckLine[]): number {
  const w = worst(lines);
  return w === 'ok' ? 0 : w === 'waits' ? 1 : 2;
}

export async function connectChecks(config: Config, routes: Map<string, RouteRuntime>): Promise<CheckLine[]> {
  const lines: CheckLine[] = [];
  const say = (verdict: Verdict, what: string) => lines.push({ verdict, what });

  // Kafka: brokers, credentials, topics, the group.
  const brokers = config.kafka.brokers.join(',');
  try {
    const admin = await connectAdmin(kafkaConnection(config), `${config.kafka.clientId}-check`);
    try {
      say('ok', `Kafka at ${brokers} answers`);
      for (const r of routes.values()) {
        try {
          const parts = await admin.partitions(r.config.topic);
          say('ok', `topic ${r.config.topic}: ${parts.length} partition${parts.length > 1 ? 's' : ''}`);
        } catch (err) {
          const missing = err instanceof PgsinkError && err.code === 'UNKNOWN_TOPIC_OR_PARTITION';
          say(
            'waits',
            missing
              ? `topic ${r.config.topic} does not exist: run would wait for it (create it, or fix routes[].topic)`
              : `topic ${r.config.topic}: ${errorMessage(err)}`,
          );
        }
      }
      const g = await admin.groupMembers(config.kafka.groupId);
      say(
        'ok',
        `group ${config.kafka.groupId}: ${g.state}, ${g.members.length} member${g.members.length === 1 ? '' : 's'}`,
      );
    } finally {
      await admin.close().catch(() => undefined);
    }
  } catch (err) {
    // connectAdmin's errors are kafkaStartError's: a ConfigError already says what to check.
    const refused = err instanceof ConfigError;
    say(
      refused ? 'refused' : 'waits',
      `Kafka at ${brokers}: ${errorMessage(err)}${refused ? '' : ': run would wait for it'}`,
    );
  }

  // Postgres: the server, pgsink's schema, each route's table.
  const client = new pg.Client({
    ...pgClientConfig(config),
    connectionTimeoutMillis: config.postgres.connectionTimeoutMs,
  });
  try {
    await client.connect();
    say(
      'ok',
      `PostgreSQL answers (${(await client.query<{ v: string }>('SHOW server_version')).rows[0]!.v})`,
    );
    const t = sinkTables(config.postgres.schema);
    const { rows } = await client.query<{ fence: string | null }>('SELECT to_regclass($1)::text AS fence', [
      t.fence,
    ]);
    say(
      'ok',
      rows[0]!.fence
        ? `pgsink's tables exist in ${t.schema}`
        : `pgsink's tables in ${t.schema}: run would create them`,
    );
    for (const r of routes.values()) {
      const rc = r.config;
      const plan = await planTable(
        client,
        rc.table,
        r.plan.columns,
        r.plan.pgTypes,
        rc.mode === 'upsert' ? rc.keyColumns : undefined,
      );
      const auto = plan.exists ? rc.autoEvolve : rc.autoCreate;
      if (plan.statements.length === 0) say('ok', `table ${rc.table}: every mapped column is there`);
      else if (auto)
        say(
          'ok',
          `table ${rc.table}: run would ${plan.exists ? 'add the missing columns' : 'create it'}: ${plan.statements.join('; ')}`,
        );
      else
        say(
          'refused',
          `table ${rc.table}: ${plan.exists ? 'missing columns' : 'does not exist'}; run would refuse to start. Run: ${plan.statements.join('; ')} (or set ${plan.exists ? 'autoEvolve' : 'autoCreate'}: true)`,
        );
      for (const m of plan.mismatches)
        say('ok', `table ${rc.table}: type differs (Postgres converts, not changed): ${m}`);
      if (plan.exists && plan.statements.length === 0) {
        // The COPY format run would choose (src/pipeline/routes.ts useCopyFormat).
        const why = useCopyFormat(r, await readWireTypes(client, rc.table));
        say(
          'ok',
          why
            ? `table ${rc.table}: run would use COPY text, because ${why.join('; ')}`
            : `table ${rc.table}: run would use COPY ${r.format}`,
        );
      }
      for (const a of plan.advice)
        say('refused', `table ${rc.table}: upsert needs a unique key; run would refuse to start. Run: ${a}`);
    }
  } catch (err) {
    const e = connectError(err, config);
    if (e instanceof ConfigError) say('refused', `PostgreSQL: ${e.message}`);
    else say('waits', `PostgreSQL: ${errorMessage(err)}: run would wait for it`);
  } finally {
    await client.end().catch(() => undefined);
  }

  // The registry, when one is configured.
  if (config.schemaRegistry) {
    const reg = new RegistryClient({
      url: config.schemaRegistry.url,
      username: config.schemaRegistry.username,
      password: config.schemaRegistry.password,
      timeoutMs: config.schemaRegistry.timeoutMs,
      tls: registryTls(config),
    });
    try {
      await reg.ping();
      say('ok', 'schema registry answers');
    } catch (err) {
      say('waits', `${errorMessage(err)}: run would hold partitions whose schema ids it must look up`);
    }
  }
  return lines;
}

export function formatCheck(lines: readonly CheckLine[]): string {
  const mark = { ok: 'ok     ', waits: 'WAITS  ', refused: 'REFUSED' } as const;
  return lines.map((l) => `${mark[l.verdict]} ${l.what}`).join('\n');
}
