// The webhook ingest on its own: LiveKit webhook bodies (built like LiveKit's, decoded exactly as
// the webhook route decodes them) applied to a real CallRuntime over the embedded store, with
// time under the test's control. Each test checks what ingest answers and what a user of the
// Control API would see: the stored call, its state and end reason, and the events it emitted.
import { describe, expect, it } from 'vitest';
import type { JsonValue } from '@bufbuild/protobuf';
import { WebhookEvent } from 'livekit-server-sdk';
import { createWebhookIngest } from '../../src/inbound/webhook-ingest.js';
import { inboundSessionId, SESSION_ATTRIBUTE } from '../../src/livekit/naming.js';
import { toIncomingWebhook, type IncomingWebhook } from '../../src/livekit/webhook-event.js';
import type { CallRecord } from '../../src/store/call-store.port.js';
import {
  agentParticipant,
  roomJson,
  sipParticipant,
  standardParticipant,
  webhookEvents,
  type ParticipantJson,
  type WebhookEventJson,
} from '../../dev/webhook-events.js';
import { createCallHarness, outboundInput, TEST_SETTINGS } from '../support/call-harness.js';
import { seen } from '../support/store-fixtures.js';

const CALLER = '+31612345678';
const TRUNK_NUMBER = '+3197010206472';
const ROOM = roomJson(`call-_${CALLER}_abc`, 'RM_inbound1');
const CALLER_IDENTITY = `sip_${CALLER}`;
const SESSION_ID = inboundSessionId({ sid: ROOM.sid, name: ROOM.name }, CALLER_IDENTITY);

const caller = (callStatus: 'ringing' | 'active' = 'ringing'): ParticipantJson =>
  sipParticipant({ phoneNumber: CALLER, trunkPhoneNumber: TRUNK_NUMBER, callStatus, callId: 'SCL_in1', sid: 'PA_caller' });
const agent = agentParticipant({ identity: 'agent-AJ_1', sid: 'PA_agent' });

/** What the webhook route hands to ingest for a LiveKit webhook body. */
function decode(json: WebhookEventJson): IncomingWebhook {
  return toIncomingWebhook(WebhookEvent.fromJson(json as JsonValue, { ignoreUnknownFields: true }));
}

function setup() {
  const harness = createCallHarness();
  const ingest = createWebhookIngest({
    runtime: harness.runtime,
    store: harness.store,
    settings: TEST_SETTINGS,
  });
  return {
    ...harness,
    ingest,
    deliver: (json: WebhookEventJson) => ingest.ingest(decode(json)),
    /** the OBS-00 event names a call published, in order */
    eventsOf: (sessionId: string) => harness.published.filter((e) => e.session_id === sessionId).map((e) => e.event),
    /** every call the store knows, final or not */
    calls: async (): Promise<CallRecord[]> => (await harness.store.list({ limit: 100 })).records,
    call: async (sessionId: string): Promise<CallRecord | undefined> => harness.store.get(sessionId),
  };
}
type Setup = ReturnType<typeof setup>;

/** The caller joined and an agent answered: a connected inbound call. */
async function connectedCall(t: Setup): Promise<void> {
  await t.deliver(webhookEvents.participantJoined(ROOM, caller()));
  await t.deliver(webhookEvents.participantJoined(ROOM, agent));
  expect((await t.call(SESSION_ID))?.state).toBe('connected');
}

/** An outbound call in `dialing`, its room created by name (not bound to a sid yet). */
async function dialingOutboundCall(t: Setup): Promise<CallRecord> {
  await t.runtime.create(outboundInput());
  await t.runtime.send('call-out-1', { type: 'dial.slot_granted' });
  const record = (await t.call('call-out-1')) as CallRecord;
  expect(record).toMatchObject({ state: 'dialing', context: { sipIdentity: 'sip-call-out-1-1', roomSid: null } });
  return record;
}

/** The phone leg of outbound attempt 1 as LiveKit reports it: the plane set the session attribute. */
const outboundLeg = (): ParticipantJson =>
  sipParticipant({
    phoneNumber: '+31687654321',
    identity: 'sip-call-out-1-1',
    callStatus: 'dialing',
    callId: 'SCL_out1',
    attributes: { [SESSION_ATTRIBUTE]: 'call-out-1' },
  });

describe('webhook ingest', () => {
  describe("a room's first SIP participant", () => {
    it('creates one ringing inbound call whose id follows from the room and the caller', async () => {
      const t = setup();
      const result = await t.deliver(webhookEvents.participantJoined(ROOM, caller()));

      expect(result).toEqual({ outcome: 'applied', sessionId: SESSION_ID });
      expect(SESSION_ID).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-a[0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(await t.calls()).toHaveLength(1);
      expect(await t.call(SESSION_ID)).toMatchObject({
        state: 'ringing',
        context: {
          direction: 'inbound',
          callerNumber: CALLER,
          calleeNumber: TRUNK_NUMBER,
          roomName: ROOM.name,
          roomSid: ROOM.sid,
          sipIdentity: CALLER_IDENTITY,
          sipCallId: 'SCL_in1',
          settings: TEST_SETTINGS,
        },
      });
      expect(t.eventsOf(SESSION_ID)).toEqual(['call.created', 'call.ringing']);
      // the ring deadline of TEST_SETTINGS is armed
      expect(t.scheduler.dueAt(SESSION_ID)).toBe(t.clock.now() + 30_000);
    });

    it('gives the same caller in another room (another sid) another session', async () => {
      const t = setup();
      await t.deliver(webhookEvents.participantJoined(ROOM, caller()));
      await t.deliver(webhookEvents.roomFinished(ROOM));
      const reopened = roomJson(ROOM.name, 'RM_inbound2');
      const result = await t.deliver(webhookEvents.participantJoined(reopened, caller()));

      const second = inboundSessionId({ sid: 'RM_inbound2', name: ROOM.name }, CALLER_IDENTITY);
      expect(second).not.toBe(SESSION_ID);
      expect(result).toEqual({ outcome: 'applied', sessionId: second });
      expect((await t.calls()).map((c) => [c.id, c.state])).toEqual([
        [second, 'ringing'],
        [SESSION_ID, 'ended'],
      ]);
    });

    it('starts a caller LiveKit reports already answered (sip.callStatus active) as connected', async () => {
      const t = setup();
      expect(await t.deliver(webhookEvents.participantJoined(ROOM, caller('active')))).toEqual({ outcome: 'applied', sessionId: SESSION_ID });
      expect((await t.call(SESSION_ID))?.state).toBe('connected');
      expect(t.eventsOf(SESSION_ID)).toEqual(['call.created', 'call.started']);
    });

    it('creates exactly one call when the same participant_joined arrives twice at once', async () => {
      const t = setup();
      const joined = webhookEvents.participantJoined(ROOM, caller());
      const results = await Promise.all([t.deliver(joined), t.deliver(joined)]);

      expect(results).toEqual([
        { outcome: 'applied', sessionId: SESSION_ID },
        { outcome: 'duplicate', sessionId: null },
      ]);
      expect(await t.calls()).toHaveLength(1);
      expect(t.eventsOf(SESSION_ID)).toEqual(['call.created', 'call.ringing']);
    });

    it('creates exactly one call when two deliveries of the join under different webhook ids race', async () => {
      const t = setup();
      const first = webhookEvents.participantJoined(ROOM, caller());
      const again = { ...first, id: 'EV_redelivered' };
      const results = await Promise.all([t.deliver(first), t.deliver(again)]);

      // The second finds the call the first created and tells it the caller joined, which a
      // ringing inbound call does not take: nothing changes.
      expect(results).toEqual([
        { outcome: 'applied', sessionId: SESSION_ID },
        { outcome: 'ignored', sessionId: SESSION_ID },
      ]);
      expect(await t.calls()).toHaveLength(1);
      expect((await t.call(SESSION_ID))?.version).toBe(1);
    });
  });

  describe('events of one room, one at a time', () => {
    it('connects the call when the agent joins at the same moment as the caller', async () => {
      const t = setup();
      const results = await Promise.all([
        t.deliver(webhookEvents.participantJoined(ROOM, caller())),
        t.deliver(webhookEvents.participantJoined(ROOM, agent)),
      ]);

      expect(results).toEqual([
        { outcome: 'applied', sessionId: SESSION_ID },
        { outcome: 'applied', sessionId: SESSION_ID },
      ]);
      expect(await t.call(SESSION_ID)).toMatchObject({ state: 'connected', context: { agents: ['agent-AJ_1'] } });
      expect(t.eventsOf(SESSION_ID)).toEqual(['call.created', 'call.ringing', 'call.agent_joined', 'call.started']);
    });

    it('ends the call of a caller who hangs up the moment they joined, leaving nothing ringing', async () => {
      const t = setup();
      const results = await Promise.all([
        t.deliver(webhookEvents.participantJoined(ROOM, caller())),
        t.deliver(webhookEvents.participantLeft(ROOM, caller(), 'CLIENT_INITIATED')),
      ]);

      expect(results.map((r) => r.outcome)).toEqual(['applied', 'applied']);
      expect(await t.call(SESSION_ID)).toMatchObject({ state: 'ended', context: { endReason: 'canceled' } });
      expect(await t.store.findLiveByRoom({ sid: ROOM.sid, name: ROOM.name })).toBeUndefined();
    });

    it('idle() resolves only once every webhook taken has been handled', async () => {
      const t = setup();
      const pending = [
        t.ingest.ingest(decode(webhookEvents.participantJoined(ROOM, caller()))),
        t.ingest.ingest(decode(webhookEvents.participantJoined(ROOM, agent))),
      ];
      await t.ingest.idle();

      expect(await t.call(SESSION_ID)).toMatchObject({ state: 'connected' });
      expect(t.eventsOf(SESSION_ID)).toContain('call.started');
      expect((await Promise.all(pending)).map((r) => r.outcome)).toEqual(['applied', 'applied']);
    });
  });

  it('reports a webhook id seen before as duplicate and changes nothing', async () => {
    const t = setup();
    await t.deliver(webhookEvents.participantJoined(ROOM, caller()));
    const agentJoined = webhookEvents.participantJoined(ROOM, agent);
    const agentLeft = webhookEvents.participantLeft(ROOM, agent, 'CLIENT_INITIATED');
    expect(await t.deliver(agentJoined)).toEqual({ outcome: 'applied', sessionId: SESSION_ID });
    expect(await t.deliver(agentLeft)).toEqual({ outcome: 'applied', sessionId: SESSION_ID });
    const before = (await t.call(SESSION_ID)) as CallRecord;
    const published = t.published.length;

    // LiveKit retries the agent's join: applied again it would bring the agent back.
    expect(await t.deliver(agentJoined)).toEqual({ outcome: 'duplicate', sessionId: null });
    expect(await t.call(SESSION_ID)).toEqual(before);
    expect(before.context.agents).toEqual([]);
    expect(t.published).toHaveLength(published);
  });

  describe("an outbound call's phone leg", () => {
    it('is routed to its call (room_started binds the room, participant_joined records the leg) and creates no inbound call', async () => {
      const t = setup();
      await dialingOutboundCall(t);
      const room = roomJson('outbound-call-out-1', 'RM_out1');

      expect(await t.deliver(webhookEvents.roomStarted(room))).toEqual({ outcome: 'applied', sessionId: 'call-out-1' });
      expect(await t.deliver(webhookEvents.participantJoined(room, outboundLeg()))).toEqual({ outcome: 'applied', sessionId: 'call-out-1' });

      expect(await t.calls()).toHaveLength(1);
      expect(await t.call('call-out-1')).toMatchObject({
        state: 'dialing', // joining is not an answer (docs/call-lifecycle.md): the dial result decides
        context: { roomSid: 'RM_out1', sipCallId: 'SCL_out1', sipCallStatus: 'dialing' },
      });
    });

    it('is ignored, and is not taken for a new inbound caller, when it arrives after the call ended', async () => {
      const t = setup();
      await dialingOutboundCall(t);
      await t.runtime.send('call-out-1', { type: 'api.hangup' });
      expect(await t.call('call-out-1')).toMatchObject({ state: 'ended', context: { endReason: 'canceled' } });

      const late = webhookEvents.participantJoined(roomJson('outbound-call-out-1', 'RM_out1'), outboundLeg());
      expect(await t.deliver(late)).toEqual({ outcome: 'ignored', sessionId: 'call-out-1' });
      expect((await t.calls()).map((c) => c.id)).toEqual(['call-out-1']);
      expect(await t.store.findLiveByRoom({ sid: 'RM_out1', name: 'outbound-call-out-1' })).toBeUndefined();
    });
  });

  describe('agents', () => {
    it("routes an agent's join to the live call of the room, which answers a ringing call", async () => {
      const t = setup();
      await t.deliver(webhookEvents.participantJoined(ROOM, caller()));
      expect(await t.deliver(webhookEvents.participantJoined(ROOM, agent))).toEqual({ outcome: 'applied', sessionId: SESSION_ID });
      expect(await t.call(SESSION_ID)).toMatchObject({ state: 'connected', context: { agents: ['agent-AJ_1'] } });
      expect(t.published.find((e) => e.event === 'call.agent_joined')?.data).toEqual({ agent_identity: 'agent-AJ_1', agents: 1 });
    });

    it("routes an agent's departure to the live call of the room, which starts the agent grace period", async () => {
      const t = setup();
      await connectedCall(t);
      const result = await t.deliver(webhookEvents.participantLeft(ROOM, agent, 'CLIENT_INITIATED'));

      expect(result).toEqual({ outcome: 'applied', sessionId: SESSION_ID });
      const record = (await t.call(SESSION_ID)) as CallRecord;
      expect(record).toMatchObject({ state: 'connected', context: { agents: [] } });
      expect(record.context.deadlines.agentGrace).toBe(t.clock.now() + TEST_SETTINGS.agentGraceS * 1000);
      expect(t.eventsOf(SESSION_ID).at(-1)).toBe('call.agent_left');
    });
  });

  describe('the caller leaving', () => {
    const cases: [when: string, answered: boolean, reason: string | undefined, state: string, endReason: string][] = [
      ['hangs up after the answer', true, 'CLIENT_INITIATED', 'ended', 'remote_hangup'],
      ['hangs up after the answer (no reason, as older LiveKit sends it)', true, undefined, 'ended', 'remote_hangup'],
      ['hangs up while it rings', false, 'CLIENT_INITIATED', 'ended', 'canceled'],
      ['is removed by someone else', true, 'PARTICIPANT_REMOVED', 'ended', 'agent_hangup'],
      ['loses its media', true, 'MEDIA_FAILURE', 'failed', 'media_failure'],
      ['is dropped by the trunk', false, 'SIP_TRUNK_FAILURE', 'failed', 'carrier_error'],
    ];
    for (const [when, answered, reason, state, endReason] of cases) {
      it(`ends the call as ${state}/${endReason} when the caller ${when} (${reason ?? 'UNKNOWN_REASON'})`, async () => {
        const t = setup();
        if (answered) await connectedCall(t);
        else await t.deliver(webhookEvents.participantJoined(ROOM, caller()));

        const result = await t.deliver(webhookEvents.participantLeft(ROOM, caller(), reason));
        expect(result).toEqual({ outcome: 'applied', sessionId: SESSION_ID });
        expect(await t.call(SESSION_ID)).toMatchObject({ state, context: { endReason } });
        const last = t.published.at(-1);
        expect(last).toMatchObject({ session_id: SESSION_ID, event: `call.${state}`, data: { end_reason: endReason } });
      });
    }

    it('ends a ringing call when the caller never became active (participant_connection_aborted)', async () => {
      const t = setup();
      await t.deliver(webhookEvents.participantJoined(ROOM, caller()));
      const result = await t.deliver(webhookEvents.participantConnectionAborted(ROOM, caller(), 'CONNECTION_TIMEOUT'));
      expect(result).toEqual({ outcome: 'applied', sessionId: SESSION_ID });
      expect(await t.call(SESSION_ID)).toMatchObject({ state: 'failed', context: { endReason: 'media_failure' } });
    });

    // An inbound caller's identity is `sip_<number>`, which two calls share when one number calls
    // twice at once (a switchboard's caller ID, `anonymous`): the room decides which call ends.
    it('ends only the call of the room the caller left when the same number calls twice at once', async () => {
      const t = setup();
      const second = roomJson(`call-_${CALLER}_def`, 'RM_inbound2');
      const secondId = inboundSessionId({ sid: second.sid, name: second.name }, CALLER_IDENTITY);
      await t.deliver(webhookEvents.participantJoined(ROOM, caller()));
      await t.deliver(webhookEvents.participantJoined(second, caller()));

      expect(await t.deliver(webhookEvents.participantLeft(ROOM, caller(), 'CLIENT_INITIATED'))).toEqual({ outcome: 'applied', sessionId: SESSION_ID });
      expect(await t.call(SESSION_ID)).toMatchObject({ state: 'ended', context: { endReason: 'canceled' } });
      expect((await t.call(secondId))?.state).toBe('ringing');
    });

    it('ends the call of the room when LiveKit closes the room', async () => {
      const t = setup();
      await connectedCall(t);
      expect(await t.deliver(webhookEvents.roomFinished(ROOM))).toEqual({ outcome: 'applied', sessionId: SESSION_ID });
      expect(await t.call(SESSION_ID)).toMatchObject({ state: 'ended', context: { endReason: 'room_closed' } });
    });
  });

  describe('webhooks that are not about a call', () => {
    it('ignores events of rooms without a live call and creates nothing', async () => {
      const t = setup();
      const elsewhere = roomJson('some-other-room', 'RM_other');
      for (const json of [
        webhookEvents.participantJoined(elsewhere, agent),
        webhookEvents.participantLeft(elsewhere, agent),
        webhookEvents.participantLeft(elsewhere, caller(), 'CLIENT_INITIATED'),
        webhookEvents.roomStarted(elsewhere),
        webhookEvents.roomFinished(elsewhere),
      ]) {
        expect(await t.deliver(json), json.event).toEqual({ outcome: 'ignored', sessionId: null });
      }
      expect(await t.calls()).toEqual([]);
      expect(t.published).toEqual([]);
    });

    it('ignores track events, an egress it did not start and ordinary participants of a live call, and the call rings on', async () => {
      const t = setup();
      await t.deliver(webhookEvents.participantJoined(ROOM, caller()));
      const viewer = standardParticipant({ identity: 'supervisor', sid: 'PA_viewer' });
      const egress: WebhookEventJson = {
        event: 'egress_started',
        id: 'EV_egress1',
        createdAt: '1764000000',
        room: ROOM,
        egressInfo: { egressId: 'EG_1', roomId: ROOM.sid, roomName: ROOM.name, status: 'EGRESS_STARTING' },
      };
      for (const json of [
        // the caller's audio is not an answer signal (docs/call-lifecycle.md)
        webhookEvents.trackPublished(ROOM, caller()),
        webhookEvents.trackUnpublished(ROOM, caller()),
        // even when it names the caller in full: a track going away is not the caller leaving
        { ...webhookEvents.trackUnpublished(ROOM, caller()), participant: caller() },
        egress,
        webhookEvents.participantJoined(ROOM, viewer),
        webhookEvents.participantLeft(ROOM, viewer, 'CLIENT_INITIATED'),
      ]) {
        // An egress of the room goes to the call, whose chart refuses it: it is not recording.
        expect(await t.deliver(json), json.event).toEqual({ outcome: 'ignored', sessionId: json === egress ? SESSION_ID : null });
      }
      expect(await t.call(SESSION_ID)).toMatchObject({ state: 'ringing', version: 1, context: { agents: [] } });
      expect(t.eventsOf(SESSION_ID)).toEqual(['call.created', 'call.ringing']);
    });

    it('ignores a webhook without a room, even a SIP participant joining', async () => {
      const t = setup();
      const { room: _room, ...roomless } = webhookEvents.participantJoined(ROOM, caller());
      const webhook = decode(roomless as WebhookEventJson);
      expect(webhook.room).toBeNull();

      expect(await t.ingest.ingest(webhook)).toEqual({ outcome: 'ignored', sessionId: null });
      expect(await t.calls()).toEqual([]);
      // Not remembered either: the id was not applied.
      expect(await seen(t.store, webhook.id)).toBe(false);
    });
  });
});
