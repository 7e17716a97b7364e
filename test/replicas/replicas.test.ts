// Several replicas on one Redis (docs/replicas.md): three `npm start` processes behind a round-robin load
// balancer take 200 concurrent calls (inbound from LiveKit webhooks, outbound through the Control
// API) while replicas are killed with SIGKILL and restarted. Afterwards every call is in its
// correct final state, no call's seq has a gap, no OBS-00 event is duplicated and no dial was
// placed twice.
import type { ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Session } from '../../src/http/session.js';
import type { ObsEnvelope } from '../../src/obs/envelope.js';
import { startLiveKitStandIn, type LiveKitStandIn } from '../../dev/livekit-standin.js';
import { startLoadBalancer, type LoadBalancer } from '../support/load-balancer.js';
import { freePort } from '../../dev/redis-server.js';
import { replicaEnv, spawnService } from '../support/service-process.js';
import { agentParticipant, sipParticipant } from '../../dev/webhook-events.js';
import { startStatusCallbackReceiver, type StatusCallbackReceiver } from '../../dev/status-callback-receiver.js';

const CALLS = 200;
const REPLICAS = 3;
const KEY = 'replica-test-key-000000001';
const TRUNK_NUMBER = '+3197010206472';
const BUSY_PREFIX = '+3161999';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const between = (min: number, max: number) => min + Math.floor(Math.random() * (max - min));

interface Replica {
  port: number;
  child: ChildProcess | null;
  starts: number;
}

interface Expected {
  kind: 'inbound' | 'outbound';
  room?: string;
  id?: string;
  endReason: string;
}

let standIn: LiveKitStandIn;
let balancer: LoadBalancer;
/** the customer's backend: every event of every call is pushed to it, also while replicas die */
let callbacks: StatusCallbackReceiver;
const CALLBACK_SECRET = `whsec_${Buffer.from('replica-test-status-callback-secret!').toString('base64')}`;
const replicas: Replica[] = [];
const logDir = mkdtempSync(join(tmpdir(), 'cp-replicas-'));
const prefix = `rep${Math.random().toString(36).slice(2, 8)}:`;

function startReplica(replica: Replica): Promise<void> {
  replica.starts++;
  const log = createWriteStream(join(logDir, `replica-${replica.port}.log`), { flags: 'a' });
  const child = spawnService(
    {
      ...replicaEnv(standIn, { controlApiKey: KEY, keyPrefix: prefix, port: replica.port }),
      SIP_OUTBOUND_TRUNK_ID: 'ST_replicas',
      LOG_LEVEL: 'warn',
      RECONCILE_INTERVAL_S: '2',
      ENDING_GRACE_S: '3',
      AGENT_GRACE_S: '2',
      DIAL_RETRY_BASE_MS: '200',
      DIAL_RETRY_MAX_MS: '1000',
      MAX_CONCURRENT_CALLS: '1000',
      CALLS_PER_SECOND: '1000',
      STATUS_CALLBACK_URL: callbacks.url,
      STATUS_CALLBACK_SECRET: CALLBACK_SECRET,
      STATUS_CALLBACK_TIMEOUT_S: '2',
      STATUS_CALLBACK_RETRY_SCHEDULE_S: '0.2,0.5,1,1,1,1,1,1,1,1',
    },
    { output: log },
  );
  replica.child = child;
  return waitForHealth(replica.port);
}

async function waitForHealth(port: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const ok = await fetch(`http://127.0.0.1:${port}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    await sleep(100);
  }
  throw new Error(`replica on port ${port} did not become ready; see ${logDir}`);
}

function kill(replica: Replica): Promise<void> {
  const child = replica.child;
  replica.child = null;
  if (!child || child.exitCode !== null) return Promise.resolve();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  return exited;
}

/** A Control API request through the balancer, retried while the answer is lost with a replica. */
async function api(path: string, init: RequestInit = {}, retryOn: (status: number) => boolean = (s) => s >= 500): Promise<Response> {
  for (let attempt = 1; ; attempt++) {
    const response = await fetch(`${balancer.url}${path}`, {
      ...init,
      headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json', ...init.headers },
    }).catch(() => null);
    if (response && !retryOn(response.status)) return response;
    if (attempt >= 180) throw new Error(`${init.method ?? 'GET'} ${path} kept failing (${response?.status ?? 'no answer'})`);
    await sleep(250);
  }
}

async function inboundCall(i: number, endReason: 'remote_hangup' | 'canceled'): Promise<Expected> {
  const phone = `+316${String(20_000_000 + i)}`;
  const room = `call-_${phone}_${i}`;
  standIn.joinParticipant(room, sipParticipant({ phoneNumber: phone, trunkPhoneNumber: TRUNK_NUMBER, callStatus: 'ringing' }));
  await sleep(between(100, 400));
  if (endReason === 'remote_hangup') {
    standIn.joinParticipant(room, agentParticipant({ identity: `agent-${i}` }));
    await sleep(between(200, 800));
  }
  standIn.leaveParticipant(room, `sip_${phone}`, 'CLIENT_INITIATED');
  await sleep(between(50, 200));
  standIn.finishRoom(room);
  return { kind: 'inbound', room, endReason };
}

async function outboundCall(i: number, endReason: 'api_hangup' | 'busy'): Promise<Expected> {
  const to = endReason === 'busy' ? `${BUSY_PREFIX}${String(i).padStart(4, '0')}` : `+316${String(30_000_000 + i)}`;
  const placed = await api('/v1/calls', { method: 'POST', headers: { 'Idempotency-Key': `order-${prefix}-${i}` }, body: JSON.stringify({ to }) }, (s) => s >= 500 || s === 409);
  expect(placed.status, await placed.clone().text()).toBe(201);
  const { id } = (await placed.json()) as Session;
  if (endReason === 'api_hangup') {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const state = ((await (await api(`/v1/calls/${id}`)).json()) as Session).state;
      if (state === 'connected') break;
      if (Date.now() > deadline) throw new Error(`call ${id} was still ${state} after 60 s; logs in ${logDir}`);
      await sleep(200);
    }
    await sleep(between(100, 500));
    const hangup = await api(`/v1/calls/${id}/hangup`, { method: 'POST' });
    // 409 only when an earlier try whose answer was lost already ended it
    expect([202, 409]).toContain(hangup.status);
  }
  return { kind: 'outbound', id, endReason };
}

async function allCalls(): Promise<Session[]> {
  const calls: Session[] = [];
  let cursor: string | null = null;
  do {
    const page = (await (await api(`/v1/calls?limit=200${cursor ? `&cursor=${cursor}` : ''}`)).json()) as { calls: Session[]; next_cursor: string | null };
    calls.push(...page.calls);
    cursor = page.next_cursor;
  } while (cursor);
  return calls;
}

beforeAll(async () => {
  if (!process.env.REDIS_URL) throw new Error('the replica test needs REDIS_URL (the redis vitest project provides one)');
  // Slow enough that deliveries are in flight when a replica dies; about one in eight (by its
  // random event id) is refused once, so retries are under way too.
  callbacks = await startStatusCallbackReceiver({
    secret: CALLBACK_SECRET,
    respond: (delivery) => {
      const refused = /^[01]/.test(delivery.id) && !callbacks.received.some((r) => r !== delivery && r.id === delivery.id);
      return { status: refused ? 503 : 200, delayMs: between(0, 150) };
    },
  });
  standIn = await startLiveKitStandIn({ webhookUrl: 'http://127.0.0.1:1/webhook', webhookRetryDelaysMs: [100, 200, 400, 800, 1600] });
  standIn.setHandler('CreateSIPParticipant', (req, s) =>
    String(req.body.sipCallTo).startsWith(BUSY_PREFIX)
      ? { error: { code: 'resource_exhausted', msg: 'busy', meta: { sip_status_code: '486', sip_status: 'Busy Here' } } }
      : s.simulate(req),
  );
  for (let i = 0; i < REPLICAS; i++) replicas.push({ port: await freePort(), child: null, starts: 0 });
  balancer = await startLoadBalancer(() => replicas.map((r) => r.port));
  standIn.webhooks?.setUrl(`${balancer.url}/webhook`);
  await Promise.all(replicas.map(startReplica));
}, 60_000);

afterAll(async () => {
  await Promise.all(replicas.map(kill));
  await balancer?.close();
  await standIn?.close();
  await callbacks?.close();
});

describe('three replicas on Redis with replicas killed mid-call', () => {
  it('ends every call correctly, without seq gaps, duplicate events or duplicate dials', async () => {
    const started = Date.now();
    let trafficDone = false;
    let kills = 0;
    const chaos = (async () => {
      while (!trafficDone) {
        await sleep(between(600, 1400));
        if (trafficDone) break;
        const victim = replicas[between(0, REPLICAS)] as Replica;
        await kill(victim);
        kills++;
        await sleep(between(200, 800));
        await startReplica(victim);
      }
    })();

    const kinds = ['remote_hangup', 'canceled', 'api_hangup', 'busy'] as const;
    const traffic: Promise<Expected>[] = [];
    for (let i = 0; i < CALLS; i++) {
      const kind = kinds[i % kinds.length] as (typeof kinds)[number];
      traffic.push(kind === 'remote_hangup' || kind === 'canceled' ? inboundCall(i, kind) : outboundCall(i, kind));
      await sleep(between(40, 160));
    }
    const expected = await Promise.all(traffic);
    trafficDone = true;
    await chaos;
    for (const replica of replicas) if (!replica.child) await startReplica(replica);
    await standIn.webhooks?.idle();

    // Every call reaches its final state (timers and reconciliation finish what was cut off).
    let calls: Session[];
    const deadline = Date.now() + 90_000;
    for (;;) {
      calls = await allCalls();
      const open = calls.filter((c) => c.state !== 'ended' && c.state !== 'failed');
      if (calls.length >= CALLS && open.length === 0) break;
      if (Date.now() > deadline) throw new Error(`${open.length} calls still open: ${open.map((c) => `${c.id} ${c.state}`).join(', ')}; logs in ${logDir}`);
      await sleep(500);
    }
    const byRoom = new Map(calls.filter((c) => c.direction === 'inbound').map((c) => [c.livekit_room, c]));
    const byId = new Map(calls.map((c) => [c.id, c]));
    expect(calls).toHaveLength(CALLS);
    const wrong: string[] = [];
    for (const e of expected) {
      const call = e.kind === 'inbound' ? byRoom.get(e.room as string) : byId.get(e.id as string);
      if (!call || call.state !== 'ended' || call.end_reason !== e.endReason) {
        wrong.push(`${e.kind} ${e.room ?? e.id}: expected ended/${e.endReason}, got ${call ? `${call.state}/${call.end_reason}` : 'no call'}`);
      }
    }
    expect(wrong, `logs in ${logDir}`).toEqual([]);

    // OBS-00: per call 1..n without gaps, one final event at the end; no event twice anywhere.
    const eventIds = new Set<string>();
    let eventCount = 0;
    for (const call of calls) {
      const { events } = (await (await api(`/v1/calls/${call.id}/events`)).json()) as { events: ObsEnvelope[] };
      expect(events.map((e) => e.seq), call.id).toEqual(events.map((_, i) => i + 1));
      expect(events.filter((e) => e.event === 'call.ended' || e.event === 'call.failed'), call.id).toHaveLength(1);
      expect(events.at(-1)?.event).toBe('call.ended');
      for (const event of events) eventIds.add(event.event_id);
      eventCount += events.length;
      // A replayed webhook never produced a second agent_joined for the same agent.
      const joined = events.filter((e) => e.event === 'call.agent_joined').map((e) => e.data.agent_identity);
      expect(new Set(joined).size, call.id).toBe(joined.length);
    }
    expect(eventIds.size).toBe(eventCount);

    // Dials: never the same participant twice, never more dials than attempts (an attempt lost
    // with its replica before it reached LiveKit has none), and a call LiveKit answered was
    // dialed exactly once: a lost answer is found in LiveKit, not dialed again.
    const dials = standIn.requestsFor('CreateSIPParticipant');
    const identities = dials.map((d) => String(d.body.participantIdentity));
    expect(new Set(identities).size).toBe(identities.length);
    for (const call of calls.filter((c) => c.direction === 'outbound')) {
      const mine = identities.filter((identity) => identity.startsWith(`sip-${call.id}-`));
      expect(mine.length, call.id).toBeGreaterThanOrEqual(1);
      expect(mine.length, call.id).toBeLessThanOrEqual(call.attempt);
      if (call.end_reason === 'api_hangup') expect(mine, call.id).toHaveLength(1);
    }
    const redialed = calls.filter((c) => c.direction === 'outbound' && c.attempt > 1).length;

    // Status callbacks: every event of every call delivered at least once, verified, and per
    // call in seq order: an event arrives only after the one before it was answered 2xx.
    const callbackDeadline = Date.now() + 90_000;
    const delivered = (): Set<string> => new Set(callbacks.received.filter((r) => r.payload && r.answered === 200).map((r) => r.id));
    while ([...eventIds].some((id) => !delivered().has(id))) {
      if (Date.now() > callbackDeadline) {
        const missing = [...eventIds].filter((id) => !delivered().has(id));
        throw new Error(`${missing.length} events never delivered as status callbacks (e.g. ${missing[0]}); logs in ${logDir}`);
      }
      await sleep(250);
    }
    expect(callbacks.received.filter((r) => r.verifyError !== undefined)).toEqual([]);
    const arrivals = new Map<string, typeof callbacks.received>();
    for (const arrival of callbacks.received) {
      const event = arrival.payload?.data.event;
      if (event) arrivals.set(event.session_id, [...(arrivals.get(event.session_id) ?? []), arrival]);
    }
    const outOfOrder: string[] = [];
    for (const [sessionId, list] of arrivals) {
      for (const arrival of list) {
        const seq = arrival.payload?.data.event.seq as number;
        if (seq === 1) continue;
        const previousAnswered = list.some((p) => p.payload?.data.event.seq === seq - 1 && p.answered === 200 && (p.answeredAt ?? Infinity) <= arrival.at);
        if (!previousAnswered) outOfOrder.push(`${sessionId} seq ${seq}`);
      }
    }
    expect(outOfOrder, `logs in ${logDir}`).toEqual([]);
    const deliveries = callbacks.received.length;
    const duplicates = callbacks.received.filter((r) => r.answered === 200).length - eventIds.size;
    const refused = callbacks.received.filter((r) => r.answered === 503).length;
    console.log(
      `replicas: ${CALLS} calls, ${kills} SIGKILLs (replica starts: ${replicas.map((r) => r.starts).join('/')}), ` +
        `${eventCount} events, ${dials.length} dials (${redialed} calls re-dialed after a lost dial), ` +
        `status callbacks: ${deliveries} requests, ${eventIds.size} events delivered, ${duplicates} delivered twice, ${refused} refused and retried, ` +
        `${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
  }, 240_000);

  it('hands a dial over on SIGTERM: the replica exits at once and another finds the answer in LiveKit', async () => {
    const replica = replicas[0] as Replica;
    if (!replica.child) await startReplica(replica);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    standIn.setHandler('CreateSIPParticipant', async (req, s) => {
      await gate;
      return s.simulate(req);
    });
    const placed = await fetch(`http://127.0.0.1:${replica.port}/v1/calls`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ to: '+31640000001' }),
    });
    const { id } = (await placed.json()) as Session;
    const deadline = Date.now() + 10_000;
    while (standIn.requestsFor('CreateSIPParticipant').filter((r) => String(r.body.participantIdentity).startsWith(`sip-${id}-`)).length === 0) {
      if (Date.now() > deadline) throw new Error('the dial never reached LiveKit');
      await sleep(50);
    }

    const child = replica.child as ChildProcess;
    const stopping = Date.now();
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    const shutdownMs = Date.now() - stopping;
    replica.child = null;
    expect(shutdownMs).toBeLessThan(15_000);

    // LiveKit answers the dial the stopped replica was waiting for.
    release();
    const until = Date.now() + 40_000;
    let call: Session;
    for (;;) {
      call = (await (await api(`/v1/calls/${id}`)).json()) as Session;
      if (call.state === 'connected' || Date.now() > until) break;
      await sleep(250);
    }
    expect(call).toMatchObject({ state: 'connected', attempt: 1 });
    expect(standIn.requestsFor('CreateSIPParticipant').filter((r) => String(r.body.participantIdentity).startsWith(`sip-${id}-`))).toHaveLength(1);
    console.log(`replicas: SIGTERM with a dial in flight: exited 0 after ${shutdownMs} ms; another replica connected the call from LiveKit's state`);
    await api(`/v1/calls/${id}/hangup`, { method: 'POST' });
  }, 90_000);
});
