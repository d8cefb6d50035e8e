// Pure planning for `pgsink replay`: from watermarks, committed offsets and fences to the
// target offset of every partition, or an error that says what is wrong and what to do.
import type { Watermarks } from '../kafka/admin.ts';

export type ReplayTarget =
  | { kind: 'earliest' }
  | { kind: 'latest' }
  | { kind: 'datetime'; ms: number; iso: string }
  | { kind: 'offset'; offset: number };

export interface PartitionFacts {
  partition: number;
  watermarks: Watermarks;
  /** -1 when the group has not committed. */
  committed: number;
  /** undefined when pgsink has not written this partition. */
  fence: number | undefined;
  /** For datetime targets: the first offset at or after the time (high when none). */
  offsetForTime?: number | undefined;
}

export interface PlanRow {
  partition: number;
  committed: number;
  fence: number | undefined;
  /** Where the group resumes today: the fence when ahead of Kafka (Postgres is the truth). */
  current: number;
  target: number;
  /** Records that will be written again (negative: skipped forward). */
  replay: number;
}

export class ReplayPlanError extends Error {
  override name = 'ReplayPlanError';
}

export function planReplay(facts: readonly PartitionFacts[], target: ReplayTarget): PlanRow[] {
  return facts.map((f) => {
    const { low, high } = f.watermarks;
    let to: number;
    switch (target.kind) {
      case 'earliest':
        to = low;
        break;
      case 'latest':
        to = high;
        break;
      case 'offset':
        if (target.offset < low || target.offset > high) {
          throw new ReplayPlanError(
            `offset ${target.offset} is out of range for partition ${f.partition}: it holds offsets ${low}..${high} (the end is ${high}); choose one in that range or use --to-earliest/--to-latest`,
          );
        }
        to = target.offset;
        break;
      case 'datetime': {
        const t = f.offsetForTime ?? high;
        // Kafka answers the first retained offset for a time before retention; if records
        // were already deleted there, some records after the time are gone: say so.
        if (t === low && low > 0 && high > low) {
          throw new ReplayPlanError(
            `${target.iso} is at or before the earliest retained record of partition ${f.partition} (offset ${low}; earlier records were deleted by retention), so not every record after it can be replayed; use --to-earliest to replay what is retained`,
          );
        }
        to = t;
        break;
      }
    }
    const committed = f.committed;
    const current = Math.max(committed < 0 ? low : committed, f.fence ?? -1);
    return { partition: f.partition, committed, fence: f.fence, current, target: to, replay: current - to };
  });
}

export function formatPlan(topic: string, rows: readonly PlanRow[]): string {
  const header = [
    'topic',
    'partition',
    'kafka committed',
    'pg fence',
    'current',
    'target',
    'records to replay',
  ];
  const body = rows.map((r) => [
    topic,
    String(r.partition),
    r.committed < 0 ? '-' : String(r.committed),
    r.fence === undefined ? '-' : String(r.fence),
    String(r.current),
    String(r.target),
    r.replay >= 0 ? String(r.replay) : `skip ${-r.replay}`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i]!)).join('  ');
  return [line(header), ...body.map(line)].join('\n');
}
