// Connection options for every Postgres client pgsink opens (pool, replay, status, schema).
import type { ConnectionOptions } from 'node:tls';
import type pg from 'pg';
import type { Config } from '../config/schema.ts';
import { readTlsFile } from '../util/tls.ts';

const URL_SSL_PARAMS = ['sslmode', 'sslrootcert', 'sslcert', 'sslkey', 'ssl'];

export function pgClientConfig(config: Config): pg.ClientConfig {
  const { url, ssl, connectionTimeoutMs } = config.postgres;
  if (!ssl) return { connectionString: url, connectionTimeoutMillis: connectionTimeoutMs };
  // node-postgres lets SSL parameters in the URL override the `ssl` option; the config's
  // postgres.ssl is the one source of truth when it is given.
  const u = new URL(url);
  for (const p of URL_SSL_PARAMS) u.searchParams.delete(p);
  let tls: ConnectionOptions | false = false;
  if (ssl.mode !== 'disable') {
    tls = { rejectUnauthorized: ssl.mode !== 'require' };
    if (ssl.ca) tls.ca = readTlsFile(ssl.ca, 'postgres.ssl.ca');
    if (ssl.cert) tls.cert = readTlsFile(ssl.cert, 'postgres.ssl.cert');
    if (ssl.key) tls.key = readTlsFile(ssl.key, 'postgres.ssl.key');
    // verify-ca checks the chain but not the host name (libpq semantics).
    if (ssl.mode === 'verify-ca') tls.checkServerIdentity = () => undefined;
  }
  return { connectionString: u.toString(), connectionTimeoutMillis: connectionTimeoutMs, ssl: tls };
}
