// deploy/: the kustomize base and overlay render (test/support/kustomize.ts, checked against
// `kubectl kustomize`), every rendered object passes the Kubernetes (and KEDA CRD) schemas, and
// the invariants between the manifests, pgsink's own config validation and the container image
// hold. No cluster, no Docker engine.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import avro from 'avsc';
import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { loadConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import { all, kinds, only, parseQuantity, validateObject } from '../support/k8s-schema.ts';
import { renderKustomization, renderWithRealKustomize, type RenderedObject } from '../support/kustomize.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const BASE = 'deploy/k8s/base';
const EXAMPLE = 'deploy/k8s/overlays/example';

/** The image's WORKDIR (deploy/Dockerfile): the repository's schemas/ is at /app/schemas. */
const APP_DIR = '/app';
/** pgsink's one HTTP server (config key http.port): /metrics, /healthz, /readyz. */
const HTTP_PORT = 9464;
/** After the drain deadline pgsink still leaves the group, closes the pool and exits. */
const EXIT_MARGIN_MS = 10_000;
/** Node, V8 code and libraries, besides the V8 heap cap and the buffered records. */
const RUNTIME_OVERHEAD_BYTES = 64 * 2 ** 20;
/** The steady RSS the resources are sized for. */
const EXPECTED_RSS_BYTES = 256 * 2 ** 20;
/** Stand-ins for the Secrets a cluster holds, by `secret/key`. */
const FAKE_SECRETS: Readonly<Record<string, string>> = {
  'pgsink-postgres/url': 'postgres://pgsink:fake-password@postgres.test:5432/pgsink',
  'pgsink-schema-registry/password': 'fake-registry-password',
};

interface Target {
  objects: RenderedObject[];
  deployment: IDeployment;
  /** pgsink's validated config, loaded the way the pod loads it (on first use). */
  readonly config: Config;
}

const scratchDirs: string[] = [];
const targets = new Map<string, Target>();

afterAll(() => {
  for (const dir of scratchDirs) rmSync(dir, { recursive: true, force: true });
});

function target(dir: string): Target {
  let t = targets.get(dir);
  if (!t) {
    const objects = renderKustomization(dir);
    const deployment = only(objects, kinds.Deployment);
    let config: Config | undefined;
    t = {
      objects,
      deployment,
      get config() {
        return (config ??= loadConfigAsPod(objects, deployment));
      },
    };
    targets.set(dir, t);
  }
  return t;
}

function podSpec(d: IDeployment): IPodSpec {
  const spec = d.spec?.template.spec;
  if (!spec) throw new Error('Deployment without a pod spec');
  return spec;
}

function pgsinkContainer(d: IDeployment): IContainer {
  const c = podSpec(d).containers.find((x) => x.name === 'pgsink');
  if (!c) throw new Error('no container named pgsink');
  return c;
}

function fakeSecret(name: string | undefined, key: string): string {
  const value = FAKE_SECRETS[`${name}/${key}`];
  if (value === undefined)
    throw new Error(`the pod reads Secret ${name} key ${key}: add a stand-in to FAKE_SECRETS`);
  return value;
}

function configMapData(objects: readonly RenderedObject[], name: string | undefined): Record<string, string> {
  const cm = all(objects, kinds.ConfigMap).find((c) => c.metadata?.name === name);
  if (!cm) throw new Error(`the pod mounts ConfigMap ${name}, which is not rendered`);
  return cm.data ?? {};
}

/**
 * Lays the pod's mounts out under a scratch folder (the ConfigMap's files, a stand-in for each
 * Secret key), builds the container's environment (a `_FILE` path points into the scratch
 * folder) and runs pgsink's own loadConfig on the file the container args name: the same
 * file + env + validation path the process takes at start-up.
 */
function loadConfigAsPod(objects: readonly RenderedObject[], deployment: IDeployment): Config {
  const scratch = mkdtempSync(join(tmpdir(), 'pgsink-deploy-'));
  scratchDirs.push(scratch);
  const inPod = (path: string) => join(scratch, path);
  const container = pgsinkContainer(deployment);
  const volumes = new Map((podSpec(deployment).volumes ?? []).map((v) => [v.name, v]));
  const write = (file: string, text: string) => {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, text);
  };
  for (const mount of container.volumeMounts ?? []) {
    const volume = volumes.get(mount.name);
    if (!volume) throw new Error(`volumeMount ${mount.name} names no volume`);
    const dir = inPod(mount.mountPath);
    mkdirSync(dir, { recursive: true });
    if (volume.configMap) {
      const data = configMapData(objects, volume.configMap.name);
      const items = volume.configMap.items ?? Object.keys(data).map((key) => ({ key, path: key }));
      for (const { key, path } of items) write(join(dir, path), data[key] ?? '');
    } else if (volume.projected || volume.secret) {
      const sources = volume.projected
        ? (volume.projected.sources ?? []).map((s) => ({ name: s.secret?.name, items: s.secret?.items }))
        : [{ name: volume.secret?.secretName, items: volume.secret?.items }];
      for (const { name, items } of sources) {
        if (!items) throw new Error(`volume ${mount.name}: list the Secret keys as items`);
        for (const { key, path } of items) write(join(dir, path), fakeSecret(name, key));
      }
    } else if (!volume.emptyDir) {
      throw new Error(`volume ${mount.name}: kind not simulated here`);
    }
  }
  const env: NodeJS.ProcessEnv = {};
  for (const e of container.env ?? []) {
    if (e.value !== undefined) env[e.name] = e.name.endsWith('_FILE') ? inPod(e.value) : e.value;
    else if (e.valueFrom?.secretKeyRef)
      env[e.name] = fakeSecret(e.valueFrom.secretKeyRef.name, e.valueFrom.secretKeyRef.key);
    else throw new Error(`env ${e.name}: source not simulated here`);
  }
  const args = container.args ?? [];
  const configPath = args[args.indexOf('--config') + 1];
  if (!args.includes('--config') || !configPath) throw new Error('the container args name no --config file');
  return loadConfig(inPod(configPath), env);
}

function portNumber(container: IContainer, port: string | number): number {
  if (typeof port === 'number') return port;
  const named = container.ports?.find((p) => p.name === port);
  if (!named) throw new Error(`no container port named ${port}`);
  return named.containerPort;
}

function rawConfigs(objects: readonly RenderedObject[]): Array<Record<string, unknown>> {
  return all(objects, kinds.ConfigMap)
    .filter((c) => c.data?.['pgsink.yaml'] !== undefined)
    .map((c) => parseYaml(c.data!['pgsink.yaml']!) as Record<string, unknown>);
}

function exampleSecrets(): Map<string, Record<string, string>> {
  const text = readFileSync(join(root, EXAMPLE, 'secret.example.yaml'), 'utf8');
  const out = new Map<string, Record<string, string>>();
  for (const doc of parseAllDocuments(text)) {
    const s = doc.toJS() as { kind: string; metadata: { name: string }; stringData?: Record<string, string> };
    expect(s.kind).toBe('Secret');
    out.set(s.metadata.name, s.stringData ?? {});
  }
  return out;
}

describe.each([
  { name: 'base', dir: BASE },
  { name: 'overlay example', dir: EXAMPLE },
])('deploy/k8s $name', ({ dir }) => {
  it('renders the workload, and every object is valid against its Kubernetes schema', () => {
    const { objects } = target(dir);
    expect(objects.map((o) => o.kind)).toEqual(
      expect.arrayContaining(['ServiceAccount', 'ConfigMap', 'Service', 'Deployment', 'PodDisruptionBudget']),
    );
    for (const o of objects) validateObject(o);
  });

  it("the ConfigMap's pgsink.yaml passes pgsink's own config validation with the env and Secret files of the pod", () => {
    const { config } = target(dir);
    // postgres.url is required and the file holds none: it came from the mounted Secret.
    expect(config.postgres.url).toBe(FAKE_SECRETS['pgsink-postgres/url']);
    expect(config.routes.length).toBeGreaterThan(0);
  });

  it('the config mount, the container args and the generated ConfigMap name agree', () => {
    const { objects, deployment } = target(dir);
    const c = pgsinkContainer(deployment);
    expect(c.args).toEqual(['run', '--config', '/etc/pgsink/pgsink.yaml']);
    const mount = c.volumeMounts?.find((m) => m.mountPath === '/etc/pgsink');
    const volume = podSpec(deployment).volumes?.find((v) => v.name === mount?.name);
    const cm = only(objects, kinds.ConfigMap);
    // kustomize's hash suffix: a config change rolls the pods, and the reference follows it.
    expect(cm.metadata?.name).toMatch(/^pgsink-config-[a-z0-9]{10}$/);
    expect(volume?.configMap?.name).toBe(cm.metadata?.name);
    expect(Object.keys(cm.data ?? {})).toEqual(['pgsink.yaml']);
  });

  it('keeps secrets out: no Secret object, no credentials in the ConfigMap, only Secret references', () => {
    const { objects, deployment } = target(dir);
    expect(all(objects, kinds.Secret)).toEqual([]);
    for (const raw of rawConfigs(objects)) {
      expect((raw['postgres'] as Record<string, unknown>)['url']).toBeUndefined();
      expect((raw['schemaRegistry'] as Record<string, unknown> | undefined)?.['password']).toBeUndefined();
    }
    // No URL with a password anywhere in the rendered output.
    expect(JSON.stringify(objects)).not.toMatch(/[a-z]+:\/\/[^\s/:@"]+:[^\s/@"]+@/);
    for (const e of pgsinkContainer(deployment).env ?? []) {
      if (/PASSWORD|POSTGRES_URL$/.test(e.name)) expect(e.value, e.name).toBeUndefined();
    }
  });

  it('every Secret the pod reads is documented in the overlay secret.example.yaml, with placeholders only', () => {
    const { deployment } = target(dir);
    const examples = exampleSecrets();
    const spec = podSpec(deployment);
    const refs: Array<[string | undefined, string]> = [
      ...(spec.volumes ?? []).flatMap((v) =>
        (v.projected?.sources ?? []).flatMap((s) =>
          (s.secret?.items ?? []).map((i): [string | undefined, string] => [s.secret?.name, i.key]),
        ),
      ),
      ...(pgsinkContainer(deployment).env ?? []).flatMap((e): Array<[string | undefined, string]> =>
        e.valueFrom?.secretKeyRef ? [[e.valueFrom.secretKeyRef.name, e.valueFrom.secretKeyRef.key]] : [],
      ),
    ];
    expect(refs.length).toBeGreaterThan(0);
    for (const [name, key] of refs) {
      expect(examples.get(name ?? '')?.[key], `${name}/${key}`).toMatch(/CHANGE_ME/);
    }
  });

  it('each route schema is a file under /app/schemas that the image ships from the repository schemas/', () => {
    const { config } = target(dir);
    for (const route of config.routes) {
      for (const file of [route.schema, ...Object.values(route.schemaIds)]) {
        expect(file.startsWith(`${APP_DIR}/schemas/`), file).toBe(true);
        const inRepo = join(root, relative(APP_DIR, file));
        expect(existsSync(inRepo), `${file} -> ${inRepo}`).toBe(true);
        expect(() => avro.Type.forSchema(JSON.parse(readFileSync(inRepo, 'utf8')))).not.toThrow();
      }
    }
  });

  it('the termination grace period outlasts shutdown.deadlineMs with room to exit', () => {
    const { deployment, config } = target(dir);
    const grace = podSpec(deployment).terminationGracePeriodSeconds;
    expect(grace).toBe(45);
    expect(grace! * 1000).toBeGreaterThanOrEqual(config.shutdown.deadlineMs + EXIT_MARGIN_MS);
  });

  it('probes /healthz (liveness, startup) and /readyz (readiness) on the port named http, 9464', () => {
    const c = pgsinkContainer(target(dir).deployment);
    expect(c.ports).toEqual([{ name: 'http', containerPort: HTTP_PORT, protocol: 'TCP' }]);
    const probes = [
      [c.livenessProbe, '/healthz'],
      [c.startupProbe, '/healthz'],
      [c.readinessProbe, '/readyz'],
    ] as const;
    for (const [probe, path] of probes) {
      expect(probe?.httpGet?.path).toBe(path);
      expect(portNumber(c, probe!.httpGet!.port)).toBe(HTTP_PORT);
      expect(probe?.httpGet?.scheme ?? 'HTTP').toBe('HTTP');
    }
  });

  it('runs as non-root with a read-only root filesystem, no capabilities and the runtime seccomp profile', () => {
    const { deployment } = target(dir);
    const pod = podSpec(deployment);
    const c = pgsinkContainer(deployment);
    expect(pod.securityContext?.runAsNonRoot).toBe(true);
    expect(pod.securityContext?.runAsUser).toBeGreaterThan(0);
    expect(pod.securityContext?.seccompProfile?.type).toBe('RuntimeDefault');
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(c.securityContext).toMatchObject({
      runAsNonRoot: true,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      privileged: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(c.securityContext?.capabilities?.add).toBeUndefined();
    // The only writable path is an emptyDir /tmp.
    const writable = (c.volumeMounts ?? []).filter((m) => m.readOnly !== true);
    expect(writable.map((m) => m.mountPath)).toEqual(['/tmp']);
    expect(pod.volumes?.find((v) => v.name === writable[0]!.name)?.emptyDir).toBeDefined();
  });

  it('resources fit a ~256 MB process, and the heap cap plus full record buffers fit the memory limit', () => {
    const { deployment, config } = target(dir);
    const c = pgsinkContainer(deployment);
    const req = c.resources?.requests ?? {};
    const lim = c.resources?.limits ?? {};
    expect(parseQuantity(req['memory']!)).toBeGreaterThanOrEqual(EXPECTED_RSS_BYTES);
    expect(parseQuantity(lim['memory']!)).toBeGreaterThan(parseQuantity(req['memory']!));
    expect(parseQuantity(req['cpu']!)).toBeGreaterThan(0);
    expect(parseQuantity(lim['cpu']!)).toBeGreaterThanOrEqual(parseQuantity(req['cpu']!));
    const heapMb = /--max-old-space-size=(\d+)/.exec(
      c.env?.find((e) => e.name === 'NODE_OPTIONS')?.value ?? '',
    );
    expect(heapMb, 'NODE_OPTIONS caps the V8 heap').not.toBeNull();
    const worstCase =
      Number(heapMb![1]) * 2 ** 20 + config.backpressure.maxTotalBytes + RUNTIME_OVERHEAD_BYTES;
    expect(worstCase).toBeLessThanOrEqual(parseQuantity(lim['memory']!));
  });

  it('the Service exposes /metrics on 9464 and, like the PodDisruptionBudget (maxUnavailable 1), selects the pods', () => {
    const { objects, deployment } = target(dir);
    const podLabels = deployment.spec?.template.metadata?.labels ?? {};
    expect(podLabels).toMatchObject(deployment.spec?.selector.matchLabels ?? { missing: 'selector' });
    const svc = only(objects, kinds.Service);
    expect(podLabels).toMatchObject(svc.spec?.selector ?? { missing: 'selector' });
    const port = svc.spec?.ports?.[0];
    expect(port?.port).toBe(HTTP_PORT);
    expect(portNumber(pgsinkContainer(deployment), port!.targetPort!)).toBe(HTTP_PORT);
    expect(svc.metadata?.annotations).toMatchObject({
      'prometheus.io/scrape': 'true',
      'prometheus.io/port': String(HTTP_PORT),
      'prometheus.io/path': '/metrics',
    });
    const pdb = only(objects, kinds.PodDisruptionBudget);
    expect(pdb.spec?.maxUnavailable).toBe(1);
    expect(pdb.spec?.minAvailable).toBeUndefined();
    expect(podLabels).toMatchObject(pdb.spec?.selector?.matchLabels ?? { missing: 'selector' });
    expect(podSpec(deployment).serviceAccountName).toBe(only(objects, kinds.ServiceAccount).metadata?.name);
  });
});

describe('deploy/k8s overlay example: namespace, image and KEDA', () => {
  it('puts everything in its namespace and pins an image tag', () => {
    const { objects, deployment } = target(EXAMPLE);
    const ns = only(objects, kinds.Namespace);
    expect(ns.metadata?.labels?.['pod-security.kubernetes.io/enforce']).toBe('restricted');
    for (const o of objects.filter((x) => x.kind !== 'Namespace')) {
      expect(o.metadata?.namespace, `${o.kind} ${o.metadata?.name}`).toBe(ns.metadata?.name);
    }
    const image = pgsinkContainer(deployment).image ?? '';
    expect(image).toMatch(/^[^:@]+(:[\w.-]+|@sha256:[a-f0-9]{64})$/);
    expect(image).not.toMatch(/:latest$/);
  });

  it('has a KEDA ScaledObject that is valid against the KEDA CRD schema and scales the Deployment', () => {
    const { objects, deployment } = target(EXAMPLE);
    const so = only(objects, kinds.ScaledObject);
    expect(so.spec.scaleTargetRef).toMatchObject({ name: deployment.metadata?.name });
    expect(so.spec.scaleTargetRef.kind ?? 'Deployment').toBe('Deployment');
    // KEDA owns the count: a replicas field would reset it on every `kubectl apply`.
    expect(deployment.spec?.replicas).toBeUndefined();
  });

  it('never scales past the partition count documented on the ScaledObject, nor allows idle consumers', () => {
    const so = only(target(EXAMPLE).objects, kinds.ScaledObject);
    const partitions = Number(so.metadata?.annotations?.['pgsink/topic-partitions']);
    expect(Number.isInteger(partitions) && partitions > 0, 'pgsink/topic-partitions annotation').toBe(true);
    expect(partitions).toBe(6);
    const { minReplicaCount = 0, maxReplicaCount } = so.spec;
    expect(maxReplicaCount).toBeDefined();
    expect(maxReplicaCount!).toBeLessThanOrEqual(partitions);
    expect(minReplicaCount).toBeGreaterThanOrEqual(0);
    expect(minReplicaCount).toBeLessThanOrEqual(maxReplicaCount!);
    for (const t of so.spec.triggers) expect(t.metadata['allowIdleConsumers'] ?? 'false').toBe('false');
  });

  it("its kafka trigger watches pgsink's group, brokers and every routed topic, with pgsink's offset reset", () => {
    const { objects, config } = target(EXAMPLE);
    const so = only(objects, kinds.ScaledObject);
    const triggers = so.spec.triggers.filter((t) => t.type === 'kafka');
    expect(triggers.length).toBe(so.spec.triggers.length);
    for (const t of triggers) {
      const m = t.metadata;
      expect(m['consumerGroup']).toBe(config.kafka.groupId);
      expect(m['bootstrapServers']?.split(',').sort()).toEqual([...config.kafka.brokers].sort());
      expect(m['lagThreshold']).toMatch(/^[1-9]\d*$/);
      expect(m['offsetResetPolicy']).toBe(config.kafka.fromBeginning ? 'earliest' : 'latest');
    }
    const watched = new Set(triggers.map((t) => t.metadata['topic']));
    for (const route of config.routes) expect(watched.has(route.topic), route.topic).toBe(true);
  });

  it('reads the registry password from a Secret through the env override', () => {
    const { config } = target(EXAMPLE);
    expect(config.schemaRegistry?.password).toBe(FAKE_SECRETS['pgsink-schema-registry/password']);
  });

  it('does not apply secret.example.yaml', () => {
    const k = parseYaml(readFileSync(join(root, EXAMPLE, 'kustomization.yaml'), 'utf8')) as {
      resources: string[];
    };
    expect(k.resources).not.toContain('secret.example.yaml');
  });
});

describe('the test renderer (test/support/kustomize.ts) is faithful to kustomize', () => {
  const byId = (objects: readonly RenderedObject[]) =>
    [...objects].sort((a, b) => {
      const id = (o: RenderedObject) => `${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
      return id(a).localeCompare(id(b));
    });

  it.each([BASE, EXAMPLE])('renders %s exactly as kubectl kustomize does, object for object', (dir) => {
    const real = renderWithRealKustomize(dir);
    expect(real.length).toBeGreaterThanOrEqual(5);
    expect(byId(renderKustomization(dir))).toEqual(byId(real));
  });

  it('rejects a kustomization feature it does not implement instead of ignoring it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pgsink-kustomize-'));
    scratchDirs.push(dir);
    writeFileSync(join(dir, 'kustomization.yaml'), 'resources: []\nnamePrefix: staging-\n');
    expect(() => renderKustomization(dir)).toThrow(/field 'namePrefix' is not supported/);
  });
});

describe('manifest schema validation catches broken objects', () => {
  const broken = (
    dir: string,
    kind: string,
    mutate: (o: Record<string, unknown>) => void,
  ): RenderedObject => {
    const o = structuredClone(target(dir).objects.find((x) => x.kind === kind)!);
    mutate(o);
    return o;
  };

  it('rejects a wrong type, a missing required field and an unknown kind', () => {
    const replicas = broken(BASE, 'Deployment', (o) => {
      (o['spec'] as Record<string, unknown>)['replicas'] = 'two';
    });
    expect(() => validateObject(replicas)).toThrow(/spec\/replicas must be integer/);
    const noName = broken(BASE, 'Deployment', (o) => {
      const spec = o['spec'] as { template: { spec: { containers: Array<Record<string, unknown>> } } };
      delete spec.template.spec.containers[0]!['name'];
    });
    expect(() => validateObject(noName)).toThrow(/containers\/0 must have required property name/);
    const unknown: RenderedObject = { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' } };
    expect(() => validateObject(unknown)).toThrow(/no schema for example.com\/v1 Widget/);
  });

  it("rejects a ScaledObject that breaks KEDA's CRD schema", () => {
    const so = broken(EXAMPLE, 'ScaledObject', (o) => {
      (o['spec'] as Record<string, unknown>)['maxReplicaCount'] = '6';
    });
    expect(() => validateObject(so)).toThrow(/maxReplicaCount must be integer/);
    const noTarget = broken(EXAMPLE, 'ScaledObject', (o) => {
      delete (o['spec'] as Record<string, unknown>)['scaleTargetRef'];
    });
    expect(() => validateObject(noTarget)).toThrow(/scaleTargetRef/);
  });
});

interface Instruction {
  op: string;
  args: string;
}
interface Stage {
  name: string;
  from: string;
  body: Instruction[];
}

/** Dockerfile → stages of instructions (continuations joined, comments dropped). */
function dockerStages(text: string): { args: Instruction[]; stages: Stage[] } {
  const lines = text.replace(/\\\n/g, ' ').split('\n');
  const args: Instruction[] = [];
  const stages: Stage[] = [];
  for (const line of lines.map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))) {
    const [, op, rest] = /^(\w+)\s+(.*)$/.exec(line) ?? [];
    if (!op || rest === undefined) throw new Error(`cannot read Dockerfile line: ${line}`);
    const ins = { op: op.toUpperCase(), args: rest.replace(/\s+/g, ' ') };
    if (ins.op === 'FROM') {
      const [, from, name] = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args) ?? [];
      stages.push({ name: name ?? String(stages.length), from: from!, body: [] });
    } else if (stages.length === 0) {
      args.push(ins);
    } else {
      stages[stages.length - 1]!.body.push(ins);
    }
  }
  return { args, stages };
}

describe('deploy/Dockerfile and .dockerignore', () => {
  const { args, stages } = dockerStages(readFileSync(join(root, 'deploy/Dockerfile'), 'utf8'));
  const runtime = stages[stages.length - 1]!;
  const find = (stage: Stage, op: string) => stage.body.filter((i) => i.op === op).map((i) => i.args);

  it('builds every stage on the slim Node image of .nvmrc', () => {
    const major = readFileSync(join(root, '.nvmrc'), 'utf8').trim().split('.')[0];
    const image = args
      .find((a) => a.op === 'ARG' && a.args.startsWith('NODE_IMAGE='))
      ?.args.slice('NODE_IMAGE='.length);
    expect(image).toMatch(new RegExp(`^node:${major}-[a-z]+-slim$`));
    expect(stages.map((s) => s.from)).toEqual(stages.map(() => '${NODE_IMAGE}'));
    expect(stages.length).toBeGreaterThanOrEqual(2);
  });

  it('compiles with the dev dependencies and ships production dependencies only', () => {
    const build = stages.find((s) => find(s, 'RUN').some((r) => r.includes('npm run build')));
    expect(build, 'a stage runs npm run build').toBeDefined();
    expect(find(build!, 'RUN').some((r) => /npm ci(?!.*--omit=dev)/.test(r))).toBe(true);
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    expect(pkg.scripts['build']).toBe('tsc -p tsconfig.build.json');
    const tsBuild = JSON.parse(readFileSync(join(root, 'tsconfig.build.json'), 'utf8')) as {
      compilerOptions: { rootDir: string; outDir: string };
    };
    expect(tsBuild.compilerOptions).toMatchObject({ rootDir: 'src', outDir: 'dist' });
    expect(existsSync(join(root, 'src/cli/main.ts')), 'src/cli/main.ts compiles to dist/cli/main.js').toBe(
      true,
    );
    expect(find(runtime, 'COPY')).toContain(`--from=${build!.name} /src/dist ./dist`);

    const deps = stages.find((s) => find(s, 'RUN').some((r) => r.includes('npm ci --omit=dev')));
    expect(deps, 'a stage runs npm ci --omit=dev').toBeDefined();
    expect(deps).not.toBe(build);
    expect(find(runtime, 'COPY')).toContain(`--from=${deps!.name} /app/node_modules ./node_modules`);
    expect(find(runtime, 'RUN').join(' ')).not.toMatch(/npm (ci|install)/);
  });

  it('ships dist/, schemas/ and bin/ under /app, the paths the manifests use', () => {
    expect(find(runtime, 'WORKDIR')).toEqual([APP_DIR]);
    expect(find(runtime, 'COPY')).toEqual(
      expect.arrayContaining(['schemas ./schemas', 'bin ./bin', 'package.json ./']),
    );
    // dist/*.js are ES modules only because of the package.json beside them.
    expect((JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { type: string }).type).toBe(
      'module',
    );
  });

  it('runs as the non-root user the Deployment runs as, under tini, with the Deployment args as CMD', () => {
    const { deployment } = target(BASE);
    const pod = podSpec(deployment).securityContext;
    expect(find(runtime, 'USER')).toEqual([`${pod?.runAsUser}:${pod?.runAsGroup}`]);
    expect(find(runtime, 'RUN').join(' ')).toMatch(/apt-get install .*\btini\b/);
    const entrypoint = JSON.parse(find(runtime, 'ENTRYPOINT')[0]!) as string[];
    expect(entrypoint).toEqual(['/usr/bin/tini', '--', `${APP_DIR}/bin/pgsink`]);
    expect(JSON.parse(find(runtime, 'CMD')[0]!)).toEqual(pgsinkContainer(deployment).args);
    expect(find(runtime, 'EXPOSE')).toEqual([String(HTTP_PORT)]);
  });

  it('.dockerignore keeps local state out of the context but not what the build copies', () => {
    const ignored = readFileSync(join(root, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    expect(ignored).toEqual(
      expect.arrayContaining(['node_modules', '.tools', '.cache', '.stack', 'dist', '.git']),
    );
    const copied = [
      'package.json',
      'package-lock.json',
      '.npmrc',
      'tsconfig.json',
      'tsconfig.build.json',
      'src',
      'schemas',
      'bin',
    ];
    for (const path of copied) expect(ignored, path).not.toContain(path);
  });
});
