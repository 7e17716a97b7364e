// Inbound calls end to end: the LiveKit stand-in's simulated room sends signed webhooks to the
// service over HTTP, exactly as LiveKit would, and the calls are read back through the Control API.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ObsEnvelope } from '../../src/obs/envelope.js';
import type { Session } from '../../src/http/session.js';
import { startServiceHarness, type ServiceHarness } from '../support/service-harness.js';
import { agentParticipant, newId, sipParticipant } from '../../dev/webhook-events.js';

const CALLER = '+31612345678';
const TRUNK_NUMBER = '+3197010206472';

let h: ServiceHarness;

beforeEach(async () => {
  h = await startServiceHarness();
});
afterEach(async () => {
  await h.close();
});

/** Lets queued webhooks reach the service and everything they started finish. */
async function flush(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    await h.standIn.webhooks?.idle();
    await h.settled();
  }
}

async function onlyCall(): Promise<Session> {
  const response = await h.api('/v1/calls');
  const body = (await response.json()) as { calls: Session[] };
  expect(body.calls).toHaveLength(1);
  return body.calls[0] as Session;
}

async function eventsOf(id: string): Promise<ObsEnvelope[]> {
  const response = await h.api(`/v1/calls/${id}/events`);
  return ((await response.json()) as { events: ObsEnvelope[] }).events;
}

function callerJoins(room: string, callStatus: 'ringing' | 'active' = 'ringing') {
  return h.standIn.joinParticipant(room, sipParticipant({ phoneNumber: CALLER, trunkPhoneNumber: TRUNK_NUMBER, callStatus }));
}

const identity = `sip_${CALLER}`;

describe('inbound calls from LiveKit webhooks', () => {
  it('rings when the caller joins, connects when the agent joins, and ends as remote_hangup when the caller hangs up', async () => {
    const room = `call-_${CALLER}_${newId('', 6)}`;
    callerJoins(room);
    await flush();
    let call = await onlyCall();
    expect(call).toMatchObject({
      direction: 'inbound',
      state: 'ringing',
      caller_number: CALLER,
      callee_number: TRUNK_NUMBER,
      livekit_room: room,
      sip_participant_identity: identity,
      end_reason: null,
    });
    expect(call.ringing_at).not.toBeNull();

    h.standIn.joinParticipant(room, agentParticipant({ identity: 'agent-AJ_1' }));
    await flush();
    call = await onlyCall();
    expect(call.state).toBe('connected');
    expect(call.answered_at).not.toBeNull();

    h.clock?.set((h.clock?.now() ?? 0) + 42_000);
    h.standIn.leaveParticipant(room, identity, 'CLIENT_INITIATED');
    h.standIn.finishRoom(room);
    await flush();
    call = await onlyCall();
    expect(call).toMatchObject({ state: 'ended', end_reason: 'remote_hangup', duration_s: 42, error: null });

    const events = await eventsOf(call.id);
    expect(events.map((e) => e.event)).toEqual([
      'call.created',
      'call.ringing',
      'call.agent_joined',
      'call.started',
      'call.ended',
    ]);
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(events.at(-1)).toMatchObject({ state: 'ended', data: { end_reason: 'remote_hangup', duration_s: 42 } });
    expect(h.published.map((e) => e.event_id)).toEqual(events.map((e) => e.event_id));
  });

  it('hangs up after the agent leaves and the grace period passes, ending as agent_hangup once LiveKit confirms', async () => {
    const room = `call-_${CALLER}_${newId('', 6)}`;
    callerJoins(room);
    h.standIn.joinParticipant(room, agentParticipant({ identity: 'agent-1' }));
    await flush();
    h.standIn.leaveParticipant(room, 'agent-1', 'CLIENT_INITIATED');
    await flush();
    expect((await onlyCall()).state).toBe('connected');

    h.scheduler?.advance(h.config.calls.agentGraceS * 1000);
    await flush();
    // The plane deleted the room; the stand-in sent participant_left ROOM_DELETED and room_finished.
    expect(h.standIn.requestsFor('DeleteRoom')).toHaveLength(1);
    const call = await onlyCall();
    expect(call).toMatchObject({ state: 'ended', end_reason: 'agent_hangup' });
    expect((await eventsOf(call.id)).map((e) => e.event)).toEqual([
      'call.created',
      'call.ringing',
      'call.agent_joined',
      'call.started',
      'call.agent_left',
      'call.ending',
      'call.ended',
    ]);
  });

  it('keeps the call when another agent joins within the grace period', async () => {
    const room = `call-_${CALLER}_${newId('', 6)}`;
    callerJoins(room);
    h.standIn.joinParticipant(room, agentParticipant({ identity: 'agent-1' }));
    await flush();
    h.standIn.leaveParticipant(room, 'agent-1', 'CLIENT_INITIATED');
    h.standIn.joinParticipant(room, agentParticipant({ identity: 'agent-2' }));
    await flush();
    h.scheduler?.advance(60_000);
    await flush();
    expect((await onlyCall()).state).toBe('connected');
    expect(h.standIn.requestsFor('DeleteRoom')).toHaveLength(0);
  });

  it('ends as canceled when the caller hangs up before the agent joins', async () => {
    const room = `call-_${CALLER}_${newId('', 6)}`;
    callerJoins(room);
    await flush();
    h.standIn.leaveParticipant(room, identity, 'CLIENT_INITIATED');
    h.standIn.finishRoom(room);
    await flush();
    expect(await onlyCall()).toMatchObject({ state: 'ended', end_reason: 'canceled', answered_at: null, duration_s: null });
  });

  it('starts connected when the caller arrives with sip.callStatus active', async () => {
    const room = `call-_${CALLER}_${newId('', 6)}`;
    callerJoins(room, 'active');
    await flush();
    const call = await onlyCall();
    expect(call.state).toBe('connected');
    expect((await eventsOf(call.id)).map((e) => e.event)).toEqual(['call.created', 'call.started']);
  });

  it('hangs up with no_answer when no agent answers before the ring deadline', async () => {
    const room = `call-_${CALLER}_${newId('', 6)}`;
    callerJoins(room);
    await flush();
    h.scheduler?.advance(h.config.calls.ringTimeoutS * 1000);
    await flush();
    const call = await onlyCall();
    expect(call).toMatchObject({ state: 'ended', end_reason: 'no_answer' });
    expect(call.error).toMatchObject({ category: 'no_answer', retryable: false });
    expect(call.error?.user_message).toMatch(/answer/i);
  });

  it('ends the call after the ending grace when LiveKit never confirms the hang-up', async () => {
    const room = `call-_${CALLER}_${newId('', 6)}`;
    callerJoins(room);
    await flush();
    // LiveKit accepts the deletion, but its webhooks never arrive.
    h.standIn.setHandler('DeleteRoom', () => ({ ok: {} }));
    h.scheduler?.advance(h.config.calls.ringTimeoutS * 1000);
    await flush();
    expect((await onlyCall()).state).toBe('ending');
    h.scheduler?.advance(h.config.calls.endingGraceS * 1000);
    await flush();
    expect(await onlyCall()).toMatchObject({ state: 'ended', end_reason: 'no_answer' });
  });

  it('ends whatever is left as room_closed when the room finishes first', async () => {
    const room = `call-_${CALLER}_${newId('', 6)}`;
    callerJoins(room);
    h.standIn.joinParticipant(room, agentParticipant());
    await flush();
    // room_finished overtakes the phone party's participant_left (it arrives after, and is ignored).
    const rm = h.standIn.rooms.get(room);
    expect(rm).toBeDefined();
    await h.deliver({ event: 'room_finished', id: newId('EV_'), createdAt: String(Math.floor(Date.now() / 1000)), room: { sid: rm?.sid ?? '', name: room } });
    const afterFinish = await onlyCall();
    expect(afterFinish).toMatchObject({ state: 'ended', end_reason: 'room_closed' });
    const seqBefore = (await eventsOf(afterFinish.id)).length;
    h.standIn.leaveParticipant(room, identity, 'MEDIA_FAILURE');
    await flush();
    expect(await onlyCall()).toMatchObject({ state: 'ended', end_reason: 'room_closed' });
    expect(await eventsOf(afterFinish.id)).toHaveLength(seqBefore);
  });

  describe('maps the phone party\'s disconnectReason on a connected call', () => {
    const cases: [reason: string, state: 'ended' | 'failed', endReason: string][] = [
      ['CLIENT_INITIATED', 'ended', 'remote_hangup'],
      ['USER_REJECTED', 'ended', 'declined'],
      ['USER_UNAVAILABLE', 'ended', 'no_answer'],
      ['PARTICIPANT_REMOVED', 'ended', 'agent_hangup'],
      ['ROOM_DELETED', 'ended', 'room_closed'],
      ['SIP_TRUNK_FAILURE', 'failed', 'carrier_error'],
      ['MEDIA_FAILURE', 'failed', 'media_failure'],
      ['AGENT_ERROR', 'failed', 'agent_error'],
    ];
    for (const [reason, state, endReason] of cases) {
      it(`${reason} → ${state}/${endReason}`, async () => {
        const room = `call-_${CALLER}_${newId('', 6)}`;
        callerJoins(room);
        h.standIn.joinParticipant(room, agentParticipant());
        await flush();
        h.standIn.leaveParticipant(room, identity, reason);
        await flush();
        const call = await onlyCall();
        expect(call).toMatchObject({ state, end_reason: endReason });
        const last = (await eventsOf(call.id)).at(-1);
        expect(last?.event).toBe(state === 'ended' ? 'call.ended' : 'call.failed');
        if (state === 'failed') {
          expect(call.error).toMatchObject({ category: endReason });
          expect(last?.data).toMatchObject({ category: endReason });
        }
      });
    }

    it('treats participant_connection_aborted like participant_left', async () => {
      const room = `call-_${CALLER}_${newId('', 6)}`;
      const caller = callerJoins(room);
      await flush();
      const rm = h.standIn.rooms.get(room);
      await h.deliver({
        event: 'participant_connection_aborted',
        id: newId('EV_'),
        createdAt: String(Math.floor(Date.now() / 1000)),
        room: { sid: rm?.sid ?? '', name: room },
        participant: { ...caller, disconnectReason: 'CLIENT_INITIATED' },
      });
      expect(await onlyCall()).toMatchObject({ state: 'ended', end_reason: 'canceled' });
    });
  });

  it('tracks calls in two rooms independently', async () => {
    const a = `call-_${CALLER}_aaaaaa`;
    const b = `call-_+31687654321_bbbbbb`;
    callerJoins(a);
    h.standIn.joinParticipant(b, sipParticipant({ phoneNumber: '+31687654321', trunkPhoneNumber: TRUNK_NUMBER, callStatus: 'ringing' }));
    h.standIn.joinParticipant(a, agentParticipant());
    await flush();
    const response = await h.api('/v1/calls');
    const calls = ((await response.json()) as { calls: Session[] }).calls;
    expect(Object.fromEntries(calls.map((c) => [c.livekit_room, c.state]))).toEqual({ [a]: 'connected', [b]: 'ringing' });
  });

  it('writes phone numbers only masked in its logs', async () => {
    const room = `call-_${CALLER}_${newId('', 6)}`;
    callerJoins(room);
    h.standIn.joinParticipant(room, agentParticipant());
    h.standIn.leaveParticipant(room, identity, 'CLIENT_INITIATED');
    await flush();
    const text = h.logText();
    expect(text).toContain('call.ended');
    expect(text).not.toContain('31612345678');
    expect(text).not.toContain(h.standIn.apiSecret);
    const ended = h.logLines.find((line) => line.event === 'call.ended');
    expect(ended).toMatchObject({ event: 'call.ended', seq: 5, state: 'ended', direction: 'inbound' });
    expect(typeof ended?.session_id).toBe('string');
  });
});
