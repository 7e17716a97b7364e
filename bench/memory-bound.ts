// Bounded memory: the service's RSS under a long stream of webhooks, in-memory and on Redis with
// several replicas.
//
//   tsx bench/memory-bound.ts [--rounds 3] [--calls 20000] [--replicas 2] [--settle-s 3]
//
// In-memory store: one service process (the compiled build, started by bench/servers.ts, default
// configuration) fed by the load generator (bench/load-generator.ts, its own process): each round
// --calls fresh inbound calls of five webhooks each (20,000 calls: 100,000 webhooks), every call
// run to its end. After each round and --settle-s seconds of quiet, the process's RSS and its
// live actors (/metrics) are read. Redis: --replicas service processes on one Redis and key
// prefix, each fed by a generator of its own with its share of the round's calls, all at once; every
// replica's RSS is read, and Redis's own memory and key count are shown for information (ended
// calls are kept there for CALL_RETENTION_S).
//
// The bound holds when RSS after the first round is under RSS_BOUND_MIB and the last round's RSS is
// at most FLAT_RATIO times the first's.
import type { ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { startLiveKitStandIn } from '../dev/livekit-standin.js';
import { freePort, useRedis } from '../dev/redis-server.js';
import { argument, BENCH_API_KEY, BENCH_API_SECRET, benchDir, finish, fmt, fmtInt, logNote, out, removeScratch, sleep, textTable } from './common.js';
import { EVENTS_PER_CALL } from './inbound-calls.js';
import { build, forkChild, generate, metric, rssMiB, startServer, stop } from './servers.js';
import { boundTableData } from './memory-bound-table.js';

/** RSS after 100,000 webhooks with the default configuration (docs/performance.md says what it is made of). */
const RSS_BOUND_MIB = 400;
/** RSS after the last round over RSS after the first: at most this, or memory is still growing */
const FLAT_RATIO = 1.1;
const LOAD = { connections: 50, window: 20 };

export interface BoundRound {
  /** webhooks sent to the service (all replicas) so far */
  webhooks: number;
  /** RSS of each replica, MiB */
  rssMiB: number[];
  liveActors: number[];
  redisUsedMiB: number | null;
  redisKeys: number | null;
}

export interface BoundRun {
  store: 'memory' | 'redis';
  replicas: number;
  idleRssMiB: number[];
  rounds: BoundRound[];
  /** per replica: last round's RSS / first round's */
  growth: number[];
}

export interface BoundResult {
  memory: BoundRun;
  redis: BoundRun;
  rssBoundMiB: number;
  flatRatio: number;
  callsPerRound: number;
}

async function run(store: 'memory' | 'redis', replicas: number, rounds: number, calls: number, settleMs: number, livekitUrl: string): Promise<BoundRun> {
  const redis = store === 'redis' ? await useRedis() : null;
  const log = join(tmpdir(), `bench-memory-bound-${store}-${process.pid}.log`);
  const servers: { child: ChildProcess; url: string; port: number }[] = [];
  const generators: ChildProcess[] = [];
  const client = redis ? new Redis(redis.url, { lazyConnect: true }) : null;
  const prefix = `bound${process.pid}:`;
  try {
    for (let i = 0; i < replicas; i++) {
      const port = await freePort();
      const child = await startServer('service', { port, log, livekitUrl, env: redis ? { REDIS_URL: redis.url, REDIS_KEY_PREFIX: prefix } : {} });
      servers.push({ child, port, url: `http://127.0.0.1:${port}` });
      generators.push((await forkChild(join(benchDir, 'load-generator.ts'), [], 'type')).child);
    }
    await client?.connect();
    await sleep(settleMs);
    const idleRssMiB = servers.map((s) => rssMiB(s.child.pid));
    out(`${store}: ${replicas} replica(s), idle RSS ${idleRssMiB.map((r) => fmt(r, 0)).join(', ')} MiB; log ${logNote(log)}`);
    const result: BoundRound[] = [];
    for (let r = 1; r <= rounds; r++) {
      const share = Math.round(calls / replicas);
      const sent = await Promise.all(servers.map((s, i) => generate(generators[i] as ChildProcess, s.port, share, LOAD)));
      const refused = sent.reduce((n, x) => n + Object.entries(x.statuses).filter(([status]) => status !== '200').reduce((m, [, c]) => m + c, 0), 0);
      if (refused > 0) throw new Error(`${refused} webhooks were not answered 200`);
      await sleep(settleMs);
      const round: BoundRound = {
        webhooks: r * share * replicas * EVENTS_PER_CALL,
        rssMiB: servers.map((s) => rssMiB(s.child.pid)),
        liveActors: await Promise.all(servers.map((s) => metric(s.url, 'control_plane_live_actors'))),
        redisUsedMiB: client ? Number(/used_memory:(\d+)/.exec(await client.info('memory'))?.[1]) / 2 ** 20 : null,
        redisKeys: client ? await client.dbsize() : null,
      };
      result.push(round);
      out(`  after ${fmtInt(round.webhooks)} webhooks: RSS ${round.rssMiB.map((x) => fmt(x, 0)).join(', ')} MiB, live actors ${round.liveActors.join(', ')}` +
        (client ? `, Redis ${fmt(round.redisUsedMiB ?? 0, 0)} MiB in ${fmtInt(round.redisKeys ?? 0)} keys` : ''));
    }
    const first = result[0] as BoundRound;
    const last = result.at(-1) as BoundRound;
    return { store, replicas, idleRssMiB, rounds: result, growth: last.rssMiB.map((x, i) => x / (first.rssMiB[i] as number)) };
  } finally {
    for (const generator of generators) generator.kill();
    for (const server of servers) await stop(server.child);
    client?.disconnect();
    await redis?.stop();
    removeScratch({ logs: [log] });
  }
}

function table(run: BoundRun): string[] {
  const { headers, rows } = boundTableData(run);
  return textTable(headers, rows);
}

async function main(): Promise<void> {
  const rounds = Number(argument('rounds', '3'));
  const calls = Number(argument('calls', '20000'));
  const replicas = Number(argument('replicas', '2'));
  const settleMs = Number(argument('settle-s', '3')) * 1000;
  build();
  const standIn = await startLiveKitStandIn({ apiKey: BENCH_API_KEY, apiSecret: BENCH_API_SECRET });
  try {
    out(`bounded memory: ${rounds} rounds of ${fmtInt(calls)} calls (${fmtInt(calls * EVENTS_PER_CALL)} webhooks) each, every call run to its end, ${LOAD.connections} connections per replica`);
    const memory = await run('memory', 1, rounds, calls, settleMs, standIn.url);
    for (const line of table(memory)) out(`  ${line}`);
    const redis = await run('redis', replicas, rounds, calls, settleMs, standIn.url);
    for (const line of table(redis)) out(`  ${line}`);
    for (const r of [memory, redis]) {
      const first = (r.rounds[0] as BoundRound).rssMiB;
      out(`  ${r.store}: RSS after ${fmtInt((r.rounds[0] as BoundRound).webhooks)} webhooks ${first.map((x) => fmt(x, 0)).join(', ')} MiB (bound ${RSS_BOUND_MIB}: ${first.every((x) => x <= RSS_BOUND_MIB) ? 'met' : 'MISSED'}), ` +
        `last round / first ${r.growth.map((g) => fmt(g)).join(', ')} (flat <= ${FLAT_RATIO}: ${r.growth.every((g) => g <= FLAT_RATIO) ? 'met' : 'MISSED'})`);
    }
    await finish({ memory, redis, rssBoundMiB: RSS_BOUND_MIB, flatRatio: FLAT_RATIO, callsPerRound: calls } satisfies BoundResult);
  } finally {
    await standIn.close();
  }
}

await main();
