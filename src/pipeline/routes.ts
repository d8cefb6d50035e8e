// Everything a route needs at run time, built once at start-up from its config.
import type { Config, RouteConfig } from '../config/schema.ts';
import { RouteDecoder } from '../avro/decoder.ts';
import { LocalSchemas, RegistryClient, type RegistryTls, type WriterSchemas } from '../avro/registry.ts';
import { ConfigError } from '../util/errors.ts';
import { readTlsFile } from '../util/tls.ts';
import { loadSchemaFile } from '../avro/types.ts';
import avro from 'avsc';
import {
  buildColumnPlan,
  quoteIdent,
  quoteQualified,
  routeColumns,
  type ColumnOptions,
  type ColumnPlan,
} from '../sink/columns.ts';
import { buildBinaryPlan, type BinaryPlan } from '../sink/binary-plan.ts';
import type { WireType } from '../sink/copy-binary.ts';
import { buildDirectBinaryEncoder, type DirectBinaryEncoder } from '../sink/direct-binary.ts';
import { buildDirectLineEncoder, type DirectLineEncoder } from '../sink/direct-line.ts';
import { buildIsolationPlan, type IsolationPlan } from '../sink/isolate.ts';
import { buildUpsertPlan, type UpsertPlan } from '../sink/upsert.ts';

export interface RouteRuntime {
  config: RouteConfig;
  decoder: RouteDecoder;
  plan: ColumnPlan;
  /** Writes lines straight from bodies written with the reader schema (the usual case). */
  direct: DirectLineEncoder | undefined;
  /** How the Kafka key is written to its metadata column: as the column's type asks. */
  keyAs: 'text' | 'bytea';
  /** Quoted, qualified table name. */
  table: string;
  columnList: string;
  upsert: UpsertPlan | undefined;
  isolation: IsolationPlan;
  /** COPY text (the plan and direct above) or binary (the plans below), chosen by useCopyFormat. */
  format: 'text' | 'binary';
  binary: BinaryPlan | undefined;
  directBinary: DirectBinaryEncoder | undefined;
  /** Binary: the declared type oid of each column at start-up (checked by every flush). */
  wireOids: Map<string, number> | undefined;
  /** Bumped each time the encoders are chosen again from the catalog (an altered table). */
  gen: number;
}

export function registryTls(config: Config): RegistryTls | undefined {
  const ssl = config.schemaRegistry?.ssl;
  if (!ssl) return undefined;
  return {
    rejectUnauthorized: ssl.rejectUnauthorized,
    ca: ssl.ca ? readTlsFile(ssl.ca, 'schemaRegistry.ssl.ca') : undefined,
    cert: ssl.cert ? readTlsFile(ssl.cert, 'schemaRegistry.ssl.cert') : undefined,
    key: ssl.key ? readTlsFile(ssl.key, 'schemaRegistry.ssl.key') : undefined,
  };
}

export function buildRoutes(config: Config): Map<string, RouteRuntime> {
  const registry = config.schemaRegistry
    ? new RegistryClient({
        url: config.schemaRegistry.url,
        username: config.schemaRegistry.username,
        password: config.schemaRegistry.password,
        timeoutMs: config.schemaRegistry.timeoutMs,
        tls: registryTls(config),
      })
    : undefined;
  const routes = new Map<string, RouteRuntime>();
  for (const [index, route] of config.routes.entries()) {
    // Parsed once, here, at start-up: a bad file or an undefined type name is a ConfigError.
    const reader = loadSchemaFile(route.schema, route.schemaReferences);
    const hasIds = Object.keys(route.schemaIds).length > 0;
    // Offline: ids listed in schemaIds come from files; with neither a registry nor a map,
    // every writer id is taken to be the reader schema itself.
    const writers: WriterSchemas =
      registry && !hasIds
        ? registry
        : new LocalSchemas(route.schemaIds, hasIds ? undefined : reader, route.schemaReferences);
    const { plan, direct } = encoders(reader, route, {});
    const reserved = plan.columns.filter((c) => c.startsWith('__pgsink_'));
    if (reserved.length)
      throw new ConfigError(
        `route ${route.topic}: column name${reserved.length > 1 ? 's' : ''} ${reserved.join(', ')} ${reserved.length > 1 ? 'are' : 'is'} reserved for pgsink's staging tables (__pgsink_*); map the field elsewhere with routes[].columns`,
      );
    routes.set(route.topic, {
      config: route,
      decoder: new RouteDecoder(reader, writers),
      plan,
      direct,
      keyAs: 'text',
      table: quoteQualified(route.table),
      columnList: plan.columns.map(quoteIdent).join(', '),
      upsert:
        route.mode === 'upsert'
          ? buildUpsertPlan(index, route.table, plan.columns, route.keyColumns ?? [])
          : undefined,
      isolation: buildIsolationPlan(
        index,
        route.table,
        plan.columns,
        route.mode === 'upsert' ? (route.keyColumns ?? []) : undefined,
      ),
      format: 'text',
      binary: undefined,
      directBinary: undefined,
      wireOids: undefined,
      gen: 0,
    });
  }
  return routes;
}

function encoders(
  reader: avro.Type,
  route: RouteConfig,
  opts: ColumnOptions,
): { plan: ColumnPlan; direct: DirectLineEncoder | undefined } {
  return {
    plan: buildColumnPlan(reader, route, opts),
    direct:
      reader instanceof avro.types.RecordType
        ? buildDirectLineEncoder(reader, routeColumns(reader, route, opts), {
            upsert: route.mode === 'upsert',
          })
        : undefined,
  };
}

/**
 * Follows the target table's key column (types by column name, from the catalog at start-up):
 * a bytea column gets the Kafka key's bytes as they are; any other type gets the key as text,
 * which must then be well-formed UTF-8 without NUL (else the record is a dead letter).
 */
export function adaptToTable(route: RouteRuntime, columnTypes: ReadonlyMap<string, string>): void {
  const keyColumn = route.config.metadata.key;
  const keyAs = keyColumn && columnTypes.get(keyColumn) === 'bytea' ? 'bytea' : 'text';
  if (keyAs === route.keyAs) return;
  const { plan, direct } = encoders(route.decoder.readerType, route.config, { key: keyAs });
  route.plan = plan;
  route.direct = direct;
  route.keyAs = keyAs;
}

/**
 * Chooses the route's COPY format from its table's column types (src/sink/catalog.ts): binary
 * when every column has a binary writer and the route does not ask for text; text otherwise.
 * Returns why a route with copyFormat auto uses text (one line per column), or undefined.
 */
export function useCopyFormat(
  route: RouteRuntime,
  wire: ReadonlyMap<string, WireType>,
): string[] | undefined {
  route.format = 'text';
  route.binary = undefined;
  route.directBinary = undefined;
  route.wireOids = undefined;
  route.isolation = { ...route.isolation, stageTypes: undefined };
  if (route.config.copyFormat === 'text') return undefined;
  const reader = route.decoder.readerType;
  const choice = buildBinaryPlan(reader, route.config, wire, { key: route.keyAs });
  if ('unsupported' in choice) return choice.unsupported;
  const plan = choice.plan;
  route.format = 'binary';
  route.binary = plan;
  route.directBinary =
    reader instanceof avro.types.RecordType ? buildDirectBinaryEncoder(reader, plan) : undefined;
  route.wireOids = new Map(plan.columns.map((c) => [c.column.name, c.wire.declaredOid]));
  route.isolation = { ...route.isolation, stageTypes: plan.stageTypes };
  return undefined;
}
