// A Redis outage (docs/replicas.md): while Redis is down the service says so (readyz 503, webhooks 503 so
// LiveKit retries, Control API 503) and changes nothing; when Redis is back it recovers by itself
// and LiveKit's retry is applied once.
import { afterAll, describe, expect, it } from 'vitest';
import type { Session } from '../../src/http/session.js';
import type { ObsEnvelope } from '../../src/obs/envelope.js';
import { restartableRedis } from '../../dev/redis-server.js';
import { startServiceHarness, type ServiceHarness } from '../support/service-harness.js';
import { agentParticipant, roomJson, sipParticipant, webhookEvents } from '../../dev/webhook-events.js';

let redis: Awaited<ReturnType<typeof restartableRedis>> | null = null;
let h: ServiceHarness | null = null;

afterAll(async () => {
  await h?.close();
  await redis?.stop();
});

describe('a Redis outage', () => {
  it('answers 503 while Redis is down, changes nothing, and recovers by itself when it returns', async () => {
    redis = await restartableRedis();
    await redis.start();
    h = await startServiceHarness({ redisUrl: redis.url });
    const room = roomJson('call-_+31612345678_outage');
    const caller = sipParticipant({ phoneNumber: '+31612345678', callStatus: 'ringing' });
    expect((await h.postSigned(JSON.stringify(webhookEvents.participantJoined(room, caller)))).status).toBe(200);

    await redis.stop();
    expect((await h.api('/readyz', { key: null })).status).toBe(503);
    const agentJoined = JSON.stringify(webhookEvents.participantJoined(room, agentParticipant()));
    const refused = await h.postSigned(agentJoined);
    expect(refused.status).toBe(503);
    const list = await h.api('/v1/calls');
    expect(list.status).toBe(503);
    expect(((await list.json()) as { code: string }).code).toBe('store_unavailable');
    const place = await h.api('/v1/calls', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"to":"+31687654321"}' });
    expect(place.status).toBe(503);

    await redis.start();
    const deadline = Date.now() + 10_000;
    while ((await h.api('/readyz', { key: null })).status !== 200) {
      if (Date.now() > deadline) throw new Error('the service did not recover within 10 s');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    // LiveKit's retry of the refused webhook is applied, once.
    expect((await h.postSigned(agentJoined)).status).toBe(200);
    expect(JSON.parse((await h.postSigned(agentJoined)).body)).toMatchObject({ status: 'duplicate' });
    const calls = ((await (await h.api('/v1/calls')).json()) as { calls: Session[] }).calls;
    expect(calls.map((c) => c.state)).toEqual(['connected']);
    const events = ((await (await h.api(`/v1/calls/${calls[0]?.id}/events`)).json()) as { events: ObsEnvelope[] }).events;
    expect(events.map((e) => [e.seq, e.event])).toEqual([
      [1, 'call.created'],
      [2, 'call.ringing'],
      [3, 'call.agent_joined'],
      [4, 'call.started'],
    ]);
  }, 60_000);
});
