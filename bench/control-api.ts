// Part 3: Control API latency, `POST /v1/calls` until the session reaches `dialing`.
//
//   tsx bench/control-api.ts [--rate 200] [--seconds 2.5] [--pairs 4]
//
// Open-loop load at `rate` requests per second for `seconds` per round, alternating between a bare
// Koa JSON route (parse the body, answer 201: the HTTP round trip alone) and the service. For the
// service the latency is from sending the POST to the call's `call.dialing` event on service.bus;
// LiveKit is the stand-in, in a child process of its own, answering CreateSIPParticipant at once.
// Each round's calls are checked afterwards: every POST answered 201 and every call connected.
import { fork, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { Agent, createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import Router from '@koa/router';
import Koa from 'koa';
import { createLiveKitAdapter } from '../src/livekit/livekit.adapter.js';
import { createService, type Service } from '../src/service.js';
import { startLiveKitStandIn } from '../dev/livekit-standin.js';
import {
  argument,
  BENCH_API_KEY,
  BENCH_API_SECRET,
  BENCH_CONTROL_KEY,
  benchConfig,
  benchDir,
  fileLogger,
  finish,
  fmt,
  latencySummary,
  median,
  out,
  sleep,
  textTable,
  verdict,
} from './common.js';

export interface ControlRound {
  target: 'baseline' | 'service';
  requests: number;
  /** achieved send rate */
  rate: number;
  p50: number;
  p99: number;
  /** service only: the HTTP answer (201) itself */
  httpP50: number | null;
  httpP99: number | null;
  failures: number;
  /** CPU time of this process (service or baseline, plus the client) as % of one core */
  cpuPct: number;
  /** event-loop delay of this process during the round, ms */
  loopDelayP99: number;
}

export interface ControlResult {
  rate: number;
  seconds: number;
  rounds: ControlRound[];
  baseline: { p50: number; p99: number };
  service: { p50: number; p99: number; httpP50: number; httpP99: number };
  /** per pair: service p50 / baseline p50 */
  ratios: number[];
  ratio: number;
  callsChecked: number;
  callErrors: number;
}

function startStandIn(): Promise<{ url: string; child: ChildProcess }> {
  return new Promise((resolve, reject) => {
    const child = fork(`${benchDir}control-api.ts`, ['--standin'], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    child.once('error', reject);
    child.once('message', (message: { url: string }) => resolve({ url: message.url, child }));
  });
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

function baselineApp(): Koa {
  const router = new Router();
  router.post('/v1/calls', async (ctx) => {
    const chunks: Buffer[] = [];
    for await (const chunk of ctx.req) chunks.push(chunk as Buffer);
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { to: string };
    ctx.status = 201;
    ctx.body = { id: randomUUID(), state: 'queued', callee_number: body.to };
  });
  const app = new Koa();
  app.use(router.routes());
  return app;
}

interface Sent {
  at: number;
  answeredAt: number | null;
  status: number | null;
  id: string | null;
}

function post(agent: Agent, port: number, body: string, sent: Sent): void {
  const req = request(
    {
      agent,
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: '/v1/calls',
      headers: {
        'Content-Type': 'application/json',
        'Content-Length': Buffer.byteLength(body),
        Authorization: `Bearer ${BENCH_CONTROL_KEY}`,
      },
    },
    (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        sent.answeredAt = performance.now();
        sent.status = res.statusCode ?? null;
        try {
          sent.id = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { id?: string }).id ?? null;
        } catch {
          sent.id = null;
        }
      });
    },
  );
  req.on('error', () => {
    sent.status = -1;
    sent.answeredAt = performance.now();
  });
  sent.at = performance.now();
  req.end(body);
}

/** Sends `rate`/s for `seconds` on a fixed schedule (open loop) and waits for every answer. */
async function openLoop(port: number, rate: number, seconds: number, number: () => string): Promise<{ sent: Sent[]; cpuPct: number; loopDelayP99: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const delay = monitorEventLoopDelay({ resolution: 2 });
  delay.enable();
  const cpu = process.cpuUsage();
  const total = Math.round(rate * seconds);
  const sent: Sent[] = [];
  const started = performance.now();
  await new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * rate) + 1);
      while (sent.length < due) {
        const entry: Sent = { at: 0, answeredAt: null, status: null, id: null };
        sent.push(entry);
        post(agent, port, JSON.stringify({ to: number(), metadata: { order: sent.length } }), entry);
      }
      if (sent.length < total) setTimeout(tick, 1);
      else resolve();
    };
    tick();
  });
  const deadline = performance.now() + 10_000;
  while (sent.some((s) => s.answeredAt === null) && performance.now() < deadline) await sleep(5);
  const used = process.cpuUsage(cpu);
  const cpuPct = ((used.user + used.system) / 1000 / (performance.now() - started)) * 100;
  delay.disable();
  agent.destroy();
  return { sent, cpuPct, loopDelayP99: delay.percentile(99) / 1e6 };
}

let numbers = 0;
const nextNumber = (): string => `+3162${String(numbers++).padStart(7, '0')}`;

async function serviceRound(service: Service, port: number, rate: number, seconds: number): Promise<{ round: ControlRound; ids: string[] }> {
  const dialingAt = new Map<string, number>();
  const unsubscribe = service.bus.subscribe((envelope) => {
    if (envelope.event === 'call.dialing' && !dialingAt.has(envelope.session_id)) dialingAt.set(envelope.session_id, performance.now());
  });
  const { sent, cpuPct, loopDelayP99 } = await openLoop(port, rate, seconds, nextNumber);
  const deadline = performance.now() + 5000;
  while (sent.some((s) => s.id && !dialingAt.has(s.id)) && performance.now() < deadline) await sleep(5);
  unsubscribe();
  await service.settled();
  const latencies: number[] = [];
  const http: number[] = [];
  let failures = 0;
  for (const s of sent) {
    const dialed = s.id ? dialingAt.get(s.id) : undefined;
    if (s.status !== 201 || dialed === undefined || s.answeredAt === null) {
      failures += 1;
      continue;
    }
    latencies.push(dialed - s.at);
    http.push(s.answeredAt - s.at);
  }
  const l = latencySummary(latencies);
  const h = latencySummary(http);
  const span = (sent.at(-1)?.at ?? 0) - (sent[0]?.at ?? 0);
  return {
    round: { target: 'service', requests: sent.length, rate: ((sent.length - 1) / span) * 1000, p50: l.p50, p99: l.p99, httpP50: h.p50, httpP99: h.p99, failures, cpuPct, loopDelayP99 },
    ids: sent.flatMap((s) => (s.id ? [s.id] : [])),
  };
}

async function baselineRound(port: number, rate: number, seconds: number): Promise<ControlRound> {
  const { sent, cpuPct, loopDelayP99 } = await openLoop(port, rate, seconds, nextNumber);
  const latencies: number[] = [];
  let failures = 0;
  for (const s of sent) {
    if (s.status !== 201 || s.answeredAt === null) failures += 1;
    else latencies.push(s.answeredAt - s.at);
  }
  const l = latencySummary(latencies);
  const span = (sent.at(-1)?.at ?? 0) - (sent[0]?.at ?? 0);
  return { target: 'baseline', requests: sent.length, rate: ((sent.length - 1) / span) * 1000, p50: l.p50, p99: l.p99, httpP50: null, httpP99: null, failures, cpuPct, loopDelayP99 };
}

async function main(): Promise<void> {
  const rate = Number(argument('rate', '200'));
  const seconds = Number(argument('seconds', '2.5'));
  const pairs = Number(argument('pairs', '4'));
  const standIn = await startStandIn();
  const config = benchConfig(standIn.url, {
    SIP_OUTBOUND_TRUNK_ID: 'ST_bench_outbound',
    MAX_CONCURRENT_CALLS: '100000',
    CALLS_PER_SECOND: '10000',
    MAX_QUEUED_CALLS: '100000',
  });
  const log = fileLogger('control-api');
  const service = createService({ config, logger: log.logger, livekit: createLiveKitAdapter(config.livekit) });
  const serviceServer = createServer(service.app.callback());
  const baselineServer = createServer(baselineApp().callback());
  const ports = { service: await listen(serviceServer), baseline: await listen(baselineServer) };
  out(`control API: POST /v1/calls -> call.dialing at ${rate}/s, ${seconds} s per round, ${pairs} interleaved pairs (stand-in in its own process)`);

  // Warm-up, not counted: the first seconds of a fresh process are spent compiling.
  await baselineRound(ports.baseline, rate, seconds);
  await serviceRound(service, ports.service, rate, seconds);

  const rounds: ControlRound[] = [];
  const ids: string[] = [];
  for (let pair = 0; pair < pairs; pair += 1) {
    const baseline = await baselineRound(ports.baseline, rate, seconds);
    const { round, ids: roundIds } = await serviceRound(service, ports.service, rate, seconds);
    ids.push(...roundIds);
    for (const r of [baseline, round]) {
      rounds.push(r);
      out(`  pair ${pair + 1} ${r.target.padEnd(8)} ${r.requests} POSTs at ${fmt(r.rate, 0)}/s  p50 ${fmt(r.p50)} ms  p99 ${fmt(r.p99)} ms` +
        `${r.httpP50 !== null ? `  (201 answer p50 ${fmt(r.httpP50)} ms, p99 ${fmt(r.httpP99 ?? Number.NaN)} ms)` : ''}  ` +
        `cpu ${fmt(r.cpuPct, 0)}%  loop delay p99 ${fmt(r.loopDelayP99, 1)} ms  failures ${r.failures}`);
    }
  }

  // Every call placed in the timed rounds was dialed and answered by the stand-in.
  let callErrors = 0;
  for (const id of ids) {
    const record = await service.store.get(id);
    if (record?.state !== 'connected') callErrors += 1;
  }

  const baselineRounds = rounds.filter((r) => r.target === 'baseline');
  const serviceRounds = rounds.filter((r) => r.target === 'service');
  const ratios = serviceRounds.map((r, i) => r.p50 / (baselineRounds[i]?.p50 ?? Number.NaN));
  const result: ControlResult = {
    rate,
    seconds,
    rounds,
    baseline: { p50: median(baselineRounds.map((r) => r.p50)), p99: median(baselineRounds.map((r) => r.p99)) },
    service: {
      p50: median(serviceRounds.map((r) => r.p50)),
      p99: median(serviceRounds.map((r) => r.p99)),
      httpP50: median(serviceRounds.map((r) => r.httpP50 ?? Number.NaN)),
      httpP99: median(serviceRounds.map((r) => r.httpP99 ?? Number.NaN)),
    },
    ratios,
    ratio: median(ratios),
    callsChecked: ids.length,
    callErrors,
  };
  out();
  for (const line of textTable(
    ['', 'p50 ms', 'p99 ms'],
    [
      ['baseline: bare Koa JSON 201 (median)', fmt(result.baseline.p50), fmt(result.baseline.p99)],
      ['service: POST -> call.dialing (median)', fmt(result.service.p50), fmt(result.service.p99)],
      ['service: POST -> 201 answer (median)', fmt(result.service.httpP50), fmt(result.service.httpP99)],
    ],
  )) out(`  ${line}`);
  out(`  ratio of p50s service/baseline (median of pairs ${ratios.map((r) => fmt(r)).join(', ')}): ${fmt(result.ratio)}; ` +
    `calls checked ${ids.length}, not connected ${callErrors} (${verdict(callErrors === 0)})`);

  serviceServer.closeAllConnections();
  baselineServer.closeAllConnections();
  await new Promise((resolve) => serviceServer.close(resolve));
  await new Promise((resolve) => baselineServer.close(resolve));
  await service.close();
  standIn.child.send('close');
  await log.close();
  await finish(result);
}

// The stand-in runs as a process of its own (LiveKit is not in the service's process either).
if (process.argv.includes('--standin')) {
  const standIn = await startLiveKitStandIn({ apiKey: BENCH_API_KEY, apiSecret: BENCH_API_SECRET });
  process.send?.({ url: standIn.url });
  const stop = () => void standIn.close().then(() => process.exit(0));
  process.on('message', stop);
  process.on('disconnect', stop);
} else {
  await main();
}
