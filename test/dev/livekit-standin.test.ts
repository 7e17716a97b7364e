// Tests of the LiveKit stand-in itself, driven through the real livekit-server-sdk clients.
import { describe, expect, it } from 'vitest';
import { CreateSIPParticipantRequest, DisconnectReason, ParticipantInfo_Kind, TransferSIPParticipantRequest } from '@livekit/protocol';
import { AccessToken, AgentDispatchClient, RoomServiceClient, ServerError, SipCallError, SipClient } from 'livekit-server-sdk';
import { startLiveKitStandIn, type LiveKitStandIn, type StandInOptions } from '../../dev/livekit-standin.js';
import { startStandIn, useCleanups } from '../support/cleanups.js';
import { agentParticipant, sipParticipant, standardParticipant } from '../../dev/webhook-events.js';
import { caught, sleep } from '../support/promises.js';
import { startWebhookReceiver } from '../support/webhook-receiver.js';

// ---------------------------------------------------------------------------------------------
// fixtures

const cleanups = useCleanups();
const standIn = (options?: StandInOptions): Promise<LiveKitStandIn> => startStandIn(cleanups, options);

function clients(s: LiveKitStandIn, requestTimeout?: number) {
  const options = { requestTimeout };
  return {
    sip: new SipClient(s.url, s.apiKey, s.apiSecret, options),
    rooms: new RoomServiceClient(s.url, s.apiKey, s.apiSecret, options),
    dispatch: new AgentDispatchClient(s.url, s.apiKey, s.apiSecret, options),
  };
}

const startReceiver = (apiKey: string, apiSecret: string) => startWebhookReceiver(cleanups, apiKey, apiSecret);

async function adminToken(s: LiveKitStandIn) {
  const token = new AccessToken(s.apiKey, s.apiSecret);
  token.addGrant({ roomCreate: true, roomList: true });
  return token.toJwt();
}

// ---------------------------------------------------------------------------------------------
// Twirp API

describe('the LiveKit stand-in Twirp API', () => {
  it('resolves createSipParticipant with the identity passed and records the body exactly as the SDK sent it', async () => {
    const s = await standIn();
    const { sip } = clients(s);

    const info = await sip.createSipParticipant('ST_trunk1', '+15551234567', 'call-1', {
      participantIdentity: 'callee-1',
      fromNumber: '+15550001111',
      participantAttributes: { 'call.id': 'c-1' },
      waitUntilAnswered: true,
    });

    expect(info.participantIdentity).toBe('callee-1');
    expect(info.roomName).toBe('call-1');
    expect(info.participantId).toMatch(/^PA_\w{12}$/);
    expect(info.sipCallId).toMatch(/^SCL_\w{12}$/);
    const [request] = s.requestsFor('CreateSIPParticipant');
    expect(request?.service).toBe('SIP');
    expect(request?.body).toEqual({
      sipTrunkId: 'ST_trunk1',
      sipCallTo: '+15551234567',
      sipNumber: '+15550001111',
      roomName: 'call-1',
      participantIdentity: 'callee-1',
      participantAttributes: { 'call.id': 'c-1' },
      ringingTimeout: '30s',
      waitUntilAnswered: true,
    });
    expect(request?.claims).toMatchObject({ iss: s.apiKey, sip: { call: true } });
    expect(request?.requestId).toEqual(expect.any(String));
    const participant = s.rooms.get('call-1')?.participants.get('callee-1');
    expect(participant?.kind).toBe('SIP');
    expect(participant?.attributes).toMatchObject({
      'call.id': 'c-1',
      'sip.callID': info.sipCallId,
      'sip.callStatus': 'active',
      'sip.phoneNumber': '+15551234567',
      'sip.trunkPhoneNumber': '+15550001111',
      'sip.trunkID': 'ST_trunk1',
    });
  });

  it('delivers a scripted busy error to the caller as a SipCallError carrying SIP status 486 and HTTP 429', async () => {
    const s = await standIn();
    s.script('CreateSIPParticipant', {
      error: { code: 'resource_exhausted', msg: 'busy', meta: { sip_status_code: '486', sip_status: 'Busy Here' } },
    });
    const { sip } = clients(s);

    const error = await caught(sip.createSipParticipant('ST_1', '+15551234567', 'call-2', { participantIdentity: 'c' }));

    expect(error).toBeInstanceOf(SipCallError);
    const sipError = error as SipCallError;
    expect(sipError.sipStatusCode).toBe(486);
    expect(sipError.sipStatus).toBe('Busy Here');
    expect(sipError.status).toBe(429);
    expect(sipError.code).toBe('resource_exhausted');
    // the script was one-shot: the next dial gets the default behaviour
    await expect(sip.createSipParticipant('ST_1', '+15551234567', 'call-2', { participantIdentity: 'c' })).resolves.toBeDefined();
  });

  it('rejects a token signed with the wrong secret with a plain-text 401, which the SDK surfaces as a ServerError', async () => {
    const s = await standIn();
    const sip = new SipClient(s.url, s.apiKey, 'a-completely-different-secret-of-32-chars');

    const error = await caught(sip.createSipParticipant('ST_1', '+15551234567', 'call-3', { participantIdentity: 'c' }));

    expect(error).toBeInstanceOf(ServerError);
    expect(error).not.toBeInstanceOf(SipCallError);
    const serverError = error as ServerError;
    expect(serverError.status).toBe(401);
    expect(serverError.name).toBe('Unauthorized');
    // LiveKit's auth middleware answers in text/plain, so no Twirp code reaches the SDK
    expect(serverError.code).toBeUndefined();
    expect(serverError.message).toMatch(/^invalid token: /);
  });

  it('answers a valid token without the needed grant with the Twirp error unauthenticated, as LiveKit does', async () => {
    const s = await standIn();
    const noGrants = await new AccessToken(s.apiKey, s.apiSecret).toJwt();
    const rooms = new RoomServiceClient(s.url, undefined, undefined, { token: noGrants });

    const error = (await caught(rooms.listParticipants('call-4'))) as ServerError;

    expect(error).toBeInstanceOf(ServerError);
    expect(error.status).toBe(401);
    expect(error.code).toBe('unauthenticated');
    expect(error.message).toBe('permissions denied');
  });

  it('checks the room in a room-admin grant against the room the request names', async () => {
    const s = await standIn();
    const token = new AccessToken(s.apiKey, s.apiSecret);
    token.addGrant({ roomAdmin: true, room: 'other-room' });
    const rooms = new RoomServiceClient(s.url, undefined, undefined, { token: await token.toJwt() });

    const error = (await caught(rooms.getParticipant('call-5', 'someone'))) as ServerError;

    expect(error.code).toBe('unauthenticated');
  });

  it('makes the SDK call reject with a network error on a reset reply', async () => {
    const s = await standIn();
    s.script('CreateSIPParticipant', { reset: true });
    const { sip } = clients(s);

    const error = await caught(sip.createSipParticipant('ST_1', '+15551234567', 'call-6', { participantIdentity: 'c' }));

    expect(error).toBeInstanceOf(TypeError);
    expect((error as Error).message).toBe('fetch failed');
    expect(error).not.toBeInstanceOf(ServerError);
  });

  it('lets the SDK time out on a hang reply and still closes promptly', async () => {
    const s = await startLiveKitStandIn();
    s.script('ListRooms', { hang: true });
    const { rooms } = clients(s, 0.2);

    const error = (await caught(rooms.listRooms())) as Error;
    expect(error.name).toBe('TimeoutError');

    s.script('ListRooms', { hang: true });
    const pending = rooms.listRooms().catch((e: unknown) => e);
    await sleep(50);
    const before = Date.now();
    await s.close();
    expect(Date.now() - before).toBeLessThan(500);
    expect(await pending).toBeInstanceOf(Error);
  });

  it('applies delayMs before the reply', async () => {
    const s = await standIn();
    s.script('ListRooms', { ok: { rooms: [] }, delayMs: 150 });
    const { rooms } = clients(s);

    const before = Date.now();
    await rooms.listRooms();

    expect(Date.now() - before).toBeGreaterThanOrEqual(140);
  });

  it('passes a proxy error page through a raw reply as a ServerError with the page as message', async () => {
    const s = await standIn();
    s.script('ListRooms', { raw: { status: 502, contentType: 'text/html', body: '<html>Bad Gateway</html>' } });
    const { rooms } = clients(s);

    const error = (await caught(rooms.listRooms())) as ServerError;

    expect(error.status).toBe(502);
    expect(error.name).toBe('Bad Gateway');
    expect(error.code).toBeUndefined();
    expect(error.message).toBe('<html>Bad Gateway</html>');
  });

  it('answers every Twirp error with Content-Type application/json exactly and the status text Node knows', async () => {
    const s = await standIn();
    const token = await adminToken(s);
    const post = (path: string, init: RequestInit = {}) =>
      fetch(`${s.url}${path}`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
        body: '{}',
        ...init,
      });

    const unknownMethod = await post('/twirp/livekit.RoomService/Nope');
    expect(unknownMethod.status).toBe(404);
    expect(unknownMethod.statusText).toBe('Not Found');
    expect(unknownMethod.headers.get('content-type')).toBe('application/json');
    expect(await unknownMethod.json()).toEqual({
      code: 'bad_route',
      msg: 'no handler for path "/twirp/livekit.RoomService/Nope"',
      meta: { twirp_invalid_route: 'POST /twirp/livekit.RoomService/Nope' },
    });

    const wrongVerb = await fetch(`${s.url}/twirp/livekit.RoomService/ListRooms`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    expect(wrongVerb.status).toBe(404);
    expect(((await wrongVerb.json()) as { code: string }).code).toBe('bad_route');

    const malformed = await post('/twirp/livekit.RoomService/ListRooms', { body: '{not json' });
    expect(malformed.status).toBe(400);
    expect(await malformed.json()).toEqual({ code: 'malformed', msg: 'the json request could not be decoded' });

    const unknownService = await post('/twirp/livekit.Nope/ListRooms');
    expect(unknownService.status).toBe(404);
    expect(unknownService.headers.get('content-type')).toBe('text/plain; charset=utf-8');
  });

  it('simulates rooms and participants: create, list, get, update, remove and delete', async () => {
    const s = await standIn();
    const { rooms } = clients(s);

    const room = await rooms.createRoom({ name: 'room-a', emptyTimeout: 60 });
    expect(room.sid).toMatch(/^RM_/);
    expect(room.emptyTimeout).toBe(60);
    s.joinParticipant('room-a', standardParticipant({ identity: 'alice' }));

    expect((await rooms.listRooms()).map((r) => [r.name, r.numParticipants])).toEqual([['room-a', 1]]);
    expect((await rooms.listParticipants('room-a')).map((p) => p.identity)).toEqual(['alice']);
    const updated = await rooms.updateParticipant('room-a', 'alice', { attributes: { mood: 'good' } });
    expect(updated.attributes).toEqual({ mood: 'good' });
    expect((await rooms.getParticipant('room-a', 'alice')).attributes).toEqual({ mood: 'good' });

    await rooms.removeParticipant('room-a', 'alice');
    const missing = (await caught(rooms.getParticipant('room-a', 'alice'))) as ServerError;
    expect([missing.status, missing.code, missing.message]).toEqual([404, 'not_found', 'participant not found']);

    await rooms.deleteRoom('room-a');
    expect(s.rooms.has('room-a')).toBe(false);
    const gone = (await caught(rooms.deleteRoom('room-a'))) as ServerError;
    expect([gone.status, gone.code]).toEqual([404, 'not_found']);
  });

  it('answers the success bodies in snake_case with every scalar field present', async () => {
    const s = await standIn();
    s.joinParticipant('room-b', standardParticipant({ identity: 'bob' }));
    const token = new AccessToken(s.apiKey, s.apiSecret);
    token.addGrant({ roomAdmin: true, room: 'room-b' });

    const response = await fetch(`${s.url}/twirp/livekit.RoomService/ListParticipants`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${await token.toJwt()}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ room: 'room-b' }),
    });

    expect(response.headers.get('content-type')).toBe('application/json');
    const body = (await response.json()) as { participants: Array<Record<string, unknown>> };
    expect(body.participants[0]).toMatchObject({
      identity: 'bob',
      state: 'ACTIVE',
      kind: 'STANDARD',
      metadata: '',
      joined_at: expect.stringMatching(/^\d+$/),
      disconnect_reason: 'UNKNOWN_REASON',
      is_publisher: false,
    });
  });

  it('transfers a SIP participant and refuses unknown or non-SIP participants', async () => {
    const s = await standIn();
    const { sip } = clients(s);
    s.joinParticipant('room-c', sipParticipant({ phoneNumber: '+15551230000' }));
    s.joinParticipant('room-c', standardParticipant({ identity: 'web' }));

    await expect(sip.transferSipParticipant('room-c', 'sip_+15551230000', 'tel:+15559990000')).resolves.toBeUndefined();
    const missing = (await caught(sip.transferSipParticipant('room-c', 'nobody', 'tel:+1'))) as ServerError;
    expect(missing.code).toBe('not_found');
    const notSip = (await caught(sip.transferSipParticipant('room-c', 'web', 'tel:+1'))) as ServerError;
    expect(notSip.code).toBe('invalid_argument');
    expect(s.requestsFor('TransferSIPParticipant')[0]?.claims).toMatchObject({
      sip: { call: true },
      video: { roomAdmin: true, room: 'room-c' },
    });
  });

  it('honours the SIP options of a dial and a transfer, read by the field names of @livekit/protocol', async () => {
    const s = await standIn();
    const { sip } = clients(s);
    const headers = { 'X-Customer-Id': 'cust-42', 'X-Campaign': 'spring sale' };

    const info = await sip.createSipParticipant('ST_trunk1', '+15551234567', 'call-opts', {
      participantIdentity: 'callee-opts',
      fromNumber: '+15550001111',
      headers,
      dtmf: '1234#w987',
      displayName: 'Acme Support',
      playDialtone: true,
      waitUntilAnswered: true,
    });
    await sip.transferSipParticipant('call-opts', 'callee-opts', 'tel:+15559990000', { headers: { 'X-Reason': 'billing' }, ringingTimeout: 45, playDialtone: true });

    // What the SDK sent, decoded by the protocol's own message types, is what the far end got.
    const dial = CreateSIPParticipantRequest.fromJson(s.requestsFor('CreateSIPParticipant')[0]?.body as never);
    expect([dial.headers, dial.dtmf, dial.displayName, dial.playDialtone]).toEqual([headers, '1234#w987', 'Acme Support', true]);
    expect(s.sipCalls).toEqual([
      {
        callId: info.sipCallId,
        room: 'call-opts',
        participantIdentity: 'callee-opts',
        to: '+15551234567',
        from: '+15550001111',
        headers: dial.headers,
        fromDisplayName: dial.displayName,
        dtmf: dial.dtmf,
        playDialtone: dial.playDialtone,
      },
    ]);
    const refer = TransferSIPParticipantRequest.fromJson(s.requestsFor('TransferSIPParticipant')[0]?.body as never);
    expect(s.transfers).toEqual([
      {
        callId: info.sipCallId,
        room: 'call-opts',
        participantIdentity: 'callee-opts',
        transferTo: refer.transferTo,
        headers: refer.headers,
        ringingTimeoutS: Number(refer.ringingTimeout?.seconds),
        playDialtone: refer.playDialtone,
      },
    ]);
    expect(refer.headers).toEqual({ 'X-Reason': 'billing' });
    expect([refer.ringingTimeout?.seconds, refer.playDialtone]).toEqual([45n, true]);
  });

  it('reads the proto field names of the SIP options as well, as LiveKit accepts both', async () => {
    const s = await standIn();
    s.joinParticipant('room-p', sipParticipant({ identity: 'caller', phoneNumber: '+15551230000' }));
    const token = new AccessToken(s.apiKey, s.apiSecret);
    token.addGrant({ roomAdmin: true, room: 'room-p' });
    token.addSIPGrant({ call: true });
    const post = async (method: string, message: { toJson(options: { useProtoFieldName: boolean }): unknown }) =>
      fetch(`${s.url}/twirp/livekit.SIP/${method}`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${await token.toJwt()}`, 'Content-Type': 'application/json' },
        body: JSON.stringify(message.toJson({ useProtoFieldName: true })),
      });

    const dial = new CreateSIPParticipantRequest({
      sipTrunkId: 'ST_1',
      sipCallTo: '+15551234567',
      roomName: 'room-p',
      participantIdentity: 'callee-p',
      headers: { 'X-A': '1' },
      dtmf: '55#',
      displayName: '',
      playDialtone: true,
    });
    expect((await post('CreateSIPParticipant', dial)).status).toBe(200);
    expect(s.requestsFor('CreateSIPParticipant')[0]?.body).toMatchObject({ display_name: '', play_dialtone: true });
    expect(s.sipCalls[0]).toMatchObject({ headers: { 'X-A': '1' }, dtmf: '55#', fromDisplayName: null, playDialtone: true });

    const refer = TransferSIPParticipantRequest.fromJson({
      roomName: 'room-p',
      participantIdentity: 'caller',
      transferTo: 'sip:desk@pbx.example.com',
      headers: { 'X-B': '2' },
      ringingTimeout: '20s',
      playDialtone: true,
    });
    expect((await post('TransferSIPParticipant', refer)).status).toBe(200);
    expect(s.requestsFor('TransferSIPParticipant')[0]?.body).toMatchObject({ ringing_timeout: '20s', play_dialtone: true });
    expect(s.transfers[0]).toMatchObject({ participantIdentity: 'caller', headers: { 'X-B': '2' }, ringingTimeoutS: 20, playDialtone: true });
  });

  it('sends a dial without options with LiveKit\'s defaults: the from-number as display name, no headers, no digits', async () => {
    const s = await standIn();
    const { sip } = clients(s);
    s.joinParticipant('room-q', sipParticipant({ identity: 'caller', phoneNumber: '+15551230000' }));

    await sip.createSipParticipant('ST_1', '+15551234567', 'room-q', { participantIdentity: 'callee-q', fromNumber: '+15550001111' });
    await sip.transferSipParticipant('room-q', 'caller', 'tel:+15559990000');

    expect(s.requestsFor('CreateSIPParticipant')[0]?.body).not.toHaveProperty('displayName');
    expect(s.sipCalls[0]).toMatchObject({ headers: {}, fromDisplayName: '+15550001111', dtmf: '', playDialtone: false });
    // The SDK itself fills in a 30 s ring for a transfer.
    expect(s.transfers[0]).toMatchObject({ headers: {}, ringingTimeoutS: 30, playDialtone: false });
  });

  it('refuses SIP headers and display names LiveKit refuses, with invalid_argument', async () => {
    const s = await standIn();
    const { sip } = clients(s);
    s.joinParticipant('room-r', sipParticipant({ identity: 'caller', phoneNumber: '+15551230000' }));
    const dial = (opts: Parameters<SipClient['createSipParticipant']>[3]) =>
      caught(sip.createSipParticipant('ST_1', '+15551234567', 'room-r', { participantIdentity: 'callee-r', ...opts })) as Promise<ServerError>;

    for (const error of [
      await dial({ headers: { 'X Bad': '1' } }),
      await dial({ headers: { 'X-Bad': 'line\r\nInjected: yes' } }),
      await dial({ displayName: 'n'.repeat(129) }),
      (await caught(sip.transferSipParticipant('room-r', 'caller', 'tel:+1', { headers: { 'X-Bad:': '1' } }))) as ServerError,
    ]) {
      expect([error.status, error.code]).toEqual([400, 'invalid_argument']);
    }
    expect(s.sipCalls).toEqual([]);
    expect(s.transfers).toEqual([]);
  });

  it('creates, lists and deletes agent dispatches', async () => {
    const s = await standIn();
    const { dispatch } = clients(s);

    const created = await dispatch.createDispatch('room-d', 'phone-agent', { metadata: '{"callId":"c-1"}' });

    expect(created.id).toMatch(/^AD_/);
    expect([created.agentName, created.room, created.metadata]).toEqual(['phone-agent', 'room-d', '{"callId":"c-1"}']);
    expect((await dispatch.listDispatch('room-d')).map((d) => d.id)).toEqual([created.id]);
    await dispatch.deleteDispatch(created.id, 'room-d');
    expect(await dispatch.listDispatch('room-d')).toEqual([]);
  });

  it('routes a custom handler for a method the stand-in does not simulate', async () => {
    const s = await standIn();
    s.setHandler('UpdateRoomMetadata', (req) => ({ ok: { sid: 'RM_custom', name: String(req.body.room) } }));
    const { rooms } = clients(s);

    const room = await rooms.updateRoomMetadata('room-e', 'meta');

    expect(room.sid).toBe('RM_custom');
    s.setHandler('UpdateRoomMetadata', undefined);
    expect(((await caught(rooms.updateRoomMetadata('room-e', 'meta'))) as ServerError).code).toBe('bad_route');
  });
});

// ---------------------------------------------------------------------------------------------
// webhooks from the simulated server

describe('webhooks sent by the simulated server', () => {
  it('delivers participant_left ROOM_DELETED then room_finished when a room is deleted, each verified by WebhookReceiver', async () => {
    const receiver = await startReceiver('devkey', 'stand-in-dev-secret-0123456789abcdef');
    const s = await standIn({ webhookUrl: receiver.url, webhookRetryDelaysMs: [10, 10, 10, 10] });
    const { sip, rooms } = clients(s);

    await sip.createSipParticipant('ST_1', '+15551234567', 'call-9', { participantIdentity: 'callee' });
    await rooms.deleteRoom('call-9');
    await s.webhooks?.idle();

    expect(receiver.received.map((r) => r.verifyError)).toEqual(receiver.received.map(() => undefined));
    expect(receiver.events()).toEqual([
      'room_started',
      'participant_joined',
      'track_published',
      'track_unpublished',
      'participant_left',
      'room_finished',
    ]);
    const [, joined, , , left, finished] = receiver.received.map((r) => r.event);
    expect(joined?.participant?.kind).toBe(ParticipantInfo_Kind.SIP);
    // an outbound call joins while dialing; the answer is invisible to webhooks
    expect(joined?.participant?.attributes['sip.callStatus']).toBe('dialing');
    expect(left?.participant?.identity).toBe('callee');
    expect(left?.participant?.disconnectReason).toBe(DisconnectReason.ROOM_DELETED);
    expect(finished?.room?.name).toBe('call-9');
    expect(receiver.received[0]?.headers['content-type']).toBe('application/webhook+json');
    expect(receiver.received[0]?.headers['user-agent']).toBe('LiveKit');
    expect(receiver.received[0]?.headers.authorization).not.toMatch(/^Bearer /);
  });

  it('reports PARTICIPANT_REMOVED for removeParticipant and the given reason for leaveParticipant', async () => {
    const receiver = await startReceiver('devkey', 'stand-in-dev-secret-0123456789abcdef');
    const s = await standIn({ webhookUrl: receiver.url });
    const { rooms } = clients(s);
    s.joinParticipant('room-f', sipParticipant({ phoneNumber: '+15551112222', callStatus: 'ringing', ruleId: 'SDR_1' }));
    s.joinParticipant('room-f', agentParticipant({ identity: 'agent-1' }));

    await rooms.removeParticipant('room-f', 'agent-1');
    s.leaveParticipant('room-f', 'sip_+15551112222', 'CLIENT_INITIATED');
    s.finishRoom('room-f');
    await s.webhooks?.idle();

    expect(receiver.events()).toEqual([
      'room_started',
      'participant_joined',
      'track_published',
      'participant_joined',
      'participant_left',
      'track_unpublished',
      'participant_left',
      'room_finished',
    ]);
    const lefts = receiver.received.filter((r) => r.event?.event === 'participant_left').map((r) => r.event?.participant);
    expect(lefts.map((p) => [p?.identity, p?.disconnectReason])).toEqual([
      ['agent-1', DisconnectReason.PARTICIPANT_REMOVED],
      ['sip_+15551112222', DisconnectReason.CLIENT_INITIATED],
    ]);
  });
});
