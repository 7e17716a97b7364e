// The inbound calls the webhook benchmarks replay: each call's webhooks as LiveKit sends them,
// with the fields LiveKit reports that make a body as big as LiveKit's.
import {
  agentParticipant,
  audioTrack,
  newId,
  roomJson,
  sipParticipant,
  webhookEvents,
  type WebhookEventJson,
} from '../dev/webhook-events.js';

export const EVENTS_PER_CALL = 5;

export interface CallScript {
  room: [string, string, string];
  bodies: string[];
}

function randomE164(): string {
  let digits = '';
  for (let i = 0; i < 9; i += 1) digits += Math.floor(Math.random() * 10);
  return `+316${digits.slice(0, 8)}`;
}

/** One inbound call's lifecycle as LiveKit reports it. */
export function callEvents(): CallScript {
  const caller = randomE164();
  // A dispatch rule's individual room: prefix, caller, random suffix.
  const room = roomJson(`call-_${caller}_${newId('', 12)}`);
  // Fields LiveKit reports that the builders leave out (protocol version counters, region, the
  // SIP Call-ID header and tag, the published track's codec): they make a body as big as LiveKit's.
  const track = { ...audioTrack(), stream: 'microphone', codecs: [{ mimeType: 'audio/opus', mid: '0', cid: newId('', 12) }], audioFeatures: ['TF_AUTO_GAIN_CONTROL'] };
  const callIdFull = `${newId('', 24)}@203.0.113.${Math.floor(Math.random() * 250) + 1}`;
  const sip = {
    ...sipParticipant({
      phoneNumber: caller,
      trunkPhoneNumber: '+3197010206472',
      callStatus: 'ringing',
      ruleId: newId('SDR_'),
      attributes: { 'sip.callIDFull': callIdFull, 'sip.callTag': newId('', 10) },
    }),
    version: 2,
    region: 'eu-central',
  };
  const agent = { ...agentParticipant({ agentName: 'receptionist' }), version: 1, region: 'eu-central' };
  const sipWithTrack = { ...sip, tracks: [track], attributes: { ...sip.attributes, 'sip.callStatus': 'active' } };
  const events: WebhookEventJson[] = [
    webhookEvents.participantJoined({ ...room, numParticipants: 1 }, sip),
    webhookEvents.trackPublished(room, sip, track),
    webhookEvents.participantJoined({ ...room, numParticipants: 2 }, agent),
    webhookEvents.participantLeft({ ...room, numParticipants: 1 }, { ...sipWithTrack, version: 5 }, 'CLIENT_INITIATED'),
    webhookEvents.roomFinished(room),
  ];
  return { room: [room.sid, room.name, sip.identity], bodies: events.map((event) => JSON.stringify(event)) };
}

