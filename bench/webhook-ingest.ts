// Part 1: webhook ingest throughput and latency, the service against a bare verifying Koa app,
// each a fresh process of its own, loaded by wrk (Debian's package).
//
//   tsx bench/webhook-ingest.ts [--store memory|redis] [--calls 20000] [--pairs 4] [--warm-s 3] [--run-s 10]
//
// The service is the compiled build as `npm start` runs it (dist/, built first; NODE_ENV=production, log at info to a file under the OS temp directory,
// LiveKit = the stand-in in this process). The baseline is bench/baseline-server.mjs: Koa 3 +
// @koa/router, the raw body, `WebhookReceiver.receive`, 200. Per round a new file of signed
// webhooks is written (--calls inbound calls, five events each, every call's events in order and
// many calls live at once: a call's next event is a whole window of calls later), and
// `wrk -t1 -c50` replays it: --warm-s seconds not counted, then --run-s seconds measured, from
// where the warm-up stopped. Rounds alternate baseline, service, baseline, service, ...
// With Redis, `INFO commandstats` before and after the measured run counts the Redis commands
// per webhook.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { openSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signWebhook } from '../dev/webhook-sender.js';
import { startLiveKitStandIn } from '../dev/livekit-standin.js';
import { freePort, useRedis, type RedisHandle } from '../dev/redis-server.js';
import { argument, BENCH_API_KEY, BENCH_API_SECRET, BENCH_CONTROL_KEY, benchDir, finish, fmt, fmtInt, median, out, sleep, textTable, verdict } from './common.js';
import { callEvents, EVENTS_PER_CALL } from './inbound-calls.js';

export interface IngestRound {
  target: 'baseline' | 'service';
  requests: number;
  throughput: number;
  p50: number;
  p99: number;
  max: number;
  /** resident set size of the server process after the round, MiB */
  rssMiB: number;
  /** CPU time of wrk over the measured run, % of one core */
  generatorCpuPct: number;
  non2xx: number;
  /** Redis commands per webhook over the measured run (service rounds on Redis) */
  redisCommandsPerRequest: number | null;
}

export interface IngestResult {
  store: 'memory' | 'redis';
  requests: number;
  connections: number;
  meanBodyBytes: number;
  rounds: IngestRound[];
  /** per pair: service / baseline throughput */
  ratios: number[];
  baseline: { throughput: number; p50: number; p99: number; rssMiB: number; throughputMin: number; throughputMax: number };
  service: { throughput: number; p50: number; p99: number; rssMiB: number; throughputMin: number; throughputMax: number };
  ratio: number;
  ratioTarget: number;
  /** the service's p99 may be at most this many times the baseline's */
  p99RatioTarget: number;
  redisCommandsPerRequest: number | null;
  redisCommandsTarget: number | null;
  /** calls the service created and ended, from its own counters, over every measured round */
  callsCreated: number;
  callsEnded: number;
}

const CONNECTIONS = 50;
/** calls whose events interleave: a call's next event is sent this many calls later */
const WINDOW = 2000;
const root = join(benchDir, '..');

/** Builds dist/ as `npm start` would (tsc -b: incremental, quick when nothing changed). */
function build(): void {
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: 'inherit' });
}

/** Writes `calls` calls' webhooks, signed now, as "<authorization>\t<body>" lines in replay order. */
async function writeRequests(file: string, calls: number): Promise<number> {
  const lines: string[] = [];
  let bytes = 0;
  for (let start = 0; start < calls; start += WINDOW) {
    const window = Array.from({ length: Math.min(WINDOW, calls - start) }, () => callEvents());
    for (let event = 0; event < EVENTS_PER_CALL; event++) {
      for (const call of window) {
        const body = call.bodies[event] as string;
        bytes += Buffer.byteLength(body);
        lines.push(`${await signWebhook(body, { apiKey: BENCH_API_KEY, apiSecret: BENCH_API_SECRET })}\t${body}`);
      }
    }
  }
  writeFileSync(file, `${lines.join('\n')}\n`);
  return bytes / lines.length;
}

interface WrkRun {
  requests: number;
  throughput: number;
  p50: number;
  p99: number;
  max: number;
  non2xx: number;
  cpuPct: number;
}

const toMs = (value: string, unit: string): number => Number(value) * ({ us: 0.001, ms: 1, s: 1000, m: 60_000 }[unit] ?? Number.NaN);

/** One wrk run; its CPU time comes from the shell's `times` (children's user and system time). */
function wrk(port: number, file: string, start: number, seconds: number): WrkRun {
  const script = join(benchDir, 'replay.lua');
  const command = `wrk -t1 -c${CONNECTIONS} -d${seconds}s --latency -s '${script}' http://127.0.0.1:${port} -- '${file}' ${start}; times`;
  const result = spawnSync('bash', ['-c', command], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`wrk failed: ${result.stderr || result.stdout}`);
  const text = result.stdout;
  const latency = (label: string): number => {
    const match = new RegExp(`^\\s*${label}\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(text);
    return match ? toMs(match[1] as string, match[2] as string) : Number.NaN;
  };
  const max = /^\s*Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s|m)/m.exec(text);
  const requests = Number(/(\d+) requests in/.exec(text)?.[1] ?? Number.NaN);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1] ?? 0);
  // `times`: the shell's own line, then its children's: "0m1.234s 0m0.567s 0m2.345s 0m0.678s"
  const times = text.trim().split('\n').at(-1)?.split(/\s+/) ?? [];
  const seconds_ = (value: string | undefined): number => {
    const match = /(\d+)m([\d.]+)s/.exec(value ?? '');
    return match ? Number(match[1]) * 60 + Number(match[2]) : Number.NaN;
  };
  return {
    requests,
    throughput: Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1] ?? Number.NaN),
    p50: latency('50%'),
    p99: latency('99%'),
    max: max ? toMs(max[1] as string, max[2] as string) : Number.NaN,
    non2xx,
    cpuPct: ((seconds_(times[0]) + seconds_(times[1])) / seconds) * 100,
  };
}

function rssMiB(pid: number | undefined): number {
  try {
    const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb ? Number(kb) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

async function waitHealthy(port: number, child: ChildProcess, log: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (child.exitCode !== null) throw new Error(`the server exited with ${child.exitCode} (log: ${log})`);
    const ok = await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false);
    if (ok) return;
    await sleep(25);
  }
  throw new Error(`the server did not answer /healthz (log: ${log})`);
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

/** The total of `INFO commandstats` calls (a bare RESP request, no client library). */
function redisCommandCount(url: string): Promise<number> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port) }, () => socket.write('INFO commandstats\r\n'));
    let text = '';
    socket.on('data', (chunk) => {
      text += chunk.toString('utf8');
      const header = /^\$(\d+)\r\n/.exec(text);
      if (header && Buffer.byteLength(text) >= header[0].length + Number(header[1])) {
        socket.end();
        // the INFO command itself is counted too: leave it out
        const calls = [...text.matchAll(/^cmdstat_(\w+):calls=(\d+)/gm)].reduce((sum, m) => sum + (m[1] === 'info' ? 0 : Number(m[2])), 0);
        resolve(calls);
      }
    });
    socket.on('error', reject);
  });
}

async function metricValue(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return text
    .split('\n')
    .filter((line) => line.startsWith(name))
    .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
}

async function main(): Promise<void> {
  const store = argument('store', 'memory') as 'memory' | 'redis';
  const calls = Number(argument('calls', '20000'));
  const pairs = Number(argument('pairs', '4'));
  const warmS = Number(argument('warm-s', '3'));
  const runS = Number(argument('run-s', '10'));
  if (spawnSync('wrk', ['--version']).error) throw new Error('wrk is not installed: apt-get install wrk (Debian)');
  build();

  const standIn = await startLiveKitStandIn({ apiKey: BENCH_API_KEY, apiSecret: BENCH_API_SECRET });
  let redis: RedisHandle | null = null;
  if (store === 'redis') redis = await useRedis();
  const dir = tmpdir();
  const requestsFile = join(dir, `bench-webhooks-${process.pid}.tsv`);
  const log = join(dir, `bench-ingest-${store}-${process.pid}.log`);
  out(`webhook ingest (${store} store): wrk -t1 -c${CONNECTIONS}, ${warmS} s warm-up + ${runS} s measured per round, ${pairs} interleaved pairs, ` +
    `each round a fresh server process and a fresh file of ${fmtInt(calls)} calls x ${EVENTS_PER_CALL} signed webhooks; service log: ${log}`);

  const rounds: IngestRound[] = [];
  let meanBodyBytes = 0;
  let callsCreated = 0;
  let callsEnded = 0;
  for (let pair = 0; pair < pairs; pair++) {
    for (const target of ['baseline', 'service'] as const) {
      meanBodyBytes = await writeRequests(requestsFile, calls);
      const port = await freePort();
      const logFd = openSync(log, 'a');
      const child =
        target === 'baseline'
          ? spawn(process.execPath, [join(benchDir, 'baseline-server.mjs'), String(port), BENCH_API_KEY, BENCH_API_SECRET], { cwd: root, stdio: ['ignore', logFd, logFd] })
          : spawn(process.execPath, ['--enable-source-maps', join(root, 'dist', 'src', 'main.js')], {
              cwd: root,
              stdio: ['ignore', logFd, logFd],
              env: {
                PATH: process.env.PATH,
                HOME: process.env.HOME,
                NODE_ENV: 'production',
                PORT: String(port),
                HOST: '127.0.0.1',
                LIVEKIT_URL: standIn.url,
                LIVEKIT_API_KEY: BENCH_API_KEY,
                LIVEKIT_API_SECRET: BENCH_API_SECRET,
                CONTROL_API_KEYS: BENCH_CONTROL_KEY,
                LOG_LEVEL: 'info',
                RECONCILE_INTERVAL_S: '0',
                ...(redis ? { REDIS_URL: redis.url, REDIS_KEY_PREFIX: `bench${pair}:` } : {}),
              },
            });
      try {
        await waitHealthy(port, child, log);
        const warm = wrk(port, requestsFile, 0, warmS);
        const before = redis && target === 'service' ? await redisCommandCount(redis.url) : null;
        const run = wrk(port, requestsFile, warm.requests % (calls * EVENTS_PER_CALL), runS);
        const after = redis && target === 'service' ? await redisCommandCount(redis.url) : null;
        if (warm.requests + run.requests > calls * EVENTS_PER_CALL) out(`  note: the round replayed its file past the end (${fmtInt(warm.requests + run.requests)} requests); raise --calls`);
        if (target === 'service') {
          callsCreated += await metricValue(port, 'control_plane_calls_created_total');
          callsEnded += await metricValue(port, 'control_plane_calls_ended_total');
        }
        const round: IngestRound = {
          target,
          requests: run.requests,
          throughput: run.throughput,
          p50: run.p50,
          p99: run.p99,
          max: run.max,
          rssMiB: rssMiB(child.pid),
          generatorCpuPct: run.cpuPct,
          non2xx: run.non2xx,
          redisCommandsPerRequest: before !== null && after !== null ? (after - before) / run.requests : null,
        };
        rounds.push(round);
        out(`  pair ${pair + 1} ${target.padEnd(8)} ${fmtInt(round.throughput).padStart(6)} req/s  p50 ${fmt(round.p50)} ms  p99 ${fmt(round.p99)} ms  max ${fmt(round.max)} ms  ` +
          `RSS after ${fmt(round.rssMiB, 0)} MiB  wrk cpu ${fmt(round.generatorCpuPct, 0)}%  non-2xx ${round.non2xx}` +
          (round.redisCommandsPerRequest !== null ? `  Redis commands/webhook ${fmt(round.redisCommandsPerRequest, 1)}` : ''));
      } finally {
        await stop(child);
      }
    }
  }
  await standIn.close();
  await redis?.stop();

  const pick = (target: IngestRound['target']) => rounds.filter((r) => r.target === target);
  const summary = (list: IngestRound[]) => ({
    throughput: median(list.map((r) => r.throughput)),
    p50: median(list.map((r) => r.p50)),
    p99: median(list.map((r) => r.p99)),
    rssMiB: median(list.map((r) => r.rssMiB)),
    throughputMin: Math.min(...list.map((r) => r.throughput)),
    throughputMax: Math.max(...list.map((r) => r.throughput)),
  });
  const baselineRounds = pick('baseline');
  const serviceRounds = pick('service');
  const ratios = serviceRounds.map((r, i) => r.throughput / (baselineRounds[i]?.throughput ?? Number.NaN));
  const commands = serviceRounds.map((r) => r.redisCommandsPerRequest).filter((x): x is number => x !== null);
  const result: IngestResult = {
    store,
    requests: calls * EVENTS_PER_CALL,
    connections: CONNECTIONS,
    meanBodyBytes,
    rounds,
    ratios,
    baseline: summary(baselineRounds),
    service: summary(serviceRounds),
    ratio: median(ratios),
    ratioTarget: store === 'redis' ? 0.6 : 0.75,
    p99RatioTarget: store === 'redis' ? Number.POSITIVE_INFINITY : 3,
    redisCommandsPerRequest: commands.length ? median(commands) : null,
    redisCommandsTarget: store === 'redis' ? 4 : null,
    callsCreated,
    callsEnded,
  };
  out();
  for (const line of textTable(
    ['', 'req/s (median)', 'req/s spread', 'p50 ms', 'p99 ms', 'RSS after MiB'],
    (['baseline', 'service'] as const).map((target) => {
      const s = result[target];
      return [target, fmtInt(s.throughput), `${fmtInt(s.throughputMin)} - ${fmtInt(s.throughputMax)}`, fmt(s.p50), fmt(s.p99), fmt(s.rssMiB, 0)];
    }),
  )) out(`  ${line}`);
  const p99Ratio = result.service.p99 / result.baseline.p99;
  out(`  ratio service/baseline (median of pairs ${ratios.map((r) => fmt(r)).join(', ')}): ${fmt(result.ratio)} ` +
    `(target >= ${result.ratioTarget}: ${verdict(result.ratio >= result.ratioTarget)}); p99 ${fmt(p99Ratio)} x the baseline's` +
    (Number.isFinite(result.p99RatioTarget) ? ` (target <= ${result.p99RatioTarget}: ${verdict(p99Ratio <= result.p99RatioTarget)})` : ''));
  if (result.redisCommandsPerRequest !== null) {
    out(`  Redis commands per webhook: ${fmt(result.redisCommandsPerRequest, 1)} (target <= ${result.redisCommandsTarget}: ${verdict(result.redisCommandsPerRequest <= (result.redisCommandsTarget ?? 0))})`);
  }
  const wrkCpu = Math.max(...rounds.map((r) => r.generatorCpuPct));
  out(`  wrk used at most ${fmt(wrkCpu, 0)}% of a core: ${wrkCpu < 80 ? 'not' : 'possibly'} the bottleneck; mean body ${fmtInt(meanBodyBytes)} bytes; ` +
    `service rounds created ${fmtInt(callsCreated)} calls and ended ${fmtInt(callsEnded)} (the rest were cut off by the end of a run)`);
  await finish(result);
}

await main();
