// POST /webhook: every bad input of docs/api.md gets a clear 4xx and changes nothing; events are
// applied once, in order, and never reopen a final call.
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryCallStore } from '../../src/store/memory/call.store.js';
import { type CallRecord } from '../../src/store/call-store.port.js';
import { StoreUnavailableError } from '../../src/store/errors.js';
import type { ObsEnvelope } from '../../src/obs/envelope.js';
import { startServiceHarness, type ServiceHarness } from '../support/service-harness.js';
import { signWebhook, webhookHeaders } from '../../dev/webhook-sender.js';
import {
  agentParticipant,
  roomJson,
  sipParticipant,
  standardParticipant,
  webhookEvents,
  type WebhookEventJson,
} from '../../dev/webhook-events.js';

let h: ServiceHarness;
afterEach(async () => {
  await h?.close();
});

const room = roomJson('call-_+31612345678_q1w2e3');
const caller = sipParticipant({ phoneNumber: '+31612345678', trunkPhoneNumber: '+3197010206472', callStatus: 'ringing' });
const body = (event: WebhookEventJson) => JSON.stringify(event);

async function callCount(): Promise<number> {
  const response = await h.api('/v1/calls');
  return ((await response.json()) as { calls: unknown[] }).calls.length;
}

async function events(): Promise<ObsEnvelope[]> {
  const list = (await (await h.api('/v1/calls')).json()) as { calls: { id: string }[] };
  const id = list.calls[0]?.id;
  if (!id) return [];
  return ((await (await h.api(`/v1/calls/${id}/events`)).json()) as { events: ObsEnvelope[] }).events;
}

function problem(text: string): { status: number; code: string; type: string } {
  return JSON.parse(text) as { status: number; code: string; type: string };
}

describe('POST /webhook', () => {
  it('answers 401 problem+json when the Authorization header is missing, and creates no call', async () => {
    h = await startServiceHarness();
    const result = await h.postRaw(body(webhookEvents.participantJoined(room, caller)), {
      'Content-Type': 'application/webhook+json',
    });
    expect(result.status).toBe(401);
    expect(result.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(problem(result.body)).toMatchObject({ status: 401, code: 'webhook_unauthorized' });
    expect(await callCount()).toBe(0);
  });

  it('answers 401 when the webhook is signed with another secret', async () => {
    h = await startServiceHarness();
    const result = await h.postSigned(body(webhookEvents.participantJoined(room, caller)), { secret: 'not-the-livekit-api-secret-at-all' });
    expect(result.status).toBe(401);
    expect(problem(result.body).code).toBe('webhook_unauthorized');
    expect(await callCount()).toBe(0);
  });

  it('answers 401 when the body was changed after signing', async () => {
    h = await startServiceHarness();
    const signed = body(webhookEvents.participantJoined(room, caller));
    const authorization = await signWebhook(signed, { apiKey: h.standIn.apiKey, apiSecret: h.standIn.apiSecret });
    const tampered = signed.replace('+31612345678', '+31600000000');
    const result = await h.postRaw(tampered, webhookHeaders(authorization));
    expect(result.status).toBe(401);
    expect(problem(result.body).code).toBe('webhook_body_mismatch');
    expect(await callCount()).toBe(0);
  });

  it('answers 401 when the token has expired', async () => {
    h = await startServiceHarness();
    const text = body(webhookEvents.participantJoined(room, caller));
    const authorization = await signWebhook(text, {
      apiKey: h.standIn.apiKey,
      apiSecret: h.standIn.apiSecret,
      nowS: Math.floor(Date.now() / 1000) - 3600,
    });
    const result = await h.postRaw(text, webhookHeaders(authorization));
    expect(result.status).toBe(401);
    expect(await callCount()).toBe(0);
  });

  it('answers 401 when the token was issued for another API key', async () => {
    h = await startServiceHarness();
    const text = body(webhookEvents.participantJoined(room, caller));
    const authorization = await signWebhook(text, { apiKey: 'another-key', apiSecret: h.standIn.apiSecret });
    expect((await h.postRaw(text, webhookHeaders(authorization))).status).toBe(401);
  });

  it('answers 400 when a correctly signed body is not JSON', async () => {
    h = await startServiceHarness();
    const result = await h.postSigned('{"event": "participant_joined", ');
    expect(result.status).toBe(400);
    expect(problem(result.body).code).toBe('webhook_malformed');
  });

  it('answers 400 when a correctly signed body is JSON but not a webhook event', async () => {
    h = await startServiceHarness();
    expect((await h.postSigned('[1, 2, 3]')).status).toBe(400);
    expect((await h.postSigned('{"event": 42}')).status).toBe(400);
    expect((await h.postSigned('{}')).status).toBe(400);
  });

  it('answers 413 for a body over 1 MiB, signed or not', async () => {
    h = await startServiceHarness();
    const event = webhookEvents.participantJoined(room, { ...caller, metadata: 'x'.repeat(1024 * 1024) });
    const result = await h.postSigned(body(event));
    expect(result.status).toBe(413);
    expect(problem(result.body).code).toBe('payload_too_large');
    expect(await callCount()).toBe(0);
  });

  it('accepts application/json as well as application/webhook+json', async () => {
    h = await startServiceHarness();
    const result = await h.postSigned(body(webhookEvents.participantJoined(room, caller)), { contentType: 'application/json' });
    expect(result.status).toBe(200);
    expect(await callCount()).toBe(1);
  });

  it('answers 415 for other content types', async () => {
    h = await startServiceHarness();
    const result = await h.postSigned(body(webhookEvents.participantJoined(room, caller)), { contentType: 'text/plain' });
    expect(result.status).toBe(415);
    expect(problem(result.body).code).toBe('unsupported_media_type');
    expect(await callCount()).toBe(0);
  });

  it('applies a duplicate event id once and answers 200 to the retry', async () => {
    h = await startServiceHarness();
    const text = body(webhookEvents.participantJoined(room, caller));
    const first = await h.postSigned(text);
    const again = await h.postSigned(text);
    expect(first.status).toBe(200);
    expect(JSON.parse(first.body)).toMatchObject({ status: 'applied' });
    expect(again.status).toBe(200);
    expect(JSON.parse(again.body)).toMatchObject({ status: 'duplicate' });
    expect(await callCount()).toBe(1);

    const agentJoined = body(webhookEvents.participantJoined(room, agentParticipant({ identity: 'agent-1' })));
    await h.postSigned(agentJoined);
    await h.postSigned(agentJoined);
    expect((await events()).map((e) => e.event)).toEqual(['call.created', 'call.ringing', 'call.agent_joined', 'call.started']);
  });

  it('applies a webhook once per call even when the global de-duplication forgot it (a bounded set evicted it, or its key expired)', async () => {
    h = await startServiceHarness();
    const joined = body(webhookEvents.participantJoined(room, caller));
    const agentJoined = body(webhookEvents.participantJoined(room, agentParticipant({ identity: 'agent-1' })));
    await h.postSigned(joined);
    await h.postSigned(agentJoined);
    // Forget every webhook id.
    const store = h.service.store;
    const lookup = store.lookupWebhook.bind(store);
    store.lookupWebhook = (_eventId, webhookRoom) => lookup(null, webhookRoom);
    const retriedJoin = await h.postSigned(joined);
    const retriedAgent = await h.postSigned(agentJoined);
    store.lookupWebhook = lookup;
    expect(retriedJoin.status).toBe(200);
    expect(JSON.parse(retriedJoin.body)).toMatchObject({ status: 'ignored' });
    expect(JSON.parse(retriedAgent.body)).toMatchObject({ status: 'ignored' });
    expect(await callCount()).toBe(1);
    expect((await events()).map((e) => e.event)).toEqual(['call.created', 'call.ringing', 'call.agent_joined', 'call.started']);
  });

  it('acknowledges events after the call ended without changing its final state or seq', async () => {
    h = await startServiceHarness();
    await h.postSigned(body(webhookEvents.participantJoined(room, caller)));
    await h.postSigned(body(webhookEvents.participantJoined(room, agentParticipant())));
    await h.postSigned(body(webhookEvents.participantLeft(room, caller, 'CLIENT_INITIATED')));
    const before = await events();
    expect(before.at(-1)).toMatchObject({ event: 'call.ended', state: 'ended' });

    for (const late of [
      webhookEvents.participantLeft(room, caller, 'MEDIA_FAILURE'),
      webhookEvents.participantJoined(room, agentParticipant({ identity: 'agent-late' })),
      webhookEvents.roomFinished(room),
    ]) {
      const result = await h.postSigned(body(late));
      expect(result.status).toBe(200);
      expect(JSON.parse(result.body)).toMatchObject({ status: 'ignored' });
    }
    expect(await events()).toEqual(before);
    const call = (await (await h.api('/v1/calls')).json()) as { calls: { state: string; end_reason: string }[] };
    expect(call.calls[0]).toMatchObject({ state: 'ended', end_reason: 'remote_hangup' });
  });

  it('acknowledges and ignores events about rooms it does not track and ordinary participants', async () => {
    h = await startServiceHarness();
    const other = roomJson('team-standup');
    for (const event of [
      webhookEvents.roomStarted(other),
      webhookEvents.participantJoined(other, standardParticipant({ identity: 'alice' })),
      webhookEvents.participantJoined(other, agentParticipant()),
      webhookEvents.trackPublished(other, standardParticipant({ identity: 'alice' })),
      webhookEvents.roomFinished(other),
      { event: 'egress_started', id: 'EV_egress000001', createdAt: '1771351907', egressInfo: { egressId: 'EG_1' } },
    ]) {
      const result = await h.postSigned(body(event));
      expect(result.status, event.event).toBe(200);
      expect(JSON.parse(result.body)).toMatchObject({ status: 'ignored' });
    }
    expect(await callCount()).toBe(0);
  });

  it('does not treat the caller\'s track_published as an answer', async () => {
    h = await startServiceHarness();
    await h.postSigned(body(webhookEvents.participantJoined(room, caller)));
    await h.postSigned(body(webhookEvents.trackPublished(room, caller)));
    const list = (await (await h.api('/v1/calls')).json()) as { calls: { state: string }[] };
    expect(list.calls[0]?.state).toBe('ringing');
  });

  it('keys rooms by sid: a reused room name starts a new call', async () => {
    h = await startServiceHarness();
    await h.postSigned(body(webhookEvents.participantJoined(room, caller)));
    await h.postSigned(body(webhookEvents.participantLeft(room, caller, 'CLIENT_INITIATED')));
    const reused = roomJson(room.name);
    await h.postSigned(body(webhookEvents.participantJoined(reused, caller)));
    const list = (await (await h.api('/v1/calls')).json()) as { calls: { state: string }[] };
    expect(list.calls.map((c) => c.state)).toEqual(['ringing', 'ended']);
  });

  it('answers 503 when the event cannot be stored, changes nothing, and applies LiveKit\'s retry once', async () => {
    const store = new MemoryCallStore({ retentionMs: 60_000, maxFinalCalls: 100, webhookDedupSize: 100, maxEventsPerCall: 100 });
    let failing = false;
    const commit = store.commit.bind(store);
    store.commit = async (record: CallRecord, evts: readonly ObsEnvelope[]) => {
      if (failing) throw new StoreUnavailableError('store offline');
      return commit(record, evts);
    };
    h = await startServiceHarness({ store });
    await h.postSigned(body(webhookEvents.participantJoined(room, caller)));
    failing = true;
    const agentJoined = body(webhookEvents.participantJoined(room, agentParticipant()));
    const refused = await h.postSigned(agentJoined);
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(problem(refused.body).code).toBe('webhook_not_applied');
    const list = (await (await h.api('/v1/calls')).json()) as { calls: { state: string }[] };
    expect(list.calls[0]?.state).toBe('ringing');

    failing = false;
    const retried = await h.postSigned(agentJoined);
    expect(retried.status).toBe(200);
    expect((await events()).map((e) => [e.seq, e.event])).toEqual([
      [1, 'call.created'],
      [2, 'call.ringing'],
      [3, 'call.agent_joined'],
      [4, 'call.started'],
    ]);
  });
});

describe('GET /healthz and /readyz', () => {
  it('answer 200 without a key', async () => {
    h = await startServiceHarness();
    expect((await h.api('/healthz', { key: null })).status).toBe(200);
    expect((await h.api('/readyz', { key: null })).status).toBe(200);
  });

  it('readyz answers 503 when the store is down', async () => {
    const store = new MemoryCallStore({ retentionMs: 60_000, maxFinalCalls: 100, webhookDedupSize: 100, maxEventsPerCall: 100 });
    store.ping = async () => {
      throw new StoreUnavailableError('down');
    };
    h = await startServiceHarness({ store });
    const response = await h.api('/readyz', { key: null });
    expect(response.status).toBe(503);
    expect(((await response.json()) as { code: string }).code).toBe('store_unavailable');
  });
});
