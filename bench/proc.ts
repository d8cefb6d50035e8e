// Linux /proc readings for the benchmark: CPU seconds of a process or a group of processes,
// resident memory, which process listens on a port, and a description of the machine.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { availableParallelism, totalmem } from 'node:os';

let clkTck: number | undefined;
function ticksPerSecond(): number {
  if (clkTck === undefined) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

interface Stat {
  comm: string;
  ppid: number;
  /** utime + stime, in seconds. */
  own: number;
  /** cutime + cstime (children that exited and were waited for), in seconds. */
  children: number;
}

function readStat(pid: number): Stat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name is in parentheses and may itself contain spaces and parentheses.
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  const comm = text.slice(open + 1, close);
  const f = text.slice(close + 2).split(' ');
  // f[0] is field 3 (state): utime is field 14, stime 15, cutime 16, cstime 17.
  const n = (field: number) => Number(f[field - 3]);
  const hz = ticksPerSecond();
  return { comm, ppid: n(4), own: (n(14) + n(15)) / hz, children: (n(16) + n(17)) / hz };
}

/** CPU seconds (user + system) a process has used so far; undefined when it is gone. */
export function cpuSeconds(pid: number): number | undefined {
  return readStat(pid)?.own;
}

function allPids(): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number);
}

/**
 * CPU seconds of every process with this command name, plus what their exited children used
 * (through the parents' cutime/cstime), so the difference of two readings also counts the
 * backends and workers that ended in between.
 */
export function cpuSecondsOfAll(comm: string): { seconds: number; processes: number } {
  const stats = new Map<number, Stat>();
  for (const pid of allPids()) {
    const s = readStat(pid);
    if (s && s.comm === comm) stats.set(pid, s);
  }
  let seconds = 0;
  for (const s of stats.values()) seconds += s.own;
  // Only the roots (the postmaster) reap the group's children.
  for (const s of stats.values()) if (!stats.has(s.ppid)) seconds += s.children;
  return { seconds, processes: stats.size };
}

/** Resident set size and its peak (VmRSS, VmHWM) in MiB; undefined when the process is gone. */
export function memoryOf(pid: number): { rssMiB: number; peakMiB: number } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0);
  return { rssMiB: kb('VmRSS') / 1024, peakMiB: kb('VmHWM') / 1024 };
}

/** The process listening on a local TCP port (needs permission to read other processes' fds). */
export function listeningPid(port: number): number | undefined {
  const inodes = new Set<string>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10) continue;
      const local = cols[1]!;
      const state = cols[3];
      if (state === '0A' && parseInt(local.slice(local.lastIndexOf(':') + 1), 16) === port)
        inodes.add(cols[9]!);
    }
  }
  if (inodes.size === 0) return undefined;
  for (const pid of allPids()) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m && inodes.has(m[1]!)) return pid;
      } catch {
        // the fd closed while we looked
      }
    }
  }
  return undefined;
}

export function cmdlineOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
  } catch {
    return '';
  }
}

export function commOf(pid: number): string | undefined {
  return readStat(pid)?.comm;
}

export interface MachineInfo {
  nproc: number;
  cpuModel: string;
  memoryGiB: number;
  kernel: string;
}

export function machineInfo(): MachineInfo {
  let cpuModel = 'unknown';
  try {
    cpuModel =
      /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? 'unknown';
  } catch {
    // not Linux
  }
  let kernel = 'unknown';
  try {
    kernel = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim();
  } catch {
    // not Linux
  }
  return { nproc: availableParallelism(), cpuModel, memoryGiB: totalmem() / 1024 ** 3, kernel };
}
