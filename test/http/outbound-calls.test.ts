// Outbound calls through the Control API, dialed with the real livekit-server-sdk against the
// LiveKit stand-in (CP-02, CP-03, CP-04). Time is the test's: retry back-off, ring and duration
// deadlines fire when the test advances the clock.
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryCallStore } from '../../src/store/memory/call.store.js';
import type { Session } from '../../src/http/session.js';
import type { ObsEnvelope } from '../../src/obs/envelope.js';
import { startServiceHarness, type ServiceHarness } from '../support/service-harness.js';
import type { Behaviour } from '../../dev/livekit-standin.js';
import type { Env } from '../../src/config.js';
import { agentParticipant } from '../../dev/webhook-events.js';

const TO = '+31612345678';
let h: ServiceHarness;
afterEach(async () => {
  await h?.close();
});

async function start(env: Env = {}, store?: MemoryCallStore): Promise<ServiceHarness> {
  h = await startServiceHarness({ env: { DIAL_RETRY_BASE_MS: '1000', DIAL_RETRY_MAX_MS: '4000', ...env }, store });
  return h;
}

/** Lets webhooks and commands run to the end; `commands: false` when a dial is held open on purpose. */
async function flush(options: { commands?: boolean } = {}): Promise<void> {
  for (let i = 0; i < 4; i++) {
    await h.standIn.webhooks?.idle();
    await h.settled(options);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function post(path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return h.api(path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
}

async function placeCall(body: Record<string, unknown> = { to: TO }): Promise<Session> {
  const response = await post('/v1/calls', body);
  expect(response.status, await response.clone().text()).toBe(201);
  const session = (await response.json()) as Session;
  expect(response.headers.get('location')).toBe(`/v1/calls/${session.id}`);
  return session;
}

async function session(id: string): Promise<Session> {
  return (await (await h.api(`/v1/calls/${id}`)).json()) as Session;
}

async function events(id: string): Promise<ObsEnvelope[]> {
  return ((await (await h.api(`/v1/calls/${id}/events`)).json()) as { events: ObsEnvelope[] }).events;
}

const sipError = (code: string, sip: number, phrase: string): Behaviour => ({
  error: { code, msg: `sip status: ${sip}`, meta: { sip_status_code: String(sip), sip_status: phrase } },
});

/** A CreateSIPParticipant that waits for the test before answering with `reply`. */
function gatedDial(): { release: (reply?: Behaviour) => void } {
  let release!: (reply?: Behaviour) => void;
  const gate = new Promise<Behaviour | undefined>((resolve) => (release = resolve));
  h.standIn.setHandler('CreateSIPParticipant', async (req, standIn) => (await gate) ?? standIn.simulate(req));
  return { release };
}

describe('POST /v1/calls', () => {
  it('dials through LiveKit, connects on answer, and ends as api_hangup after POST /hangup', async () => {
    await start({ AGENT_NAME: 'receptionist' });
    const created = await placeCall({ to: '+31 6 1234 5678', metadata: { ticket: 'T-1' }, ring_timeout_s: 25, max_duration_s: 900 });
    expect(created).toMatchObject({ direction: 'outbound', state: 'queued', callee_number: TO, caller_number: '+3197010206472', agent: 'receptionist' });
    await flush();
    const connected = await session(created.id);
    expect(connected).toMatchObject({ state: 'connected', attempt: 1, sip_participant_identity: `sip-${created.id}-1` });
    expect(connected.answered_at).not.toBeNull();

    const [dispatch] = h.standIn.requestsFor('CreateDispatch');
    const [dial] = h.standIn.requestsFor('CreateSIPParticipant');
    expect(dispatch?.body).toMatchObject({ agentName: 'receptionist', room: created.livekit_room });
    // The agent learns its call from the dispatch: the session, the parties and the request's metadata.
    expect(JSON.parse(String(dispatch?.body.metadata))).toEqual({
      session_id: created.id,
      direction: 'outbound',
      caller_number: '+3197010206472',
      callee_number: TO,
      metadata: { ticket: 'T-1' },
    });
    // An agent that knows only its room finds its session.
    const byRoom = (await (await h.api(`/v1/calls?room=${encodeURIComponent(created.livekit_room)}`)).json()) as { calls: Session[] };
    expect(byRoom.calls.map((c) => c.id)).toEqual([created.id]);
    expect(((await (await h.api('/v1/calls?room=call-nowhere')).json()) as { calls: Session[] }).calls).toEqual([]);
    expect(dial?.body).toMatchObject({
      sipTrunkId: 'ST_outbound',
      sipCallTo: TO,
      sipNumber: '+3197010206472',
      roomName: created.livekit_room,
      participantIdentity: `sip-${created.id}-1`,
      participantAttributes: { 'control_plane.session_id': created.id },
      ringingTimeout: '25s',
      maxCallDuration: '900s',
      waitUntilAnswered: true,
    });
    expect(h.standIn.requests.indexOf(dispatch as never)).toBeLessThan(h.standIn.requests.indexOf(dial as never));

    const hangup = await post(`/v1/calls/${created.id}/hangup`);
    expect(hangup.status).toBe(202);
    expect(((await hangup.json()) as Session).state).toBe('ending');
    await flush();
    expect(await session(created.id)).toMatchObject({ state: 'ended', end_reason: 'api_hangup' });
    expect(h.standIn.requestsFor('DeleteRoom')).toHaveLength(1);
    expect((await events(created.id)).map((e) => e.event)).toEqual([
      'call.created',
      'call.queued',
      'call.dialing',
      'call.started',
      'call.ending',
      'call.ended',
    ]);
  });

  const outcomes: [name: string, reply: Behaviour, state: string, endReason: string, sip: number | null][] = [
    ['busy (SIP 486)', sipError('resource_exhausted', 486, 'Busy Here'), 'ended', 'busy', 486],
    ['declined (SIP 603)', sipError('permission_denied', 603, 'Decline'), 'ended', 'declined', 603],
    ['no answer (Twirp canceled without a SIP code)', { error: { code: 'canceled', msg: 'ringing timeout' } }, 'ended', 'no_answer', null],
    ['an invalid number (SIP 404)', sipError('not_found', 404, 'Not Found'), 'failed', 'invalid_number', 404],
    ['LiveKit 401 (auth_error, not retried)', { error: { code: 'unauthenticated', msg: 'invalid API key' } }, 'failed', 'auth_error', null],
  ];
  for (const [name, reply, state, endReason, sip] of outcomes) {
    it(`ends a call that meets ${name} as ${state}/${endReason} after one dial`, async () => {
      await start();
      h.standIn.script('CreateSIPParticipant', reply);
      const call = await placeCall();
      await flush();
      h.scheduler?.advance(60_000); // no retry may follow
      await flush();
      const final = await session(call.id);
      expect(final).toMatchObject({ state, end_reason: endReason, attempt: 1 });
      expect(final.error).toMatchObject({ category: endReason, retryable: false, sip_status_code: sip });
      expect(final.error?.user_message.length).toBeGreaterThan(0);
      expect(h.standIn.requestsFor('CreateSIPParticipant')).toHaveLength(1);
      const names = (await events(call.id)).map((e) => e.event);
      expect(names.slice(-2)).toEqual(['call.error', state === 'ended' ? 'call.ended' : 'call.failed']);
    });
  }

  it('retries a carrier 503 with back-off and fails as carrier_error when attempts run out', async () => {
    await start({ DIAL_MAX_ATTEMPTS: '3' });
    const busyCarrier = sipError('failed_precondition', 503, 'Service Unavailable');
    h.standIn.script('CreateSIPParticipant', busyCarrier, busyCarrier, busyCarrier);
    const call = await placeCall();
    await flush();
    expect(await session(call.id)).toMatchObject({ state: 'dialing', attempt: 1 });
    for (let i = 0; i < 2; i++) {
      h.scheduler?.advance(4000);
      await flush();
    }
    const final = await session(call.id);
    expect(final).toMatchObject({ state: 'failed', end_reason: 'carrier_error', attempt: 3 });
    expect(final.error).toMatchObject({ category: 'carrier_error', retryable: true, sip_status_code: 503 });
    expect(h.standIn.requestsFor('CreateSIPParticipant').map((r) => r.body.participantIdentity)).toEqual([
      `sip-${call.id}-1`,
      `sip-${call.id}-2`,
      `sip-${call.id}-3`,
    ]);
    const list = await events(call.id);
    expect(list.filter((e) => e.event === 'call.error').map((e) => e.data.attempt)).toEqual([1, 2, 3]);
    const retries = list.filter((e) => e.event === 'call.retry_scheduled');
    expect(retries).toHaveLength(2);
    for (const retry of retries) {
      expect(retry.data.delay_ms).toBeGreaterThan(0);
      expect(retry.data.delay_ms).toBeLessThanOrEqual(4000);
    }
  });

  it('retries once after LiveKit is unavailable and connects on attempt 2', async () => {
    await start();
    h.standIn.script('CreateSIPParticipant', { error: { code: 'unavailable', msg: 'no SIP service available' } });
    const call = await placeCall();
    await flush();
    h.scheduler?.advance(4000);
    await flush();
    expect(await session(call.id)).toMatchObject({ state: 'connected', attempt: 2, error: null });
    expect(h.standIn.requestsFor('CreateSIPParticipant')).toHaveLength(2);
    // One dispatch for the call, not one per attempt.
    expect(h.standIn.requestsFor('CreateDispatch')).toHaveLength(0);
  });

  it('does not take participant_joined or track_published as an answer', async () => {
    await start();
    const dial = gatedDial();
    const call = await placeCall();
    await flush({ commands: false });
    h.standIn.joinParticipant(call.livekit_room, {
      identity: `sip-${call.id}-1`,
      sid: 'PA_sipout',
      kind: 'SIP',
      state: 'ACTIVE',
      attributes: { 'sip.callStatus': 'dialing', 'sip.phoneNumber': TO },
    } as never);
    await flush({ commands: false });
    expect((await session(call.id)).state).toBe('dialing');
    dial.release({ ok: { participant_id: 'PA_sipout', participant_identity: `sip-${call.id}-1`, room_name: call.livekit_room, sip_call_id: 'SCL_x' } });
    await flush();
    expect(await session(call.id)).toMatchObject({ state: 'connected', sip_call_id: 'SCL_x' });
  });

  it('cancels a call hung up while dialing: one dial, the room deleted, ended/canceled', async () => {
    await start();
    const dial = gatedDial();
    const call = await placeCall();
    await flush({ commands: false });
    expect((await session(call.id)).state).toBe('dialing');
    const hangup = await post(`/v1/calls/${call.id}/hangup`);
    expect(hangup.status).toBe(202);
    expect(((await hangup.json()) as Session).state).toBe('ended');
    dial.release({ error: { code: 'canceled', msg: 'room deleted' } });
    await flush();
    expect(await session(call.id)).toMatchObject({ state: 'ended', end_reason: 'canceled' });
    expect(h.standIn.requestsFor('CreateSIPParticipant')).toHaveLength(1);
    expect(h.standIn.requestsFor('DeleteRoom').map((r) => r.body.room)).toEqual([call.livekit_room]);
  });

  it('deletes the room again when a dial hung up while dialing is answered anyway', async () => {
    await start();
    const dial = gatedDial();
    const call = await placeCall();
    await flush({ commands: false });
    await post(`/v1/calls/${call.id}/hangup`);
    dial.release();
    await flush();
    expect(await session(call.id)).toMatchObject({ state: 'ended', end_reason: 'canceled' });
    expect(h.standIn.requestsFor('DeleteRoom')).toHaveLength(2);
    expect(h.standIn.rooms.has(call.livekit_room)).toBe(false);
  });

  it('never mistakes a late webhook about an ended outbound call\'s phone leg for a new inbound call', async () => {
    await start();
    const call = await placeCall();
    await flush();
    await post(`/v1/calls/${call.id}/hangup`);
    await flush();
    expect((await session(call.id)).state).toBe('ended');
    const late = {
      event: 'participant_joined',
      id: 'EV_late00000001',
      createdAt: String(Math.floor(Date.now() / 1000)),
      room: { sid: 'RM_late', name: call.livekit_room },
      participant: {
        sid: 'PA_late',
        identity: `sip-${call.id}-1`,
        kind: 'SIP',
        state: 'ACTIVE',
        attributes: { 'sip.phoneNumber': TO, 'sip.callStatus': 'dialing', 'control_plane.session_id': call.id },
      },
    };
    const result = await h.postSigned(JSON.stringify(late));
    expect(result.status).toBe(200);
    expect(JSON.parse(result.body)).toMatchObject({ status: 'ignored' });
    expect(((await (await h.api('/v1/calls')).json()) as { calls: unknown[] }).calls).toHaveLength(1);
  });

  it('hangs up with max_duration when the call lasts too long', async () => {
    await start();
    const call = await placeCall({ to: TO, max_duration_s: 60 });
    await flush();
    h.standIn.joinParticipant(call.livekit_room, agentParticipant({ identity: 'agent-long' }));
    await flush();
    h.scheduler?.advance(59_000);
    await flush();
    expect((await session(call.id)).state).toBe('connected');
    h.scheduler?.advance(1000);
    await flush();
    expect(await session(call.id)).toMatchObject({ state: 'ended', end_reason: 'max_duration', duration_s: 60 });
  });

  it('ends a dial LiveKit never answers at the plane\'s own ring deadline', async () => {
    await start();
    gatedDial();
    const call = await placeCall({ to: TO, ring_timeout_s: 20 });
    await flush({ commands: false });
    h.scheduler?.advance(25_000);
    await flush({ commands: false });
    expect(await session(call.id)).toMatchObject({ state: 'ended', end_reason: 'no_answer' });
    expect(h.standIn.requestsFor('DeleteRoom')).toHaveLength(1);
  });

  it('dials queued calls in order, one at a time, under MAX_CONCURRENT_CALLS=1', async () => {
    await start({ MAX_CONCURRENT_CALLS: '1' });
    const calls = [await placeCall({ to: '+31612345671' }), await placeCall({ to: '+31612345672' }), await placeCall({ to: '+31612345673' })];
    await flush();
    expect((await Promise.all(calls.map((c) => session(c.id)))).map((c) => c.state)).toEqual(['connected', 'queued', 'queued']);
    for (const call of calls) {
      await post(`/v1/calls/${call.id}/hangup`);
      await flush();
    }
    expect(h.standIn.requestsFor('CreateSIPParticipant').map((r) => r.body.sipCallTo)).toEqual(['+31612345671', '+31612345672', '+31612345673']);
    expect((await Promise.all(calls.map((c) => session(c.id)))).map((c) => c.state)).toEqual(['ended', 'ended', 'ended']);
  });

  it('answers 429 problem+json when the queue of waiting calls is full', async () => {
    await start({ MAX_CONCURRENT_CALLS: '1', MAX_QUEUED_CALLS: '1' });
    gatedDial();
    await placeCall({ to: '+31612345671' });
    await flush({ commands: false });
    await placeCall({ to: '+31612345672' });
    const refused = await post('/v1/calls', { to: '+31612345673' });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('5');
    expect(((await refused.json()) as { code: string }).code).toBe('queue_full');
  });

  it('cancels a queued call on hang-up without dialing it', async () => {
    await start({ MAX_CONCURRENT_CALLS: '1' });
    gatedDial();
    await placeCall({ to: '+31612345671' });
    const waiting = await placeCall({ to: '+31612345672' });
    await flush({ commands: false });
    const hangup = await post(`/v1/calls/${waiting.id}/hangup`);
    expect(hangup.status).toBe(202);
    expect(await session(waiting.id)).toMatchObject({ state: 'ended', end_reason: 'canceled', attempt: 0 });
    expect(h.standIn.requestsFor('CreateSIPParticipant')).toHaveLength(1);
  });

  it('uses a per-call from-number only when it is allowed', async () => {
    await start({ OUTBOUND_FROM_NUMBERS: '+31201234567' });
    const allowed = await placeCall({ to: TO, from: '+31 20 123 4567' });
    expect(allowed.caller_number).toBe('+31201234567');
    const refused = await post('/v1/calls', { to: TO, from: '+31687654321' });
    expect(refused.status).toBe(422);
    expect(((await refused.json()) as { code: string }).code).toBe('from_not_allowed');
  });

  it('answers 503 when outbound calls are not configured', async () => {
    await start({ SIP_OUTBOUND_TRUNK_ID: '' });
    const response = await post('/v1/calls', { to: TO });
    expect(response.status).toBe(503);
    expect(((await response.json()) as { code: string }).code).toBe('outbound_not_configured');
    expect(((await (await h.api('/v1/calls')).json()) as { calls: unknown[] }).calls).toHaveLength(0);
  });

  it('rejects bad bodies with a clear 4xx and creates nothing', async () => {
    await start();
    const cases: [body: string, contentType: string, status: number, code: string][] = [
      ['{"to": "+31612345678"', 'application/json', 400, 'invalid_body'],
      ['[1,2]', 'application/json', 400, 'invalid_body'],
      ['', 'application/json', 400, 'invalid_body'],
      ['to=+31612345678', 'application/x-www-form-urlencoded', 415, 'unsupported_media_type'],
      ['{"to": "+31612345678", "colour": "blue"}', 'application/json', 422, 'validation_failed'],
      ['{"to": 31612345678}', 'application/json', 422, 'validation_failed'],
      ['{"to": "+31612345678", "ring_timeout_s": 1}', 'application/json', 422, 'validation_failed'],
      ['{"to": "0612345678"}', 'application/json', 422, 'invalid_number'],
      ['{"to": "+999123"}', 'application/json', 422, 'invalid_number'],
      ['{"to": "+31612345678", "agent": "bad agent name!"}', 'application/json', 422, 'validation_failed'],
      [JSON.stringify({ to: TO, metadata: { blob: 'x'.repeat(5000) } }), 'application/json', 422, 'validation_failed'],
      [JSON.stringify({ to: TO, metadata: { blob: 'x'.repeat(70_000) } }), 'application/json', 413, 'payload_too_large'],
    ];
    for (const [body, contentType, status, code] of cases) {
      const response = await h.api('/v1/calls', { method: 'POST', headers: { 'Content-Type': contentType }, body });
      expect(response.status, body.slice(0, 60)).toBe(status);
      expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(((await response.json()) as { code: string }).code, body.slice(0, 60)).toBe(code);
    }
    expect(((await (await h.api('/v1/calls')).json()) as { calls: unknown[] }).calls).toHaveLength(0);
    expect(h.standIn.requestsFor('CreateSIPParticipant')).toHaveLength(0);
  });
});

describe('Idempotency-Key on POST /v1/calls', () => {
  it('replays the original response for the same key and body, and never dials twice', async () => {
    await start();
    const first = await post('/v1/calls', { to: TO }, { 'Idempotency-Key': 'order-42' });
    const again = await post('/v1/calls', { to: TO }, { 'Idempotency-Key': 'order-42' });
    expect(first.status).toBe(201);
    expect(again.status).toBe(201);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.headers.get('location')).toBe(first.headers.get('location'));
    expect(await again.json()).toEqual(await first.json());
    await flush();
    expect(h.standIn.requestsFor('CreateSIPParticipant')).toHaveLength(1);
  });

  it('answers 422 when the key is reused with another body', async () => {
    await start();
    await post('/v1/calls', { to: TO }, { 'Idempotency-Key': 'order-43' });
    const misuse = await post('/v1/calls', { to: '+31687654321' }, { 'Idempotency-Key': 'order-43' });
    expect(misuse.status).toBe(422);
    expect(((await misuse.json()) as { code: string }).code).toBe('idempotency_key_reused');
  });

  it('answers 409 while the first request with the key is still in flight', async () => {
    const store = new MemoryCallStore({ retentionMs: 60_000, maxFinalCalls: 100, webhookDedupSize: 100, maxEventsPerCall: 100 });
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const commit = store.commit.bind(store);
    store.commit = async (record, evts) => {
      if (record.version === 1) await gate;
      return commit(record, evts);
    };
    await start({}, store);
    const first = post('/v1/calls', { to: TO }, { 'Idempotency-Key': 'order-44' });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const concurrent = await post('/v1/calls', { to: TO }, { 'Idempotency-Key': 'order-44' });
    expect(concurrent.status).toBe(409);
    expect(((await concurrent.json()) as { code: string }).code).toBe('idempotency_in_flight');
    open();
    expect((await first).status).toBe(201);
  });

  it('keeps keys apart per API key and expires them after 24 hours', async () => {
    await start({ CONTROL_API_KEYS: 'first-client-key-0001,second-client-key-002' });
    const a = await h.api('/v1/calls', { method: 'POST', key: 'first-client-key-0001', headers: { 'Content-Type': 'application/json', 'Idempotency-Key': 'k1' }, body: JSON.stringify({ to: TO }) });
    const b = await h.api('/v1/calls', { method: 'POST', key: 'second-client-key-002', headers: { 'Content-Type': 'application/json', 'Idempotency-Key': 'k1' }, body: JSON.stringify({ to: TO }) });
    expect(a.status).toBe(201);
    expect(b.status).toBe(201);
    expect(b.headers.get('idempotent-replayed')).toBeNull();
    // The embedded store expires keys by the service's clock, moved here; Redis by its own, which
    // the store contract suite checks with short TTLs.
    if (process.env.CP_TEST_STORE === 'redis') return;
    h.clock?.set((h.clock?.now() ?? 0) + 24 * 3600 * 1000 + 1);
    const later = await h.api('/v1/calls', { method: 'POST', key: 'first-client-key-0001', headers: { 'Content-Type': 'application/json', 'Idempotency-Key': 'k1' }, body: JSON.stringify({ to: TO }) });
    expect(later.status).toBe(201);
    expect(later.headers.get('idempotent-replayed')).toBeNull();
  });

  it('answers 400 for a malformed key', async () => {
    await start();
    const response = await post('/v1/calls', { to: TO }, { 'Idempotency-Key': 'x'.repeat(300) });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { code: string }).code).toBe('invalid_idempotency_key');
  });
});

describe('POST /v1/calls/{id}/hangup and /transfer', () => {
  it('transfers a connected call and ends it as transferred', async () => {
    await start();
    const call = await placeCall();
    await flush();
    const response = await post(`/v1/calls/${call.id}/transfer`, { to: '+31 20 123 4567' });
    expect(response.status).toBe(202);
    expect(((await response.json()) as Session).state).toBe('transferring');
    await flush();
    expect(await session(call.id)).toMatchObject({ state: 'ended', end_reason: 'transferred' });
    const [transfer] = h.standIn.requestsFor('TransferSIPParticipant');
    expect(transfer?.body).toMatchObject({ roomName: call.livekit_room, participantIdentity: `sip-${call.id}-1`, transferTo: 'tel:+31201234567' });
  });

  it('returns a call to connected when the transfer is refused', async () => {
    await start();
    const call = await placeCall();
    await flush();
    h.standIn.script('TransferSIPParticipant', sipError('permission_denied', 603, 'Decline'));
    await post(`/v1/calls/${call.id}/transfer`, { to: 'sip:desk@pbx.example.com' });
    await flush();
    const after = await session(call.id);
    expect(after).toMatchObject({ state: 'connected', end_reason: null });
    const list = await events(call.id);
    expect(list.at(-1)).toMatchObject({ event: 'call.transfer_failed', state: 'connected', data: { category: 'declined', sip_status_code: 603 } });
    expect(list.filter((e) => e.event === 'call.started')).toHaveLength(1);
  });

  it('accepts two hang-ups at once and deletes the room once', async () => {
    await start();
    const call = await placeCall();
    await flush();
    h.standIn.setHandler('DeleteRoom', () => ({ ok: {} })); // LiveKit confirms later
    const [a, b] = await Promise.all([post(`/v1/calls/${call.id}/hangup`), post(`/v1/calls/${call.id}/hangup`)]);
    expect([a.status, b.status]).toEqual([202, 202]);
    await flush();
    expect(h.standIn.requestsFor('DeleteRoom')).toHaveLength(1);
    expect((await events(call.id)).filter((e) => e.event === 'call.ending')).toHaveLength(1);
  });

  it('answers 404 for an unknown call, 409 for a call that cannot take the command, 422 for a bad target', async () => {
    await start({ MAX_CONCURRENT_CALLS: '1' });
    expect((await post('/v1/calls/nope/hangup')).status).toBe(404);
    expect((await post('/v1/calls/nope/transfer', { to: TO })).status).toBe(404);

    const call = await placeCall();
    await flush();
    for (const to of ['12345', 'sip:nobody', 'mailto:x@example.com', '+999123']) {
      const bad = await post(`/v1/calls/${call.id}/transfer`, { to });
      expect(bad.status, to).toBe(422);
      expect(((await bad.json()) as { code: string }).code).toBe('invalid_transfer_target');
    }
    expect((await post(`/v1/calls/${call.id}/transfer`, { to: TO, extra: 1 })).status).toBe(422);
    expect((await post(`/v1/calls/${call.id}/hangup`, { force: true })).status).toBe(422);

    await post(`/v1/calls/${call.id}/hangup`);
    await flush();
    const ended = await post(`/v1/calls/${call.id}/hangup`);
    expect(ended.status).toBe(409);
    expect(await ended.json()).toMatchObject({ code: 'call_not_active', state: 'ended' });
    const notConnected = await post(`/v1/calls/${call.id}/transfer`, { to: TO });
    expect(notConnected.status).toBe(409);
    expect(await notConnected.json()).toMatchObject({ code: 'call_not_connected' });
  });
});
