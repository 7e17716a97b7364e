// The Control API's read side: GET /v1/calls, /v1/calls/{id}, /v1/calls/{id}/events, and its
// bearer-key authentication.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Session } from '../../src/http/session.js';
import { startServiceHarness, TEST_API_KEY, type ServiceHarness } from '../support/service-harness.js';
import { agentParticipant, roomJson, sipParticipant, webhookEvents } from '../../dev/webhook-events.js';

let h: ServiceHarness;
afterEach(async () => {
  await h.close();
});

/** Creates `count` inbound calls; every third one is answered, every fourth ends with no agent. */
async function seedCalls(count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const phone = `+3161234${String(i).padStart(4, '0')}`;
    const room = roomJson(`call-_${phone}_${i}`);
    const caller = sipParticipant({ phoneNumber: phone, trunkPhoneNumber: '+3197010206472', callStatus: 'ringing' });
    await h.postSigned(JSON.stringify(webhookEvents.participantJoined(room, caller)));
    if (i % 3 === 0) await h.postSigned(JSON.stringify(webhookEvents.participantJoined(room, agentParticipant())));
    if (i % 4 === 1) await h.postSigned(JSON.stringify(webhookEvents.participantLeft(room, caller, 'CLIENT_INITIATED')));
    h.clock?.set(h.clock.now() + 1000);
  }
}

async function json<T>(response: Response): Promise<T> {
  return (await response.json()) as T;
}

describe('Control API authentication', () => {
  beforeEach(async () => {
    h = await startServiceHarness();
  });

  it('answers 401 problem+json without a key', async () => {
    const response = await h.api('/v1/calls', { key: null });
    expect(response.status).toBe(401);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(response.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(await json(response)).toMatchObject({ status: 401, code: 'unauthorized', title: 'Unauthorized' });
  });

  it('answers 401 with a wrong key, also for a path that does not exist', async () => {
    expect((await h.api('/v1/calls', { key: 'wrong-key-wrong-key-0001' })).status).toBe(401);
    expect((await h.api('/v1/nothing-here', { key: 'wrong-key-wrong-key-0001' })).status).toBe(401);
    expect((await h.api('/v1/nothing-here')).status).toBe(404);
  });

  it('accepts any configured key', async () => {
    await h.close();
    h = await startServiceHarness({ env: { CONTROL_API_KEYS: ` ${TEST_API_KEY} , second-key-0123456789 ` } });
    expect((await h.api('/v1/calls')).status).toBe(200);
    expect((await h.api('/v1/calls', { key: 'second-key-0123456789' })).status).toBe(200);
  });

  it('answers 401 to everything when no keys are configured', async () => {
    await h.close();
    h = await startServiceHarness({ env: { CONTROL_API_KEYS: '' } });
    const response = await h.api('/v1/calls');
    expect(response.status).toBe(401);
    expect((await json<{ detail: string }>(response)).detail).toMatch(/CONTROL_API_KEYS/);
  });
});

describe('GET /v1/calls', () => {
  beforeEach(async () => {
    h = await startServiceHarness();
    await seedCalls(12);
  });

  it('lists newest first with the session fields of docs/api.md', async () => {
    const body = await json<{ calls: Session[]; next_cursor: string | null }>(await h.api('/v1/calls'));
    expect(body.calls).toHaveLength(12);
    expect(body.next_cursor).toBeNull();
    const created = body.calls.map((c) => c.created_at);
    expect([...created].sort().reverse()).toEqual(created);
    expect(Object.keys(body.calls[0] as object).sort()).toEqual(
      [
        'id', 'direction', 'state', 'end_reason', 'caller_number', 'callee_number', 'livekit_room',
        'sip_participant_identity', 'sip_call_id', 'agent', 'attempt', 'created_at', 'ringing_at',
        'answered_at', 'ended_at', 'duration_s', 'error', 'metadata', 'sip_headers', 'display_name', 'recording',
      ].sort(),
    );
  });

  it('filters by state and direction', async () => {
    const connected = await json<{ calls: Session[] }>(await h.api('/v1/calls?state=connected'));
    expect(connected.calls.length).toBeGreaterThan(0);
    expect(connected.calls.every((c) => c.state === 'connected')).toBe(true);
    const ended = await json<{ calls: Session[] }>(await h.api('/v1/calls?state=ended&direction=inbound'));
    expect(ended.calls).toHaveLength(3);
    expect(ended.calls.map((c) => c.end_reason)).toEqual(ended.calls.map((c) => (c.answered_at ? 'remote_hangup' : 'canceled')));
    const outbound = await json<{ calls: Session[] }>(await h.api('/v1/calls?direction=outbound'));
    expect(outbound.calls).toEqual([]);
  });

  it('pages with a cursor that stays stable while new calls arrive', async () => {
    const first = await json<{ calls: Session[]; next_cursor: string }>(await h.api('/v1/calls?limit=5'));
    expect(first.calls).toHaveLength(5);
    expect(first.next_cursor).toEqual(expect.any(String));
    await seedCalls(3); // new calls go to the front, not into the next page
    const second = await json<{ calls: Session[]; next_cursor: string }>(await h.api(`/v1/calls?limit=5&cursor=${first.next_cursor}`));
    const third = await json<{ calls: Session[]; next_cursor: string | null }>(await h.api(`/v1/calls?limit=5&cursor=${second.next_cursor}`));
    const ids = [...first.calls, ...second.calls, ...third.calls].map((c) => c.id);
    expect(new Set(ids).size).toBe(12);
    expect(third.calls).toHaveLength(2);
    expect(third.next_cursor).toBeNull();
  });

  it('finds the session of a LiveKit room, also combined with the other filters, and every call of a reused room name', async () => {
    const all = await json<{ calls: Session[] }>(await h.api('/v1/calls'));
    expect(all.calls).toHaveLength(12);
    for (const call of all.calls) {
      const found = await json<{ calls: Session[] }>(await h.api(`/v1/calls?room=${encodeURIComponent(call.livekit_room)}`));
      expect(found.calls.map((c) => c.id)).toEqual([call.id]);
      const other = call.state === 'ended' ? 'ringing' : 'ended';
      const none = await json<{ calls: Session[] }>(await h.api(`/v1/calls?room=${encodeURIComponent(call.livekit_room)}&state=${other}`));
      expect(none.calls).toEqual([]);
    }
    // LiveKit reuses room names: a second call in the room of the first seeded call comes first.
    await seedCalls(1);
    const first = all.calls.at(-1) as Session;
    const reused = await json<{ calls: Session[] }>(await h.api(`/v1/calls?room=${encodeURIComponent(first.livekit_room)}`));
    expect(reused.calls).toHaveLength(2);
    expect(reused.calls[1]?.id).toBe(first.id);
  });

  it('answers 400 for an unknown state, a bad limit, an unknown parameter or a forged cursor', async () => {
    for (const query of ['state=talking', 'direction=sideways', 'limit=0', 'limit=abc', 'limit=1000', 'color=blue', 'cursor=bm9wZQ', 'state=ended&state=failed', 'room=', 'room=a&room=b', `room=${'r'.repeat(257)}`]) {
      const response = await h.api(`/v1/calls?${query}`);
      expect(response.status, query).toBe(400);
      expect((await json<{ code: string }>(response)).code).toMatch(/^invalid_(query|cursor)$/);
    }
  });
});

describe('GET /v1/calls/{id} and /v1/calls/{id}/events', () => {
  beforeEach(async () => {
    h = await startServiceHarness();
  });

  it('answers 404 problem+json for an unknown call', async () => {
    for (const path of ['/v1/calls/does-not-exist', '/v1/calls/does-not-exist/events']) {
      const response = await h.api(path);
      expect(response.status).toBe(404);
      expect(await json(response)).toMatchObject({ code: 'call_not_found', status: 404 });
    }
  });

  it('returns the session and its events in seq order', async () => {
    await seedCalls(1);
    const list = await json<{ calls: Session[] }>(await h.api('/v1/calls'));
    const id = list.calls[0]?.id as string;
    const session = await json<Session>(await h.api(`/v1/calls/${id}`));
    expect(session).toMatchObject({ id, state: 'connected', direction: 'inbound' });
    const { events } = await json<{ events: { seq: number; session_id: string }[] }>(await h.api(`/v1/calls/${id}/events`));
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    expect(events.every((e) => e.session_id === id)).toBe(true);
  });

  it('gives the error\'s user_message in Dutch when the client prefers Dutch', async () => {
    const room = roomJson('call-_+31611112222_nl');
    await h.postSigned(JSON.stringify(webhookEvents.participantJoined(room, sipParticipant({ phoneNumber: '+31611112222', callStatus: 'ringing' }))));
    await h.postSigned(JSON.stringify(webhookEvents.participantLeft(room, sipParticipant({ phoneNumber: '+31611112222' }), 'USER_UNAVAILABLE')));
    const list = await json<{ calls: Session[] }>(await h.api('/v1/calls'));
    const id = list.calls[0]?.id as string;
    const en = await json<Session>(await h.api(`/v1/calls/${id}`));
    const nl = await json<Session>(await h.api(`/v1/calls/${id}`, { headers: { 'Accept-Language': 'nl-NL,nl;q=0.9,en;q=0.5' } }));
    expect(en.error?.category).toBe('no_answer');
    expect(nl.error?.user_message).not.toBe(en.error?.user_message);
    expect(nl.error?.user_message.length).toBeGreaterThan(0);
  });
});
