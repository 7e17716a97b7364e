// Tests of the LiveKit stand-in itself, driven through the real livekit-server-sdk clients.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { DisconnectReason, ParticipantInfo_Kind } from '@livekit/protocol';
import {
  AccessToken,
  AgentDispatchClient,
  RoomServiceClient,
  ServerError,
  SipCallError,
  SipClient,
  WebhookEvent,
  WebhookReceiver,
} from 'livekit-server-sdk';
import { startLiveKitStandIn, type LiveKitStandIn, type StandInOptions } from '../../dev/livekit-standin.js';
import { createWebhookSender, postWebhook, signWebhook, webhookHeaders, type WebhookSender } from '../../dev/webhook-sender.js';
import {
  agentParticipant,
  roomJson,
  sipParticipant,
  standardParticipant,
  webhookEvents,
  type WebhookEventJson,
} from '../../dev/webhook-events.js';

// ---------------------------------------------------------------------------------------------
// fixtures

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

async function standIn(options: StandInOptions = {}): Promise<LiveKitStandIn> {
  const started = await startLiveKitStandIn(options);
  cleanups.push(() => started.close());
  return started;
}

function clients(s: LiveKitStandIn, requestTimeout?: number) {
  const options = { requestTimeout };
  return {
    sip: new SipClient(s.url, s.apiKey, s.apiSecret, options),
    rooms: new RoomServiceClient(s.url, s.apiKey, s.apiSecret, options),
    dispatch: new AgentDispatchClient(s.url, s.apiKey, s.apiSecret, options),
  };
}

interface Received {
  body: string;
  headers: IncomingHttpHeaders;
  event?: WebhookEvent;
  verifyError?: string;
  startedAt: number;
  endedAt: number;
}

/** A tiny webhook endpoint that verifies every delivery with the SDK's WebhookReceiver. */
async function startReceiver(
  apiKey: string,
  apiSecret: string,
  respond: (index: number, body: string) => number | Promise<number> = () => 200,
) {
  const verifier = new WebhookReceiver(apiKey, apiSecret);
  const received: Received[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      const startedAt = Date.now();
      const body = Buffer.concat(chunks).toString('utf8');
      const entry: Received = { body, headers: req.headers, startedAt, endedAt: 0 };
      received.push(entry);
      try {
        entry.event = await verifier.receive(body, req.headers.authorization);
      } catch (error) {
        entry.verifyError = error instanceof Error ? error.message : String(error);
      }
      const status = entry.verifyError ? 401 : await respond(received.length - 1, body);
      entry.endedAt = Date.now();
      inFlight -= 1;
      res.writeHead(status, { 'Content-Type': 'text/plain' }).end(String(status));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/webhook`,
    received,
    get maxInFlight() {
      return maxInFlight;
    },
    events: () => received.map((r) => r.event?.event),
  };
}

async function caught(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the promise to reject');
}

/** a URL nobody listens on: a port just released by a throwaway server */
async function closedPortUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}/webhook`;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

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

// ---------------------------------------------------------------------------------------------
// webhook sender

describe('the webhook sender', () => {
  const apiKey = 'APIkey123';
  const apiSecret = 'a-webhook-secret-that-is-long-enough';

  function sender(url: string): WebhookSender {
    const created = createWebhookSender({ url, apiKey, apiSecret, retryDelaysMs: [20, 20, 20, 20] });
    cleanups.push(() => created.close());
    return created;
  }

  it('retries a 503 with the identical bytes and Authorization, until the receiver accepts', async () => {
    const receiver = await startReceiver(apiKey, apiSecret, (i) => (i < 2 ? 503 : 200));

    const result = await sender(receiver.url).send(webhookEvents.roomStarted(roomJson('r1')));

    expect(result).toMatchObject({ status: 200, attempts: 3 });
    expect(result.error).toBeUndefined();
    const [first, ...retries] = receiver.received;
    for (const retry of retries) {
      expect(retry.body).toBe(first?.body);
      expect(retry.headers.authorization).toBe(first?.headers.authorization);
    }
  });

  it('stops at a 400 and gives up after five attempts of 500', async () => {
    const refusing = await startReceiver(apiKey, apiSecret, () => 400);
    const failing = await startReceiver(apiKey, apiSecret, () => 500);
    const notImplemented = await startReceiver(apiKey, apiSecret, () => 501);

    const refused = await sender(refusing.url).send(webhookEvents.roomStarted(roomJson('r2')));
    const failed = await sender(failing.url).send(webhookEvents.roomStarted(roomJson('r2')));
    const final = await sender(notImplemented.url).send(webhookEvents.roomStarted(roomJson('r2')));

    expect(refused).toMatchObject({ status: 400, attempts: 1, error: 'HTTP 400' });
    expect(failed).toMatchObject({ status: 500, attempts: 5 });
    expect(failed.error).toMatch(/gave up/);
    expect(final).toMatchObject({ status: 501, attempts: 1 });
  });

  it('retries connection errors and reports them when it gives up', async () => {
    const result = await sender(await closedPortUrl()).send(webhookEvents.roomStarted(roomJson('r3')));

    expect(result.status).toBeNull();
    expect(result.attempts).toBe(5);
    expect(result.error).toMatch(/^gave up: fetch failed/);
  });

  it('delivers the events of one room in order, one at a time, even when the receiver is slow', async () => {
    const receiver = await startReceiver(apiKey, apiSecret, async (i) => {
      await sleep(i === 0 ? 120 : 10);
      return 200;
    });
    const webhooks = sender(receiver.url);
    const room = roomJson('slow-room');
    const p = sipParticipant({ phoneNumber: '+15550000001' });
    const events = [
      webhookEvents.roomStarted(room),
      webhookEvents.participantJoined(room, p),
      webhookEvents.trackPublished(room, p),
      webhookEvents.trackUnpublished(room, p),
      webhookEvents.participantLeft(room, p, 'CLIENT_INITIATED'),
      webhookEvents.roomFinished(room),
    ];

    const results = await Promise.all(events.map((e) => webhooks.send(e)));

    expect(results.every((r) => r.status === 200)).toBe(true);
    expect(receiver.received.map((r) => r.event?.id)).toEqual(events.map((e) => e.id));
    expect(receiver.maxInFlight).toBe(1);
  });

  it('runs the queues of different rooms independently', async () => {
    const receiver = await startReceiver(apiKey, apiSecret, async (_i, body) => {
      await sleep(body.includes('"slow"') ? 200 : 0);
      return 200;
    });
    const webhooks = sender(receiver.url);

    const slow = webhooks.send(webhookEvents.roomStarted(roomJson('slow')));
    await sleep(20);
    await webhooks.send(webhookEvents.roomStarted(roomJson('fast')));
    const fastDoneAt = Date.now();
    await slow;

    expect(receiver.received.find((r) => r.event?.room?.name === 'slow')?.endedAt).toBeGreaterThan(fastDoneAt - 5);
    await webhooks.idle();
    expect(webhooks.deliveries).toHaveLength(2);
  });

  it('signs so that WebhookReceiver accepts the body, and rejects a tampered digest or an expired token', async () => {
    const receiver = new WebhookReceiver(apiKey, apiSecret);
    const body = JSON.stringify(webhookEvents.roomStarted(roomJson('r4')));

    const event = await receiver.receive(body, await signWebhook(body, { apiKey, apiSecret }));
    expect(event.event).toBe('room_started');

    const tampered = await signWebhook(body, { apiKey, apiSecret, sha256: 'AAAA' });
    await expect(receiver.receive(body, tampered)).rejects.toThrow('sha256 checksum of body does not match');
    const expired = await signWebhook(body, { apiKey, apiSecret, nowS: Math.floor(Date.now() / 1000) - 3600 });
    await expect(receiver.receive(body, expired)).rejects.toThrow();
  });

  it('posts raw bodies and headers for bad-input tests', async () => {
    const receiver = await startReceiver(apiKey, apiSecret);

    const response = await postWebhook(receiver.url, '{}', webhookHeaders('not-a-jwt'));

    expect(response.status).toBe(401);
    expect(receiver.received[0]?.verifyError).toBeDefined();
  });
});

// ---------------------------------------------------------------------------------------------
// event builders

describe('the webhook event builders', () => {
  const room = roomJson('builders-room');
  const sip = sipParticipant({
    phoneNumber: '+15557654321',
    trunkPhoneNumber: '+15550001111',
    callStatus: 'ringing',
    ruleId: 'SDR_abc',
    attributes: { 'sip.h.x-custom': 'yes' },
  });
  const agent = agentParticipant({ agentName: 'phone-agent' });
  const web = standardParticipant({ identity: 'web-user' });
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

  it('names the SIP attributes as LiveKit does', () => {
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
});
