// Parts 2 and 5: heap per live call, and runtime.send throughput as the number of live calls grows.
//
//   node --expose-gc --import tsx bench/memory.ts [--sizes 1000,10000,100000] [--pairs 5000] [--reps 4]
//
// For each size N a fresh service (embedded store, production logger to a file) gets N live,
// connected inbound calls straight through the runtime: runtime.create(...) (the caller is
// ringing) and then a livekit.agent_joined event each. Heap per call = (heap used after creating
// the calls - heap used by the same process just before, with the service built), both after a
// forced full GC; it counts everything a live call holds: actor, record, event history, store
// indexes and its armed timer. All services stay alive, so the send throughput (agent_left /
// agent_joined pairs spread over all live calls) is then measured interleaved across the sizes,
// each repetition in the same order, and compared with the smallest size.
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { randomUUID } from 'node:crypto';
import type { CallInput } from '../machines/call.types.js';
import { createLiveKitAdapter } from '../src/livekit/livekit.adapter.js';
import { callSettings, createService, type Service } from '../src/service.js';
import { startLiveKitStandIn } from '../dev/livekit-standin.js';
import {
  argument,
  BENCH_API_KEY,
  BENCH_API_SECRET,
  benchConfig,
  fileLogger,
  finish,
  fmt,
  fmtInt,
  median,
  out,
  textTable,
  yieldToEventLoop,
} from './common.js';

export interface MemorySize {
  calls: number;
  heapBeforeMiB: number;
  heapAfterMiB: number;
  bytesPerCall: number;
  rssMiB: number;
  rssDeltaMiB: number;
  createSeconds: number;
  /** runtime.send events per second, per repetition */
  sendRates: number[];
  sendRate: number;
  /** share of the send measurements' wall time spent in GC pauses (median) */
  sendGcShare: number;
  /** send rate / send rate at the smallest size, per repetition */
  sendRatios: number[];
  sendRatio: number;
}

export interface MemoryResult {
  sizes: MemorySize[];
  targetBytesPerCall: number;
  eventsPerMeasurement: number;
  reps: number;
  liveCallsChecked: number;
  liveCallErrors: number;
  /** heap an ended call holds while the in-memory store retains it (record, events, indexes), bytes */
  bytesPerEndedCall: number;
  endedCalls: number;
}

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');

function fullGc(): void {
  for (let i = 0; i < 3; i += 1) gc?.();
}

const MiB = 1024 * 1024;
/** the events of an inbound call that rang and was answered by an agent */
const EXPECTED_EVENTS = 'call.created,call.ringing,call.agent_joined,call.started';
const BATCH = 500;

function heapUsed(): number {
  fullGc();
  return process.memoryUsage().heapUsed;
}

interface Population {
  size: number;
  service: Service;
  ids: string[];
}

function inboundCall(sessionId: string, n: number, settings: CallInput['settings']): Omit<CallInput, 'at'> {
  const caller = `+3161${String(n).padStart(7, '0')}`;
  return {
    sessionId,
    direction: 'inbound',
    callerNumber: caller,
    calleeNumber: '+3197010206472',
    roomName: `call-_${caller}_${sessionId.slice(0, 12)}`,
    roomSid: `RM_${sessionId.slice(0, 12)}`,
    sipIdentity: `sip_${caller}`,
    sipCallId: `SCL_${sessionId.slice(0, 12)}`,
    sipCallStatus: 'ringing',
    agentName: null,
    metadata: null,
    settings,
  };
}

async function populate(service: Service, size: number, settings: CallInput['settings'], offset: number): Promise<string[]> {
  const ids: string[] = [];
  for (let start = 0; start < size; start += BATCH) {
    const batch: Promise<void>[] = [];
    for (let i = start; i < Math.min(size, start + BATCH); i += 1) {
      const id = randomUUID();
      ids.push(id);
      batch.push(
        (async () => {
          await service.runtime.create(inboundCall(id, offset + i, settings));
          const result = await service.runtime.send(id, { type: 'livekit.agent_joined', participant: { identity: `agent-${id.slice(0, 8)}`, sid: `PA_${id.slice(0, 12)}` } });
          if (result.outcome !== 'applied') throw new Error(`agent_joined was ${result.outcome} for ${id}`);
        })(),
      );
    }
    await Promise.all(batch);
    // In production every event arrives through I/O; here the log file gets its turn between batches.
    await yieldToEventLoop();
  }
  return ids;
}

let gcMs = 0;
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) gcMs += entry.duration;
}).observe({ entryTypes: ['gc'] });

/** `pairs` agent_joined / agent_left pairs spread over every live call: events per second and GC share. */
async function sendRate(population: Population, pairs: number, rep: number): Promise<{ rate: number; gcShare: number }> {
  const { ids, service } = population;
  // A stride coprime with the population walks all of it without repeats before wrapping.
  const stride = 7919;
  let cursor = (rep * 104729) % ids.length;
  await yieldToEventLoop();
  const gcBefore = gcMs;
  const started = performance.now();
  for (let done = 0; done < pairs; done += BATCH) {
    const batch: Promise<void>[] = [];
    for (let i = done; i < Math.min(pairs, done + BATCH); i += 1) {
      cursor = (cursor + stride) % ids.length;
      const id = ids[cursor] as string;
      const agent = { identity: `agent-extra-${rep}`, sid: `PA_extra_${rep}` };
      batch.push(
        (async () => {
          const joined = service.runtime.send(id, { type: 'livekit.agent_joined', participant: agent });
          const left = service.runtime.send(id, { type: 'livekit.agent_left', participant: agent, reason: 'CLIENT_INITIATED' });
          const results = await Promise.all([joined, left]);
          if (results.some((r) => r.outcome !== 'applied')) throw new Error(`send not applied for ${id}`);
        })(),
      );
    }
    await Promise.all(batch);
    await yieldToEventLoop();
  }
  const elapsed = performance.now() - started;
  // GC entries are delivered asynchronously: let the observer catch up before reading the total.
  await yieldToEventLoop();
  return { rate: ((pairs * 2) / elapsed) * 1000, gcShare: (gcMs - gcBefore) / elapsed };
}

/**
 * Heap per ended call the in-memory store retains: `count` calls created, answered and ended by
 * room_finished in a fresh service, heap after minus before (fewer calls than MAX_RETAINED_CALLS, so
 * none is dropped).
 */
async function endedCallBytes(config: ReturnType<typeof benchConfig>, log: ReturnType<typeof fileLogger>, count: number): Promise<number> {
  const service = createService({ config, logger: log.logger, livekit: createLiveKitAdapter(config.livekit) });
  await log.drain();
  const before = heapUsed();
  const ids = await populate(service, count, callSettings(config, 'inbound'), 10_000_000);
  for (let start = 0; start < ids.length; start += BATCH) {
    await Promise.all(ids.slice(start, start + BATCH).map(async (id) => {
      const result = await service.runtime.send(id, { type: 'livekit.room_finished' });
      if (result.outcome !== 'applied' || result.record.state !== 'ended') throw new Error(`room_finished did not end ${id}`);
    }));
    await yieldToEventLoop();
  }
  await log.drain();
  const after = heapUsed();
  if (service.runtime.liveCount !== 0) throw new Error(`${service.runtime.liveCount} actors of ended calls are still live`);
  await service.close();
  return (after - before) / count;
}

async function main(): Promise<void> {
  const sizes = argument('sizes', '1000,10000,100000').split(',').map(Number);
  const pairs = Number(argument('pairs', '5000'));
  const reps = Number(argument('reps', '6'));
  const standIn = await startLiveKitStandIn({ apiKey: BENCH_API_KEY, apiSecret: BENCH_API_SECRET });
  // Agent grace long enough that no hang-up fires between an agent_left and the next agent_joined.
  const config = benchConfig(standIn.url, { AGENT_GRACE_S: '300' });
  const log = fileLogger('memory');
  const { logger, path: logPath } = log;
  const settings = callSettings(config, 'inbound');
  out(`live-call memory: sizes ${sizes.join(', ')}; service log: ${logPath}`);

  const populations: Population[] = [];
  const measured: Omit<MemorySize, 'sendRates' | 'sendRate' | 'sendRatios' | 'sendRatio' | 'sendGcShare'>[] = [];
  let offset = 0;
  for (const size of sizes) {
    const service = createService({ config, logger, livekit: createLiveKitAdapter(config.livekit) });
    await log.drain();
    const rssBefore = process.memoryUsage().rss;
    const before = heapUsed();
    const started = performance.now();
    const ids = await populate(service, size, settings, offset);
    offset += size;
    const createSeconds = (performance.now() - started) / 1000;
    // Log lines still waiting for the file are not memory of the calls.
    await log.drain();
    const after = heapUsed();
    const rss = process.memoryUsage().rss;
    populations.push({ size, service, ids });
    const entry = {
      calls: size,
      heapBeforeMiB: before / MiB,
      heapAfterMiB: after / MiB,
      bytesPerCall: (after - before) / size,
      rssMiB: rss / MiB,
      rssDeltaMiB: (rss - rssBefore) / MiB,
      createSeconds,
    };
    measured.push(entry);
    out(`  ${fmtInt(size).padStart(7)} live calls: heap ${fmt(entry.heapBeforeMiB, 1)} -> ${fmt(entry.heapAfterMiB, 1)} MiB = ` +
      `${fmtInt(entry.bytesPerCall)} B (${fmt(entry.bytesPerCall / 1024)} KiB) per call; rss ${fmt(entry.rssMiB, 0)} MiB ` +
      `(+${fmt(entry.rssDeltaMiB, 0)}); created in ${fmt(createSeconds, 1)} s (live in runtime: ${service.runtime.liveCount})`);
  }

  // Every call is live and connected with one agent.
  let liveCallErrors = 0;
  let liveCallsChecked = 0;
  let firstError = '';
  for (const { service, ids } of populations) {
    for (const id of ids) {
      const record = await service.store.get(id);
      const events = (await service.store.events(id)) ?? [];
      liveCallsChecked += 1;
      const names = events.map((e) => e.event).join(',');
      const ok =
        record?.state === 'connected' &&
        record.context.agents.length === 1 &&
        names === EXPECTED_EVENTS &&
        record.lastSeq === events.length &&
        events.every((e, i) => e.seq === i + 1);
      if (!ok) {
        liveCallErrors += 1;
        firstError ||= `${id}: ${record?.state ?? 'missing'} ${names}`;
      }
    }
  }
  if (firstError) out(`  first wrong call: ${firstError}`);

  const rates = populations.map(() => [] as number[]);
  const gcShares = populations.map(() => [] as number[]);
  await sendRate(populations[0] as Population, pairs, -1); // warm-up, not counted
  for (let rep = 0; rep < reps; rep += 1) {
    for (const [i, population] of populations.entries()) {
      const { rate, gcShare } = await sendRate(population, pairs, rep);
      rates[i]?.push(rate);
      gcShares[i]?.push(gcShare);
    }
  }
  const results: MemorySize[] = measured.map((entry, i) => {
    const sendRates = rates[i] ?? [];
    const sendRatios = sendRates.map((rate, rep) => rate / (rates[0]?.[rep] ?? Number.NaN));
    return { ...entry, sendRates, sendRate: median(sendRates), sendGcShare: median(gcShares[i] ?? []), sendRatios, sendRatio: median(sendRatios) };
  });
  const endedCalls = 5000;
  const bytesPerEndedCall = await endedCallBytes(config, log, endedCalls);
  out(`  ended calls kept by the in-memory store: ${fmt(bytesPerEndedCall / 1024)} KiB per call (${fmtInt(endedCalls)} calls)`);
  const result: MemoryResult = {
    bytesPerEndedCall,
    endedCalls,
    sizes: results,
    targetBytesPerCall: 12 * 1024,
    eventsPerMeasurement: pairs * 2,
    reps,
    liveCallsChecked,
    liveCallErrors,
  };
  out();
  for (const line of textTable(
    ['live calls', 'heap/call', 'rss MiB', `send ev/s (median of ${reps})`, `ratio vs ${fmtInt(sizes[0] ?? 0)}`, 'GC share', 'per rep'],
    results.map((r) => [
      fmtInt(r.calls),
      `${fmt(r.bytesPerCall / 1024)} KiB`,
      fmt(r.rssMiB, 0),
      fmtInt(r.sendRate),
      fmt(r.sendRatio),
      `${fmt(r.sendGcShare * 100, 0)}%`,
      r.sendRates.map((x) => fmtInt(x)).join(' '),
    ]),
  )) out(`  ${line}`);
  out(`  target <= 12 KiB per call; live calls checked ${liveCallsChecked}, wrong ${liveCallErrors}`);
  await standIn.close();
  await log.close();
  await finish(result);
}

await main();
