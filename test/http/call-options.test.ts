// The SIP options of a call through the Control API (docs/api.md): headers, display name and
// post-answer digits of a dial; headers, ring timeout and dial tone of a transfer; the caller's
// SIP headers of an inbound call. Each reaches LiveKit through the real livekit-server-sdk and the
// stand-in; the digits (they may carry a PIN) are never shown, emitted or logged anywhere.
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { Session } from '../../src/http/session.js';
import type { ObsEnvelope } from '../../src/obs/envelope.js';
import { startInspector, type InspectorHandle } from '../../src/obs/inspector.js';
import { createLogger } from '../../src/obs/logger.js';
import { startServiceHarness, type ServiceHarness } from '../support/service-harness.js';
import { readSse } from '../support/sse.js';
import { agentParticipant, newId, sipParticipant } from '../../dev/webhook-events.js';
import { startStatusCallbackReceiver, type StatusCallbackReceiver } from '../../dev/status-callback-receiver.js';

const TO = '+31612345678';
/** Distinctive, so any place it shows up is found. */
const DTMF = '1234#w987';
const HEADERS = { 'X-Customer-Id': 'cust-42', 'X-Campaign': 'spring sale' };
const CALLBACK_SECRET = `whsec_${Buffer.from('call-options-test-secret-0123456').toString('base64')}`;

let h: ServiceHarness;
let inspector: InspectorHandle | undefined;
let receiver: StatusCallbackReceiver | undefined;
afterEach(async () => {
  await h?.close();
  await inspector?.stop();
  await receiver?.close();
  inspector = undefined;
  receiver = undefined;
});

async function start(options: Parameters<typeof startServiceHarness>[0] = {}): Promise<ServiceHarness> {
  h = await startServiceHarness({ ...options, env: { DIAL_RETRY_BASE_MS: '1000', DIAL_RETRY_MAX_MS: '4000', ...options.env } });
  return h;
}

async function flush(): Promise<void> {
  for (let i = 0; i < 4; i++) {
    await h.standIn.webhooks?.idle();
    await h.settled();
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return h.api(path, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: JSON.stringify(body) });
}

async function placeCall(body: Record<string, unknown>): Promise<Session> {
  const response = await post('/v1/calls', body);
  expect(response.status, await response.clone().text()).toBe(201);
  return (await response.json()) as Session;
}

async function session(id: string): Promise<Session> {
  return (await (await h.api(`/v1/calls/${id}`)).json()) as Session;
}

async function connectedCall(body: Record<string, unknown> = { to: TO }): Promise<Session> {
  const call = await placeCall(body);
  await flush();
  expect((await session(call.id)).state).toBe('connected');
  return call;
}

async function callCount(): Promise<number> {
  return ((await (await h.api('/v1/calls')).json()) as { calls: unknown[] }).calls.length;
}

/** Each body is refused with 422 validation_failed; returns the answers' text. */
async function expectRefused(path: string, bodies: Record<string, unknown>[]): Promise<string[]> {
  const texts: string[] = [];
  for (const body of bodies) {
    const response = await post(path, body);
    const text = await response.text();
    const label = JSON.stringify(body).slice(0, 120);
    expect(response.status, label).toBe(422);
    expect((JSON.parse(text) as { code: string }).code, label).toBe('validation_failed');
    texts.push(text);
  }
  return texts;
}

const manyHeaders = (count: number): Record<string, string> => Object.fromEntries(Array.from({ length: count }, (_, i) => [`X-H${i}`, 'v']));

describe('SIP options of POST /v1/calls', () => {
  it('sends sip_headers, dtmf and display_name with the dial and shows the headers and the name, never the digits', async () => {
    await start();
    const created = await placeCall({ to: TO, sip_headers: HEADERS, dtmf: DTMF, display_name: 'Acme Support' });
    expect(created).toMatchObject({ sip_headers: HEADERS, display_name: 'Acme Support' });
    expect(created).not.toHaveProperty('dtmf');
    await flush();

    const [dial] = h.standIn.requestsFor('CreateSIPParticipant');
    expect(dial?.body).toMatchObject({ headers: HEADERS, dtmf: DTMF, displayName: 'Acme Support' });
    expect(h.standIn.sipCalls).toMatchObject([{ headers: HEADERS, fromDisplayName: 'Acme Support', dtmf: DTMF }]);
    const connected = await session(created.id);
    expect(connected).toMatchObject({ state: 'connected', sip_headers: HEADERS, display_name: 'Acme Support' });
    expect(JSON.stringify(connected)).not.toContain(DTMF);
  });

  it('sends the options again with every dial attempt', async () => {
    await start();
    h.standIn.script('CreateSIPParticipant', { error: { code: 'unavailable', msg: 'no SIP service available' } });
    const call = await placeCall({ to: TO, sip_headers: HEADERS, dtmf: DTMF, display_name: 'Acme Support' });
    await flush();
    h.scheduler?.advance(4000);
    await flush();
    expect(await session(call.id)).toMatchObject({ state: 'connected', attempt: 2, sip_headers: HEADERS });
    const dials = h.standIn.requestsFor('CreateSIPParticipant');
    expect(dials).toHaveLength(2);
    for (const dial of dials) expect(dial.body).toMatchObject({ headers: HEADERS, dtmf: DTMF, displayName: 'Acme Support' });
  });

  it('sends an empty display_name as no display name, and without options none of them', async () => {
    await start();
    const unnamed = await placeCall({ to: TO, display_name: '' });
    const plain = await placeCall({ to: '+31687654321' });
    await flush();
    expect(unnamed).toMatchObject({ display_name: '', sip_headers: null });
    expect(plain).toMatchObject({ display_name: null, sip_headers: null });

    const [first, second] = h.standIn.requestsFor('CreateSIPParticipant');
    expect(first?.body).toMatchObject({ displayName: '' });
    for (const key of ['headers', 'dtmf']) expect(first?.body).not.toHaveProperty(key);
    for (const key of ['headers', 'dtmf', 'displayName']) expect(second?.body).not.toHaveProperty(key);
    // No display name, so the carrier looks the name up; without one LiveKit shows the from-number.
    expect(h.standIn.sipCalls.map((call) => call.fromDisplayName)).toEqual([null, plain.caller_number]);
  });

  it('accepts the limits: 16 headers, 64-character names, 256-character values, 32 digits, a 64-character name', async () => {
    await start();
    const longName = `X-${'n'.repeat(64)}`;
    const headers = { ...manyHeaders(15), [longName]: ` ${'~'.repeat(254)} ` };
    const call = await placeCall({ to: TO, sip_headers: headers, dtmf: '0123456789*#w'.padEnd(32, 'w'), display_name: 'd'.repeat(64) });
    await flush();
    expect(call.sip_headers).toEqual(headers);
    expect(h.standIn.requestsFor('CreateSIPParticipant')[0]?.body).toMatchObject({ headers, displayName: 'd'.repeat(64) });
  });

  it('refuses every invalid value with 422 validation_failed and dials nothing', async () => {
    await start();
    const texts = await expectRefused('/v1/calls', [
      { to: TO, sip_headers: manyHeaders(17) },
      { to: TO, sip_headers: { 'Customer-Id': 'no X- prefix' } },
      { to: TO, sip_headers: { 'X-': 'empty name' } },
      { to: TO, sip_headers: { [`X-${'n'.repeat(65)}`]: 'name too long' } },
      { to: TO, sip_headers: { X_Customer: 'underscore' } },
      { to: TO, sip_headers: { 'X-Customer_Id': 'underscore' } },
      { to: TO, sip_headers: { 'X-Kunde-Straße': 'not ASCII' } },
      { to: TO, sip_headers: { 'X-Value': 'line\r\nInjected: yes' } },
      { to: TO, sip_headers: { 'X-Value': 'bell\u0007' } },
      { to: TO, sip_headers: { 'X-Value': 'tab\there' } },
      { to: TO, sip_headers: { 'X-Value': 'café' } },
      { to: TO, sip_headers: { 'X-Value': 'v'.repeat(257) } },
      { to: TO, sip_headers: { 'X-Value': 42 } },
      { to: TO, sip_headers: { 'X-Same': '1', 'x-same': '2' } },
      { to: TO, sip_headers: ['X-Value'] },
      { to: TO, sip_headers: 'X-Value: 1' },
      { to: TO, dtmf: `${DTMF}x` },
      { to: TO, dtmf: '12 34' },
      { to: TO, dtmf: '123W' },
      { to: TO, dtmf: 'ABCD' },
      { to: TO, dtmf: '' },
      { to: TO, dtmf: '1'.repeat(33) },
      { to: TO, dtmf: 1234 },
      { to: TO, display_name: 'd'.repeat(65) },
      { to: TO, display_name: 'Acme\r\nX-Injected: 1' },
      { to: TO, display_name: 7 },
      { to: TO, display_name: null },
    ]);
    // A refused dtmf is not echoed either.
    for (const text of texts) expect(text).not.toContain(DTMF);
    expect(await callCount()).toBe(0);
    expect(h.standIn.requestsFor('CreateSIPParticipant')).toHaveLength(0);
  });
});

describe('SIP options of POST /v1/calls/{id}/transfer', () => {
  it('sends sip_headers, ring_timeout_s and play_dialtone with the REFER; a later transfer without them gets LiveKit\'s defaults', async () => {
    await start();
    const call = await connectedCall();
    h.standIn.script('TransferSIPParticipant', {
      error: { code: 'permission_denied', msg: 'sip status: 603', meta: { sip_status_code: '603', sip_status: 'Decline' } },
    });
    const refused = await post(`/v1/calls/${call.id}/transfer`, { to: '+31201234567', sip_headers: { 'X-Reason': 'billing' }, ring_timeout_s: 45, play_dialtone: true });
    expect(refused.status).toBe(202);
    await flush();
    expect((await session(call.id)).state).toBe('connected');

    const again = await post(`/v1/calls/${call.id}/transfer`, { to: 'sip:desk@pbx.example.com' });
    expect(again.status).toBe(202);
    await flush();
    expect(await session(call.id)).toMatchObject({ state: 'ended', end_reason: 'transferred' });

    const [first, second] = h.standIn.requestsFor('TransferSIPParticipant');
    expect(first?.body).toMatchObject({ transferTo: 'tel:+31201234567', headers: { 'X-Reason': 'billing' }, ringingTimeout: '45s', playDialtone: true });
    // The SDK fills in a 30 s ring; no headers and no dial tone are sent.
    expect(second?.body).toMatchObject({ transferTo: 'sip:desk@pbx.example.com', ringingTimeout: '30s' });
    for (const key of ['headers', 'playDialtone']) expect(second?.body).not.toHaveProperty(key);
    expect(h.standIn.transfers).toMatchObject([{ headers: {} , ringingTimeoutS: 30, playDialtone: false }]);
  });

  it('carries the REFER options to LiveKit when the transfer is accepted', async () => {
    await start();
    const call = await connectedCall();
    const response = await post(`/v1/calls/${call.id}/transfer`, { to: '+31201234567', sip_headers: HEADERS, ring_timeout_s: 20, play_dialtone: false });
    expect(response.status).toBe(202);
    await flush();
    expect(h.standIn.transfers).toMatchObject([{ transferTo: 'tel:+31201234567', headers: HEADERS, ringingTimeoutS: 20, playDialtone: false }]);
  });

  it('refuses every invalid value with 422 validation_failed and sends no REFER', async () => {
    await start();
    const call = await connectedCall();
    const to = '+31201234567';
    await expectRefused(`/v1/calls/${call.id}/transfer`, [
      { to, sip_headers: manyHeaders(17) },
      { to, sip_headers: { Reason: 'no X- prefix' } },
      { to, sip_headers: { 'X-Reason': 'line\nbreak' } },
      { to, sip_headers: { 'X-Reason': 'r'.repeat(257) } },
      { to, ring_timeout_s: 4 },
      { to, ring_timeout_s: 601 },
      { to, ring_timeout_s: 30.5 },
      { to, ring_timeout_s: '30' },
      { to, play_dialtone: 'yes' },
      { to, play_dialtone: 1 },
      { to, play_dialtone: null },
      { to, dtmf: '1' },
    ]);
    expect(h.standIn.requestsFor('TransferSIPParticipant')).toHaveLength(0);
    expect((await session(call.id)).state).toBe('connected');
  });
});

describe('SIP headers of inbound calls', () => {
  it('shows the caller\'s headers LiveKit reports as sip.h.* attributes, by their lower-case names, and no display name', async () => {
    await start();
    const withHeaders = `call-_${TO}_${newId('', 6)}`;
    const without = `call-_${TO}_${newId('', 6)}`;
    h.standIn.joinParticipant(
      withHeaders,
      sipParticipant({ identity: 'sip_caller_a', phoneNumber: TO, callStatus: 'ringing', headers: { 'X-Customer-Id': 'cust-7', 'X-Trace': 'abc' } }),
    );
    h.standIn.joinParticipant(without, sipParticipant({ identity: 'sip_caller_b', phoneNumber: TO, callStatus: 'ringing' }));
    await flush();
    h.standIn.joinParticipant(withHeaders, agentParticipant());
    await flush();

    const { calls } = (await (await h.api('/v1/calls?direction=inbound')).json()) as { calls: Session[] };
    const byRoom = new Map(calls.map((call) => [call.livekit_room, call]));
    expect(byRoom.get(withHeaders)).toMatchObject({ state: 'connected', sip_headers: { 'x-customer-id': 'cust-7', 'x-trace': 'abc' }, display_name: null });
    expect(byRoom.get(without)).toMatchObject({ state: 'ringing', sip_headers: null, display_name: null });
  });
});

describe('Idempotency-Key with SIP options', () => {
  it('replays the same options in any header order, and answers 422 idempotency_key_reused for other options', async () => {
    await start();
    const key = { 'Idempotency-Key': 'order-77' };
    const body = { to: TO, sip_headers: HEADERS, dtmf: DTMF, display_name: 'Acme Support' };
    const first = await post('/v1/calls', body, key);
    expect(first.status).toBe(201);
    const reordered = Object.fromEntries(Object.entries(HEADERS).reverse());
    const replay = await post('/v1/calls', { ...body, sip_headers: reordered }, key);
    expect(replay.status).toBe(201);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    for (const other of [{ dtmf: '1234#w988' }, { dtmf: undefined }, { sip_headers: { 'X-Customer-Id': 'cust-43' } }, { display_name: 'Acme' }]) {
      const misuse = await post('/v1/calls', { ...body, ...other }, key);
      expect(misuse.status, JSON.stringify(other)).toBe(422);
      expect(((await misuse.json()) as { code: string }).code).toBe('idempotency_key_reused');
    }
    await flush();
    expect(h.standIn.requestsFor('CreateSIPParticipant')).toHaveLength(1);
  });
});

describe('the dtmf of a call', () => {
  it('reaches LiveKit and appears in no answer, replay, event, event stream, status callback, log line or inspector message', async () => {
    inspector = await startInspector(0, createLogger({ level: 'silent' }));
    const page = new WebSocket(inspector.url.replace('http', 'ws'));
    const inspected: string[] = [];
    page.on('message', (data) => inspected.push(data.toString()));
    await new Promise((resolve) => page.once('open', resolve));
    receiver = await startStatusCallbackReceiver({ secret: CALLBACK_SECRET });
    await start({
      inspect: inspector.inspect,
      env: { STATUS_CALLBACK_URL: receiver.url, STATUS_CALLBACK_SECRET: CALLBACK_SECRET, STATUS_CALLBACK_RETRY_SCHEDULE_S: '0,0,0' },
    });
    const answers: string[] = [];
    const keep = async (response: Response): Promise<Response> => {
      answers.push(await response.clone().text());
      return response;
    };

    let sessionId = '';
    const mine = (data: string) => (JSON.parse(data) as ObsEnvelope).session_id === sessionId;
    const streamed = readSse(h, '/v1/events', (events) => events.some((e) => e.event === 'call.ended' && mine(e.data)));
    await new Promise((resolve) => setTimeout(resolve, 50));

    // The first dial fails (a failure is logged with its details), the second connects.
    h.standIn.script('CreateSIPParticipant', { error: { code: 'unavailable', msg: 'no SIP service available' } });
    const body = { to: TO, sip_headers: HEADERS, dtmf: DTMF, display_name: 'Acme Support' };
    const created = await keep(await post('/v1/calls', body, { 'Idempotency-Key': 'pin-call' }));
    expect(created.status).toBe(201);
    sessionId = ((await created.json()) as Session).id;
    await flush();
    h.scheduler?.advance(4000);
    await flush();
    expect((await session(sessionId)).state).toBe('connected');
    expect(h.standIn.requestsFor('CreateSIPParticipant').map((r) => r.body.dtmf)).toEqual([DTMF, DTMF]);

    const replay = await keep(await post('/v1/calls', body, { 'Idempotency-Key': 'pin-call' }));
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect((await keep(await post('/v1/calls', { ...body, dtmf: '9' }, { 'Idempotency-Key': 'pin-call' }))).status).toBe(422);

    // A refused transfer (logged), then a hang-up to the end.
    h.standIn.script('TransferSIPParticipant', { error: { code: 'unavailable', msg: 'transfer failed' } });
    await keep(await post(`/v1/calls/${sessionId}/transfer`, { to: '+31201234567', sip_headers: { 'X-Reason': 'billing' }, play_dialtone: true }));
    await flush();
    await keep(await post(`/v1/calls/${sessionId}/hangup`, {}));
    await flush();
    for (const path of [`/v1/calls/${sessionId}`, '/v1/calls', `/v1/calls/${sessionId}/events`, `/v1/calls/${sessionId}/deliveries`]) {
      await keep(await h.api(path));
    }
    expect(JSON.parse(answers.at(-4) ?? '{}')).toMatchObject({ state: 'ended', sip_headers: HEADERS, display_name: 'Acme Support' });

    const events = (await streamed).filter((e) => mine(e.data));
    expect(events.map((e) => e.event)).toContain('call.transfer_failed');
    await expect.poll(() => receiver?.received.some((r) => r.payload?.type === 'call.ended'), { timeout: 5000 }).toBe(true);
    await expect.poll(() => inspected.some((m) => m.includes('api.transfer')), { timeout: 5000 }).toBe(true);
    const callbacks = receiver.received.map((r) => r.body);
    expect(callbacks.some((text) => text.includes('"display_name":"Acme Support"'))).toBe(true);
    const logs = h.logText();
    expect(logs).toContain(sessionId);
    expect(logs).toMatch(/"level":"debug"/);

    const outputs: [string, string[]][] = [
      ['API answers', answers],
      ['event stream', events.map((e) => e.data)],
      ['status callbacks', callbacks],
      ['logs', [logs]],
      ['inspector', inspected],
    ];
    for (const [where, texts] of outputs) {
      expect(texts.length, where).toBeGreaterThan(0);
      for (const text of texts) expect(text, where).not.toContain(DTMF);
    }
    page.close();
  });
});
