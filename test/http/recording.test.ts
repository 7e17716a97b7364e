// Call recording through LiveKit Egress (docs/recording.md), through the real livekit-server-sdk
// against the stand-in: which calls are recorded, the start and its refusal, the stop before the
// room is deleted, egress webhooks after the call ended, duplicates and stragglers, and
// reconciliation of an egress whose end never arrived. Runs on both stores.
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { EgressStatus } from '@livekit/protocol';
import type { Env } from '../../src/config.js';
import type { ObsEnvelope } from '../../src/obs/envelope.js';
import type { Session } from '../../src/http/session.js';
import { agentParticipant, newId, sipParticipant, webhookEvents, type EgressInfoJson } from '../../dev/webhook-events.js';
import { startStatusCallbackReceiver, type StatusCallbackReceiver } from '../../dev/status-callback-receiver.js';
import { startServiceHarness, type ServiceHarness } from '../support/service-harness.js';

const TO = '+31612345678';
const CALLER = '+31687654321';
let harnesses: ServiceHarness[] = [];
let receivers: StatusCallbackReceiver[] = [];
afterEach(async () => {
  for (const h of harnesses) await h.close();
  for (const r of receivers) await r.close();
  harnesses = [];
  receivers = [];
});

async function start(env: Env = {}): Promise<ServiceHarness> {
  const h = await startServiceHarness({ env: { AGENT_JOIN_TIMEOUT_S: '0', ...env } });
  harnesses.push(h);
  return h;
}

/** Lets webhooks, the stand-in's egress changes and the service's work run out. */
async function flush(h: ServiceHarness): Promise<void> {
  for (let i = 0; i < 4; i++) {
    await h.standIn.settled();
    await h.settled();
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function session(h: ServiceHarness, id: string): Promise<Session> {
  return (await (await h.api(`/v1/calls/${id}`)).json()) as Session;
}

async function events(h: ServiceHarness, id: string): Promise<ObsEnvelope[]> {
  return ((await (await h.api(`/v1/calls/${id}/events`)).json()) as { events: ObsEnvelope[] }).events;
}

const names = (list: ObsEnvelope[]) => list.map((e) => e.event);

/** An outbound call the stand-in answers at once; the agent joins. */
async function placeConnected(h: ServiceHarness, body: Record<string, unknown> = {}): Promise<Session> {
  const response = await h.api('/v1/calls', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ to: TO, ...body }) });
  expect(response.status).toBe(201);
  const call = (await response.json()) as Session;
  await flush(h);
  h.standIn.joinParticipant(call.livekit_room, agentParticipant({ identity: `agent-${newId('', 4)}` }));
  await flush(h);
  expect((await session(h, call.id)).state).toBe('connected');
  return call;
}

/** An inbound call that rings, then is answered by its agent. */
async function inboundConnected(h: ServiceHarness): Promise<{ call: Session; identity: string }> {
  const room = `call-_${CALLER}_${newId('', 6)}`;
  const identity = `sip_${CALLER}_${newId('', 4)}`;
  h.standIn.joinParticipant(room, sipParticipant({ identity, phoneNumber: CALLER, trunkPhoneNumber: '+3197010206472', callStatus: 'ringing' }));
  await flush(h);
  h.standIn.joinParticipant(room, agentParticipant({ identity: `agent-${newId('', 4)}` }));
  await flush(h);
  const list = (await (await h.api(`/v1/calls?room=${encodeURIComponent(room)}`)).json()) as { calls: Session[] };
  const call = list.calls[0] as Session;
  expect(call.state).toBe('connected');
  return { call, identity };
}

function egressOf(h: ServiceHarness, call: Session) {
  const egress = [...h.standIn.egresses.values()].find((e) => e.roomName === call.livekit_room);
  if (!egress) throw new Error(`no egress in room ${call.livekit_room}`);
  return egress;
}

/** The stand-in's request log as "<method>" names, in arrival order. */
const requestLog = (h: ServiceHarness) => h.standIn.requests.map((r) => r.method);

describe('recording (LiveKit Egress)', () => {
  it('records an outbound call by default (RECORDING=outbound): an audio-only OGG room composite once connected', async () => {
    const h = await start({ RECORDING: 'outbound', RECORDING_AUDIO_MIXING: 'dual_channel' });
    const call = await placeConnected(h);
    const [startRequest] = h.standIn.requestsFor('StartRoomCompositeEgress');
    expect(startRequest?.body).toMatchObject({
      roomName: call.livekit_room,
      audioOnly: true,
      audioMixing: 'DUAL_CHANNEL_AGENT',
      fileOutputs: [{ fileType: 'OGG', filepath: `recordings/${call.id}.ogg` }],
    });
    const egress = egressOf(h, call);
    expect(egress.info.status).toBe(EgressStatus.EGRESS_ACTIVE);
    expect((await session(h, call.id)).recording).toMatchObject({ egress_id: egress.egressId, status: 'active', ended_at: null, location: null, error: null });
    expect(names(await events(h, call.id))).toContain('call.recording_started');
  });

  it('records by request when RECORDING is off, and not when the request says no', async () => {
    const h = await start({ RECORDING: 'off' });
    const recorded = await placeConnected(h, { record: true });
    expect((await session(h, recorded.id)).recording).toMatchObject({ status: 'active' });
    const plain = await placeConnected(h);
    expect((await session(h, plain.id)).recording).toBeNull();

    const all = await start({ RECORDING: 'all' });
    const refused = await placeConnected(all, { record: false });
    expect(all.standIn.requestsFor('StartRoomCompositeEgress')).toHaveLength(0);
    expect((await session(all, refused.id)).recording).toBeNull();
    expect(names(await events(all, refused.id)).some((e) => e.startsWith('call.recording_'))).toBe(false);
  });

  it('refuses a record field that is not a boolean, and dials nothing', async () => {
    const h = await start();
    const response = await h.api('/v1/calls', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ to: TO, record: 'yes' }) });
    expect(response.status).toBe(422);
    expect(((await response.json()) as { code: string }).code).toBe('validation_failed');
    expect(h.standIn.requestsFor('CreateSIPParticipant')).toHaveLength(0);
  });

  it('records an inbound call once its agent answers (RECORDING=inbound), from the file path template', async () => {
    const h = await start({ RECORDING: 'inbound', RECORDING_FILEPATH: 'calls/{time}/{session_id}-{room}.ogg' });
    const { call } = await inboundConnected(h);
    const filepath = (h.standIn.requestsFor('StartRoomCompositeEgress')[0]?.body.fileOutputs as { filepath: string }[])[0]?.filepath;
    expect(filepath).toMatch(new RegExp(`^calls/\\d{8}T\\d{6}Z/${call.id}-call-_\\+31687654321_\\w+\\.ogg$`));
    expect((await session(h, call.id)).recording?.status).toBe('active');
  });

  it('stops the recording before it deletes the room when the plane hangs up, and the file is complete', async () => {
    const h = await start({ RECORDING: 'all' });
    const call = await placeConnected(h);
    const egress = egressOf(h, call);
    expect((await h.api(`/v1/calls/${call.id}/hangup`, { method: 'POST' })).status).toBe(202);
    await flush(h);
    const log = requestLog(h);
    expect(log.indexOf('StopEgress')).toBeGreaterThan(-1);
    expect(log.indexOf('StopEgress')).toBeLessThan(log.indexOf('DeleteRoom'));
    expect(h.standIn.requestsFor('StopEgress')[0]?.body).toMatchObject({ egressId: egress.egressId });

    const ended = await session(h, call.id);
    expect(ended).toMatchObject({ state: 'ended', end_reason: 'api_hangup' });
    expect(ended.recording).toMatchObject({ egress_id: egress.egressId, status: 'complete', location: `recordings/${call.id}.ogg`, error: null });
    expect(ended.recording?.duration_s).toBeGreaterThan(0);
    expect(ended.recording?.size_bytes).toBeGreaterThan(0);
    const list = await events(h, call.id);
    const finished = list.find((e) => e.event === 'call.recording_ended');
    expect(finished?.data).toMatchObject({ status: 'complete', location: `recordings/${call.id}.ogg`, duration_s: ended.recording?.duration_s, size_bytes: ended.recording?.size_bytes });
    expect(list.map((e) => e.seq)).toEqual(list.map((_, i) => i + 1));
  });

  it('stops the recording before the room goes also when the plane hangs up after the agent left (agent grace)', async () => {
    const h = await start({ RECORDING: 'all', AGENT_GRACE_S: '5' });
    const call = await placeConnected(h);
    const agent = [...(h.standIn.rooms.get(call.livekit_room)?.participants.values() ?? [])].find((p) => p.kind === 'AGENT');
    h.standIn.leaveParticipant(call.livekit_room, agent?.identity ?? '', 'CLIENT_INITIATED');
    await flush(h);
    h.scheduler?.advance(5_000);
    await flush(h);
    const log = requestLog(h);
    expect(log.indexOf('StopEgress')).toBeGreaterThan(-1);
    expect(log.indexOf('StopEgress')).toBeLessThan(log.indexOf('DeleteRoom'));
    expect(await session(h, call.id)).toMatchObject({ state: 'ended', end_reason: 'agent_hangup', recording: { status: 'complete' } });
  });

  it('takes egress_ended after the call ended (the phone party hung up): state and end reason stay, the recording completes', async () => {
    const h = await start({ RECORDING: 'inbound' });
    const { call, identity } = await inboundConnected(h);
    h.standIn.leaveParticipant(call.livekit_room, identity, 'CLIENT_INITIATED');
    h.standIn.finishRoom(call.livekit_room);
    await flush(h);
    // No stop: LiveKit ends the egress with the room.
    expect(h.standIn.requestsFor('StopEgress')).toHaveLength(0);
    const list = await events(h, call.id);
    const endedAt = list.findIndex((e) => e.event === 'call.ended');
    const recordingEnded = list.findIndex((e) => e.event === 'call.recording_ended');
    expect(endedAt).toBeGreaterThan(-1);
    expect(recordingEnded).toBeGreaterThan(endedAt);
    expect(list[recordingEnded]).toMatchObject({ state: 'ended', seq: recordingEnded + 1 });
    expect(await session(h, call.id)).toMatchObject({ state: 'ended', end_reason: 'remote_hangup', recording: { status: 'complete' } });
  });

  it('keeps the call going when LiveKit refuses the start: the refusal is classified and reported', async () => {
    const h = await start({ RECORDING: 'all' });
    h.standIn.script('StartRoomCompositeEgress', { error: { code: 'invalid_argument', msg: 'request has missing or invalid field: output' } });
    const call = await placeConnected(h);
    const current = await session(h, call.id);
    expect(current.state).toBe('connected');
    expect(current.recording).toMatchObject({ egress_id: null, status: 'failed', error: { category: 'unknown', retryable: false } });
    const failed = (await events(h, call.id)).find((e) => e.event === 'call.recording_failed');
    expect(failed?.data).toMatchObject({ category: 'unknown', egress_id: null });
    expect(String(failed?.data.message)).toContain('invalid_argument');
    // It hangs up as any call does: nothing to stop.
    expect((await h.api(`/v1/calls/${call.id}/hangup`, { method: 'POST' })).status).toBe(202);
    await flush(h);
    expect(h.standIn.requestsFor('StopEgress')).toHaveLength(0);
    expect((await session(h, call.id)).state).toBe('ended');
  });

  it('tries a start refused for a reason that may pass (rate limited) again, and records', async () => {
    const h = await start({ RECORDING: 'all' });
    h.standIn.script('StartRoomCompositeEgress', { error: { code: 'resource_exhausted', msg: 'egress limit reached' } });
    const call = await placeConnected(h);
    await new Promise((resolve) => setTimeout(resolve, 1100)); // the first retry waits 0.5-1 s
    await flush(h);
    expect(h.standIn.requestsFor('StartRoomCompositeEgress')).toHaveLength(2);
    expect((await session(h, call.id)).recording?.status).toBe('active');
    expect(names(await events(h, call.id)).filter((e) => e === 'call.recording_failed')).toEqual([]);
  });

  it('reports an egress that fails mid-call, and the call goes on', async () => {
    const h = await start({ RECORDING: 'all' });
    const call = await placeConnected(h);
    h.standIn.failEgress(egressOf(h, call).egressId, 'pipeline crashed');
    await flush(h);
    const current = await session(h, call.id);
    expect(current.state).toBe('connected');
    expect(current.recording).toMatchObject({ status: 'failed', error: { category: 'media_failure' } });
    expect(current.recording?.error?.message).toContain('pipeline crashed');
    expect(names(await events(h, call.id))).toEqual(expect.arrayContaining(['call.recording_started', 'call.recording_failed']));
  });

  it('applies a duplicate egress webhook once and ignores one that arrives after a later status', async () => {
    const h = await start({ RECORDING: 'inbound' });
    const { call, identity } = await inboundConnected(h);
    const egress = egressOf(h, call);
    h.standIn.leaveParticipant(call.livekit_room, identity, 'CLIENT_INITIATED');
    h.standIn.finishRoom(call.livekit_room);
    await flush(h);
    const before = await events(h, call.id);
    const complete = egress.info.toJson() as EgressInfoJson;
    const ended = webhookEvents.egressEnded(complete);
    // The same egress_ended delivered twice (LiveKit retried), then an egress_updated ACTIVE that was late.
    expect(JSON.parse((await h.deliver(ended)).body)).toMatchObject({ status: 'ignored' });
    expect(JSON.parse((await h.deliver(ended)).body)).toMatchObject({ status: 'duplicate' });
    const stale = webhookEvents.egressUpdated({ ...complete, status: 'EGRESS_ACTIVE', endedAt: undefined });
    expect(JSON.parse((await h.deliver(stale)).body)).toMatchObject({ status: 'ignored' });
    await flush(h);
    expect(await events(h, call.id)).toEqual(before);
    expect((await session(h, call.id)).recording?.status).toBe('complete');
  });

  it('settles a recording whose egress_ended was lost by asking LiveKit (reconciliation)', async () => {
    const h = await start({ RECORDING: 'inbound' });
    const { call, identity } = await inboundConnected(h);
    const egress = egressOf(h, call);
    h.standIn.loseEgressWebhooks(egress.egressId);
    h.standIn.leaveParticipant(call.livekit_room, identity, 'CLIENT_INITIATED');
    h.standIn.finishRoom(call.livekit_room);
    await flush(h);
    expect(egress.info.status).toBe(EgressStatus.EGRESS_COMPLETE);
    expect((await session(h, call.id)).recording?.status).toBe('active');

    // Too soon after the end: LiveKit's own webhook may still come.
    expect(await h.service.reconciler.reconcile()).toMatchObject({ recordingsUpdated: 0 });
    h.clock?.set(h.clock.now() + 11_000);
    expect(await h.service.reconciler.reconcile()).toMatchObject({ recordingsUpdated: 1 });
    expect(h.standIn.requestsFor('ListEgress').at(-1)?.body).toMatchObject({ egressId: egress.egressId });
    expect(await session(h, call.id)).toMatchObject({ state: 'ended', recording: { status: 'complete', location: `recordings/${call.id}.ogg` } });
    expect(names(await events(h, call.id)).at(-1)).toBe('call.recording_ended');
    // Settled: nothing more to ask.
    expect(await h.service.reconciler.reconcile()).toMatchObject({ recordingsUpdated: 0 });
  });

  it('pushes the recording events to the customer as status callbacks', async () => {
    const secret = `whsec_${randomBytes(32).toString('base64')}`;
    const receiver = await startStatusCallbackReceiver({ secret });
    receivers.push(receiver);
    const h = await start({ RECORDING: 'all', STATUS_CALLBACK_URL: receiver.url, STATUS_CALLBACK_SECRET: secret });
    const call = await placeConnected(h);
    await h.api(`/v1/calls/${call.id}/hangup`, { method: 'POST' });
    await flush(h);
    await receiver.waitFor((received) => received.some((r) => r.payload?.type === 'call.recording_ended'), 5000);
    const ended = receiver.delivered().find((p) => p.type === 'call.recording_ended');
    expect(ended?.data.event.data).toMatchObject({ status: 'complete', location: `recordings/${call.id}.ogg` });
    expect(ended?.data.call.recording).toMatchObject({ status: 'complete' });
  });

  it('never shows the storage credentials in an answer or a log line', async () => {
    const h = await start({
      RECORDING: 'all',
      RECORDING_S3_BUCKET: 'call-recordings',
      RECORDING_S3_REGION: 'eu-west-1',
      RECORDING_S3_ACCESS_KEY: 'AKIAEXAMPLEACCESSKEY',
      RECORDING_S3_SECRET: 's3-secret-never-shown-0123456789',
    });
    const call = await placeConnected(h);
    const output = (h.standIn.requestsFor('StartRoomCompositeEgress')[0]?.body.fileOutputs as { s3?: Record<string, unknown> }[])[0];
    expect(output?.s3).toMatchObject({ bucket: 'call-recordings', region: 'eu-west-1', accessKey: 'AKIAEXAMPLEACCESSKEY', secret: 's3-secret-never-shown-0123456789' });
    await h.api(`/v1/calls/${call.id}/hangup`, { method: 'POST' });
    await flush(h);
    const answer = JSON.stringify(await session(h, call.id)) + JSON.stringify(await events(h, call.id));
    expect(answer).toContain('https://call-recordings.s3.amazonaws.com/recordings/');
    for (const text of [answer, h.logText()]) {
      expect(text).not.toContain('s3-secret-never-shown');
      expect(text).not.toContain('AKIAEXAMPLEACCESSKEY');
    }
  });
});
