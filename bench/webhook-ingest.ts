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
// per webhook (those run inside scripts included), and a MONITOR sample after it the ones the
// service sent.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLiveKitStandIn } from '../dev/livekit-standin.js';
import { freePort, useRedis, type RedisHandle } from '../dev/redis-server.js';
import { BENCH_API_KEY, BENCH_API_SECRET, argument, finish, fmt, fmtInt, logNote, median, out, removeScratch, textTable, verdict } from './common.js';
import { EVENTS_PER_CALL } from './inbound-calls.js';
import { build, CONNECTIONS, rssMiB, startServer, stop, wrk, writeRequests } from './servers.js';

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
  /** Redis commands per webhook over the measured run (service rounds on Redis), commands inside scripts included */
  redisCommandsPerRequest: number | null;
  /** of those, the ones the service sent (a MONITOR sample after the measured run): the rest ran inside its scripts */
  redisSentPerRequest: number | null;
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
  redisSentPerRequest: number | null;
  redisCommandsTarget: number | null;
  /** calls the service created and ended, from its own counters, over every measured round */
  callsCreated: number;
  callsEnded: number;
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

const MONITOR_SAMPLE_S = 2;

/**
 * Redis commands per webhook the service sends, told apart from those its scripts run: `redis-cli
 * monitor` (to a file) while wrk replays the next MONITOR_SAMPLE_S seconds of the file. MONITOR
 * marks a command run by a script `[<db> lua]`.
 */
async function monitorSample(url: string, port: number, file: string, start: number): Promise<number> {
  const { port: redisPort } = new URL(url);
  const output = join(tmpdir(), `bench-monitor-${process.pid}.txt`);
  const fd = openSync(output, 'w');
  const monitor = spawn('redis-cli', ['-p', redisPort, 'monitor'], { stdio: ['ignore', fd, 'ignore'] });
  closeSync(fd);
  await new Promise((resolve) => setTimeout(resolve, 300));
  const run = wrk(port, file, start, MONITOR_SAMPLE_S);
  await new Promise((resolve) => setTimeout(resolve, 300));
  monitor.kill();
  const lines = readFileSync(output, 'utf8').split('\n').filter((line) => /^\d+\.\d+ \[/.test(line));
  rmSync(output, { force: true });
  return lines.filter((line) => !/^\S+ \[\d+ lua\]/.test(line)).length / run.requests;
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
    `each round a fresh server process and a fresh file of ${fmtInt(calls)} calls x ${EVENTS_PER_CALL} signed webhooks; service log: ${logNote(log)}`);

  const rounds: IngestRound[] = [];
  let meanBodyBytes = 0;
  let callsCreated = 0;
  let callsEnded = 0;
  for (let pair = 0; pair < pairs; pair++) {
    for (const target of ['baseline', 'service'] as const) {
      meanBodyBytes = await writeRequests(requestsFile, calls);
      const port = await freePort();
      const child = await startServer(target, {
        port,
        log,
        livekitUrl: standIn.url,
        env: redis ? { REDIS_URL: redis.url, REDIS_KEY_PREFIX: `bench${pair}:` } : {},
      });
      try {
        const warm = wrk(port, requestsFile, 0, warmS);
        const before = redis && target === 'service' ? await redisCommandCount(redis.url) : null;
        const run = wrk(port, requestsFile, warm.requests % (calls * EVENTS_PER_CALL), runS);
        const after = redis && target === 'service' ? await redisCommandCount(redis.url) : null;
        const sent = redis && target === 'service' ? await monitorSample(redis.url, port, requestsFile, (warm.requests + run.requests) % (calls * EVENTS_PER_CALL)) : null;
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
          redisSentPerRequest: sent,
        };
        rounds.push(round);
        out(`  pair ${pair + 1} ${target.padEnd(8)} ${fmtInt(round.throughput).padStart(6)} req/s  p50 ${fmt(round.p50)} ms  p99 ${fmt(round.p99)} ms  max ${fmt(round.max)} ms  ` +
          `RSS after ${fmt(round.rssMiB, 0)} MiB  wrk cpu ${fmt(round.generatorCpuPct, 0)}%  non-2xx ${round.non2xx}` +
          (round.redisCommandsPerRequest !== null ? `  Redis commands/webhook ${fmt(round.redisCommandsPerRequest, 1)} (${fmt(round.redisSentPerRequest ?? Number.NaN, 1)} sent)` : ''));
      } finally {
        await stop(child);
      }
    }
  }
  await standIn.close();
  await redis?.stop();
  removeScratch({ data: [requestsFile], logs: [log] });

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
  const sentCommands = serviceRounds.map((r) => r.redisSentPerRequest).filter((x): x is number => x !== null);
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
    redisSentPerRequest: sentCommands.length ? median(sentCommands) : null,
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
    const target = result.redisCommandsTarget ?? 0;
    out(`  Redis commands per webhook (INFO commandstats, commands inside scripts included): ${fmt(result.redisCommandsPerRequest, 1)} ` +
      `(target <= ${target}: ${verdict(result.redisCommandsPerRequest <= target)})`);
    if (result.redisSentPerRequest !== null) {
      out(`  of which sent by the service (a ${MONITOR_SAMPLE_S} s MONITOR sample per round; each script one command): ${fmt(result.redisSentPerRequest, 1)} ` +
        `(target <= ${target} read this way: ${verdict(result.redisSentPerRequest <= target)})`);
    }
  }
  const wrkCpu = Math.max(...rounds.map((r) => r.generatorCpuPct));
  out(`  wrk used at most ${fmt(wrkCpu, 0)}% of a core: ${wrkCpu < 80 ? 'not' : 'possibly'} the bottleneck; mean body ${fmtInt(meanBodyBytes)} bytes; ` +
    `service rounds created ${fmtInt(callsCreated)} calls and ended ${fmtInt(callsEnded)} (the rest were cut off by the end of a run)`);
  await finish(result);
}

await main();
