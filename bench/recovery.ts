// Part 4: recovery on Redis. 10k live connected calls are created through one service instance;
// then, four times: every call gets one event on the running instance (warm: the instance has the
// call's actor cached), the instance is closed, a fresh one starts on the same Redis and key prefix,
// and every call gets one event again (cold: each call is restored from its stored snapshot).
// The cold figure is the recovery time; the warm one, measured the same way just before, is its
// baseline. Events alternate livekit.agent_joined / livekit.agent_left of a second agent, so each
// applies (state stays connected) and adds exactly one OBS-00 event; state, agents and seq of every
// call are checked after every round, and every call's stored history at the end.
//
//   tsx bench/recovery.ts [--calls 10000] [--pairs 4]
import { performance } from 'node:perf_hooks';
import { randomUUID } from 'node:crypto';
import type { CallInput } from '../machines/call.types.js';
import type { IncomingEvent } from '../src/calls/call-runtime.js';
import { createRedisBackend } from '../src/store/redis/backend.js';
import { createLiveKitAdapter } from '../src/livekit/livekit.adapter.js';
import { callSettings, createService, type Service } from '../src/service.js';
import { startLiveKitStandIn } from '../dev/livekit-standin.js';
import { useRedis } from '../dev/redis-server.js';
import { argument, BENCH_API_KEY, BENCH_API_SECRET, benchConfig, fileLogger, finish, fmt, median, out, textTable, verdict } from './common.js';

export interface RecoveryPair {
  warmSeconds: number;
  coldSeconds: number;
}

export interface RecoveryResult {
  calls: number;
  createSeconds: number;
  pairs: RecoveryPair[];
  warmSeconds: number;
  coldSeconds: number;
  /** cold / warm, median of pairs */
  ratio: number;
  /** the slowest cold round */
  worstColdSeconds: number;
  targetSeconds: number;
  callErrors: number;
  firstError: string;
}

const BATCH = 500;
const SECOND_AGENT = { identity: 'agent-second', sid: 'PA_second' };

async function main(): Promise<void> {
  const calls = Number(argument('calls', '10000'));
  const pairs = Number(argument('pairs', '4'));
  const redis = await useRedis();
  const standIn = await startLiveKitStandIn({ apiKey: BENCH_API_KEY, apiSecret: BENCH_API_SECRET });
  const config = benchConfig(standIn.url, { REDIS_URL: redis.url, AGENT_GRACE_S: '300' });
  const log = fileLogger('recovery');
  const keyPrefix = `bench-recovery-${process.pid}:`;
  const settings = callSettings(config, 'inbound');
  out(`recovery (Redis): ${calls} live connected calls, ${pairs} pairs of warm / cold rounds (one event per call each)`);

  const start = (): Service => {
    const backend = createRedisBackend(config, log.logger, { keyPrefix });
    return createService({ config, logger: log.logger, livekit: createLiveKitAdapter(config.livekit), backend });
  };
  const stop = async (service: Service): Promise<void> => {
    await service.close();
    await service.store.close();
  };

  let service = start();
  // The Redis connection opens in the background; wait for it so the first burst does not queue on it.
  await service.store.ping();
  const ids: string[] = [];
  const createStarted = performance.now();
  for (let startAt = 0; startAt < calls; startAt += BATCH) {
    const batch: Promise<void>[] = [];
    for (let i = startAt; i < Math.min(calls, startAt + BATCH); i += 1) {
      const id = randomUUID();
      ids.push(id);
      const caller = `+3164${String(i).padStart(7, '0')}`;
      const input: Omit<CallInput, 'at'> = {
        sessionId: id,
        direction: 'inbound',
        callerNumber: caller,
        calleeNumber: '+3197010206472',
        roomName: `call-_${caller}_${id.slice(0, 12)}`,
        roomSid: `RM_${id.slice(0, 12)}`,
        sipIdentity: `sip_${caller}`,
        sipCallId: `SCL_${id.slice(0, 12)}`,
        sipCallStatus: 'ringing',
        agentName: null,
        metadata: null,
        settings,
      };
      const current = service;
      batch.push(
        (async () => {
          await current.runtime.create(input);
          const joined = await current.runtime.send(id, { type: 'livekit.agent_joined', participant: { identity: `agent-${i}`, sid: `PA_${i}` } });
          if (joined.outcome !== 'applied') throw new Error(`agent_joined ${joined.outcome} for ${id}`);
        })(),
      );
    }
    await Promise.all(batch);
  }
  const createSeconds = (performance.now() - createStarted) / 1000;
  out(`  created ${calls} connected calls in ${fmt(createSeconds, 1)} s`);

  // created, ringing, agent_joined, started
  let expectedSeq = 4;
  let callErrors = 0;
  let firstError = '';
  const fail = (message: string) => {
    callErrors += 1;
    firstError ||= message;
  };

  /** One event to every call, all at once; seconds until every one was applied. */
  const round = async (event: IncomingEvent): Promise<number> => {
    const current = service;
    const started = performance.now();
    // A fresh instance first connects to Redis: part of the recovery time.
    await current.store.ping();
    const results = await Promise.all(ids.map((id) => current.runtime.send(id, event)));
    const seconds = (performance.now() - started) / 1000;
    expectedSeq += 1;
    const agents = event.type === 'livekit.agent_joined' ? 2 : 1;
    results.forEach((result, i) => {
      if (result.outcome !== 'applied') fail(`${ids[i]}: ${event.type} ${result.outcome}`);
    });
    for (const id of ids) {
      const record = await current.store.get(id);
      if (record?.state !== 'connected' || record.lastSeq !== expectedSeq || record.context.agents.length !== agents) {
        fail(`${id}: state ${record?.state}, seq ${record?.lastSeq} (expected ${expectedSeq}), agents ${record?.context.agents.length}`);
      }
    }
    return seconds;
  };

  const results: RecoveryPair[] = [];
  for (let pair = 0; pair < pairs; pair += 1) {
    const warmSeconds = await round({ type: 'livekit.agent_joined', participant: SECOND_AGENT });
    await stop(service);
    service = start();
    const coldSeconds = await round({ type: 'livekit.agent_left', participant: SECOND_AGENT, reason: 'CLIENT_INITIATED' });
    results.push({ warmSeconds, coldSeconds });
    out(`  pair ${pair + 1}: warm ${fmt(warmSeconds)} s, after restart ${fmt(coldSeconds)} s (${fmt(coldSeconds / warmSeconds)}x)`);
  }

  // The stored history of every call: seq 1..n, no gap, no repeat.
  for (const id of ids) {
    const events = (await service.store.events(id)) ?? [];
    if (events.length !== expectedSeq || !events.every((e, i) => e.seq === i + 1)) fail(`${id}: history ${events.map((e) => e.seq).join(',')}`);
  }
  await stop(service);
  await standIn.close();
  await redis.stop();
  await log.close();

  const result: RecoveryResult = {
    calls,
    createSeconds,
    pairs: results,
    warmSeconds: median(results.map((r) => r.warmSeconds)),
    coldSeconds: median(results.map((r) => r.coldSeconds)),
    ratio: median(results.map((r) => r.coldSeconds / r.warmSeconds)),
    worstColdSeconds: Math.max(...results.map((r) => r.coldSeconds)),
    targetSeconds: 5,
    callErrors,
    firstError,
  };
  out();
  for (const line of textTable(
    ['', `seconds for ${calls} events (median)`],
    [
      ['warm instance (baseline)', fmt(result.warmSeconds)],
      ['fresh instance after restart', fmt(result.coldSeconds)],
    ],
  )) out(`  ${line}`);
  out(`  ratio restart/warm ${fmt(result.ratio)}; worst restart ${fmt(result.worstColdSeconds)} s (target < 5 s: ${verdict(result.worstColdSeconds < 5)}); ` +
    `wrong calls ${callErrors}${firstError ? ` (${firstError})` : ''}`);
  await finish(result);
}

await main();
