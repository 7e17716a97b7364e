// Status callbacks and webhook latency: does a slow customer server slow the webhook route?
//
//   tsx bench/status-callbacks.ts [--calls 600] [--pairs 3] [--delay-ms 250]
//
// Each round starts the service afresh as its own process (the compiled build, started by
// bench/servers.ts: in-memory store, log to a file), once without status callbacks and once with every event pushed to a receiver that answers
// 2xx only after --delay-ms (a process of its own), alternating off, on, off, on, ... The load
// generator (bench/load-generator.ts, its own process) replays the same signed inbound-call
// webhooks to both. Printed per round and as medians: webhook req/s, p50, p99, and for the rounds
// with callbacks how many were delivered and how long the outbox took to drain after the load.
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { startLiveKitStandIn } from '../dev/livekit-standin.js';
import { freePort } from '../dev/redis-server.js';
import { argument, BENCH_API_KEY, BENCH_API_SECRET, benchDir, fmt, fmtInt, latencySummary, logNote, median, out, removeScratch, textTable } from './common.js';
import { EVENTS_PER_CALL } from './inbound-calls.js';
import { build, forkChild, generate, metric, startServer, stop } from './servers.js';

const LOAD = { connections: 50, window: 20 };

/** The customer's server: answers every POST 200 after `delayMs` (run with --receiver). */
async function receiver(delayMs: number): Promise<void> {
  let received = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      received++;
      setTimeout(() => res.end('ok'), delayMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  process.send?.({ port: (server.address() as AddressInfo).port });
  process.on('message', () => process.send?.({ received }));
}

interface Round {
  callbacks: boolean;
  throughput: number;
  p50: number;
  p99: number;
  non200: number;
  delivered: number;
  drainS: number;
}

async function main(): Promise<void> {
  const calls = Math.round(Number(argument('calls', '600')) / LOAD.connections) * LOAD.connections;
  const pairs = Number(argument('pairs', '3'));
  const delayMs = Number(argument('delay-ms', '250'));
  build();
  const standIn = await startLiveKitStandIn({ apiKey: BENCH_API_KEY, apiSecret: BENCH_API_SECRET });
  const slow = await forkChild(join(benchDir, 'status-callbacks.ts'), ['--receiver', String(delayMs)], 'port');
  const generator = (await forkChild(join(benchDir, 'load-generator.ts'), [], 'type')).child;
  const secret = `whsec_${randomBytes(32).toString('base64')}`;
  const logFile = join(process.env.TMPDIR ?? '/tmp', `bench-status-callbacks-${process.pid}.log`);
  const withCallbacks = { STATUS_CALLBACK_URL: `http://127.0.0.1:${String(slow.hello.port)}/hook`, STATUS_CALLBACK_SECRET: secret };

  out(`status callbacks: ${calls * EVENTS_PER_CALL} webhooks per round (${calls} calls), ${LOAD.connections} connections, ` +
    `receiver answers after ${delayMs} ms, ${pairs} pairs, each round a fresh service process; log ${logNote(logFile)}`);
  const rounds: Round[] = [];
  for (let pair = 0; pair < pairs; pair++) {
    for (const callbacks of [false, true]) {
      const port = await freePort();
      const child = await startServer('service', { port, log: logFile, livekitUrl: standIn.url, env: callbacks ? withCallbacks : {} });
      const service = { child, url: `http://127.0.0.1:${port}` };
      await generate(generator, port, LOAD.connections * 2, LOAD); // warm-up, not counted
      const result = await generate(generator, port, calls, LOAD);
      const latency = latencySummary(result.latencies);
      let drainS = 0;
      if (callbacks) {
        const started = performance.now();
        while ((await metric(service.url, 'control_plane_status_callbacks_pending')) > 0 && performance.now() - started < 120_000) {
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        drainS = (performance.now() - started) / 1000;
      }
      const delivered = await metric(service.url, 'control_plane_status_callbacks_total{outcome="delivered"}');
      await stop(service.child);
      const entry: Round = {
        callbacks,
        throughput: (result.requests / result.elapsedMs) * 1000,
        p50: latency.p50,
        p99: latency.p99,
        non200: Object.entries(result.statuses).reduce((n, [status, count]) => (status === '200' ? n : n + count), 0),
        delivered,
        drainS,
      };
      rounds.push(entry);
      out(`  pair ${pair + 1} callbacks ${callbacks ? 'on ' : 'off'}  ${fmtInt(entry.throughput).padStart(6)} req/s  p50 ${fmt(entry.p50)} ms  ` +
        `p99 ${fmt(entry.p99)} ms  non-200 ${entry.non200}${callbacks ? `  delivered ${fmtInt(delivered)}, outbox drained ${fmt(drainS, 1)} s after the load` : ''}`);
    }
  }
  generator.send({ type: 'exit' });
  slow.child.removeAllListeners('exit');
  slow.child.kill();
  await standIn.close();
  removeScratch({ logs: [logFile] });

  const summary = (on: boolean) => {
    const list = rounds.filter((r) => r.callbacks === on);
    return { throughput: median(list.map((r) => r.throughput)), p50: median(list.map((r) => r.p50)), p99: median(list.map((r) => r.p99)) };
  };
  const off = summary(false);
  const on = summary(true);
  out();
  for (const line of textTable(
    ['', 'req/s', 'p50 ms', 'p99 ms'],
    [
      ['callbacks off (median)', fmtInt(off.throughput), fmt(off.p50), fmt(off.p99)],
      [`callbacks on, ${delayMs} ms receiver (median)`, fmtInt(on.throughput), fmt(on.p50), fmt(on.p99)],
    ],
  )) out(`  ${line}`);
  out(`  p99 on/off ${fmt(on.p99 / off.p99)}; req/s on/off ${fmt(on.throughput / off.throughput)}`);
  process.exit(0);
}

const receiverIndex = process.argv.indexOf('--receiver');
if (receiverIndex >= 0) await receiver(Number(process.argv[receiverIndex + 1]));
else await main();
