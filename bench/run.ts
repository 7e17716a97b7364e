// npm run bench [-- --write]: every benchmark part, each in a child process of its own, then a
// summary. Writes nothing into the repository unless --write is given, which (re)writes
// docs/performance.md with the figures and the machine they were measured on.
import { writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { benchDir, fmt, fmtInt, markdownTable, out, runPart, textTable, verdict } from './common.js';
import type { ControlResult } from './control-api.js';
import type { MemoryResult } from './memory.js';
import type { RecoveryResult } from './recovery.js';
import type { IngestResult } from './webhook-ingest.js';
import type { BudgetResult } from './cpu-budget.js';
import type { BoundResult, BoundRun } from './memory-bound.js';
import { boundTableData } from './memory-bound-table.js';
import type { StartupResult } from './startup.js';

interface Results {
  ingestMemory?: IngestResult;
  ingestRedis?: IngestResult;
  memory?: MemoryResult;
  control?: ControlResult;
  recovery?: RecoveryResult;
  budget?: BudgetResult;
  bound?: BoundResult;
  startup?: StartupResult;
}

type Row = [figure: string, baseline: string, service: string, ratio: string, target: string, verdict: string];

const write = process.argv.includes('--write');
const started = performance.now();
const results: Results = {};
const failures: string[] = [];

async function part<K extends keyof Results>(key: K, title: string, run: () => Promise<NonNullable<Results[K]>>): Promise<void> {
  out(`\n=== ${title} ===`);
  const partStarted = performance.now();
  try {
    results[key] = await run();
  } catch (err) {
    failures.push(`${title}: ${err instanceof Error ? err.message : String(err)}`);
    out(`  FAILED: ${err instanceof Error ? err.message : String(err)}`);
  }
  out(`  (${fmt((performance.now() - partStarted) / 1000, 0)} s)`);
}

await part('ingestMemory', '1. webhook ingest, in-memory store', () => runPart<IngestResult>('webhook-ingest.ts', ['--store', 'memory']));
await part('ingestRedis', '1b. webhook ingest, Redis store', () => runPart<IngestResult>('webhook-ingest.ts', ['--store', 'redis']));
await part('memory', '2 + 5. live-call memory and growth', () => runPart<MemoryResult>('memory.ts', [], ['--expose-gc']));
await part('control', '3. Control API: POST /v1/calls -> dialing', () => runPart<ControlResult>('control-api.ts'));
await part('recovery', '4. recovery on Redis', () => runPart<RecoveryResult>('recovery.ts'));
await part('budget', '6. CPU per webhook by stage', () => runPart<BudgetResult>('cpu-budget.ts'));
await part('bound', '7. bounded memory under 300,000 webhooks', () => runPart<BoundResult>('memory-bound.ts'));
await part('startup', '8. start-up and idle', () => runPart<StartupResult>('startup.ts'));
const totalSeconds = (performance.now() - started) / 1000;

// ---- summary

const rows: Row[] = [];
const missing = (figure: string): Row => [figure, '-', '-', '-', '-', 'no result'];

function ingestRows(r: IngestResult | undefined, label: string): void {
  if (!r) {
    rows.push(missing(`ingest ${label}`));
    return;
  }
  const n = `ingest ${label} (${fmtInt(r.requests)} req/round, ${r.connections} conns)`;
  rows.push([`${n}: throughput req/s`, fmtInt(r.baseline.throughput), fmtInt(r.service.throughput), fmt(r.ratio), `ratio >= ${r.ratioTarget}`, verdict(r.ratio >= r.ratioTarget)]);
  rows.push([`ingest ${label}: p50 latency ms`, fmt(r.baseline.p50), fmt(r.service.p50), fmt(r.service.p50 / r.baseline.p50), '', '']);
  const p99Ratio = r.service.p99 / r.baseline.p99;
  const p99Target = Number.isFinite(r.p99RatioTarget);
  rows.push([
    `ingest ${label}: p99 latency ms`,
    fmt(r.baseline.p99),
    fmt(r.service.p99),
    fmt(p99Ratio),
    p99Target ? `ratio <= ${r.p99RatioTarget}` : '',
    p99Target ? verdict(p99Ratio <= r.p99RatioTarget) : '',
  ]);
  rows.push([`ingest ${label}: RSS after a round, MiB`, fmt(r.baseline.rssMiB, 0), fmt(r.service.rssMiB, 0), fmt(r.service.rssMiB / r.baseline.rssMiB), '', '']);
  if (r.redisCommandsPerRequest !== null && r.redisCommandsTarget !== null) {
    rows.push([`ingest ${label}: Redis commands per webhook, inside scripts included`, '', fmt(r.redisCommandsPerRequest, 1), '', `<= ${r.redisCommandsTarget}`, verdict(r.redisCommandsPerRequest <= r.redisCommandsTarget)]);
  }
  if (r.redisSentPerRequest !== null && r.redisCommandsTarget !== null) {
    rows.push([`ingest ${label}: Redis commands per webhook the service sends`, '', fmt(r.redisSentPerRequest, 1), '', `<= ${r.redisCommandsTarget}`, verdict(r.redisSentPerRequest <= r.redisCommandsTarget)]);
  }
}

ingestRows(results.ingestMemory, 'memory');
ingestRows(results.ingestRedis, 'Redis');

const memory = results.memory;
if (memory) {
  for (const size of memory.sizes) {
    rows.push([
      `heap per live call at ${fmtInt(size.calls)} (MiB before -> after)`,
      `${fmt(size.heapBeforeMiB, 1)} MiB`,
      `${fmt(size.heapAfterMiB, 1)} MiB = ${fmt(size.bytesPerCall / 1024)} KiB/call`,
      '',
      '<= 12 KiB',
      verdict(size.bytesPerCall <= memory.targetBytesPerCall),
    ]);
  }
  rows.push(['heap per ended call kept by the in-memory store', '', `${fmt(memory.bytesPerEndedCall / 1024)} KiB/call`, '', '', '']);
  if (memory.liveCallErrors > 0) rows.push(['live calls in a wrong state', '', String(memory.liveCallErrors), '', '0', 'WRONG']);
} else rows.push(missing('live-call memory'));

const control = results.control;
if (control) {
  rows.push([
    `POST /v1/calls -> dialing p50 ms (${control.rate}/s)`,
    fmt(control.baseline.p50),
    fmt(control.service.p50),
    fmt(control.ratio),
    '',
    control.callErrors === 0 ? 'all connected' : `${control.callErrors} WRONG`,
  ]);
  rows.push(['POST /v1/calls -> dialing p99 ms', fmt(control.baseline.p99), fmt(control.service.p99), fmt(control.service.p99 / control.baseline.p99), '', '']);
} else rows.push(missing('Control API'));

const recovery = results.recovery;
if (recovery) {
  rows.push([
    `recovery: ${fmtInt(recovery.calls)} calls, one event each, s`,
    `${fmt(recovery.warmSeconds)} (warm)`,
    `${fmt(recovery.coldSeconds)} (worst ${fmt(recovery.worstColdSeconds)})`,
    fmt(recovery.ratio),
    '< 5 s',
    recovery.callErrors > 0 ? `${recovery.callErrors} WRONG` : verdict(recovery.worstColdSeconds < recovery.targetSeconds),
  ]);
} else rows.push(missing('recovery'));

const bound = results.bound;
if (bound) {
  for (const run of [bound.memory, bound.redis]) {
    const first = run.rounds[0];
    const label = run.store === 'memory' ? 'in-memory' : `Redis, ${run.replicas} replicas`;
    if (!first) continue;
    const worst = Math.max(...first.rssMiB);
    rows.push([`RSS after ${fmtInt(first.webhooks)} webhooks, ${label}, MiB`, '', first.rssMiB.map((x) => fmt(x, 0)).join(', '), '', `<= ${bound.rssBoundMiB}`, verdict(worst <= bound.rssBoundMiB)]);
    const growth = Math.max(...run.growth);
    rows.push([`RSS after ${fmtInt(run.rounds.at(-1)?.webhooks ?? 0)} / after ${fmtInt(first.webhooks)}, ${label}`, '', run.growth.map((g) => fmt(g)).join(', '), '', `<= ${bound.flatRatio}`, verdict(growth <= bound.flatRatio)]);
  }
} else rows.push(missing('bounded memory'));

const startup = results.startup;
if (startup) {
  rows.push(['start-up: spawn to /healthz ms', fmt(startup.baseline.startupMs, 0), fmt(startup.service.startupMs, 0), fmt(startup.service.startupMs / startup.baseline.startupMs), '', '']);
  rows.push(['idle RSS MiB', fmt(startup.baseline.idleRssMiB, 0), fmt(startup.service.idleRssMiB, 0), fmt(startup.service.idleRssMiB / startup.baseline.idleRssMiB), '', '']);
} else rows.push(missing('start-up and idle'));

function boundDetail(run: BoundRun): string[] {
  const { headers, rows } = boundTableData(run);
  return [...markdownTable(headers, rows), ''];
}

const headers = ['figure', 'baseline', 'service', 'ratio', 'target', 'verdict'];
const growthHeaders = ['live calls', 'heap per call', 'rss', 'runtime.send events/s', 'ratio vs smallest', 'GC share of send time'];
const growthRows = (memory?.sizes ?? []).map((s) => [
  fmtInt(s.calls),
  `${fmt(s.bytesPerCall / 1024)} KiB`,
  `${fmt(s.rssMiB, 0)} MiB`,
  fmtInt(s.sendRate),
  fmt(s.sendRatio),
  `${fmt(s.sendGcShare * 100, 0)}%`,
]);

out('\n=== summary ===');
for (const line of textTable(headers, rows)) out(line);
out('\ngrowth (item 5): heap per live call and runtime.send throughput by number of live calls');
for (const line of textTable(growthHeaders, growthRows)) out(line);
if (failures.length) out(`\nparts that failed: ${failures.join('; ')}`);
out(`\ntotal run time ${fmt(totalSeconds, 0)} s`);

// ---- docs/performance.md

function ingestDetail(r: IngestResult | undefined, label: string): string[] {
  if (!r) return [];
  return [
    `### Webhook ingest, ${label} store: rounds`,
    '',
    ...markdownTable(
      ['round', 'target', 'req/s', 'p50 ms', 'p99 ms', 'max ms', 'RSS after MiB', 'wrk CPU', 'non-2xx', 'Redis commands/webhook (sent)'],
      r.rounds.map((x, i) => [
        String(Math.floor(i / 2) + 1),
        x.target,
        fmtInt(x.throughput),
        fmt(x.p50),
        fmt(x.p99),
        fmt(x.max),
        fmt(x.rssMiB, 0),
        `${fmt(x.generatorCpuPct, 0)}%`,
        String(x.non2xx),
        x.redisCommandsPerRequest === null ? '' : `${fmt(x.redisCommandsPerRequest, 1)} (${fmt(x.redisSentPerRequest ?? Number.NaN, 1)})`,
      ]),
    ),
    '',
    `Per-pair throughput ratios: ${r.ratios.map((x) => fmt(x)).join(', ')} (median ${fmt(r.ratio)}). Mean body ${fmtInt(r.meanBodyBytes)} bytes. ` +
      `Baseline req/s spread ${fmtInt(r.baseline.throughputMin)} - ${fmtInt(r.baseline.throughputMax)}, service ${fmtInt(r.service.throughputMin)} - ${fmtInt(r.service.throughputMax)}. ` +
      `The service rounds created ${fmtInt(r.callsCreated)} calls and ended ${fmtInt(r.callsEnded)} (the others were cut off by the end of a run).`,
    '',
  ];
}

function budgetSection(budget: BudgetResult | undefined): string[] {
  if (!budget) return [];
  const stages = Object.keys(budget.baseline) as (keyof BudgetResult['baseline'])[];
  const sum = (b: BudgetResult['baseline']): number => stages.reduce((total, stage) => total + b[stage], 0);
  return [
    '## CPU per webhook, by stage',
    '',
    'From V8 CPU profiles (bench/cpu-budget.ts, sampling every 100 µs) of each server under steady `wrk -t1 -c50` load after a warm-up; every sample is charged to the stage of the frame nearest the leaf ' +
      `that belongs to one, divided by the webhooks answered (${budget.requests.baseline.toLocaleString('en-US')} baseline, ${budget.requests.service.toLocaleString('en-US')} service). ` +
      '"HTTP in/out (Node)" is Node\'s own HTTP, stream and socket code; "other" is what no rule claims (mostly `(program)`: V8 and native work no JavaScript frame owns). Regenerate with `npx tsx bench/cpu-budget.ts`.',
    '',
    ...markdownTable(
      ['stage', 'baseline µs', 'service µs', 'difference µs'],
      [
        ...stages.map((stage) => [stage, fmt(budget.baseline[stage], 1), fmt(budget.service[stage], 1), fmt(budget.service[stage] - budget.baseline[stage], 1)]),
        ['total', fmt(sum(budget.baseline), 1), fmt(sum(budget.service), 1), fmt(sum(budget.service) - sum(budget.baseline), 1)],
      ],
    ),
    '',
  ];
}

if (write) {
  const cpu = cpus();
  const date = new Date().toISOString();
  const lines = [
    '# Performance',
    '',
    `Generated by \`npm run bench -- --write\` (bench/run.ts) on ${date.slice(0, 10)} (${date}). Do not edit by hand: run it again.`,
    '',
    `Machine: ${cpu[0]?.model ?? 'unknown CPU'}, ${cpu.length} cores, ${fmt(totalmem() / 1024 ** 3, 1)} GiB memory; Node ${process.version}. ` +
      `The machine is shared and noisy (5-15 % drift), so every speed figure is a ratio against a baseline measured in the same run, ` +
      `interleaved (baseline, service, baseline, service, ...; at least 4 pairs), and the medians are reported. Whole run: ${fmt(totalSeconds, 0)} s.`,
    '',
    '## Summary',
    '',
    ...markdownTable(headers, rows),
    '',
    ...budgetSection(results.budget),
    '## Growth: per live call, by number of live calls',
    '',
    ...markdownTable(growthHeaders, growthRows),
    '',
    'runtime.send throughput: agent_joined / agent_left pairs of a second agent, spread over every live call of the population, ' +
      `${fmtInt(memory?.eventsPerMeasurement ?? 0)} events per measurement, ${memory?.reps ?? 0} repetitions interleaved across the sizes; ` +
      'all populations live in one process, so the GC share is that of the whole heap.',
    '',
    '## What is measured',
    '',
    '- **Webhook ingest** (bench/webhook-ingest.ts, bench/replay.lua): the service (the compiled build as `npm start` runs it, `NODE_ENV=production`, log at `info` to a file under the OS temp directory, LiveKit = the stand-in) ' +
      'and the baseline (bench/baseline-server.mjs: Koa 3 + @koa/router, raw body, `WebhookReceiver.receive(body, authorization)`, 200) each run as a fresh process of their own per round; ' +
      '`wrk -t1 -c50` (Debian\'s package) replays a fresh file of webhooks signed as LiveKit signs them (each call: participant_joined SIP, track_published, participant_joined AGENT, participant_left SIP CLIENT_INITIATED, room_finished; ' +
      'a call\'s next event comes a window of 2,000 calls later, so many calls are live at once and each call\'s events arrive in order), 3 s not counted, then 10 s measured. ' +
      'wrk\'s own CPU is printed to show it is not the bottleneck; with Redis, `INFO commandstats` before and after the measured run gives the Redis commands per webhook (commands run inside the service\'s Lua scripts count too), ' +
      'and a 2 s `redis-cli monitor` sample after it tells the commands the service sent (each script one command) from those its scripts ran.',
    '- **Live-call memory** (bench/memory.ts, `--expose-gc`): N inbound calls created through `service.runtime.create` plus a `livekit.agent_joined` each (connected, 4 events of history); ' +
      'heap used after a forced GC minus heap used just before, with the log file drained, divided by N.',
    '- **Control API** (bench/control-api.ts): open-loop `POST /v1/calls` at a fixed rate; service latency = POST sent until the call\'s `call.dialing` event on `service.bus`; ' +
      'baseline = HTTP round trip of a bare Koa route that parses the JSON body and answers 201. The stand-in (own process) answers CreateSIPParticipant at once; every call is checked connected.',
    '- **Bounded memory** (bench/memory-bound.ts): the compiled service with its default configuration, fed by the load generator (bench/load-generator.ts, a process of its own) ' +
      'rounds of 20,000 fresh inbound calls (100,000 webhooks), every call run to its end; RSS (VmRSS) after each round and a few seconds of quiet. On Redis, two replicas on one Redis and key prefix, ' +
      'each fed its half of every round at the same time.',
    '- **Start-up and idle** (bench/startup.ts): spawn until the first `GET /healthz` 200, and VmRSS 3 s later, for the service as `npm start` runs it and for the baseline Koa app, fresh processes, alternating.',
    '- **Recovery** (bench/recovery.ts): 10k live connected calls on Redis; per pair, one event to every call on the running instance (warm), then the instance is closed and a fresh one ' +
      'on the same Redis and key prefix applies one event to every call (each restored from its snapshot). State, agents and seq are checked after every round.',
    '',
    '## Details',
    '',
    ...ingestDetail(results.ingestMemory, 'in-memory'),
    ...ingestDetail(results.ingestRedis, 'Redis'),
    ...(control
      ? [
          '### Control API: rounds',
          '',
          ...markdownTable(
            ['round', 'target', 'POSTs', 'rate/s', 'p50 ms', 'p99 ms', '201 answer p50 / p99 ms', 'process CPU', 'loop delay p99 ms'],
            control.rounds.map((x, i) => [
              String(Math.floor(i / 2) + 1),
              x.target,
              String(x.requests),
              fmt(x.rate, 0),
              fmt(x.p50),
              fmt(x.p99),
              x.httpP50 === null ? '' : `${fmt(x.httpP50)} / ${fmt(x.httpP99 ?? Number.NaN)}`,
              `${fmt(x.cpuPct, 0)}%`,
              fmt(x.loopDelayP99, 1),
            ]),
          ),
          '',
        ]
      : []),
    ...(recovery
      ? [
          '### Recovery: pairs',
          '',
          ...markdownTable(
            ['pair', 'warm instance s', 'fresh instance s', 'ratio'],
            recovery.pairs.map((p, i) => [String(i + 1), fmt(p.warmSeconds), fmt(p.coldSeconds), fmt(p.coldSeconds / p.warmSeconds)]),
          ),
          '',
          `Creating the ${fmtInt(recovery.calls)} calls took ${fmt(recovery.createSeconds, 1)} s. Wrong calls: ${recovery.callErrors}.`,
          '',
        ]
      : []),
    ...(bound
      ? [
          '### Bounded memory: RSS by webhooks received',
          '',
          'What the in-memory store\'s memory is made of, with the default configuration: the process itself (idle RSS above); ' +
            `at most MAX_RETAINED_CALLS = 10,000 ended calls of ${memory ? fmt(memory.bytesPerEndedCall / 1024) : '?'} KiB each (record, events, indexes; the event stream's ` +
            'EVENT_STREAM_BUFFER = 10,000 envelopes are mostly the same objects); WEBHOOK_DEDUP_SIZE = 100,000 webhook ids of about 100 bytes each; ' +
            `and ${memory?.sizes[0] ? fmt(memory.sizes[0].bytesPerCall / 1024) : '?'} KiB per live call, which only the calls in progress hold. ` +
            'Everything else a call leaves (actor, timers, per-room queues, the live-calls gauge) is dropped when it ends. ' +
            'RSS is V8\'s heap capacity rather than the live heap: under sustained load V8 grows its heap ahead of the live data and gives the pages back slowly.',
          '',
          'In-memory store, one process:',
          '',
          ...boundDetail(bound.memory),
          `Redis, ${bound.redis.replicas} replicas (Redis's own memory grows with the ended calls it keeps for CALL_RETENTION_S; its webhook de-duplication keys expire after 6 minutes):`,
          '',
          ...boundDetail(bound.redis),
        ]
      : []),
    ...(startup
      ? [
          '### Start-up and idle',
          '',
          ...markdownTable(
            ['process', 'start-up ms (median, min-max)', 'idle RSS MiB (median, min-max)'],
            (['baseline', 'service'] as const).map((target) => {
              const f = startup[target];
              return [target === 'baseline' ? 'baseline (bare Koa app)' : 'service (`npm start`)', `${fmt(f.startupMs, 0)} (${fmt(f.startupRange[0], 0)}-${fmt(f.startupRange[1], 0)})`, `${fmt(f.idleRssMiB, 0)} (${fmt(f.rssRange[0], 0)}-${fmt(f.rssRange[1], 0)})`];
            }),
          ),
          '',
          `${startup.runs} runs each after one uncounted run, idle RSS read ${startup.settleS} s after /healthz first answered.`,
          '',
        ]
      : []),
    ...(failures.length ? ['## Parts that failed', '', ...failures.map((f) => `- ${f}`), ''] : []),
  ];
  const file = join(benchDir, '..', 'docs', 'performance.md');
  writeFileSync(file, `${lines.join('\n')}\n`);
  out(`wrote ${file}`);
}
