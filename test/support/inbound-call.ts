// An inbound call played through the LiveKit stand-in from ringing to its end (created, ringing,
// connected, agent joined, ended), for tests about what a call's events cause.
import { agentParticipant, newId, sipParticipant } from '../../dev/webhook-events.js';
import type { Session } from '../../src/http/session.js';
import type { ServiceHarness } from './service-harness.js';

const CALLER = '+31612345678';
const TRUNK_NUMBER = '+3197010206472';

async function flush(harness: ServiceHarness): Promise<void> {
  for (let i = 0; i < 3; i++) {
    await harness.standIn.webhooks?.idle();
    await harness.settled();
  }
}

/** Plays one inbound call to its end and returns its session id. */
export async function playInboundCall(harness: ServiceHarness): Promise<string> {
  const room = `call-_${CALLER}_${newId('', 6)}`;
  const identity = `sip_${CALLER}_${newId('', 4)}`;
  harness.standIn.joinParticipant(room, sipParticipant({ identity, phoneNumber: CALLER, trunkPhoneNumber: TRUNK_NUMBER, callStatus: 'ringing' }));
  await flush(harness);
  harness.standIn.joinParticipant(room, agentParticipant({ identity: `agent-${newId('', 4)}` }));
  await flush(harness);
  harness.standIn.leaveParticipant(room, identity, 'CLIENT_INITIATED');
  harness.standIn.finishRoom(room);
  await flush(harness);
  const calls = (await (await harness.api('/v1/calls?limit=200')).json()) as { calls: Session[] };
  const call = calls.calls.find((c) => c.livekit_room === room);
  if (!call) throw new Error(`no call in room ${room}`);
  return call.id;
}
