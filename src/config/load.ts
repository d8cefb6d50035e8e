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
  ['PGSINK_KAFKA_CLIENT', ['kafka', 'client'], 'string'],
  ['PGSINK_KAFKA_GROUP_PROTOCOL', ['kafka', 'groupProtocol'], 'string'],
  ['PGSINK_KAFKA_GROUP_INSTANCE_ID', ['kafka', 'groupInstanceId'], 'string'],
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
  ['PGSINK_BATCH_ADAPTIVE_ROWS', ['batch', 'adaptiveRows'], 'bool'],
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

/**
 * The project's own PGSINK_* variables that are not configuration: the config file's path, the
 * launcher's and the Kafka client's switches, and whatever the tests, the benchmark, the demo
 * and the chaos target pass to the processes they start. They never stop a run.
 */
export const PROJECT_VARIABLES: readonly string[] = [
  'PGSINK_CONFIG',
  'PGSINK_FROM_SOURCE',
  'PGSINK_KAFKAJS_DECODER',
];
export const PROJECT_VARIABLE_PREFIXES: readonly string[] = [
  'PGSINK_TEST_',
  'PGSINK_BENCH_',
  'PGSINK_DEMO_',
  'PGSINK_CHAOS_',
];

/** Where configuration overrides live: PGSINK_<SECTION>_…, one per top-level config key. */
const CONFIG_SECTIONS = [
  'KAFKA',
  'POSTGRES',
  'SCHEMA_REGISTRY',
  'BATCH',
  'BACKPRESSURE',
  'RETRY',
  'SHUTDOWN',
  'HTTP',
  'LOG',
  'ROUTES',
].map((s) => `PGSINK_${s}_`);

/** Levenshtein distance, bounded: stops counting at `max + 1`. */
function editDistance(a: string, b: string, max: number): number {
  if (Math.abs(a.length - b.length) > max) return max + 1;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    let best = i;
    for (let j = 1; j <= b.length; j++) {
      const v = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      cur.push(v);
      if (v < best) best = v;
    }
    if (best > max) return max + 1;
    prev = cur;
  }
  return prev[b.length]!;
}

type EnvKind = { kind: 'override'; base: string; isFile: boolean } | { kind: 'project' } | { kind: 'other' };

/**
 * What a PGSINK_* variable is. An override names a configuration key; a project variable is
 * one of the above; an unknown one that looks like a configuration key — it is in a
 * configuration section, or within two edits of an override — is a typo (an error, with the
 * closest override as the suggestion); anything else is not pgsink's configuration and is
 * left alone (`pgsink check` notes it).
 */
function classifyEnv(name: string): EnvKind | { kind: 'typo'; suggestion: string | undefined } {
  if (PROJECT_VARIABLES.includes(name) || PROJECT_VARIABLE_PREFIXES.some((p) => name.startsWith(p)))
    return { kind: 'project' };
  const isFile = name.endsWith('_FILE');
  const base = isFile ? name.slice(0, -'_FILE'.length) : name;
  if (KNOWN.has(base)) return { kind: 'override', base, isFile };
  const closest = (within: number, among: Iterable<string>): string | undefined => {
    let suggestion: string | undefined;
    let best = within + 1;
    for (const known of among) {
      const d = editDistance(base, known, within);
      if (d < best) {
        best = d;
        suggestion = known;
      }
    }
    return suggestion;
  };
  const near = closest(2, KNOWN.keys());
  if (near) return { kind: 'typo', suggestion: near };
  const section = CONFIG_SECTIONS.find((p) => base.startsWith(p));
  if (!section) return { kind: 'other' };
  // In a section: a looser match among that section's keys (a missing _MS, a word left out).
  const inSection = [...KNOWN.keys()].filter((k) => k.startsWith(section));
  return { kind: 'typo', suggestion: closest(4, inSection) };
}

/** PGSINK_* variables that are neither overrides nor the project's own: ignored, said by check. */
export function ignoredEnv(env: NodeJS.ProcessEnv): string[] {
  return Object.keys(env)
    .filter((name) => name.startsWith('PGSINK_') && env[name] !== undefined)
    .filter((name) => classifyEnv(name).kind === 'other')
    .sort();
}

const KNOWN = new Map(ENV_OVERRIDES.map(([name, path, kind]) => [name, { path, kind }]));

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
  const out = structuredClone(raw);
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('PGSINK_') || value === undefined) continue;
    const what = classifyEnv(name);
    if (what.kind === 'project' || what.kind === 'other') continue;
    if (what.kind === 'typo') {
      const hint = what.suggestion ? `did you mean ${what.suggestion}? ` : '';
      throw new ConfigError(
        `unknown environment variable ${name}; ${hint}the overrides are ${[...KNOWN.keys()].join(', ')} (each also as <NAME>_FILE)`,
      );
    }
    const { isFile } = what;
    const entry = KNOWN.get(what.base)!;
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
    route.schemaReferences = route.schemaReferences.map((f) => (isAbsolute(f) ? f : resolve(baseDir, f)));
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
