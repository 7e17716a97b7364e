// Reconciliation against LiveKit (docs/call-lifecycle.md): calls whose room or phone leg vanished without a
// webhook end as room_closed; a dial lost with its replica is resolved from LiveKit, never
// repeated blindly.
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryDialLeases } from '../../src/store/memory/dial-leases.js';
import type { Session } from '../../src/http/session.js';
import type { ObsEnvelope } from '../../src/obs/envelope.js';
import { ManualClock } from '../support/manual-time.js';
import { startServiceHarness, type ServiceHarness } from '../support/service-harness.js';
import { agentParticipant, sipParticipant } from '../../dev/webhook-events.js';

let h: ServiceHarness;
afterEach(async () => {
  await h.close();
});

async function flush(options: { commands?: boolean } = {}): Promise<void> {
  for (let i = 0; i < 3; i++) {
    await h.standIn.webhooks?.idle();
    await h.settled(options);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function calls(): Promise<Session[]> {
  return ((await (await h.api('/v1/calls')).json()) as { calls: Session[] }).calls;
}

async function connectedInbound(room: string): Promise<Session> {
  h.standIn.joinParticipant(room, sipParticipant({ phoneNumber: '+31612345678', callStatus: 'ringing' }));
  h.standIn.joinParticipant(room, agentParticipant());
  await flush();
  h.scheduler?.advance(11_000); // older than the settle period
  await flush();
  const [call] = await calls();
  expect(call?.state).toBe('connected');
  return call as Session;
}

describe('reconciliation', () => {
  it('ends a call whose room LiveKit closed without a webhook, saying it was reconciled', async () => {
    h = await startServiceHarness();
    const call = await connectedInbound('call-_+31612345678_r1');
    h.standIn.rooms.delete(call.livekit_room); // the room_finished webhook was dropped
    const report = await h.service.reconciler.reconcile();
    await flush();
    expect(report).toMatchObject({ checked: 1, ended: 1 });
    expect((await calls())[0]).toMatchObject({ state: 'ended', end_reason: 'room_closed' });
    const events = ((await (await h.api(`/v1/calls/${call.id}/events`)).json()) as { events: ObsEnvelope[] }).events;
    expect(events.at(-1)).toMatchObject({ event: 'call.ended', data: { end_reason: 'room_closed', reconciled: true, gone: 'room' } });
  });

  it('ends a call whose phone leg left without a webhook', async () => {
    h = await startServiceHarness();
    const call = await connectedInbound('call-_+31612345678_r2');
    h.standIn.rooms.get(call.livekit_room)?.participants.delete('sip_+31612345678');
    await h.service.reconciler.reconcile();
    await flush();
    expect((await calls())[0]).toMatchObject({ state: 'ended', end_reason: 'room_closed' });
  });

  it('leaves calls alone that LiveKit still has', async () => {
    h = await startServiceHarness();
    await connectedInbound('call-_+31612345678_r3');
    expect(await h.service.reconciler.reconcile()).toMatchObject({ checked: 1, ended: 0 });
    expect((await calls())[0]?.state).toBe('connected');
  });

  describe('a dial lost with its replica', () => {
    async function lostDial(): Promise<{ call: Session; leases: MemoryDialLeases }> {
      const clock = new ManualClock(Date.now());
      const leases = new MemoryDialLeases(clock);
      h = await startServiceHarness({ dialLeases: leases });
      // The dial hangs: its replica is about to "die".
      h.standIn.setHandler('CreateSIPParticipant', () => new Promise(() => undefined));
      const response = await h.api('/v1/calls', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"to":"+31612345678"}' });
      const call = (await response.json()) as Session;
      await flush({ commands: false });
      expect((await calls())[0]?.state).toBe('dialing');
      h.scheduler?.advance(11_000);
      clock.set(clock.now() + 60_000);
      await leases.release(call.id); // the lease lapsed with the replica
      return { call, leases };
    }

    it('connects the call when LiveKit shows the phone leg answered', async () => {
      const { call } = await lostDial();
      h.standIn.joinParticipant(call.livekit_room, sipParticipant({ phoneNumber: '+31612345678', identity: `sip-${call.id}-1`, callStatus: 'active' }));
      await flush({ commands: false });
      expect(await h.service.reconciler.reconcile()).toMatchObject({ dialsResolved: 1 });
      await flush({ commands: false });
      expect((await calls())[0]).toMatchObject({ state: 'connected', attempt: 1 });
      expect(h.standIn.requestsFor('CreateSIPParticipant')).toHaveLength(1);
    });

    it('dials again, with a new identity, only when LiveKit has no such phone leg', async () => {
      const { call } = await lostDial();
      h.standIn.setHandler('CreateSIPParticipant', undefined); // LiveKit answers normally again
      await h.service.reconciler.reconcile();
      await flush({ commands: false });
      expect((await calls())[0]).toMatchObject({ state: 'dialing', attempt: 1 });
      h.scheduler?.advance(30_000); // the retry back-off
      await flush({ commands: false });
      expect((await calls())[0]).toMatchObject({ state: 'connected', attempt: 2 });
      expect(h.standIn.requestsFor('CreateSIPParticipant').map((r) => r.body.participantIdentity)).toEqual([`sip-${call.id}-1`, `sip-${call.id}-2`]);
    });

    it('dials again when LiveKit answers that the dial\'s room does not exist', async () => {
      const { call } = await lostDial();
      h.standIn.setHandler('CreateSIPParticipant', undefined);
      h.standIn.script('ListParticipants', { error: { code: 'not_found', msg: 'requested room does not exist' } });
      expect(await h.service.reconciler.reconcile()).toMatchObject({ dialsResolved: 1 });
      h.scheduler?.advance(30_000);
      await flush({ commands: false });
      expect((await calls())[0]).toMatchObject({ state: 'connected', attempt: 2 });
      expect(h.standIn.requestsFor('CreateSIPParticipant').map((r) => r.body.participantIdentity)).toEqual([`sip-${call.id}-1`, `sip-${call.id}-2`]);
    });

    it('leaves the dial alone when LiveKit cannot say whether the room exists', async () => {
      await lostDial();
      h.standIn.script('ListParticipants', { raw: { status: 404, contentType: 'text/plain', body: '404 page not found' } });
      expect(await h.service.reconciler.reconcile()).toMatchObject({ dialsResolved: 0 });
      expect((await calls())[0]).toMatchObject({ state: 'dialing', attempt: 1 });
    });

    it('does nothing while the dial\'s lease is held', async () => {
      const { call, leases } = await lostDial();
      await leases.hold(call.id, 60_000);
      expect(await h.service.reconciler.reconcile()).toMatchObject({ dialsResolved: 0 });
      expect((await calls())[0]?.state).toBe('dialing');
    });
  });
});
