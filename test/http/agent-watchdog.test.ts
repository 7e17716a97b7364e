// The agent watchdog (AGENT_JOIN_TIMEOUT_S, docs/call-lifecycle.md): a call answered with no agent in
// its room is hung up through LiveKit and ends failed/agent_error unless an agent joins in time.
// Time is the test's: the deadline fires when the test moves the clock, never by sleeping.
import { afterEach, describe, expect, it } from 'vitest';
import type { Env } from '../../src/config.js';
import type { ObsEnvelope } from '../../src/obs/envelope.js';
import type { Session } from '../../src/http/session.js';
import { agentParticipant, newId, sipParticipant } from '../../dev/webhook-events.js';
import { startServiceHarness, type ServiceHarness } from '../support/service-harness.js';

const TO = '+31612345678';
let harnesses: ServiceHarness[] = [];
afterEach(async () => {
  for (const h of harnesses) await h.close();
  harnesses = [];
});

async function start(env: Env = {}, options: Parameters<typeof startServiceHarness>[0] = {}): Promise<ServiceHarness> {
  const h = await startServiceHarness({ ...options, env: { AGENT_JOIN_TIMEOUT_S: '20', ...env } });
  harnesses.push(h);
  return h;
}

async function flush(h: ServiceHarness): Promise<void> {
  for (let i = 0; i < 4; i++) {
    await h.standIn.webhooks?.idle();
    await h.settled();
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function placeAnswered(h: ServiceHarness): Promise<Session> {
  const response = await h.api('/v1/calls', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ to: TO }) });
  expect(response.status).toBe(201);
  const call = (await response.json()) as Session;
  await flush(h);
  expect((await session(h, call.id)).state).toBe('connected');
  return call;
}

async function session(h: ServiceHarness, id: string): Promise<Session> {
  return (await (await h.api(`/v1/calls/${id}`)).json()) as Session;
}

async function events(h: ServiceHarness, id: string): Promise<ObsEnvelope[]> {
  return ((await (await h.api(`/v1/calls/${id}/events`)).json()) as { events: ObsEnvelope[] }).events;
}

/** Moves the test's clock by `ms`, firing the timers that come due, and lets their work finish. */
async function advance(h: ServiceHarness, ms: number): Promise<void> {
  h.scheduler?.advance(ms);
  await flush(h);
}

function expectAgentError(call: Session, seconds: number): void {
  expect(call).toMatchObject({
    state: 'failed',
    end_reason: 'agent_error',
    error: { category: 'agent_error', message: `no agent joined within ${seconds} s of the answer` },
  });
}

describe('the agent watchdog', () => {
  it('hangs up an answered outbound call no agent joins and ends it failed/agent_error', async () => {
    const h = await start();
    const call = await placeAnswered(h);
    await advance(h, 19_999);
    expect((await session(h, call.id)).state).toBe('connected');
    expect(h.standIn.requestsFor('DeleteRoom')).toHaveLength(0);

    await advance(h, 1);
    expectAgentError(await session(h, call.id), 20);
    expect(h.standIn.requestsFor('DeleteRoom').map((r) => r.body.room)).toEqual([call.livekit_room]);
    const tail = (await events(h, call.id)).slice(-2);
    expect(tail.map((e) => e.event)).toEqual(['call.error', 'call.failed']);
    expect(tail[0]?.data).toMatchObject({ category: 'agent_error', message: 'no agent joined within 20 s of the answer' });
    expect(tail[1]?.data).toMatchObject({ end_reason: 'agent_error', category: 'agent_error' });
  });

  it('is disarmed by an agent joining one tick before the deadline', async () => {
    const h = await start();
    const call = await placeAnswered(h);
    await advance(h, 19_999);
    h.standIn.joinParticipant(call.livekit_room, agentParticipant({ identity: 'agent-late' }));
    await flush(h);
    await advance(h, 1);
    await advance(h, 600_000);
    expect(await session(h, call.id)).toMatchObject({ state: 'connected', end_reason: null });
    expect(h.standIn.requestsFor('DeleteRoom')).toHaveLength(0);
    expect((await h.service.store.get(call.id))?.context.deadlines.agentJoin).toBeNull();
  });

  it('is never armed when the agent is in the room before the answer', async () => {
    const h = await start();
    h.standIn.setHandler('CreateSIPParticipant', async (req, standIn) => {
      standIn.joinParticipant(String(req.body.roomName ?? req.body.room_name), agentParticipant({ identity: 'agent-early' }));
      await standIn.webhooks?.idle();
      return standIn.simulate(req);
    });
    const call = await placeAnswered(h);
    expect((await h.service.store.get(call.id))?.context.deadlines.agentJoin).toBeNull();
    await advance(h, 60_000);
    expect((await session(h, call.id)).state).toBe('connected');
  });

  it('fails an inbound call answered on arrival that no agent joins', async () => {
    const h = await start({ AGENT_JOIN_TIMEOUT_S: '7' });
    const room = `call-_${TO}_${newId('', 6)}`;
    h.standIn.joinParticipant(room, sipParticipant({ phoneNumber: TO, trunkPhoneNumber: '+3197010206472', callStatus: 'active' }));
    await flush(h);
    const [call] = ((await (await h.api('/v1/calls')).json()) as { calls: Session[] }).calls;
    expect(call?.state).toBe('connected');
    await advance(h, 7000);
    expectAgentError(await session(h, call?.id as string), 7);
  });

  it('is off with AGENT_JOIN_TIMEOUT_S=0', async () => {
    const h = await start({ AGENT_JOIN_TIMEOUT_S: '0' });
    const call = await placeAnswered(h);
    await advance(h, 600_000);
    expect((await session(h, call.id)).state).toBe('connected');
  });
});
