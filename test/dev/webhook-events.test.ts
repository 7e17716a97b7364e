// The webhook event builders of dev/: JSON as LiveKit sends it, which the SDK parses strictly.
import { describe, expect, it } from 'vitest';
import { EgressStatus, ParticipantInfo_Kind } from '@livekit/protocol';
import { WebhookEvent } from 'livekit-server-sdk';
import {
  agentParticipant,
  roomJson,
  sipParticipant,
  standardParticipant,
  webhookEvents,
  type EgressInfoJson,
  type WebhookEventJson,
} from '../../dev/webhook-events.js';

describe('the webhook event builders', () => {
  const room = roomJson('builders-room');
  const sip = sipParticipant({
    phoneNumber: '+15557654321',
    trunkPhoneNumber: '+15550001111',
    callStatus: 'ringing',
    ruleId: 'SDR_abc',
    headers: { 'X-Custom': 'yes' },
  });
  const agent = agentParticipant({ agentName: 'phone-agent' });
  const web = standardParticipant({ identity: 'web-user' });
  const recording: EgressInfoJson = {
    egressId: 'EG_abcdefghijkl',
    roomId: room.sid,
    roomName: room.name,
    status: 'EGRESS_COMPLETE',
    startedAt: '1750000000000000000',
    endedAt: '1750000060000000000',
    updatedAt: '1750000060000000000',
    fileResults: [
      {
        filename: 'calls/c-1.ogg',
        startedAt: '1750000000500000000',
        endedAt: '1750000060000000000',
        duration: '59500000000',
        size: '952000',
        location: 'https://bucket.s3.amazonaws.com/calls/c-1.ogg',
      },
    ],
    details: 'End reason: StopEgress API',
  };
  const all: Record<string, WebhookEventJson> = {
    roomStarted: webhookEvents.roomStarted(room),
    roomFinished: webhookEvents.roomFinished(room),
    participantJoined: webhookEvents.participantJoined(room, sip),
    agentJoined: webhookEvents.participantJoined(room, agent),
    webJoined: webhookEvents.participantJoined(room, web),
    participantLeft: webhookEvents.participantLeft(room, sip, 'CLIENT_INITIATED'),
    participantLeftUnknown: webhookEvents.participantLeft(room, sip),
    connectionAborted: webhookEvents.participantConnectionAborted(room, sip, 'CONNECTION_TIMEOUT'),
    trackPublished: webhookEvents.trackPublished(room, sip),
    trackUnpublished: webhookEvents.trackUnpublished(room, sip),
    egressStarted: webhookEvents.egressStarted({ egressId: 'EG_abcdefghijkl', roomId: room.sid, roomName: room.name }),
    egressUpdated: webhookEvents.egressUpdated({ ...recording, status: 'EGRESS_ACTIVE' }),
    egressEnded: webhookEvents.egressEnded(recording),
    egressFailed: webhookEvents.egressEnded({ ...recording, status: 'EGRESS_FAILED', error: 'upload failed', errorCode: 500 }),
  };

  it('produces JSON that WebhookEvent.fromJson parses strictly, for every builder', () => {
    for (const [name, json] of Object.entries(all)) {
      expect(() => WebhookEvent.fromJson(JSON.parse(JSON.stringify(json))), name).not.toThrow();
    }
  });

  it('uses LiveKit ids, string int64s, enum names and omits zero values', () => {
    const joined = WebhookEvent.fromJson(JSON.parse(JSON.stringify(all.participantJoined)));
    expect(all.participantJoined?.id).toMatch(/^EV_[A-Za-z0-9]{12}$/);
    expect(all.participantJoined?.createdAt).toMatch(/^\d{10}$/);
    expect(joined.createdAt).toBeTypeOf('bigint');
    expect(joined.participant?.kind).toBe(ParticipantInfo_Kind.SIP);
    expect(joined.participant?.sid).toMatch(/^PA_/);
    expect(joined.room?.sid).toMatch(/^RM_/);
    expect(all.webJoined?.participant).not.toHaveProperty('kind');
    expect(all.agentJoined?.participant?.kind).toBe('AGENT');
    expect(all.participantLeft?.participant?.disconnectReason).toBe('CLIENT_INITIATED');
    expect(all.participantLeftUnknown?.participant).not.toHaveProperty('disconnectReason');
  });

  it('names the SIP attributes as LiveKit does, headers as sip.h.<lower-case name>', () => {
    expect(sip.identity).toBe('sip_+15557654321');
    expect(sip.attributes).toEqual({
      'sip.callID': expect.stringMatching(/^SCL_/),
      'sip.callStatus': 'ringing',
      'sip.phoneNumber': '+15557654321',
      'sip.trunkPhoneNumber': '+15550001111',
      'sip.trunkID': expect.stringMatching(/^ST_/),
      'sip.ruleID': 'SDR_abc',
      'sip.h.x-custom': 'yes',
    });
  });

  it('gives track events a bare participant and an audio track', () => {
    expect(all.trackPublished?.participant).toEqual({ sid: sip.sid, identity: sip.identity });
    expect(all.trackPublished?.room).toEqual({ sid: room.sid, name: room.name });
    expect(all.trackPublished?.track).toMatchObject({ sid: expect.stringMatching(/^TR_/), type: 'AUDIO', source: 'MICROPHONE' });
  });

  it('gives egress events the EgressInfo with int64 nanoseconds and the room by sid and name', () => {
    const ended = WebhookEvent.fromJson(JSON.parse(JSON.stringify(all.egressEnded)));
    expect(ended.event).toBe('egress_ended');
    expect(ended.room?.sid).toBe(room.sid);
    expect(ended.room?.name).toBe(room.name);
    expect(all.egressEnded?.room).toEqual({ sid: room.sid, name: room.name });
    expect(ended.egressInfo?.status).toBe(EgressStatus.EGRESS_COMPLETE);
    const file = ended.egressInfo?.fileResults[0];
    expect([file?.duration, file?.size, file?.location]).toEqual([59_500_000_000n, 952_000n, 'https://bucket.s3.amazonaws.com/calls/c-1.ogg']);
    // EGRESS_STARTING is the zero value: absent from the JSON
    expect(all.egressStarted?.egressInfo).not.toHaveProperty('status');
    expect(WebhookEvent.fromJson(JSON.parse(JSON.stringify(all.egressStarted))).egressInfo?.status).toBe(EgressStatus.EGRESS_STARTING);
  });
});
