// Part 1: webhook ingest throughput and latency, the service against a bare verifying Koa app.
//
//   tsx bench/webhook-ingest.ts [--store memory|redis] [--requests 10000|4000] [--pairs 5|4] [--warmup 2500|1500]
//   node --cpu-prof --import tsx bench/webhook-ingest.ts --service-only 4   (service rounds only, for profiling)
//
// The service (createService: in-memory or Redis store, production logger writing to a file under
// os.tmpdir(), LiveKit = the stand-in) and the baseline (one Koa route: raw body →
// WebhookReceiver.receive → 200) listen on loopback in this process; bench/load-generator.ts runs
// in a child process and sends the same number of requests per round to one of them, alternating
// baseline, service, baseline, service, ... Every call of a service round is checked afterwards
// (state, end reason, gap-free seq).
import { fork, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import Router from '@koa/router';
import Koa from 'koa';
import { WebhookReceiver } from 'livekit-server-sdk';
import { inboundSessionId } from '../src/livekit/naming.js';
import { createRedisBackend } from '../src/store/redis/backend.js';
import { createLiveKitAdapter } from '../src/livekit/livekit.adapter.js';
import { createService, type Service } from '../src/service.js';
import { startLiveKitStandIn } from '../dev/livekit-standin.js';
import { useRedis, type RedisHandle } from '../dev/redis-server.js';
import {
  argument,
  BENCH_API_KEY,
  BENCH_API_SECRET,
  benchConfig,
  benchDir,
  fileLogger,
  finish,
  fmt,
  fmtInt,
  latencySummary,
  median,
  out,
  textTable,
  verdict,
} from './common.js';
import type { RoundRequest, RoundResult } from './load-generator.js';
import { EVENTS_PER_CALL } from './load-generator.js';

export interface IngestRound {
  target: 'baseline' | 'service';
  requests: number;
  throughput: number;
  p50: number;
  p99: number;
  max: number;
  serverCpuPct: number;
  generatorCpuPct: number;
  non200: number;
}

export interface IngestResult {
  store: 'memory' | 'redis';
  requests: number;
  connections: number;
  meanBodyBytes: number;
  rounds: IngestRound[];
  /** per pair: service / baseline throughput */
  ratios: number[];
  baseline: { throughput: number; p50: number; p99: number };
  service: { throughput: number; p50: number; p99: number };
  ratio: number;
  ratioTarget: number;
  p99TargetMs: number;
  callsChecked: number;
  callErrors: string[];
}

const CONNECTIONS = 50;
const WINDOW = 20;

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

function close(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** The baseline: what any receiver of LiveKit webhooks has to do, and nothing else. */
function baselineApp(): Koa {
  const receiver = new WebhookReceiver(BENCH_API_KEY, BENCH_API_SECRET);
  const router = new Router();
  router.post('/webhook', async (ctx) => {
    const chunks: Buffer[] = [];
    for await (const chunk of ctx.req) chunks.push(chunk as Buffer);
    try {
      await receiver.receive(Buffer.concat(chunks).toString('utf8'), ctx.get('authorization'));
      ctx.status = 200;
    } catch {
      ctx.status = 401;
    }
  });
  const app = new Koa();
  app.use(router.routes());
  return app;
}

function startGenerator(): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = fork(join(benchDir, 'load-generator.ts'), [], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    child.once('error', reject);
    const onExit = (code: number | null) => reject(new Error(`load generator exited with ${code}`));
    child.once('exit', onExit);
    child.once('message', () => {
      child.off('exit', onExit);
      resolve(child);
    });
  });
}

/** One round: the generator prepares, then signals the start of timing and reports when done. */
function round(generator: ChildProcess, port: number, calls: number): Promise<{ result: RoundResult; serverCpuPct: number }> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`load generator exited with ${code} during a round`));
    generator.once('exit', onExit);
    let cpu: NodeJS.CpuUsage | null = null;
    let startedAt = 0;
    const onMessage = (message: { type: string }) => {
      if (message.type === 'started') {
        cpu = process.cpuUsage();
        startedAt = performance.now();
      } else if (message.type === 'done') {
        const elapsed = performance.now() - startedAt;
        const used = process.cpuUsage(cpu ?? undefined);
        generator.off('message', onMessage);
        generator.off('exit', onExit);
        resolve({ result: message as RoundResult, serverCpuPct: ((used.user + used.system) / 1000 / elapsed) * 100 });
      }
    };
    generator.on('message', onMessage);
    const request: RoundRequest = {
      type: 'round',
      port,
      calls,
      connections: CONNECTIONS,
      window: WINDOW,
      apiKey: BENCH_API_KEY,
      apiSecret: BENCH_API_SECRET,
    };
    generator.send(request);
  });
}

/** Every call of a service round ended as remote_hangup with seq 1..n and no gap. */
async function checkCalls(service: Service, calls: RoundResult['calls']): Promise<string[]> {
  const errors: string[] = [];
  for (const [sid, name, identity] of calls) {
    const id = inboundSessionId({ sid, name }, identity);
    const record = await service.store.get(id);
    const events = (await service.store.events(id)) ?? [];
    const seqOk = events.length === record?.lastSeq && events.every((event, i) => event.seq === i + 1);
    if (!record || record.state !== 'ended' || record.context.endReason !== 'remote_hangup' || !seqOk) {
      errors.push(`${id}: state ${record?.state ?? 'missing'}, end ${record?.context.endReason ?? '-'}, seq ${events.map((e) => e.seq).join(',')}`);
    }
  }
  return errors;
}

async function main(): Promise<void> {
  const store = argument('store', 'memory') as 'memory' | 'redis';
  const requests = Number(argument('requests', store === 'redis' ? '4000' : '10000'));
  // More pairs in memory mode: its ratio is the headline figure, and rounds are short.
  const pairs = Number(argument('pairs', store === 'redis' ? '4' : '5'));
  const warmup = Number(argument('warmup', store === 'redis' ? '1500' : '2500'));
  const calls = Math.round(requests / EVENTS_PER_CALL / CONNECTIONS) * CONNECTIONS;
  const warmupCalls = Math.max(CONNECTIONS, Math.round(warmup / EVENTS_PER_CALL / CONNECTIONS) * CONNECTIONS);

  const standIn = await startLiveKitStandIn({ apiKey: BENCH_API_KEY, apiSecret: BENCH_API_SECRET });
  let redis: RedisHandle | null = null;
  if (store === 'redis') redis = await useRedis();
  const config = benchConfig(standIn.url, redis ? { REDIS_URL: redis.url } : {});
  const log = fileLogger(`ingest-${store}`);
  const { logger, path: logPath } = log;
  const backend = redis ? createRedisBackend(config, logger, { keyPrefix: `bench-ingest-${process.pid}:` }) : undefined;
  const service = createService({ config, logger, livekit: createLiveKitAdapter(config.livekit), backend });
  const serviceServer = createServer(service.app.callback());
  const baselineServer = createServer(baselineApp().callback());
  const ports = { service: await listen(serviceServer), baseline: await listen(baselineServer) };
  const generator = await startGenerator();
  const shutdown = async (): Promise<void> => {
    generator.send({ type: 'exit' });
    await close(serviceServer);
    await close(baselineServer);
    await service.close();
    await service.store.close();
    await standIn.close();
    await redis?.stop();
    await log.close();
  };

  out(`webhook ingest (${store} store): ${calls * EVENTS_PER_CALL} requests per round (${calls} calls x ${EVENTS_PER_CALL} events), ` +
    `${CONNECTIONS} connections, ${pairs} interleaved pairs; service log: ${logPath}`);

  const serviceOnly = Number(argument('service-only', '0'));
  if (serviceOnly > 0) {
    for (let i = 0; i < serviceOnly; i += 1) {
      const { result } = await round(generator, ports.service, calls);
      out(`  service round ${i + 1}: ${fmtInt((result.requests / result.elapsedMs) * 1000)} req/s`);
    }
    await shutdown();
    process.exit(0);
  }

  // Warm-up (not counted): JIT, connection pools, the store's first allocations.
  await round(generator, ports.baseline, warmupCalls);
  const warm = await round(generator, ports.service, warmupCalls);
  const warmErrors = await checkCalls(service, warm.result.calls);

  const rounds: IngestRound[] = [];
  const callErrors: string[] = [...warmErrors];
  let callsChecked = warm.result.calls.length;
  let meanBodyBytes = 0;
  for (let pair = 0; pair < pairs; pair += 1) {
    for (const target of ['baseline', 'service'] as const) {
      const { result, serverCpuPct } = await round(generator, ports[target], calls);
      const latency = latencySummary(result.latencies);
      const non200 = Object.entries(result.statuses).reduce((n, [status, count]) => (status === '200' ? n : n + count), 0);
      const entry: IngestRound = {
        target,
        requests: result.requests,
        throughput: (result.requests / result.elapsedMs) * 1000,
        p50: latency.p50,
        p99: latency.p99,
        max: latency.max,
        serverCpuPct,
        generatorCpuPct: result.generatorCpuPct,
        non200,
      };
      rounds.push(entry);
      meanBodyBytes = result.meanBodyBytes;
      if (target === 'service') {
        callErrors.push(...(await checkCalls(service, result.calls)));
        callsChecked += result.calls.length;
      }
      out(`  pair ${pair + 1} ${target.padEnd(8)} ${fmtInt(entry.throughput).padStart(6)} req/s  p50 ${fmt(entry.p50)} ms  p99 ${fmt(entry.p99)} ms  ` +
        `max ${fmt(entry.max)} ms  server cpu ${fmt(serverCpuPct, 0)}%  generator cpu ${fmt(result.generatorCpuPct, 0)}%  non-200 ${non200}`);
    }
  }

  await shutdown();

  const pick = (target: IngestRound['target']) => rounds.filter((r) => r.target === target);
  const summary = (list: IngestRound[]) => ({
    throughput: median(list.map((r) => r.throughput)),
    p50: median(list.map((r) => r.p50)),
    p99: median(list.map((r) => r.p99)),
  });
  const baselineRounds = pick('baseline');
  const serviceRounds = pick('service');
  const ratios = serviceRounds.map((r, i) => r.throughput / (baselineRounds[i]?.throughput ?? Number.NaN));
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
    ratioTarget: store === 'redis' ? 0.5 : 0.9,
    p99TargetMs: 20,
    callsChecked,
    callErrors: callErrors.slice(0, 5),
  };
  const errorCount = callErrors.length;
  out();
  for (const line of textTable(
    ['', 'req/s', 'p50 ms', 'p99 ms'],
    [
      ['baseline (median)', fmtInt(result.baseline.throughput), fmt(result.baseline.p50), fmt(result.baseline.p99)],
      ['service (median)', fmtInt(result.service.throughput), fmt(result.service.p50), fmt(result.service.p99)],
    ],
  )) out(`  ${line}`);
  out(`  ratio service/baseline (median of pairs ${ratios.map((r) => fmt(r)).join(', ')}): ${fmt(result.ratio)} ` +
    `(target >= ${result.ratioTarget}: ${verdict(result.ratio >= result.ratioTarget)}); ` +
    `service p99 ${fmt(result.service.p99)} ms (target <= 20: ${verdict(result.service.p99 <= 20)})`);
  out(`  mean body ${fmtInt(meanBodyBytes)} bytes; calls checked ${callsChecked}, wrong ${errorCount}${errorCount ? `: ${callErrors[0]}` : ''}`);
  await finish(result);
}

await main();
