// The RSS-by-webhooks table of one bounded-memory run (bench/memory-bound.ts), as headers and rows
// for the console (textTable) and docs/performance.md (markdownTable). A module of its own: importing
// memory-bound.ts would run it.
import { fmt, fmtInt } from './common.js';
import type { BoundRun } from './memory-bound.js';

export function boundTableData(run: BoundRun): { headers: string[]; rows: string[][] } {
  const redis = run.store === 'redis';
  return {
    headers: [
      'webhooks',
      ...run.idleRssMiB.map((_, i) => (run.replicas > 1 ? `RSS replica ${i + 1} MiB` : 'RSS MiB')),
      'live actors',
      ...(redis ? ['Redis used MiB', 'Redis keys'] : []),
    ],
    rows: [
      ['0 (idle)', ...run.idleRssMiB.map((x) => fmt(x, 0)), '', ...(redis ? ['', ''] : [])],
      ...run.rounds.map((round) => [
        fmtInt(round.webhooks),
        ...round.rssMiB.map((x) => fmt(x, 0)),
        round.liveActors.join(', '),
        ...(redis ? [fmt(round.redisUsedMiB ?? 0, 0), fmtInt(round.redisKeys ?? 0)] : []),
      ]),
    ],
  };
}
