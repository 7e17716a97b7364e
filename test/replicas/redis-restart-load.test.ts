// Redis restarted in the middle of a load of calls (issue: fault injection): webhooks answered
// 503 during the outage are retried by LiveKit, API clients retry with their Idempotency-Key.
// Afterwards no session is lost, no call was dialed twice, and every call is final.
import { afterAll, describe, expect, it } from 'vitest';
import type { Session } from '../../src/http/session.js';
import { restartableRedis } from '../../dev/redis-server.js';
import { startServiceHarness, type ServiceHarness } from '../support/service-harness.js';
import { agentParticipant, sipParticipant } from '../../dev/webhook-events.js';

const CALLS = 40;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
let redis: Awaited<ReturnType<typeof restartableRedis>> | null = null;
let h: ServiceHarness | null = null;

afterAll(async () => {
  await h?.close();
  await redis?.stop();
});

describe('Redis restarted mid-load', () => {
  it('loses no session, dials no call twice, and ends every call', async () => {
    redis = await restartableRedis();
    await redis.start();
    h = await startServiceHarness({
      redisUrl: redis.url,
      realTime: true,
      webhookRetryDelaysMs: [1000, 2000, 4000, 8000], // LiveKit's own
      env: { ENDING_GRACE_S: '2', AGENT_GRACE_S: '1', DIAL_RETRY_BASE_MS: '100', DIAL_RETRY_MAX_MS: '500', MAX_CONCURRENT_CALLS: '1000', CALLS_PER_SECOND: '1000' },
    });
    const harness = h;
    const api = async (path: string, init: RequestInit = {}): Promise<Response> => {
      for (let attempt = 1; ; attempt++) {
        const response = await harness.api(path, { ...init, headers: { 'Content-Type': 'application/json', ...init.headers } });
        if (response.status !== 503 && response.status !== 409) return response;
        if (attempt > 300) throw new Error(`${path} kept answering ${response.status}`);
        await sleep(100);
      }
    };

    const outbound = async (i: number): Promise<string> => {
      const placed = await api('/v1/calls', { method: 'POST', headers: { 'Idempotency-Key': `restart-${i}` }, body: JSON.stringify({ to: `+316${String(50_000_000 + i)}` }) });
      expect(placed.status).toBe(201);
      const { id } = (await placed.json()) as Session;
      for (let tries = 0; tries < 200; tries++) {
        const call = (await (await api(`/v1/calls/${id}`)).json()) as Session;
        if (call.state !== 'queued' && call.state !== 'dialing') break;
        await sleep(50);
      }
      await sleep(200);
      await api(`/v1/calls/${id}/hangup`, { method: 'POST' });
      return id;
    };
    const inbound = async (i: number): Promise<string> => {
      const phone = `+316${String(60_000_000 + i)}`;
      const room = `call-_${phone}_${i}`;
      harness.standIn.joinParticipant(room, sipParticipant({ phoneNumber: phone, callStatus: 'ringing' }));
      await sleep(150);
      harness.standIn.joinParticipant(room, agentParticipant({ identity: `agent-${i}` }));
      await sleep(300);
      harness.standIn.leaveParticipant(room, `sip_${phone}`, 'CLIENT_INITIATED');
      harness.standIn.finishRoom(room);
      return room;
    };

    const work = Array.from({ length: CALLS }, (_, i) => sleep(i * 40).then(() => (i % 2 === 0 ? outbound(i) : inbound(i))));
    await sleep(700);
    await redis.stop();
    await sleep(1000);
    await redis.start();
    const done = await Promise.all(work);
    await h.standIn.webhooks?.idle();

    const deadline = Date.now() + 30_000;
    let calls: Session[];
    for (;;) {
      calls = ((await (await api('/v1/calls?limit=200')).json()) as { calls: Session[] }).calls;
      const open = calls.filter((c) => c.state !== 'ended' && c.state !== 'failed');
      if (calls.length === CALLS && open.length === 0) break;
      if (Date.now() > deadline) {
        const listed = new Set(calls.map((c) => c.livekit_room));
        const missing = done.filter((key) => key.startsWith('call-_') && !listed.has(key));
        const failures = (h.standIn.webhooks?.deliveries ?? [])
          .filter((d) => missing.includes(String(d.event.room?.name)))
          .map((d) => `${d.event.event} ${d.event.room?.name}: ${d.result.status ?? d.result.error} after ${d.result.attempts}`);
        throw new Error(`${calls.length} calls, ${open.length} not final: ${open.map((c) => `${c.id} ${c.state}`).join(', ')}; missing ${missing.join(', ')}; ${failures.join('; ')}`);
      }
      await sleep(200);
    }
    const rooms = new Set(calls.map((c) => c.livekit_room));
    for (const key of done) if (key.startsWith('call-_')) expect(rooms.has(key), key).toBe(true);
    const ids = new Set(calls.map((c) => c.id));
    for (const key of done) if (!key.startsWith('call-_')) expect(ids.has(key), key).toBe(true);

    const identities = h.standIn.requestsFor('CreateSIPParticipant').map((d) => String(d.body.participantIdentity));
    expect(new Set(identities).size).toBe(identities.length);
    const outcomes = new Map<string, number>();
    for (const c of calls) outcomes.set(`${c.direction} ${c.state}/${c.end_reason}`, (outcomes.get(`${c.direction} ${c.state}/${c.end_reason}`) ?? 0) + 1);
    console.log(`redis restart mid-load: ${CALLS} calls, ${identities.length} dials, outcomes ${JSON.stringify(Object.fromEntries(outcomes))}`);
  }, 120_000);
});
