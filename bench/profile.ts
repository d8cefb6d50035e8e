// Summarises a V8 .cpuprofile (node --cpu-prof): self time per function and per area
// (kafkajs, avsc, pg, pgsink's own code, GC, …), idle time left out.
//   node bench/profile.ts <file.cpuprofile> [top]
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  /** Sampled time, idle excluded, in milliseconds. */
  totalMs: number;
  idleMs: number;
  areas: Array<{ area: string; ms: number; share: number }>;
  top: Array<{ fn: string; where: string; area: string; ms: number; share: number }>;
}

function areaOf(f: CallFrame): string {
  const u = f.url;
  if (f.functionName === '(garbage collector)') return 'gc';
  if (f.functionName === '(program)') return 'v8/native (program)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(u)?.[1];
  if (pkg) {
    if (pkg === 'pg' || pkg.startsWith('pg-') || pkg === 'pgpass' || pkg === 'postgres-array') return 'pg';
    return pkg;
  }
  const src = /\/src\/([^/]+)\//.exec(u)?.[1];
  if (src) return `pgsink src/${src}`;
  if (u.includes('/bench/')) return 'bench harness';
  if (u.startsWith('wasm://')) return 'type stripping (amaro wasm, start-up only)';
  if (u.startsWith('node:')) return 'node internals';
  // No script: C++ builtins (utf8Slice, writeBuffer, …) and code compiled at run time, such as
  // avsc's generated readers (readBenchOrder).
  if (u === '') return 'no source (builtins, generated readers)';
  return 'other';
}

const repoRoot = fileURLToPath(new URL('..', import.meta.url));

/** node_modules/<pkg>/… for dependencies, a repository-relative path for our code. */
function shortPath(url: string): string {
  const path = url.replace(/^file:\/\//, '');
  const nm = path.lastIndexOf('/node_modules/');
  if (nm >= 0) return path.slice(nm + 1);
  return path.startsWith(repoRoot) ? path.slice(repoRoot.length) : path;
}

export function summariseProfile(path: string, topN = 15): ProfileSummary {
  const p = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  let idle = 0;
  let total = 0;
  const fns = new Map<string, { fn: string; where: string; area: string; us: number }>();
  const areas = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const f = byId.get(id)!.callFrame;
    if (f.functionName === '(idle)') {
      idle += us;
      continue;
    }
    total += us;
    const area = areaOf(f);
    areas.set(area, (areas.get(area) ?? 0) + us);
    const file = shortPath(f.url);
    const where = file ? `${file}:${f.lineNumber + 1}` : '';
    const key = `${f.functionName}@${where}`;
    const e = fns.get(key) ?? { fn: f.functionName || '(anonymous)', where, area, us: 0 };
    e.us += us;
    fns.set(key, e);
  }
  const share = (us: number) => (total > 0 ? us / total : 0);
  return {
    totalMs: total / 1000,
    idleMs: idle / 1000,
    areas: [...areas]
      .sort((a, b) => b[1] - a[1])
      .map(([area, us]) => ({ area, ms: us / 1000, share: share(us) })),
    top: [...fns.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, topN)
      .map((e) => ({ fn: e.fn, where: e.where, area: e.area, ms: e.us / 1000, share: share(e.us) })),
  };
}

export function formatProfile(s: ProfileSummary): string[] {
  const pct = (x: number) => `${(x * 100).toFixed(1).padStart(5)}%`;
  const lines = [
    `cpu profile: ${(s.totalMs / 1000).toFixed(2)} s on CPU (idle ${(s.idleMs / 1000).toFixed(2)} s left out)`,
    '  by area:',
  ];
  for (const a of s.areas) lines.push(`    ${pct(a.share)}  ${a.area}`);
  lines.push('  top functions by self time:');
  for (const f of s.top) lines.push(`    ${pct(f.share)}  ${f.fn}  ${f.where}  [${f.area}]`);
  return lines;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: node bench/profile.ts <file.cpuprofile> [top]\n');
    process.exit(2);
  }
  for (const l of formatProfile(summariseProfile(file, Number(process.argv[3] ?? 25))))
    process.stdout.write(`${l}\n`);
}
