import { describe, expect, it } from 'vitest';
import {
  agentDispatchMetadata,
  inboundSessionId,
  outboundRoomName,
  outboundSipIdentity,
  SESSION_ATTRIBUTE,
  SIP_ATTRIBUTES,
} from '../../src/livekit/naming.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-a[0-9a-f]{3}-[0-9a-f]{12}$/;
const ROOM = { name: 'call-_+31612345678_x7Yz', sid: 'RM_abc123' };
const CALLER = 'sip_+31612345678';

describe('outboundRoomName', () => {
  it('names an outbound call\'s room after its session, never after a phone number', () => {
    expect(outboundRoomName('0b7f7c9e-1f2a-4c3d-8e5f-6a7b8c9d0e1f')).toBe('call-0b7f7c9e-1f2a-4c3d-8e5f-6a7b8c9d0e1f');
  });
});

describe('outboundSipIdentity', () => {
  it('gives every dial attempt of a session its own participant identity', () => {
    expect(outboundSipIdentity('s1', 1)).toBe('sip-s1-1');
    expect(outboundSipIdentity('s1', 2)).toBe('sip-s1-2');
    expect(outboundSipIdentity('s2', 1)).not.toBe(outboundSipIdentity('s1', 1));
  });
});

describe('agentDispatchMetadata', () => {
  it('tells the dispatched agent its session, the parties and the metadata the call was placed with, as JSON', () => {
    const metadata = agentDispatchMetadata({ sessionId: 's1', direction: 'outbound', callerNumber: '+3197010206472', calleeNumber: '+31612345678', metadata: { order: 42 } });
    expect(JSON.parse(metadata)).toEqual({
      session_id: 's1',
      direction: 'outbound',
      caller_number: '+3197010206472',
      callee_number: '+31612345678',
      metadata: { order: 42 },
    });
    expect(JSON.parse(agentDispatchMetadata({ sessionId: 's2', direction: 'inbound', callerNumber: null, calleeNumber: null, metadata: null }))).toMatchObject({ metadata: null });
  });
});

describe('inboundSessionId', () => {
  it('derives the same UUID-shaped id from the same room and caller, so a retried webhook finds its call', () => {
    const id = inboundSessionId(ROOM, CALLER);
    expect(id).toMatch(UUID);
    expect(inboundSessionId({ ...ROOM }, CALLER)).toBe(id);
  });

  it('keeps the ids of calls already stored: the derivation never changes', () => {
    expect(inboundSessionId(ROOM, CALLER)).toBe('cfaf1d58-daaf-5cce-ad88-cb8693cbb405');
    expect(inboundSessionId({ ...ROOM, sid: null }, CALLER)).toBe('c38ad538-8a80-5705-a483-51c11cc92a88');
  });

  it('goes by the room sid when known, so a room name used again later is a new call', () => {
    expect(inboundSessionId({ ...ROOM, name: 'another-name' }, CALLER)).toBe(inboundSessionId(ROOM, CALLER));
    expect(inboundSessionId({ ...ROOM, sid: 'RM_other' }, CALLER)).not.toBe(inboundSessionId(ROOM, CALLER));
  });

  it('gives another caller in the same room another session', () => {
    expect(inboundSessionId(ROOM, 'sip_+31687654321')).not.toBe(inboundSessionId(ROOM, CALLER));
  });
});

describe('participant attributes', () => {
  it('ties a phone leg to its session under the control_plane.session_id attribute', () => {
    expect(SESSION_ATTRIBUTE).toBe('control_plane.session_id');
  });

  it('reads the SIP attributes by the names LiveKit gives them', () => {
    expect(SIP_ATTRIBUTES).toEqual({
      callId: 'sip.callID',
      callStatus: 'sip.callStatus',
      phoneNumber: 'sip.phoneNumber',
      trunkPhoneNumber: 'sip.trunkPhoneNumber',
    });
  });
});
