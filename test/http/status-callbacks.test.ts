// Status callbacks end to end (docs/status-callbacks.md): calls driven by the LiveKit stand-in's
// signed webhooks, their events pushed to a receiver that verifies every delivery with the
// `standardwebhooks` package, as a customer's backend would. Runs on both stores.
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { afterEach, describe, expect, it } from 'vitest';
import type { Env } from '../../src/config.js';
import type { ObsEnvelope } from '../../src/obs/envelope.js';
import type { Session } from '../../src/http/session.js';
import { startServiceHarness, type ServiceHarness } from '../support/service-harness.js';
import { agentParticipant, newId, sipParticipant } from '../../dev/webhook-events.js';
import { playInboundCall as inboundCall } from '../support/inbound-call.js';
import { startStatusCallbackReceiver, type ReceivedCallback, type StatusCallbackReceiver } from '../../dev/status-callback-receiver.js';

const CALLER = '+31612345678';
const TRUNK_NUMBER = '+3197010206472';
const secret = (): string => `whsec_${randomBytes(32).toString('base64')}`;
const SECRET = secret();

interface DeliveryView {
  event_id: string;
  event: string;
  seq: number;
  url: string;
  status: string;
  attempts: number;
  last_status_code: number | null;
  last_error: string | null;
  next_attempt_at: string | null;
  delivered_at: string | null;
}

let h: ServiceHarness | undefined;
let receiver: StatusCallbackReceiver | undefined;
afterEach(async () => {
  await h?.close();
  await receiver?.close();
  h = undefined;
  receiver = undefined;
});

async function start(env: Env = {}, receiverOptions: Parameters<typeof startStatusCallbackReceiver>[0] = { secret: SECRET }) {
  receiver = await startStatusCallbackReceiver(receiverOptions);
  h = await startServiceHarness({
    env: { STATUS_CALLBACK_URL: receiver.url, STATUS_CALLBACK_SECRET: SECRET, STATUS_CALLBACK_RETRY_SCHEDULE_S: '0,0,0', ...env },
  });
  return { h, receiver };
}

async function flush(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    await h?.standIn.webhooks?.idle();
    await h?.settled();
  }
}

async function eventsOf(id: string): Promise<ObsEnvelope[]> {
  return ((await (await h!.api(`/v1/calls/${id}/events`)).json()) as { events: ObsEnvelope[] }).events;
}

async function deliveriesOf(id: string): Promise<DeliveryView[]> {
  const response = await h!.api(`/v1/calls/${id}/deliveries`);
  expect(response.status).toBe(200);
  return ((await response.json()) as { deliveries: DeliveryView[] }).deliveries;
}

async function settledDeliveries(id: string, count: number): Promise<DeliveryView[]> {
  for (let i = 0; i < 500; i++) {
    const deliveries = await deliveriesOf(id);
    if (deliveries.length >= count && deliveries.every((d) => d.status !== 'pending')) return deliveries;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`deliveries of ${id} did not settle: ${JSON.stringify(await deliveriesOf(id))}`);
}

const arrivalsOf = (id: string): ReceivedCallback[] => receiver!.received.filter((r) => r.payload?.data.event.session_id === id);

describe('status callbacks', () => {
  it("pushes every event of a call, signed as Standard Webhooks, in seq order, with the event and the call as the API shows it", async () => {
    await start();
    const id = await inboundCall(h!);
    const events = await eventsOf(id);
    expect(events.length).toBeGreaterThanOrEqual(4);
    await receiver!.waitFor(() => receiver!.delivered().filter((p) => p.data.event.session_id === id).length === events.length);

    const arrivals = arrivalsOf(id);
    expect(arrivals.every((a) => a.verifyError === undefined)).toBe(true);
    expect(arrivals.map((a) => a.payload?.data.event.seq)).toEqual(events.map((e) => e.seq));
    for (const [index, arrival] of arrivals.entries()) {
      const event = events[index] as ObsEnvelope;
      expect(arrival.headers['content-type']).toBe('application/json');
      expect(arrival.headers['user-agent']).toMatch(/^control-plane/);
      expect(arrival.id).toBe(event.event_id);
      expect(Number(arrival.headers['webhook-timestamp'])).toBe(Math.floor(h!.clock!.now() / 1000));
      expect(arrival.payload).toMatchObject({ type: event.event, timestamp: event.ts, data: { event } });
      expect(arrival.payload?.data.call).toMatchObject({ id, state: event.state });
    }
    // The last event's call is the session as the API returns it now.
    const session = (await (await h!.api(`/v1/calls/${id}`)).json()) as Session;
    expect(arrivals.at(-1)?.payload?.data.call).toEqual(session);

    const deliveries = await settledDeliveries(id, events.length);
    expect(deliveries.map((d) => [d.seq, d.event, d.status, d.attempts, d.last_status_code])).toEqual(
      events.map((e) => [e.seq, e.event, 'delivered', 1, 200]),
    );
    expect(deliveries.every((d) => d.url === receiver!.url && d.delivered_at !== null && d.next_attempt_at === null)).toBe(true);

    const metrics = await (await h!.api('/metrics')).text();
    expect(metrics).toContain(`control_plane_status_callbacks_total{outcome="delivered"} ${events.length}`);
    expect(metrics).toContain('control_plane_status_callbacks_pending 0');
    expect(metrics).toMatch(/control_plane_status_callback_duration_seconds_count \d+/);
  });

  it('signs with every secret of a rotation, so a receiver holding either verifies; a tampered body fails', async () => {
    const next = secret();
    await start({ STATUS_CALLBACK_SECRET: `${SECRET},${next}` });
    const id = await inboundCall(h!);
    await receiver!.waitFor(() => arrivalsOf(id).length >= 1);
    const first = arrivalsOf(id)[0] as ReceivedCallback;
    const headers = {
      'webhook-id': String(first.headers['webhook-id']),
      'webhook-timestamp': String(first.headers['webhook-timestamp']),
      'webhook-signature': String(first.headers['webhook-signature']),
    };
    expect(headers['webhook-signature'].split(' ')).toHaveLength(2);
    expect(headers['webhook-signature'].split(' ').every((s) => s.startsWith('v1,'))).toBe(true);
    expect(new Webhook(SECRET).verify(first.body, headers)).toEqual(JSON.parse(first.body));
    expect(new Webhook(next).verify(first.body, headers)).toEqual(JSON.parse(first.body));
    expect(() => new Webhook(secret()).verify(first.body, headers)).toThrow();
    const tampered = first.body.replace('"seq":1', '"seq":2');
    expect(tampered).not.toBe(first.body);
    expect(() => new Webhook(SECRET).verify(tampered, headers)).toThrow();
  });

  it("holds a call's later events back while one is retried, then delivers them all, each attempt with the same webhook-id", async () => {
    await start();
    let failures = 0;
    receiver!.respond((delivery) => {
      if (delivery.payload?.data.event.seq === 3 && failures < 2) {
        failures++;
        return { status: 503 };
      }
      return { status: 204 };
    });
    const id = await inboundCall(h!);
    const events = await eventsOf(id);
    const deliveries = await settledDeliveries(id, events.length);

    const arrivals = arrivalsOf(id);
    expect(arrivals.map((a) => a.payload?.data.event.seq)).toEqual([1, 2, 3, 3, 3, ...events.slice(3).map((e) => e.seq)]);
    expect(new Set(arrivals.filter((a) => a.payload?.data.event.seq === 3).map((a) => a.id))).toEqual(new Set([events[2]?.event_id]));
    expect(deliveries.every((d) => d.status === 'delivered')).toBe(true);
    expect(deliveries[2]).toMatchObject({ attempts: 3, last_status_code: 204, last_error: null });
    const metrics = await (await h!.api('/metrics')).text();
    expect(metrics).toContain('control_plane_status_callbacks_total{outcome="retried"} 2');
  });

  it("cancels a call's later deliveries to an endpoint that answers 410 Gone, and only that call's", async () => {
    await start();
    let goneFor: string | null = null;
    receiver!.respond((delivery) => {
      const event = delivery.payload?.data.event;
      if (event?.seq === 2 && goneFor === null) goneFor = event.session_id;
      return { status: event?.session_id === goneFor ? 410 : 200 };
    });
    const gone = await inboundCall(h!);
    const other = await inboundCall(h!);
    const goneEvents = await eventsOf(gone);
    const deliveries = await settledDeliveries(gone, goneEvents.length);
    expect(deliveries.map((d) => d.status)).toEqual(['delivered', 'canceled', ...goneEvents.slice(2).map(() => 'canceled')]);
    expect(deliveries[1]).toMatchObject({ last_status_code: 410, attempts: 1 });
    expect(deliveries.slice(2).every((d) => d.attempts === 0)).toBe(true);
    expect(arrivalsOf(gone).map((a) => a.payload?.data.event.seq)).toEqual([1, 2]);
    const otherDeliveries = await settledDeliveries(other, (await eventsOf(other)).length);
    expect(otherDeliveries.every((d) => d.status === 'delivered')).toBe(true);
  });

  it('retries a receiver that never answers (timeout) and one that drops the connection', async () => {
    await start({ STATUS_CALLBACK_TIMEOUT_S: '0.3' });
    receiver!.respond((delivery, index) => {
      if (index === 0) return { hang: true };
      if (index === 1) return { drop: true };
      return { status: 200 };
    });
    const id = await inboundCall(h!);
    const deliveries = await settledDeliveries(id, (await eventsOf(id)).length);
    expect(deliveries.every((d) => d.status === 'delivered')).toBe(true);
    expect(deliveries[0]).toMatchObject({ attempts: 3, last_status_code: 200 });
    const retries = h!.logLines.filter((line) => line.msg === 'status callback not delivered; retrying');
    expect(retries.map((line) => line.error)).toEqual(['no answer within 0.3 s', expect.stringMatching(/socket|closed|ECONNRESET|other side/i)]);
  });

  it('gives a delivery up as failed after its last retry and goes on with the next event (connection refused)', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    await start({ STATUS_CALLBACK_URL: `http://127.0.0.1:${port}/hook`, STATUS_CALLBACK_RETRY_SCHEDULE_S: '0' });
    const id = await inboundCall(h!);
    const events = await eventsOf(id);
    const deliveries = await settledDeliveries(id, events.length);
    expect(deliveries.map((d) => d.status)).toEqual(events.map(() => 'failed'));
    expect(deliveries.every((d) => d.attempts === 2 && d.last_status_code === null && /ECONNREFUSED/.test(d.last_error ?? ''))).toBe(true);
    const metrics = await (await h!.api('/metrics')).text();
    expect(metrics).toContain(`control_plane_status_callbacks_total{outcome="failed"} ${events.length}`);
  });

  it('waits as long as Retry-After asks when that is longer than the schedule', async () => {
    await start({ STATUS_CALLBACK_RETRY_SCHEDULE_S: '1,1' });
    receiver!.respond((_delivery, index) => (index === 0 ? { status: 429, headers: { 'Retry-After': '120' } } : { status: 200 }));
    const id = await inboundCall(h!);
    await receiver!.waitFor((r) => r.length >= 1);
    let first: DeliveryView | undefined;
    for (let i = 0; i < 100 && !first?.next_attempt_at; i++) {
      first = (await deliveriesOf(id))[0];
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(first).toMatchObject({ status: 'pending', attempts: 1, last_status_code: 429 });
    const wait = Date.parse(first?.next_attempt_at ?? '') - h!.clock!.now();
    expect(wait).toBeGreaterThan(119_000);
    expect(wait).toBeLessThanOrEqual(120_000);
    // Nothing is sent before then, whatever the schedule says.
    h!.clock!.set(h!.clock!.now() + 60_000);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(receiver!.received).toHaveLength(1);
    h!.clock!.set(h!.clock!.now() + 61_000);
    const deliveries = await settledDeliveries(id, (await eventsOf(id)).length);
    expect(deliveries.every((d) => d.status === 'delivered')).toBe(true);
  });

  it('redelivers an event on request with the same webhook-id; unknown ids are 404', async () => {
    await start();
    const id = await inboundCall(h!);
    const events = await eventsOf(id);
    await settledDeliveries(id, events.length);
    const target = events[1] as ObsEnvelope;
    const before = receiver!.received.length;

    const response = await h!.api(`/v1/calls/${id}/deliveries/${target.event_id}/redeliver`, { method: 'POST' });
    expect(response.status).toBe(202);
    expect(await response.json()).toMatchObject({ event_id: target.event_id, status: 'pending', attempts: 0 });
    await receiver!.waitFor((r) => r.length === before + 1);
    const again = receiver!.received.at(-1) as ReceivedCallback;
    expect(again.id).toBe(target.event_id);
    expect(again.payload?.data.event).toEqual(target);
    const deliveries = await settledDeliveries(id, events.length);
    expect(deliveries[1]).toMatchObject({ status: 'delivered', attempts: 1 });

    const unknownEvent = await h!.api(`/v1/calls/${id}/deliveries/no-such-event/redeliver`, { method: 'POST' });
    expect(unknownEvent.status).toBe(404);
    expect(await unknownEvent.json()).toMatchObject({ code: 'delivery_not_found' });
    const unknownCall = await h!.api('/v1/calls/no-such-call/deliveries/x/redeliver', { method: 'POST' });
    expect(unknownCall.status).toBe(404);
    expect(await unknownCall.json()).toMatchObject({ code: 'call_not_found' });
    expect((await h!.api('/v1/calls/no-such-call/deliveries')).status).toBe(404);
    expect(receiver!.received.length).toBe(before + 1);
  });

  it('never logs a secret, credentials or a query string; credentials in the URL are sent as Basic authentication', async () => {
    receiver = await startStatusCallbackReceiver({ secret: SECRET });
    const url = new URL(receiver.url);
    url.username = 'customer';
    url.password = 'pa55word-in-url';
    url.search = '?token=query-secret-123';
    h = await startServiceHarness({ env: { STATUS_CALLBACK_URL: url.toString(), STATUS_CALLBACK_SECRET: SECRET, STATUS_CALLBACK_RETRY_SCHEDULE_S: '0' } });
    receiver.respond((_delivery, index) => ({ status: index === 0 ? 500 : 200 }));
    const id = await inboundCall(h);
    await settledDeliveries(id, (await eventsOf(id)).length);
    expect(receiver.received[0]?.headers.authorization).toBe(`Basic ${Buffer.from('customer:pa55word-in-url').toString('base64')}`);
    expect(h.logLines.some((line) => line.msg === 'status callback not delivered; retrying')).toBe(true);
    const logs = h.logText();
    for (const leaked of [SECRET, SECRET.slice(6), 'pa55word-in-url', 'query-secret-123', CALLER]) expect(logs).not.toContain(leaked);
    const deliveries = await deliveriesOf(id);
    expect(deliveries[0]?.url).toBe(`${url.origin}${url.pathname}`);
  });
});

describe('a slow customer server', () => {
  it('never holds calls back: 200 calls run to their end while callbacks crawl, then every event arrives once, in order', async () => {
    await start({ STATUS_CALLBACK_CONCURRENCY: '16' });
    let inFlight = 0;
    let maxInFlight = 0;
    // The server takes no answer out until the calls are over, then answers each after 100 ms.
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    receiver!.respond(async () => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await gate;
      await new Promise((resolve) => setTimeout(resolve, 100));
      inFlight--;
      return { status: 200 };
    });
    const harness = h!;
    const calls = Array.from({ length: 200 }, (_, i) => ({ room: `call-_${CALLER}_${newId('', 6)}`, identity: `sip_${CALLER}_${i}` }));
    for (const call of calls) {
      harness.standIn.joinParticipant(call.room, sipParticipant({ identity: call.identity, phoneNumber: CALLER, trunkPhoneNumber: TRUNK_NUMBER, callStatus: 'ringing' }));
    }
    await flush();
    for (const call of calls) harness.standIn.joinParticipant(call.room, agentParticipant({ identity: `agent-${call.identity}` }));
    await flush();
    for (const call of calls) {
      harness.standIn.leaveParticipant(call.room, call.identity, 'CLIENT_INITIATED');
      harness.standIn.finishRoom(call.room);
    }
    await flush();

    const listed = ((await (await harness.api('/v1/calls?limit=200&state=ended')).json()) as { calls: Session[] }).calls;
    expect(listed).toHaveLength(200);
    // Every call ended while not one callback had been answered, and the webhooks were all taken.
    expect(receiver!.received.filter((r) => r.answered !== null)).toHaveLength(0);
    expect(inFlight).toBe(16);
    const total = (await Promise.all(listed.map((call) => eventsOf(call.id)))).reduce((sum, events) => sum + events.length, 0);
    const metrics = await (await harness.api('/metrics')).text();
    expect(metrics).toMatch(/control_plane_webhooks_total\{outcome="applied"\} [1-9]/);
    expect(metrics).not.toMatch(/control_plane_webhooks_total\{outcome="(unauthorized|malformed|not_applied)"\} [1-9]/);
    expect(metrics).toContain(`control_plane_status_callbacks_pending ${total}`);

    open();
    await receiver!.waitFor((r) => r.filter((x) => x.answered === 200).length >= total, 60_000);
    expect(maxInFlight).toBeLessThanOrEqual(16);
    const bySession = new Map<string, number[]>();
    for (const arrival of receiver!.received) {
      const event = arrival.payload?.data.event;
      if (!event) continue;
      bySession.set(event.session_id, [...(bySession.get(event.session_id) ?? []), event.seq]);
    }
    expect(bySession.size).toBe(200);
    for (const seqs of bySession.values()) expect(seqs).toEqual(seqs.map((_, i) => i + 1));
  }, 120_000);
});

describe('per-call status callbacks (POST /v1/calls)', () => {
  async function place(body: Record<string, unknown>): Promise<Response> {
    return h!.api('/v1/calls', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ to: CALLER, ...body }) });
  }

  it("sends a call's callbacks to its own URL, with its own event filter", async () => {
    const own = await startStatusCallbackReceiver({ secret: SECRET });
    try {
      await start({ STATUS_CALLBACK_ALLOWED_HOSTS: 'example.com,127.0.0.1' });
      const response = await place({ status_callback_url: own.url, status_callback_events: ['call.created', 'call.dialing'] });
      expect(response.status).toBe(201);
      const call = (await response.json()) as Session;
      await flush();
      await own.waitFor((r) => r.length >= 2);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(own.received.map((r) => r.payload?.type)).toEqual(['call.created', 'call.dialing']);
      expect(own.received.every((r) => r.payload?.data.call.id === call.id)).toBe(true);
      expect(receiver!.received.filter((r) => r.payload?.data.event.session_id === call.id)).toHaveLength(0);
    } finally {
      await own.close();
    }
  });

  it.each([
    ['a host outside the allow-list', { status_callback_url: 'https://evil.example.net/hook' }, 'status_callback_not_allowed'],
    ['a subdomain the wildcard does not cover', { status_callback_url: 'https://example.com.evil.net/hook' }, 'status_callback_not_allowed'],
    ['a scheme other than http/https', { status_callback_url: 'ftp://hooks.example.com/hook' }, 'status_callback_not_allowed'],
    ['not a URL', { status_callback_url: 'hooks.example.com/hook' }, 'status_callback_not_allowed'],
    ['an unknown event name', { status_callback_events: ['call.created', 'call.exploded'] }, 'validation_failed'],
    ['events that are not a list', { status_callback_events: 'call.created' }, 'validation_failed'],
  ])('refuses %s with 422 and dials nothing', async (_what, body, code) => {
    await start({ STATUS_CALLBACK_ALLOWED_HOSTS: '*.example.com' });
    const response = await place(body);
    expect(response.status).toBe(422);
    expect(await response.json()).toMatchObject({ code });
    await flush();
    expect(((await (await h!.api('/v1/calls')).json()) as { calls: Session[] }).calls).toHaveLength(0);
    expect(h!.standIn.requestsFor('CreateSIPParticipant')).toHaveLength(0);
  });

  it('refuses every per-call URL while STATUS_CALLBACK_ALLOWED_HOSTS is empty', async () => {
    await start();
    const response = await place({ status_callback_url: receiver!.url });
    expect(response.status).toBe(422);
    expect(await response.json()).toMatchObject({ code: 'status_callback_not_allowed', detail: expect.stringContaining('STATUS_CALLBACK_ALLOWED_HOSTS') });
  });

  it('accepts an allowed wildcard host', async () => {
    await start({ STATUS_CALLBACK_ALLOWED_HOSTS: '*.example.com' });
    const response = await place({ status_callback_url: 'https://hooks.eu.example.com/calls?tenant=7' });
    expect(response.status).toBe(201);
  });
});
