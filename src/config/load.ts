// Loads the config file, applies PGSINK_* environment overrides, validates once, and turns
// every problem into a ConfigError that names the key, the bad value and the expected form.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { ConfigError } from '../util/errors.ts';
import { configSchema, type Config } from './schema.ts';

type Kind = 'string' | 'int' | 'number' | 'bool' | 'list';

/** Environment overrides: variable → config path. `<VAR>_FILE` reads the value from a file. */
const ENV_OVERRIDES: ReadonlyArray<readonly [string, readonly string[], Kind]> = [
  ['PGSINK_KAFKA_BROKERS', ['kafka', 'brokers'], 'list'],
  ['PGSINK_KAFKA_CLIENT_ID', ['kafka', 'clientId'], 'string'],
  ['PGSINK_KAFKA_GROUP_ID', ['kafka', 'groupId'], 'string'],
  ['PGSINK_KAFKA_FROM_BEGINNING', ['kafka', 'fromBeginning'], 'bool'],
  ['PGSINK_KAFKA_SESSION_TIMEOUT_MS', ['kafka', 'sessionTimeoutMs'], 'int'],
  ['PGSINK_KAFKA_HEARTBEAT_INTERVAL_MS', ['kafka', 'heartbeatIntervalMs'], 'int'],
  ['PGSINK_KAFKA_SASL_MECHANISM', ['kafka', 'sasl', 'mechanism'], 'string'],
  ['PGSINK_KAFKA_SASL_USERNAME', ['kafka', 'sasl', 'username'], 'string'],
  ['PGSINK_KAFKA_SASL_PASSWORD', ['kafka', 'sasl', 'password'], 'string'],
  ['PGSINK_KAFKA_SSL_CA', ['kafka', 'ssl', 'ca'], 'string'],
  ['PGSINK_KAFKA_SSL_CERT', ['kafka', 'ssl', 'cert'], 'string'],
  ['PGSINK_KAFKA_SSL_KEY', ['kafka', 'ssl', 'key'], 'string'],
  ['PGSINK_POSTGRES_URL', ['postgres', 'url'], 'string'],
  ['PGSINK_POSTGRES_SSL_MODE', ['postgres', 'ssl', 'mode'], 'string'],
  ['PGSINK_POSTGRES_SSL_CA', ['postgres', 'ssl', 'ca'], 'string'],
  ['PGSINK_POSTGRES_SCHEMA', ['postgres', 'schema'], 'string'],
  ['PGSINK_POSTGRES_POOL_SIZE', ['postgres', 'poolSize'], 'int'],
  ['PGSINK_SCHEMA_REGISTRY_URL', ['schemaRegistry', 'url'], 'string'],
  ['PGSINK_SCHEMA_REGISTRY_USERNAME', ['schemaRegistry', 'username'], 'string'],
  ['PGSINK_SCHEMA_REGISTRY_PASSWORD', ['schemaRegistry', 'password'], 'string'],
  ['PGSINK_SCHEMA_REGISTRY_SSL_CA', ['schemaRegistry', 'ssl', 'ca'], 'string'],
  ['PGSINK_BATCH_MAX_ROWS', ['batch', 'maxRows'], 'int'],
  ['PGSINK_BATCH_MAX_BYTES', ['batch', 'maxBytes'], 'int'],
  ['PGSINK_BATCH_LINGER_MS', ['batch', 'lingerMs'], 'int'],
  ['PGSINK_BACKPRESSURE_MAX_PARTITION_BYTES', ['backpressure', 'maxPartitionBytes'], 'int'],
  ['PGSINK_BACKPRESSURE_MAX_TOTAL_BYTES', ['backpressure', 'maxTotalBytes'], 'int'],
  ['PGSINK_BACKPRESSURE_MAX_CONCURRENT_FLUSHES', ['backpressure', 'maxConcurrentFlushes'], 'int'],
  ['PGSINK_RETRY_INITIAL_MS', ['retry', 'initialMs'], 'int'],
  ['PGSINK_RETRY_MAX_MS', ['retry', 'maxMs'], 'int'],
  ['PGSINK_SHUTDOWN_DEADLINE_MS', ['shutdown', 'deadlineMs'], 'int'],
  ['PGSINK_LOG_LEVEL', ['log', 'level'], 'string'],
  ['PGSINK_HTTP_PORT', ['http', 'port'], 'int'],
  ['PGSINK_HTTP_HOST', ['http', 'host'], 'string'],
];

/** Variables that start with PGSINK_ but are not overrides. */
const NOT_OVERRIDES = new Set(['PGSINK_CONFIG']);
const NOT_OVERRIDE_PREFIXES = ['PGSINK_TEST_', 'PGSINK_BENCH_', 'PGSINK_DEMO_'];

function coerce(name: string, raw: string, kind: Kind): unknown {
  switch (kind) {
    case 'string':
      return raw;
    case 'list':
      return raw
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
    case 'bool':
      if (/^(true|1|yes)$/i.test(raw)) return true;
      if (/^(false|0|no)$/i.test(raw)) return false;
      throw new ConfigError(`${name}=${JSON.stringify(raw)} is not a boolean; use true or false`);
    case 'int':
    case 'number': {
      const n = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(n) || (kind === 'int' && !Number.isInteger(n))) {
        throw new ConfigError(
          `${name}=${JSON.stringify(raw)} is not ${kind === 'int' ? 'an integer' : 'a number'}`,
        );
      }
      return n;
    }
  }
}

function setPath(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1]!] = value;
}

export function applyEnv(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): Record<string, unknown> {
  const known = new Map(ENV_OVERRIDES.map(([name, path, kind]) => [name, { path, kind }]));
  const out = structuredClone(raw);
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('PGSINK_') || value === undefined) continue;
    if (NOT_OVERRIDES.has(name) || NOT_OVERRIDE_PREFIXES.some((p) => name.startsWith(p))) continue;
    const isFile = name.endsWith('_FILE');
    const base = isFile ? name.slice(0, -'_FILE'.length) : name;
    const entry = known.get(base);
    if (!entry) {
      throw new ConfigError(
        `unknown environment variable ${name}; the overrides are ${[...known.keys()].join(', ')} (each also as <NAME>_FILE)`,
      );
    }
    let text = value;
    if (isFile) {
      try {
        text = readFileSync(value, 'utf8').trim();
      } catch (err) {
        throw new ConfigError(`${name}: cannot read ${value}: ${(err as Error).message}`, err);
      }
    }
    setPath(out, entry.path, coerce(name, text, entry.kind));
  }
  return out;
}

function describeValue(root: unknown, path: ReadonlyArray<PropertyKey>): string {
  let node: unknown = root;
  for (const key of path) {
    if (typeof node !== 'object' || node === null) return 'missing';
    node = (node as Record<PropertyKey, unknown>)[key];
  }
  if (node === undefined) return 'missing';
  const last = String(path[path.length - 1] ?? '');
  if (/pass|secret|token/i.test(last)) return REDACTED;
  if (/url/i.test(last) && typeof node === 'string') node = redactUrl(node);
  const text = JSON.stringify(node);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function formatPath(path: ReadonlyArray<PropertyKey>): string {
  return path.reduce<string>(
    (acc, key) => (typeof key === 'number' ? `${acc}[${key}]` : acc ? `${acc}.${String(key)}` : String(key)),
    '',
  );
}

export function formatIssues(issues: readonly z.core.$ZodIssue[], input: unknown, origin: string): string {
  const lines = issues.map((issue) => {
    const where = formatPath(issue.path) || '(top level)';
    if (issue.code === 'unrecognized_keys') {
      return `  ${where}: unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `'${k}'`).join(', ')}`;
    }
    const got = describeValue(input, issue.path);
    return `  ${where}: ${issue.message}${issue.code === 'custom' ? '' : ` (got ${got})`}`;
  });
  return `invalid configuration (${origin}):\n${lines.join('\n')}`;
}

export function parseConfig(raw: unknown, origin: string, baseDir: string): Config {
  const result = configSchema.safeParse(raw);
  if (!result.success) throw new ConfigError(formatIssues(result.error.issues, raw, origin));
  const config = result.data;
  // Schema paths are relative to the config file, so a config and its schemas move together.
  for (const route of config.routes) {
    route.schema = isAbsolute(route.schema) ? route.schema : resolve(baseDir, route.schema);
    for (const [id, file] of Object.entries(route.schemaIds)) {
      route.schemaIds[id] = isAbsolute(file) ? file : resolve(baseDir, file);
    }
  }
  return config;
}

export function loadConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): Config {
  let raw: Record<string, unknown> = {};
  let origin = 'environment';
  let baseDir = process.cwd();
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`, err);
    }
    let parsed: unknown;
    try {
      parsed = parseYaml(text);
    } catch (err) {
      throw new ConfigError(`config file ${file} is not valid YAML: ${(err as Error).message}`, err);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new ConfigError(`config file ${file} must hold a mapping at the top level`);
    }
    raw = parsed as Record<string, unknown>;
    origin = `${file} + environment`;
    baseDir = dirname(resolve(file));
  }
  return parseConfig(applyEnv(raw, env), origin, baseDir);
}

const REDACTED = '***';

/** A copy safe to log: passwords in URLs and secret fields are replaced. */
export function redactConfig(config: Config): unknown {
  const copy = structuredClone(config) as Config;
  copy.postgres.url = redactUrl(copy.postgres.url);
  if (copy.kafka.sasl) copy.kafka.sasl.password = REDACTED;
  if (copy.schemaRegistry) {
    copy.schemaRegistry.url = redactUrl(copy.schemaRegistry.url);
    if (copy.schemaRegistry.password !== undefined) copy.schemaRegistry.password = REDACTED;
  }
  return copy;
}

export function redactUrl(url: string): string {
  // Mask user:password up to the last '@' first: an unencoded '#', '/' or '?' in the password
  // can make the URL parser see no password at all.
  url = url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/?#@]*):.*@/is, `$1:${REDACTED}@`);
  try {
    const u = new URL(url);
    if (u.password) u.password = REDACTED;
    for (const key of [...u.searchParams.keys()]) {
      if (/pass|secret|key|token/i.test(key)) u.searchParams.set(key, REDACTED);
    }
    return u.toString();
  } catch {
    return url.replace(/\/\/([^:/@]+):[^@]*@/, `//$1:${REDACTED}@`);
  }
}
