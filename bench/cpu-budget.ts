// The per-webhook CPU budget: where a webhook's CPU time goes in the service and in the baseline,
// by stage, from V8 CPU profiles of steady load.
//
//   tsx bench/cpu-budget.ts [--calls 20000] [--warm-s 3] [--run-s 10]
//
// Each server (the compiled service, in-memory store; the baseline) runs as a fresh process with
// bench/profile-hook.mjs preloaded, is warmed by wrk, then profiled (sampling every 100 µs) while
// wrk replays signed webhooks for --run-s seconds. Every sample is charged to the stage of the
// frame nearest the leaf that belongs to one (the rules below); its time divided by the requests
// wrk completed gives µs per webhook.
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLiveKitStandIn } from '../dev/livekit-standin.js';
import { freePort } from '../dev/redis-server.js';
import { argument, BENCH_API_KEY, BENCH_API_SECRET, finish, fmt, out, removeScratch, sleep, textTable } from './common.js';
import { EVENTS_PER_CALL } from './inbound-calls.js';
import { build, startServer, stop, wrk, writeRequests } from './servers.js';

export const STAGES = [
  'HTTP in/out (Node)',
  'Koa and routing',
  'verification',
  'decode',
  'webhook routing',
  'actor (xstate)',
  'commit (store)',
  'OBS-00 log',
  'publish',
  'metrics',
  'GC',
  'other',
] as const;
export type Stage = (typeof STAGES)[number];

/** [stage, test on "<url> <function name>"], first match wins, tried from the leaf up. */
const RULES: [Stage, RegExp][] = [
  ['GC', /^ \(garbage collector\)$/],
  ['verification', /\/jose\/|TokenVerifier|node:crypto|node:internal\/crypto|webhook\.routes\.js bodyHash/],
  ['decode', /@bufbuild\/protobuf|@livekit\/protocol|livekit\/webhook-event\.js/],
  ['actor (xstate)', /\/xstate\/|src\/calls\/|machines\//],
  ['commit (store)', /src\/store\//],
  ['OBS-00 log', /\/pino|\/sonic-boom|obs\/logger\.js|obs\/mask\.js|fast-redact|quick-format/],
  ['publish', /obs\/event-bus\.js|obs\/event-stream\.js|store\/memory\/event-log\.js/],
  ['metrics', /prom-client|obs\/metrics\.js/],
  ['webhook routing', /src\/inbound\//],
  ['Koa and routing', /\/koa\/|\/koa-compose\/|@koa\/router|path-to-regexp|src\/http\/|baseline-server\.mjs|\/type-is\/|\/mime-types\//],
  ['HTTP in/out (Node)', /^node:/],
];

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Microseconds of CPU per stage (idle excluded). */
function attribute(profile: Profile): Record<Stage, number> {
  const parent = new Map<number, number>();
  const byId = new Map<number, ProfileNode>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const stageOf = new Map<number, Stage | 'idle'>();
  const classify = (id: number): Stage | 'idle' => {
    const known = stageOf.get(id);
    if (known) return known;
    let stage: Stage | 'idle' = 'other';
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = byId.get(at)?.callFrame;
      if (!frame) break;
      if (frame.functionName === '(idle)') {
        stage = 'idle';
        break;
      }
      const key = `${frame.url} ${frame.functionName}`;
      const rule = RULES.find(([, test]) => test.test(key));
      if (rule) {
        stage = rule[0];
        break;
      }
    }
    stageOf.set(id, stage);
    return stage;
  };
  const totals = Object.fromEntries(STAGES.map((stage) => [stage, 0])) as Record<Stage, number>;
  profile.samples.forEach((id, i) => {
    const stage = classify(id);
    if (stage !== 'idle') totals[stage] += profile.timeDeltas[i] ?? 0;
  });
  return totals;
}

export interface BudgetResult {
  /** µs per webhook by stage */
  baseline: Record<Stage, number>;
  service: Record<Stage, number>;
  requests: { baseline: number; service: number };
}

async function profileOne(target: 'baseline' | 'service', livekitUrl: string, calls: number, warmS: number, runS: number): Promise<{ perWebhook: Record<Stage, number>; requests: number }> {
  const dir = tmpdir();
  const file = join(dir, `bench-budget-${process.pid}.tsv`);
  const profilePath = join(dir, `bench-budget-${target}-${process.pid}.cpuprofile`);
  const log = join(dir, `bench-budget-${target}-${process.pid}.log`);
  await writeRequests(file, calls);
  const port = await freePort();
  const child = await startServer(target, {
    port,
    log,
    livekitUrl,
    nodeArgs: ['--import', join(import.meta.dirname, 'profile-hook.mjs')],
    env: { CPU_PROFILE_PATH: profilePath },
  });
  try {
    const warm = wrk(port, file, 0, warmS);
    child.kill('SIGUSR2');
    await sleep(200);
    const run = wrk(port, file, warm.requests % (calls * EVENTS_PER_CALL), runS);
    child.kill('SIGUSR2');
    let profile: Profile | null = null;
    for (let i = 0; i < 100 && !profile; i++) {
      await sleep(100);
      try {
        profile = JSON.parse(readFileSync(profilePath, 'utf8')) as Profile;
      } catch {
        // not written yet
      }
    }
    if (!profile) throw new Error(`no CPU profile from the ${target}`);
    const totals = attribute(profile);
    const perWebhook = Object.fromEntries(STAGES.map((stage) => [stage, totals[stage] / run.requests])) as Record<Stage, number>;
    return { perWebhook, requests: run.requests };
  } finally {
    await stop(child);
    removeScratch({ data: [file], logs: [log, profilePath] });
  }
}

async function main(): Promise<void> {
  const calls = Number(argument('calls', '20000'));
  const warmS = Number(argument('warm-s', '3'));
  const runS = Number(argument('run-s', '10'));
  build();
  const standIn = await startLiveKitStandIn({ apiKey: BENCH_API_KEY, apiSecret: BENCH_API_SECRET });
  const baseline = await profileOne('baseline', standIn.url, calls, warmS, runS);
  const service = await profileOne('service', standIn.url, calls, warmS, runS);
  await standIn.close();
  const result: BudgetResult = { baseline: baseline.perWebhook, service: service.perWebhook, requests: { baseline: baseline.requests, service: service.requests } };
  const sum = (budget: Record<Stage, number>): number => STAGES.reduce((total, stage) => total + budget[stage], 0);
  out(`CPU per webhook by stage (µs), wrk -t1 -c50, ${runS} s profiled after ${warmS} s of warm-up:`);
  for (const line of textTable(
    ['stage', 'baseline', 'service', 'difference'],
    [
      ...STAGES.map((stage) => [stage, fmt(result.baseline[stage], 1), fmt(result.service[stage], 1), fmt(result.service[stage] - result.baseline[stage], 1)]),
      ['total', fmt(sum(result.baseline), 1), fmt(sum(result.service), 1), fmt(sum(result.service) - sum(result.baseline), 1)],
    ],
  )) out(`  ${line}`);
  await finish(result);
}

await main();
