// The stand-in's Egress service (room-composite recordings to a file), driven through the real
// livekit-server-sdk EgressClient, its webhooks verified by WebhookReceiver.
import { describe, expect, it } from 'vitest';
import {
  AudioMixing,
  EgressInfo,
  EgressSourceType,
  EgressStatus,
  EncodedFileOutput,
  EncodedFileType,
  RoomCompositeEgressRequest,
  S3Upload,
} from '@livekit/protocol';
import { AccessToken, EgressClient, RoomServiceClient, ServerError, type WebhookEvent } from 'livekit-server-sdk';
import { DEFAULT_API_KEY, DEFAULT_API_SECRET, startLiveKitStandIn, type LiveKitStandIn, type StandInOptions } from '../../dev/livekit-standin.js';
import { startStandIn, useCleanups } from '../support/cleanups.js';
import { caught, sleep } from '../support/promises.js';
import { startWebhookReceiver, type Respond } from '../support/webhook-receiver.js';

// ---------------------------------------------------------------------------------------------
// fixtures

const cleanups = useCleanups();
const standIn = (options?: StandInOptions): Promise<LiveKitStandIn> => startStandIn(cleanups, options);

const egressClient = (s: LiveKitStandIn) => new EgressClient(s.url, s.apiKey, s.apiSecret);

const startReceiver = (s: { apiKey: string; apiSecret: string }, respond?: Respond) =>
  startWebhookReceiver(cleanups, s.apiKey, s.apiSecret, respond);

// The stand-in's defaults, so a receiver can start before it.
const KEYS = { apiKey: DEFAULT_API_KEY, apiSecret: DEFAULT_API_SECRET };

/** An OGG recording, the way a call recorder asks for one. */
function oggFile(filepath: string, s3?: Partial<S3Upload>): EncodedFileOutput {
  return new EncodedFileOutput({
    fileType: EncodedFileType.OGG,
    filepath,
    ...(s3 ? { output: { case: 's3' as const, value: new S3Upload(s3) } } : {}),
  });
}

const audioOnly = { audioOnly: true, audioMixing: AudioMixing.DUAL_CHANNEL_AGENT };

const S3 = { accessKey: 'AKIA-test', secret: 'shh-secret', region: 'eu-west-1', bucket: 'call-recordings' };

type Received = Awaited<ReturnType<typeof startReceiver>>['received'];

function egressEvents(received: Received): WebhookEvent[] {
  return received.map((r) => r.event).filter((e): e is WebhookEvent => e?.egressInfo !== undefined);
}

const statusOf = (e: WebhookEvent) => [e.event, e.egressInfo ? EgressStatus[e.egressInfo.status] : undefined];

// ---------------------------------------------------------------------------------------------
// StartRoomCompositeEgress

describe('the stand-in Egress service: starting a recording', () => {
  it('answers EGRESS_STARTING with the request echoed, sends egress_started, then turns ACTIVE with egress_updated', async () => {
    const receiver = await startReceiver(KEYS);
    const s = await standIn({ webhookUrl: receiver.url, egressStartDelayMs: 30 });
    const room = s.createRoom('call-1');

    const before = BigInt(Date.now()) * 1_000_000n;
    const info = await egressClient(s).startRoomCompositeEgress('call-1', { file: oggFile('recordings/{room_name}') }, audioOnly);

    expect(info.egressId).toMatch(/^EG_[A-Za-z0-9]{12}$/);
    expect([info.roomId, info.roomName]).toEqual([room.sid, 'call-1']);
    expect(info.status).toBe(EgressStatus.EGRESS_STARTING);
    // the egress service stamps started_at when it accepts the request, in nanoseconds
    expect(info.startedAt).toBeGreaterThanOrEqual(before);
    expect(info.updatedAt).toBe(info.startedAt);
    expect(info.endedAt).toBe(0n);
    expect(info.sourceType).toBe(EgressSourceType.SDK);
    expect(info.request.case).toBe('roomComposite');
    const echoed = info.request.value as RoomCompositeEgressRequest;
    expect([echoed.roomName, echoed.audioOnly, echoed.audioMixing]).toEqual(['call-1', true, AudioMixing.DUAL_CHANNEL_AGENT]);
    // the file's name is decided up front: placeholders replaced, the extension of the file type added
    expect(info.fileResults.map((f) => [f.filename, f.location, f.size, f.startedAt])).toEqual([['recordings/call-1.ogg', '', 0n, 0n]]);
    expect(info.result).toEqual({ case: 'file', value: info.fileResults[0] });

    await s.settled();
    const egress = s.egresses.get(info.egressId);
    expect(egress?.info.status).toBe(EgressStatus.EGRESS_ACTIVE);
    expect(egress?.info.startedAt).toBe(info.startedAt);
    expect(egress?.info.fileResults[0]?.startedAt).toBeGreaterThan(info.startedAt);
    expect(receiver.received.map((r) => r.verifyError)).toEqual(receiver.received.map(() => undefined));
    const events = egressEvents(receiver.received);
    expect(events.map(statusOf)).toEqual([
      ['egress_started', 'EGRESS_STARTING'],
      ['egress_updated', 'EGRESS_ACTIVE'],
    ]);
    // egress webhooks name their room by sid and name only
    expect(events[0]?.room?.sid).toBe(room.sid);
    expect(events[0]?.room?.name).toBe('call-1');
    expect(events[0]?.egressInfo?.egressId).toBe(info.egressId);
  });

  it('receives the request fields as the SDK sends them and echoes them with the storage secrets redacted', async () => {
    const s = await standIn();
    s.createRoom('call-2');
    const egress = egressClient(s);

    const info = await egress.startRoomCompositeEgress('call-2', { file: oggFile('calls/call-2.ogg', S3) }, audioOnly);
    // a bare EncodedFileOutput also fills the deprecated `file` of the request
    await egress.startRoomCompositeEgress('call-2', oggFile('calls/bare'));

    const [wrapped, bare] = s.requestsFor('StartRoomCompositeEgress');
    expect(wrapped?.service).toBe('Egress');
    expect(wrapped?.body).toEqual({
      roomName: 'call-2',
      audioOnly: true,
      audioMixing: 'DUAL_CHANNEL_AGENT',
      fileOutputs: [{ fileType: 'OGG', filepath: 'calls/call-2.ogg', s3: { accessKey: 'AKIA-test', secret: 'shh-secret', region: 'eu-west-1', bucket: 'call-recordings' } }],
    });
    expect(wrapped?.claims).toMatchObject({ iss: s.apiKey, video: { roomRecord: true } });
    expect(bare?.body).toEqual({
      roomName: 'call-2',
      file: { fileType: 'OGG', filepath: 'calls/bare' },
      fileOutputs: [{ fileType: 'OGG', filepath: 'calls/bare' }],
    });

    const echoedS3 = (info.request.value as RoomCompositeEgressRequest).fileOutputs[0]?.output.value as S3Upload;
    expect([echoedS3.accessKey, echoedS3.secret, echoedS3.bucket, echoedS3.region]).toEqual(['{access_key}', '{secret}', 'call-recordings', 'eu-west-1']);
    // the simulated egress service worked with the request as sent
    const kept = s.egresses.get(info.egressId)?.request.fileOutputs[0]?.output.value as S3Upload;
    expect([kept.accessKey, kept.secret]).toEqual(['AKIA-test', 'shh-secret']);
  });

  it('answers the success body in snake_case with every scalar field present', async () => {
    const s = await standIn();
    s.createRoom('call-3');
    const token = new AccessToken(s.apiKey, s.apiSecret);
    token.addGrant({ roomRecord: true });
    const body = new RoomCompositeEgressRequest({ roomName: 'call-3', audioOnly: true, fileOutputs: [oggFile('a.ogg')] });

    const response = await fetch(`${s.url}/twirp/livekit.Egress/StartRoomCompositeEgress`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${await token.toJwt()}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(body.toJson({ useProtoFieldName: true })),
    });

    expect(response.headers.get('content-type')).toBe('application/json');
    const json = (await response.json()) as Record<string, unknown>;
    expect(json).toMatchObject({
      egress_id: expect.stringMatching(/^EG_/),
      room_name: 'call-3',
      status: 'EGRESS_STARTING',
      started_at: expect.stringMatching(/^\d{19}$/),
      ended_at: '0',
      error: '',
      error_code: 0,
      source_type: 'EGRESS_SOURCE_TYPE_SDK',
      room_composite: expect.objectContaining({ room_name: 'call-3', audio_only: true, audio_mixing: 'DEFAULT_MIXING', layout: '' }),
      file_results: [{ filename: 'a.ogg', started_at: '0', ended_at: '0', duration: '0', size: '0', location: '' }],
      stream_results: [],
    });
    expect(EgressInfo.fromJson(json as never).roomName).toBe('call-3');
  });

  it('refuses a recording of a room that does not exist, as livekit-server loads the room first', async () => {
    const s = await standIn();

    const error = (await caught(egressClient(s).startRoomCompositeEgress('no-such-room', { file: oggFile('x.ogg') }, audioOnly))) as ServerError;

    expect(error).toBeInstanceOf(ServerError);
    expect([error.status, error.code, error.message]).toEqual([404, 'not_found', 'requested room does not exist']);
    expect(s.egresses.size).toBe(0);
  });

  it('refuses a request without an output, as the egress service does', async () => {
    const s = await standIn();
    s.createRoom('call-4');
    const token = new AccessToken(s.apiKey, s.apiSecret);
    token.addGrant({ roomRecord: true });

    const response = await fetch(`${s.url}/twirp/livekit.Egress/StartRoomCompositeEgress`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${await token.toJwt()}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ room_name: 'call-4', audio_only: true }),
    });

    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({ code: 'invalid_argument', msg: 'request has missing or invalid field: output' });
  });

  it('delivers a scripted refusal through the SDK with its code, status and meta, then simulates again', async () => {
    const s = await standIn();
    s.createRoom('call-5');
    s.script('StartRoomCompositeEgress', {
      error: { code: 'resource_exhausted', msg: 'no egress instance available', meta: { retry_after: '5' } },
    });
    const egress = egressClient(s);

    const error = (await caught(egress.startRoomCompositeEgress('call-5', { file: oggFile('x.ogg') }, audioOnly))) as ServerError;

    expect(error).toBeInstanceOf(ServerError);
    expect([error.status, error.name, error.code, error.message]).toEqual([429, 'Too Many Requests', 'resource_exhausted', 'no egress instance available']);
    expect(error.metadata).toEqual({ retry_after: '5' });
    expect(s.egresses.size).toBe(0);
    await expect(egress.startRoomCompositeEgress('call-5', { file: oggFile('x.ogg') }, audioOnly)).resolves.toBeInstanceOf(EgressInfo);
  });

  it('answers a token without the roomRecord grant with unauthenticated, for every Egress method', async () => {
    const s = await standIn();
    s.createRoom('call-6');
    const token = new AccessToken(s.apiKey, s.apiSecret);
    token.addGrant({ roomAdmin: true, room: 'call-6', roomCreate: true, roomList: true });
    const egress = new EgressClient(s.url, undefined, undefined, { token: await token.toJwt() });

    for (const error of [
      await caught(egress.startRoomCompositeEgress('call-6', { file: oggFile('x.ogg') }, audioOnly)),
      await caught(egress.listEgress({ roomName: 'call-6' })),
      await caught(egress.stopEgress('EG_whatever')),
    ] as ServerError[]) {
      expect(error).toBeInstanceOf(ServerError);
      expect([error.status, error.code, error.message]).toEqual([401, 'unauthenticated', 'permissions denied']);
    }
    expect(s.egresses.size).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------
// StopEgress and the end of a recording

describe('the stand-in Egress service: ending a recording', () => {
  it('stops: EGRESS_ENDING answered and sent, then egress_ended EGRESS_COMPLETE with the uploaded file', async () => {
    const receiver = await startReceiver(KEYS);
    const s = await standIn({ webhookUrl: receiver.url, egressStartDelayMs: 10, egressEndDelayMs: 30 });
    s.createRoom('call-7');
    const egress = egressClient(s);
    const started = await egress.startRoomCompositeEgress('call-7', { file: oggFile('calls/{room_name}-rec', S3) }, audioOnly);
    await s.settled();
    await sleep(200);

    const stopped = await egress.stopEgress(started.egressId);

    expect(stopped.status).toBe(EgressStatus.EGRESS_ENDING);
    expect(stopped.details).toBe('End reason: StopEgress API');
    await s.settled();
    const events = egressEvents(receiver.received);
    expect(events.map(statusOf)).toEqual([
      ['egress_started', 'EGRESS_STARTING'],
      ['egress_updated', 'EGRESS_ACTIVE'],
      ['egress_updated', 'EGRESS_ENDING'],
      ['egress_ended', 'EGRESS_COMPLETE'],
    ]);
    const ended = events[3]?.egressInfo;
    const file = ended?.fileResults[0];
    expect(file?.filename).toBe('calls/call-7-rec.ogg');
    // livekit/storage reports an S3 upload as virtual-hosted URL on s3.amazonaws.com, whatever the region
    expect(file?.location).toBe('https://call-recordings.s3.amazonaws.com/calls/call-7-rec.ogg');
    expect(file?.duration).toBe((file?.endedAt ?? 0n) - (file?.startedAt ?? 0n));
    expect(Number(file?.duration) / 1e6).toBeGreaterThanOrEqual(190);
    // 128 kbps audio
    expect(file?.size).toBe(((file?.duration ?? 0n) * 16_000n) / 1_000_000_000n);
    expect(ended?.endedAt).toBe(file?.endedAt);
    expect(ended?.result).toEqual({ case: 'file', value: file });
    expect(s.egresses.get(started.egressId)?.info.status).toBe(EgressStatus.EGRESS_COMPLETE);
  });

  it('puts the file under the endpoint given, path-style when asked, and keeps it local without storage', async () => {
    const s = await standIn({ egressStartDelayMs: 0, egressEndDelayMs: 0 });
    s.createRoom('call-8');
    const egress = egressClient(s);
    const files = [
      oggFile('a.ogg', { ...S3, endpoint: 'minio.internal:9000', forcePathStyle: true }),
      oggFile('b.ogg', { ...S3, endpoint: 'storage.example.com' }),
      oggFile('c.ogg'),
    ];
    const ids: string[] = [];
    for (const file of files) ids.push((await egress.startRoomCompositeEgress('call-8', { file }, audioOnly)).egressId);
    await s.settled();

    for (const id of ids) await egress.stopEgress(id);
    await s.settled();

    expect(ids.map((id) => s.egresses.get(id)?.info.fileResults[0]?.location)).toEqual([
      'https://minio.internal:9000/call-recordings/a.ogg',
      'https://call-recordings.storage.example.com/b.ogg',
      'c.ogg',
    ]);
  });

  it('answers not_found for an unknown egress and failed_precondition for an ended one', async () => {
    const s = await standIn({ egressStartDelayMs: 0, egressEndDelayMs: 0 });
    s.createRoom('call-9');
    const egress = egressClient(s);

    const unknown = (await caught(egress.stopEgress('EG_doesnotexist'))) as ServerError;
    expect(unknown).toBeInstanceOf(ServerError);
    expect([unknown.status, unknown.code, unknown.message]).toEqual([404, 'not_found', 'egress does not exist']);

    const { egressId } = await egress.startRoomCompositeEgress('call-9', { file: oggFile('x.ogg') }, audioOnly);
    await s.settled();
    await egress.stopEgress(egressId);
    await s.settled();
    const again = (await caught(egress.stopEgress(egressId))) as ServerError;
    expect([again.status, again.code, again.message]).toEqual([412, 'failed_precondition', 'egress with status EGRESS_COMPLETE cannot be stopped']);
  });

  it('aborts an egress stopped before it started recording', async () => {
    const receiver = await startReceiver(KEYS);
    const s = await standIn({ webhookUrl: receiver.url, egressStartDelayMs: 10_000 });
    s.createRoom('call-10');
    const egress = egressClient(s);
    const { egressId } = await egress.startRoomCompositeEgress('call-10', { file: oggFile('x.ogg') }, audioOnly);

    const stopped = await egress.stopEgress(egressId);

    expect(stopped.status).toBe(EgressStatus.EGRESS_ABORTED);
    expect([stopped.error, stopped.errorCode]).toEqual(['Stop called before pipeline could start', 412]);
    await s.webhooks?.idle();
    expect(egressEvents(receiver.received).map(statusOf)).toEqual([
      ['egress_started', 'EGRESS_STARTING'],
      ['egress_ended', 'EGRESS_ABORTED'],
    ]);
  });

  it('ends a recording when its room finishes: egress_ended arrives after room_finished, even when that is slow', async () => {
    // the receiver holds room_finished for a while: the egress's own queue must not overtake it
    const receiver = await startReceiver(KEYS, async (_, body) => {
      if (body.includes('"room_finished"')) await sleep(150);
      return 200;
    });
    const s = await standIn({ webhookUrl: receiver.url, egressStartDelayMs: 0, egressEndDelayMs: 0 });
    s.createRoom('call-11');
    const egress = egressClient(s);
    const { egressId } = await egress.startRoomCompositeEgress('call-11', { file: oggFile('x.ogg') }, audioOnly);
    await s.settled();

    await new RoomServiceClient(s.url, s.apiKey, s.apiSecret).deleteRoom('call-11');
    await s.settled();

    const names = receiver.events();
    expect(names.indexOf('egress_ended')).toBeGreaterThan(names.indexOf('room_finished'));
    const finished = receiver.received.find((r) => r.event?.event === 'room_finished');
    const ended = receiver.received.find((r) => r.event?.event === 'egress_ended');
    expect(ended?.startedAt).toBeGreaterThanOrEqual(finished?.endedAt ?? Infinity);
    expect(egressEvents(receiver.received).map(statusOf).slice(-2)).toEqual([
      ['egress_updated', 'EGRESS_ENDING'],
      ['egress_ended', 'EGRESS_COMPLETE'],
    ]);
    const [listed] = await egress.listEgress({ egressId });
    expect(listed?.status).toBe(EgressStatus.EGRESS_COMPLETE);
    expect(listed?.details).toBe('End reason: Source closed');
    expect(listed?.fileResults[0]?.location).toBe('x.ogg');
  });

  it('fails an egress on request: EGRESS_FAILED with the error, then egress_ended', async () => {
    const receiver = await startReceiver(KEYS);
    const s = await standIn({ webhookUrl: receiver.url, egressStartDelayMs: 0 });
    s.createRoom('call-12');
    const egress = egressClient(s);
    const { egressId } = await egress.startRoomCompositeEgress('call-12', { file: oggFile('x.ogg') }, audioOnly);
    await s.settled();

    expect(s.failEgress(egressId, 'upload failed: AccessDenied')).toBeDefined();
    await s.settled();

    const ended = egressEvents(receiver.received).at(-1);
    expect(statusOf(ended as WebhookEvent)).toEqual(['egress_ended', 'EGRESS_FAILED']);
    expect([ended?.egressInfo?.error, ended?.egressInfo?.errorCode]).toEqual(['upload failed: AccessDenied', 500]);
    expect(ended?.egressInfo?.endedAt).toBeGreaterThan(0n);
    expect(s.failEgress(egressId, 'again')).toBeUndefined();
    expect(s.failEgress('EG_unknown', 'x')).toBeUndefined();
    expect((await caught(egress.stopEgress(egressId))) as ServerError).toMatchObject({ code: 'failed_precondition' });
  });

  it('ends an egress on request as the egress service would, without waiting for the upload delay', async () => {
    const receiver = await startReceiver(KEYS);
    const s = await standIn({ webhookUrl: receiver.url, egressStartDelayMs: 10_000, egressEndDelayMs: 10_000 });
    s.createRoom('call-13');
    const { egressId } = await egressClient(s).startRoomCompositeEgress('call-13', { file: oggFile('x.ogg') }, audioOnly);

    expect(s.endEgress(egressId)?.info.status).toBe(EgressStatus.EGRESS_COMPLETE);
    await s.webhooks?.idle();

    expect(egressEvents(receiver.received).map(statusOf)).toEqual([
      ['egress_started', 'EGRESS_STARTING'],
      ['egress_updated', 'EGRESS_ACTIVE'],
      ['egress_updated', 'EGRESS_ENDING'],
      ['egress_ended', 'EGRESS_COMPLETE'],
    ]);
    expect(s.endEgress(egressId)).toBeUndefined();
  });

  it('leaves no egress change pending once closed: settled() resolves and nothing changes any more', async () => {
    const s = await startLiveKitStandIn({ egressStartDelayMs: 10_000 });
    s.createRoom('call-15');
    const { egressId } = await egressClient(s).startRoomCompositeEgress('call-15', { file: oggFile('x.ogg') }, audioOnly);

    const before = Date.now();
    await s.close();
    await s.settled();

    expect(Date.now() - before).toBeLessThan(500);
    expect(s.egresses.get(egressId)?.info.status).toBe(EgressStatus.EGRESS_STARTING);
  });

  it('loses the webhooks of an egress on request while its state still changes, for ListEgress to reconcile', async () => {
    const receiver = await startReceiver(KEYS);
    // long enough a start for the test to lose the webhooks before the egress turns ACTIVE
    const s = await standIn({ webhookUrl: receiver.url, egressStartDelayMs: 100, egressEndDelayMs: 0 });
    s.createRoom('call-14');
    const egress = egressClient(s);
    const { egressId } = await egress.startRoomCompositeEgress('call-14', { file: oggFile('x.ogg') }, audioOnly);
    expect(s.loseEgressWebhooks(egressId)).toBe(true);
    expect(s.loseEgressWebhooks('EG_unknown')).toBe(false);

    await s.settled();
    await egress.stopEgress(egressId);
    await s.settled();

    expect(s.egresses.get(egressId)?.webhooksLost).toBe(true);
    expect(egressEvents(receiver.received).map(statusOf)).toEqual([['egress_started', 'EGRESS_STARTING']]);
    const [listed] = await egress.listEgress({ egressId });
    expect(listed?.status).toBe(EgressStatus.EGRESS_COMPLETE);
    expect(listed?.fileResults[0]?.endedAt).toBeGreaterThan(0n);
    expect(listed?.fileResults[0]?.location).toBe('x.ogg');
  });
});

// ---------------------------------------------------------------------------------------------
// ListEgress

describe('the stand-in Egress service: listing', () => {
  it('filters by room, by activity and by egress id, and answers not_found for an unknown id', async () => {
    const s = await standIn({ egressStartDelayMs: 0, egressEndDelayMs: 0 });
    s.createRoom('room-a');
    s.createRoom('room-b');
    const egress = egressClient(s);
    const a1 = await egress.startRoomCompositeEgress('room-a', { file: oggFile('a1.ogg') }, audioOnly);
    const a2 = await egress.startRoomCompositeEgress('room-a', { file: oggFile('a2.ogg') }, audioOnly);
    const b1 = await egress.startRoomCompositeEgress('room-b', { file: oggFile('b1.ogg') }, audioOnly);
    await s.settled();
    await egress.stopEgress(a1.egressId);
    await s.settled();
    const ids = (list: EgressInfo[]) => list.map((e) => e.egressId);

    expect(ids(await egress.listEgress())).toEqual([a1.egressId, a2.egressId, b1.egressId]);
    expect(ids(await egress.listEgress('room-a'))).toEqual([a1.egressId, a2.egressId]);
    expect(ids(await egress.listEgress({ roomName: 'room-a', active: true }))).toEqual([a2.egressId]);
    expect(ids(await egress.listEgress({ active: true }))).toEqual([a2.egressId, b1.egressId]);
    // an egress id alone decides, as LiveKit's IOInfoService looks it up first
    expect(ids(await egress.listEgress({ egressId: a1.egressId, roomName: 'room-b', active: true }))).toEqual([a1.egressId]);
    expect(await egress.listEgress('room-c')).toEqual([]);
    const unknown = (await caught(egress.listEgress({ egressId: 'EG_unknown' }))) as ServerError;
    expect([unknown.status, unknown.code, unknown.message]).toEqual([404, 'not_found', 'egress does not exist']);
  });
});
