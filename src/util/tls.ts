// Reads TLS files named in the config, with errors that name the file and the key.
import { readFileSync } from 'node:fs';
import { ConfigError } from './errors.ts';

export function readTlsFile(path: string, key: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`${key}: cannot read ${path}: ${(err as Error).message}`, err);
  }
}
