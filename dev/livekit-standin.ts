// A protocol-faithful stand-in for LiveKit's Twirp API (the real server cannot run here).
//
// Wire behaviour, as livekit-server and the Go Twirp runtime answer:
// - `POST /twirp/livekit.<Service>/<Method>`, JSON bodies; answers `Content-Type: application/json`
//   exactly, success bodies in snake_case with every scalar field present (protojson with
//   EmitUnpopulated + proto names), errors as `{code, msg, meta?}` with Twirp's HTTP status.
// - Authentication runs before routing, like LiveKit's API-key middleware, and its failures are
//   NOT Twirp errors: HTTP 401 with a text/plain message (the SDK yields a ServerError whose `code`
//   is undefined). A token that verifies but lacks a grant fails inside the service with the Twirp
//   error `unauthenticated` (401, "permissions denied"): LiveKit's twirpAuthError, not permission_denied.
// - A path outside the known services gets the Go mux's plain `404 page not found`; a known service
//   answers a non-POST, a wrong content type or an unknown method with Twirp `bad_route` (404).
//
// Simulated world (the default behaviour, replaceable per method with script()/setHandler()):
// rooms and participants kept in memory, and, when `webhookUrl` is given, the webhooks LiveKit would
// send for each change, queued per room (per egress for egress events) through the webhook sender.
// See `LiveKitStandIn` for the helpers that drive the world from tests. Rooms never close on their
// own (no empty/departure timeout): call finishRoom(). The Egress service records rooms to a file
// (room composite only); see "Egress" below for its wire behaviour.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { posix } from 'node:path';
import type { JsonValue } from '@bufbuild/protobuf';
import { decodeJwt } from 'jose';
import {
  AgentDispatch,
  AgentDispatchState,
  Codec,
  EgressInfo,
  EgressSourceType,
  EgressStatus,
  EncodedFileType,
  FileInfo,
  ListAgentDispatchResponse,
  ListEgressResponse,
  ListParticipantsResponse,
  ListRoomsResponse,
  ParticipantInfo,
  Room,
  RoomCompositeEgressRequest,
  SIPParticipantInfo,
  type EncodedFileOutput,
} from '@livekit/protocol';
import { TokenVerifier, type ClaimGrants } from 'livekit-server-sdk';
import { createWebhookSender, type WebhookSender } from './webhook-sender.js';
import {
  audioTrack,
  newId,
  sipParticipant,
  webhookEvents,
  type EgressInfoJson,
  type ParticipantJson,
  type RoomJson,
  type WebhookEventJson,
} from './webhook-events.js';

export interface TwirpErrorReply {
  code: string;
  msg: string;
  meta?: Record<string, string>;
  /** defaults from Twirp's code → HTTP table */
  status?: number;
}

export type Reply =
  | { ok: Record<string, unknown> }
  | { error: TwirpErrorReply }
  | { reset: true }
  | { hang: true }
  | { raw: { status: number; contentType: string; body: string } };

export type Behaviour = Reply & { delayMs?: number };

export type Handler = (req: RecordedRequest, standIn: LiveKitStandIn) => Behaviour | Promise<Behaviour>;

export interface RecordedRequest {
  /** `SIP`, `RoomService`, `AgentDispatchService`, `Egress`, or whatever the path named ('' when unparsable) */
  service: string;
  method: string;
  /** the JSON body exactly as sent (the SDK sends camelCase); {} when absent or unparsable */
  body: Record<string, unknown>;
  /** verified JWT claims; {} when the token was missing or rejected */
  claims: Record<string, unknown>;
  /** `X-Livekit-Request-Id`: the SDK keeps it across its own retries */
  requestId: string | null;
  at: number;
}

export interface StandInOptions {
  apiKey?: string;
  apiSecret?: string;
  /** when set, the simulated server sends webhooks here */
  webhookUrl?: string;
  webhookRetryDelaysMs?: number[];
  port?: number;
  /** how long a started egress stays EGRESS_STARTING before it records (EGRESS_ACTIVE); default 50 ms */
  egressStartDelayMs?: number;
  /** how long an ending egress takes to finish and upload its file (EGRESS_COMPLETE); default 50 ms */
  egressEndDelayMs?: number;
}

export interface SimDispatch {
  id: string;
  agentName: string;
  room: string;
  metadata: string;
  /** ms since the epoch */
  createdAt: number;
}

/** One SIP REFER the simulated server sent, for an inbound or an outbound call leg. */
export interface SimTransfer {
  /** `sip.callID` of the transferred participant */
  callId: string;
  room: string;
  participantIdentity: string;
  transferTo: string;
  /** headers added to the REFER */
  headers: Record<string, string>;
  /** seconds the target may ring; null: the server's default */
  ringingTimeoutS: number | null;
  /** whether the caller heard a dial tone while the target rang */
  playDialtone: boolean;
}

/** One outbound SIP call leg the simulated server placed, as its far end saw it. */
export interface SimSipCall {
  /** `sip.callID` of the leg's participant */
  callId: string;
  room: string;
  participantIdentity: string;
  to: string;
  /** the from-number (`sip_number`) */
  from: string;
  /** the X-headers of the INVITE */
  headers: Record<string, string>;
  /**
   * The display name of the From header: without `display_name` LiveKit sends the from-number;
   * with an empty one, none (null), so the carrier looks the name up.
   */
  fromDisplayName: string | null;
  /** the digits played once the call was answered (`w`: a 0.5 s pause); '' when none */
  dtmf: string;
  /** whether a dial tone played into the room while it rang */
  playDialtone: boolean;
}

export interface SimRoom {
  sid: string;
  name: string;
  /** seconds */
  creationTime: number;
  creationTimeMs: number;
  emptyTimeout: number;
  departureTimeout: number;
  maxParticipants: number;
  metadata: string;
  /** by identity, stored as webhook-shaped protobuf JSON (see webhook-events.ts) */
  participants: Map<string, ParticipantJson>;
  dispatches: Map<string, SimDispatch>;
}

/**
 * One egress of the simulated server, as LiveKit's egress store holds it; ended ones stay.
 * Read `info` with the protocol's enums: `info.status === EgressStatus.EGRESS_ACTIVE`.
 */
export interface SimEgress {
  readonly egressId: string;
  readonly roomName: string;
  /** the EgressInfo as ListEgress reports it now (times in ns; the echoed request has its storage secrets redacted) */
  readonly info: EgressInfo;
  /** the request as the server decoded it, storage secrets included */
  readonly request: RoomCompositeEgressRequest;
  /** set by loseEgressWebhooks(): the egress changes state without sending any webhook */
  readonly webhooksLost: boolean;
}

export interface LiveKitStandIn {
  /** http://127.0.0.1:<port>, usable as LIVEKIT_URL for the SDK clients */
  readonly url: string;
  readonly apiKey: string;
  readonly apiSecret: string;
  /** every request under /twirp, in arrival order */
  readonly requests: RecordedRequest[];
  requestsFor(method: string): RecordedRequest[];
  /** one-shot replies, consumed FIFO before the handler / default behaviour (after auth and grant checks) */
  script(method: string, ...replies: Behaviour[]): void;
  /** replace (or restore with undefined) the default behaviour; also makes an unknown method routable */
  setHandler(method: string, handler: Handler | undefined): void;
  /** the simulated default behaviour for a request (mutates the world and sends webhooks); for handlers that wrap it */
  simulate(req: RecordedRequest): Promise<Behaviour>;
  readonly rooms: Map<string, SimRoom>;
  /** every outbound call leg the simulated CreateSIPParticipant placed, in order */
  readonly sipCalls: SimSipCall[];
  /** every REFER the simulated TransferSIPParticipant sent, in order */
  readonly transfers: SimTransfer[];
  /** present when webhookUrl was given */
  readonly webhooks: WebhookSender | undefined;
  /** every egress started, by egress id */
  readonly egresses: ReadonlyMap<string, SimEgress>;

  /** create the room if absent (room_started) and return it */
  createRoom(roomName: string): SimRoom;
  /**
   * Add a participant (creating the room if needed) and send participant_joined, then
   * track_published per track; a SIP participant without tracks gets a microphone track.
   * An identity already present is first disconnected with DUPLICATE_IDENTITY, as LiveKit does.
   */
  joinParticipant(roomName: string, participant: ParticipantJson): ParticipantJson;
  /** track_unpublished per track, then participant_left with `reason` (a DisconnectReason name; omitted = UNKNOWN) */
  leaveParticipant(roomName: string, identity: string, reason?: string): ParticipantJson | undefined;
  /** every participant leaves with `reason` (default ROOM_CLOSED), then room_finished */
  finishRoom(roomName: string, reason?: string): boolean;
  /** change attributes (empty value deletes) without any webhook: LiveKit has none for attributes */
  setAttributes(roomName: string, identity: string, attributes: Record<string, string>): ParticipantJson | undefined;
  /** the egress fails at once: EGRESS_FAILED with `error`, then egress_ended; undefined when unknown or already ended */
  failEgress(egressId: string, error: string): SimEgress | undefined;
  /**
   * The egress finishes by itself at once, as when the egress service ends a recording: a STARTING one
   * turns ACTIVE first, then ENDING and EGRESS_COMPLETE with its file (egress_updated..., egress_ended);
   * undefined when unknown or already ended.
   */
  endEgress(egressId: string): SimEgress | undefined;
  /** from now on the egress's webhooks are lost while its state still changes (reconcile through ListEgress); false when unknown */
  loseEgressWebhooks(egressId: string): boolean;
  /** resolves once no simulated change is pending (egress start and end delays) and every webhook is delivered */
  settled(): Promise<void>;

  close(): Promise<void>;
}

export const DEFAULT_API_KEY = 'devkey';
export const DEFAULT_API_SECRET = 'stand-in-dev-secret-0123456789abcdef';

const TWIRP_STATUS: Record<string, number> = {
  canceled: 408,
  invalid_argument: 400,
  malformed: 400,
  deadline_exceeded: 408,
  not_found: 404,
  bad_route: 404,
  already_exists: 409,
  permission_denied: 403,
  unauthenticated: 401,
  resource_exhausted: 429,
  failed_precondition: 412,
  aborted: 409,
  out_of_range: 400,
  unimplemented: 501,
  internal: 500,
  unavailable: 503,
  dataloss: 500,
  unknown: 500,
};

export function twirpStatus(code: string): number {
  return TWIRP_STATUS[code] ?? 500;
}

// What the real server emits: protojson with EmitUnpopulated and proto (snake_case) names.
const TWIRP_JSON = { emitDefaultValues: true, useProtoFieldName: true } as const;

type Body = Record<string, unknown>;
type Claims = ClaimGrants;
type GrantCheck = (claims: Claims, body: Body) => boolean;

const SERVICES = new Set(['SIP', 'RoomService', 'AgentDispatchService', 'Egress']);

// The grant each simulated method demands, per livekit-server's Ensure*Permission calls and the
// tokens the SDK mints (SipClient: createSipParticipant sends only sip.call; transfer adds roomAdmin + room).
const canCall: GrantCheck = (c) => c.sip?.call === true;
const canCreate: GrantCheck = (c) => c.video?.roomCreate === true;
const canList: GrantCheck = (c) => c.video?.roomList === true;
// livekit-server's EnsureRecordPermission: roomRecord, for any room (the SDK's EgressClient sends only that).
const canRecord: GrantCheck = (c) => c.video?.roomRecord === true;
const adminOf =
  (field: string): GrantCheck =>
  (c, body) =>
    c.video?.roomAdmin === true && (c.video.room ?? '') === str(body, field);

const GRANTS: Record<string, GrantCheck> = {
  CreateSIPParticipant: canCall,
  TransferSIPParticipant: (c, b) => canCall(c, b) && adminOf('room_name')(c, b),
  CreateRoom: canCreate,
  DeleteRoom: canCreate,
  ListRooms: canList,
  ListParticipants: adminOf('room'),
  GetParticipant: adminOf('room'),
  RemoveParticipant: adminOf('room'),
  UpdateParticipant: adminOf('room'),
  CreateDispatch: adminOf('room'),
  ListDispatch: adminOf('room'),
  DeleteDispatch: adminOf('room'),
  StartRoomCompositeEgress: canRecord,
  StopEgress: canRecord,
  ListEgress: canRecord,
};

const METHOD_SERVICE: Record<string, string> = {
  CreateSIPParticipant: 'SIP',
  TransferSIPParticipant: 'SIP',
  CreateRoom: 'RoomService',
  DeleteRoom: 'RoomService',
  ListRooms: 'RoomService',
  ListParticipants: 'RoomService',
  GetParticipant: 'RoomService',
  RemoveParticipant: 'RoomService',
  UpdateParticipant: 'RoomService',
  CreateDispatch: 'AgentDispatchService',
  ListDispatch: 'AgentDispatchService',
  DeleteDispatch: 'AgentDispatchService',
  StartRoomCompositeEgress: 'Egress',
  StopEgress: 'Egress',
  ListEgress: 'Egress',
};

function camelCase(snake: string): string {
  return snake.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
}

// The server accepts both proto names and JSON names (the SDK sends the latter).
function field(body: Body, snake: string): unknown {
  return body[snake] ?? body[camelCase(snake)];
}

function str(body: Body, snake: string): string {
  const value = field(body, snake);
  return typeof value === 'string' ? value : '';
}

function num(body: Body, snake: string): number {
  const value = Number(field(body, snake) ?? 0);
  return Number.isFinite(value) ? value : 0;
}

function bool(body: Body, snake: string): boolean {
  return field(body, snake) === true;
}

/** A protobuf Duration in JSON (`"30s"`, `"1.5s"`) in seconds; null when absent or malformed. */
function seconds(body: Body, snake: string): number | null {
  const value = field(body, snake);
  const match = typeof value === 'string' ? /^(\d+(?:\.\d+)?)s$/.exec(value) : null;
  return match ? Number(match[1]) : null;
}

// livekit/protocol validates the SIP headers of CreateSIPParticipant and TransferSIPParticipant
// before dialing: a header name is a SIP token, a value holds no line breaks or other control
// characters; a display name is at most 128 characters.
const SIP_TOKEN = /^[A-Za-z0-9.!%*_+`'~-]+$/;
/** a control character other than tab */
const hasControl = (value: string): boolean => [...value].some((c) => (c < ' ' && c !== '\t') || c === '\x7f');
const MAX_DISPLAY_NAME = 128;

function headerProblem(headers: Record<string, string>): Behaviour | undefined {
  for (const [name, value] of Object.entries(headers)) {
    if (!SIP_TOKEN.test(name)) return twirpError('invalid_argument', `invalid header name: ${JSON.stringify(name)}`);
    if (hasControl(value)) return twirpError('invalid_argument', `invalid header value for ${name}`);
  }
  return undefined;
}

function stringMap(body: Body, snake: string): Record<string, string> {
  const value = field(body, snake);
  if (!value || typeof value !== 'object') return {};
  return Object.fromEntries(Object.entries(value).filter((e): e is [string, string] => typeof e[1] === 'string'));
}

const twirpError = (code: string, msg: string, meta?: Record<string, string>): Behaviour => ({
  error: { code, msg, ...(meta ? { meta } : {}) },
});

const ok = (body: Record<string, unknown>): Behaviour => ({ ok: body });

// ---------------------------------------------------------------------------------------------
// Simulated world

interface World {
  rooms: Map<string, SimRoom>;
  sipCalls: SimSipCall[];
  transfers: SimTransfer[];
  egresses: Map<string, EgressRecord>;
  createRoom(name: string, settings?: Partial<SimRoom>): SimRoom;
  join(room: SimRoom, participant: ParticipantJson, joinedView?: ParticipantJson): ParticipantJson;
  leave(room: SimRoom, identity: string, reason?: string): ParticipantJson | undefined;
  finish(name: string, reason: string): boolean;
  startEgress(room: SimRoom, request: RoomCompositeEgressRequest, file: EncodedFileOutput): EgressRecord;
  stopEgress(egress: EgressRecord): void;
  failEgress(egress: EgressRecord, error: string): void;
  endEgress(egress: EgressRecord): void;
}

/** Emits one webhook; resolves once it was delivered, refused, given up or dropped (at once without a webhook URL). */
type Emit = (event: WebhookEventJson) => Promise<unknown>;

interface Timing {
  /** run `fn` after `ms` and once `gate` settled, unless the stand-in closed first; settled() waits for it */
  after(ms: number, fn: () => void, gate?: Promise<unknown>): void;
  egressStartDelayMs: number;
  egressEndDelayMs: number;
}

interface EgressRecord {
  egressId: string;
  roomName: string;
  info: EgressInfo;
  request: RoomCompositeEgressRequest;
  webhooksLost: boolean;
  /** the egress's own end-of-stream went out (its pipeline's SendEOS runs once) */
  eosSent: boolean;
  /** its room finished: it can no longer start recording */
  roomClosed: boolean;
}

// Builder output is plain JSON; the index signatures just hide that from the type checker.
const asJson = (value: object): JsonValue => value as JsonValue;

// Stored participants go through the protocol so a malformed one fails at once, not in a receiver.
function normalizeParticipant(p: ParticipantJson): ParticipantJson {
  return ParticipantInfo.fromJson(asJson(p)).toJson() as ParticipantJson;
}

// LiveKit's default codec list, reported on every room.
const ENABLED_CODECS = ['audio/opus', 'audio/red', 'video/VP8', 'video/H264', 'video/VP9', 'video/AV1'];

function roomMessage(room: SimRoom): Room {
  return new Room({
    sid: room.sid,
    name: room.name,
    emptyTimeout: room.emptyTimeout,
    departureTimeout: room.departureTimeout,
    maxParticipants: room.maxParticipants,
    creationTime: BigInt(room.creationTime),
    creationTimeMs: BigInt(room.creationTimeMs),
    enabledCodecs: ENABLED_CODECS.map((mime) => new Codec({ mime })),
    metadata: room.metadata,
    numParticipants: room.participants.size,
  });
}

function roomWebhookJson(room: SimRoom): RoomJson {
  return roomMessage(room).toJson() as RoomJson;
}

function roomTwirpJson(room: SimRoom): Record<string, unknown> {
  return roomMessage(room).toJson(TWIRP_JSON) as Record<string, unknown>;
}

function participantTwirpJson(p: ParticipantJson): Record<string, unknown> {
  return ParticipantInfo.fromJson(asJson(p)).toJson(TWIRP_JSON) as Record<string, unknown>;
}

function createWorld(emit: Emit, timing: Timing): World {
  const rooms = new Map<string, SimRoom>();
  const egresses = new Map<string, EgressRecord>();

  function createRoom(name: string, settings: Partial<SimRoom> = {}): SimRoom {
    const existing = rooms.get(name);
    if (existing) return existing;
    const nowMs = Date.now();
    const room: SimRoom = {
      sid: newId('RM_'),
      name,
      creationTime: Math.floor(nowMs / 1000),
      creationTimeMs: nowMs,
      emptyTimeout: 300,
      departureTimeout: 20,
      maxParticipants: 0,
      metadata: '',
      ...settings,
      participants: new Map(),
      dispatches: new Map(),
    };
    rooms.set(name, room);
    emit(webhookEvents.roomStarted(roomWebhookJson(room)));
    return room;
  }

  function leave(room: SimRoom, identity: string, reason?: string): ParticipantJson | undefined {
    const participant = room.participants.get(identity);
    if (!participant) return undefined;
    room.participants.delete(identity);
    const roomJson = roomWebhookJson(room);
    for (const track of participant.tracks ?? []) emit(webhookEvents.trackUnpublished(roomJson, participant, track));
    const left = webhookEvents.participantLeft(roomJson, participant, reason);
    emit(left);
    return left.participant;
  }

  // `joinedView` lets a caller report a different snapshot in participant_joined than what is
  // stored afterwards (an outbound SIP call joins while `dialing`, then is answered).
  function join(room: SimRoom, participant: ParticipantJson, joinedView?: ParticipantJson): ParticipantJson {
    if (room.participants.has(participant.identity)) leave(room, participant.identity, 'DUPLICATE_IDENTITY');
    const stored = normalizeParticipant(participant);
    room.participants.set(stored.identity, stored);
    const roomJson = roomWebhookJson(room);
    emit(webhookEvents.participantJoined(roomJson, normalizeParticipant(joinedView ?? stored)));
    for (const track of stored.tracks ?? []) emit(webhookEvents.trackPublished(roomJson, stored, track));
    return stored;
  }

  function finish(name: string, reason: string): boolean {
    const room = rooms.get(name);
    if (!room) return false;
    for (const identity of [...room.participants.keys()]) leave(room, identity, reason);
    rooms.delete(name);
    const finished = emit(webhookEvents.roomFinished(roomWebhookJson(room)));
    for (const egress of egresses.values()) {
      if (egress.roomName === name && !egress.roomClosed && !isEnded(egress)) sourceClosed(egress, finished);
    }
    return true;
  }

  // --- egress: the state changes of livekit/egress's pipeline controller, reported as livekit-server's
  // IOInfoService does (egress_updated for ACTIVE and ENDING, egress_ended for every final status)

  function emitEgress(egress: EgressRecord, build: (info: EgressInfoJson) => WebhookEventJson): void {
    if (!egress.webhooksLost) void emit(build(egress.info.toJson() as EgressInfoJson));
  }

  function startEgress(room: SimRoom, request: RoomCompositeEgressRequest, file: EncodedFileOutput): EgressRecord {
    const info = startingInfo(room, request, file);
    const egress: EgressRecord = {
      egressId: info.egressId,
      roomName: room.name,
      info,
      request,
      webhooksLost: false,
      eosSent: false,
      roomClosed: false,
    };
    egresses.set(egress.egressId, egress);
    // the egress service stores it through IOInfoService.CreateEgress, which sends egress_started
    emitEgress(egress, webhookEvents.egressStarted);
    timing.after(timing.egressStartDelayMs, () => {
      if (egress.info.status === EgressStatus.EGRESS_STARTING && !egress.roomClosed) activate(egress);
    });
    return egress;
  }

  function activate(egress: EgressRecord): void {
    const now = nowNs();
    egress.info.status = EgressStatus.EGRESS_ACTIVE;
    egress.info.updatedAt = now;
    fileResult(egress).startedAt = now;
    emitEgress(egress, webhookEvents.egressUpdated);
  }

  // SendEOS: ACTIVE turns ENDING at once; a STARTING pipeline is aborted instead.
  function sendEos(egress: EgressRecord, reason: string): void {
    egress.eosSent = true;
    egress.info.details = `End reason: ${reason}`;
    if (egress.info.status !== EgressStatus.EGRESS_ACTIVE) return;
    egress.info.status = EgressStatus.EGRESS_ENDING;
    egress.info.updatedAt = nowNs();
    emitEgress(egress, webhookEvents.egressUpdated);
  }

  function stopEgress(egress: EgressRecord): void {
    if (egress.eosSent) return;
    sendEos(egress, END_REASON_API);
    if (egress.info.status === EgressStatus.EGRESS_STARTING) abort(egress);
    else timing.after(timing.egressEndDelayMs, () => complete(egress));
  }

  // The room closed under the recording: its end (and the upload) follows room_finished.
  function sourceClosed(egress: EgressRecord, roomFinished: Promise<unknown>): void {
    egress.roomClosed = true;
    if (egress.eosSent) return;
    sendEos(egress, END_REASON_SOURCE_CLOSED);
    timing.after(
      egress.info.status === EgressStatus.EGRESS_STARTING ? 0 : timing.egressEndDelayMs,
      () => (egress.info.status === EgressStatus.EGRESS_STARTING ? abort(egress) : complete(egress)),
      roomFinished,
    );
  }

  function finalStatus(egress: EgressRecord, status: EgressStatus): bigint {
    const now = nowNs();
    egress.info.status = status;
    egress.info.updatedAt = now;
    egress.info.endedAt = now;
    return now;
  }

  function abort(egress: EgressRecord): void {
    finalStatus(egress, EgressStatus.EGRESS_ABORTED);
    egress.info.error = MSG_STOPPED_BEFORE_STARTED;
    egress.info.errorCode = 412;
    emitEgress(egress, webhookEvents.egressEnded);
  }

  // The file is finalized and uploaded: FileSink.Close reports its location and size.
  function complete(egress: EgressRecord): void {
    if (egress.info.status !== EgressStatus.EGRESS_ENDING) return;
    const now = finalStatus(egress, EgressStatus.EGRESS_COMPLETE);
    const file = fileResult(egress);
    file.endedAt = now;
    file.duration = now - file.startedAt;
    file.size = recordingSize(file.duration, egress.request.audioOnly);
    file.location = uploadLocation(egressFile(egress.request), file.filename);
    emitEgress(egress, webhookEvents.egressEnded);
  }

  function failEgress(egress: EgressRecord, error: string): void {
    finalStatus(egress, EgressStatus.EGRESS_FAILED);
    egress.info.error = error;
    // the egress server's processEnded reports a crashed handler as 500
    egress.info.errorCode = 500;
    if (!egress.info.details) egress.info.details = `End reason: ${END_REASON_FAILURE}`;
    emitEgress(egress, webhookEvents.egressEnded);
  }

  function endEgress(egress: EgressRecord): void {
    if (egress.info.status === EgressStatus.EGRESS_STARTING) activate(egress);
    if (!egress.eosSent) sendEos(egress, END_REASON_SOURCE_CLOSED);
    complete(egress);
  }

  return {
    rooms,
    sipCalls: [],
    transfers: [],
    egresses,
    createRoom,
    join,
    leave,
    finish,
    startEgress,
    stopEgress,
    failEgress,
    endEgress,
  };
}

// ---------------------------------------------------------------------------------------------
// Egress: recording a room to a file
//
// As livekit-server (pkg/service/egress.go, ioservice.go) and livekit/egress (pkg/config,
// pkg/pipeline, pkg/handler) behave, with livekit/storage's upload locations:
// - StartRoomCompositeEgress loads the room first (not_found "requested room does not exist"), then
//   the egress service validates the request (invalid_argument "request has missing or invalid
//   field: <field>") and answers an EgressInfo EGRESS_STARTING whose started_at and updated_at are
//   already set (int64 ns), with the request echoed as `room_composite` (storage secrets redacted to
//   "{access_key}", "{secret}", ...), `source_type` SDK for audio-only without layout or base URL,
//   else WEB, and `file_results` already holding the file's final name (`filename`), also in the
//   deprecated `file`. egress_started goes out right away, with that STARTING info.
// - When the pipeline runs (egressStartDelayMs) it turns EGRESS_ACTIVE: egress_updated, and
//   file_results[0].started_at is set (EgressInfo.started_at stays the creation time).
// - StopEgress turns an ACTIVE egress EGRESS_ENDING (details "End reason: StopEgress API") and
//   answers with it, egress_updated; after finishing the file (egressEndDelayMs) EGRESS_COMPLETE with
//   ended_at and the file's ended_at, duration (ns), size and location: egress_ended. A STARTING one
//   is EGRESS_ABORTED at once ("Stop called before pipeline could start", error_code 412). A second
//   StopEgress while ENDING answers the same info; an unknown id not_found "egress does not exist";
//   an ended one failed_precondition "egress with status EGRESS_COMPLETE cannot be stopped".
// - When its room finishes, a recording ends by itself ("End reason: Source closed"): ENDING at once,
//   then COMPLETE; its egress_ended comes after the room's room_finished was delivered. (LiveKit queues
//   egress webhooks per egress, not per room, so only the upload time orders them there.)
// - ListEgress: `egress_id` alone decides (not_found when unknown), else by `room_name`, and
//   `active` keeps STARTING, ACTIVE and ENDING.
// Only file outputs are simulated; stream, segment and image outputs get `unimplemented`.

const END_REASON_API = 'StopEgress API';
const END_REASON_SOURCE_CLOSED = 'Source closed';
const END_REASON_FAILURE = 'Failure';
const MSG_STOPPED_BEFORE_STARTED = 'Stop called before pipeline could start';

const nowNs = (): bigint => BigInt(Date.now()) * 1_000_000n;

const invalidInput = (field: string): Behaviour =>
  twirpError('invalid_argument', `request has missing or invalid field: ${field}`);

function egressFile(request: RoomCompositeEgressRequest): EncodedFileOutput | undefined {
  return request.fileOutputs[0] ?? (request.output.case === 'file' ? request.output.value : undefined);
}

function fileResult(egress: EgressRecord): FileInfo {
  const file = egress.info.fileResults[0];
  if (!file) throw new Error(`egress ${egress.egressId} has no file result`);
  return file;
}

// The default bit rates of the egress pipeline: 128 kbps audio, plus 3000 kbps video unless audio-only.
function recordingSize(durationNs: bigint, audioOnly: boolean): bigint {
  const bytesPerSecond = audioOnly ? 16_000n : 391_000n;
  return (durationNs * bytesPerSecond) / 1_000_000_000n;
}

const FILE_EXTENSIONS: Partial<Record<EncodedFileType, string>> = {
  [EncodedFileType.MP4]: '.mp4',
  [EncodedFileType.OGG]: '.ogg',
  [EncodedFileType.MP3]: '.mp3',
};
const KNOWN_EXTENSIONS = new Set(['.raw', '.ogg', '.mp3', '.ivf', '.mp4', '.ts', '.webm', '.m3u8', '.jpeg']);

/** Go's time.Format("2006-01-02T150405"), in UTC */
function egressTime(now: Date): string {
  return now.toISOString().slice(0, 19).replace(/:/g, '');
}

// The egress's file name: the filepath with {room_name}, {room_id}, {time} and {utc} replaced,
// cleaned, with the file type's extension; a missing name or a directory gets `<room>-<time><ext>`.
// A DEFAULT_FILETYPE recording is OGG when audio-only, else MP4.
function recordingFilename(file: EncodedFileOutput, room: SimRoom, audioOnly: boolean): string {
  const now = new Date();
  const replacements: Record<string, string> = {
    '{room_name}': room.name,
    '{room_id}': room.sid,
    '{time}': egressTime(now),
    '{utc}': `${now.toISOString().slice(0, 19).replace(/[-:T]/g, '')}${String(now.getUTCMilliseconds()).padStart(3, '0')}`,
  };
  let filepath = cleanPath(file.filepath);
  for (const [key, value] of Object.entries(replacements)) filepath = filepath.split(key).join(value);
  const ext = FILE_EXTENSIONS[file.fileType] ?? (audioOnly ? '.ogg' : '.mp4');
  if (filepath === '' || filepath.endsWith('/')) return `${filepath}${room.name}-${egressTime(now)}${ext}`;
  if (filepath.endsWith(ext)) return filepath;
  const dot = filepath.lastIndexOf('.');
  if (dot > -1 && KNOWN_EXTENSIONS.has(filepath.slice(dot))) filepath = filepath.slice(0, dot);
  return filepath + ext;
}

function cleanPath(filepath: string): string {
  const trailingSlash = filepath.endsWith('/');
  let cleaned = filepath === '' ? '' : posix.normalize(filepath).replace(/\/$/, '');
  while (cleaned.startsWith('../')) cleaned = cleaned.slice(3);
  if (cleaned === '' || cleaned === '.' || cleaned === '..') return '';
  return trailingSlash ? `${cleaned}/` : cleaned;
}

// Where livekit/storage says the file went; without storage in the request (and none configured on
// the egress service) it stays on the egress's disk under its own name.
function uploadLocation(file: EncodedFileOutput | undefined, filename: string): string {
  const storage = file?.output;
  switch (storage?.case) {
    case 's3': {
      const s3 = storage.value;
      let endpoint = s3.endpoint || 's3.amazonaws.com';
      if (!s3.forcePathStyle) return `https://${s3.bucket}.${endpoint}/${filename}`;
      if (!endpoint.startsWith('http')) endpoint = `https://${endpoint}`;
      return `${endpoint}/${s3.bucket}/${filename}`;
    }
    case 'gcp':
      return `https://${storage.value.bucket}.storage.googleapis.com/${filename}`;
    case 'azure':
      return `https://${storage.value.accountName}.blob.core.windows.net/${filename}`;
    case 'aliOSS':
      return `https://${storage.value.bucket}.${storage.value.endpoint}/${filename}`;
    default:
      return filename;
  }
}

const redact = (value: string, name: string): string => (value ? name : '');

// livekit/protocol's egress.RedactUpload, applied to the request echoed in EgressInfo.
function redactUpload(file: EncodedFileOutput | undefined): void {
  const storage = file?.output;
  switch (storage?.case) {
    case 's3':
      storage.value.accessKey = redact(storage.value.accessKey, '{access_key}');
      storage.value.secret = redact(storage.value.secret, '{secret}');
      storage.value.assumeRoleExternalId = redact(storage.value.assumeRoleExternalId, '{external_id}');
      storage.value.sessionToken = redact(storage.value.sessionToken, '{session_token}');
      break;
    case 'gcp':
      storage.value.credentials = redact(storage.value.credentials, '{credentials}');
      break;
    case 'azure':
      storage.value.accountName = redact(storage.value.accountName, '{account_name}');
      storage.value.accountKey = redact(storage.value.accountKey, '{account_key}');
      break;
    case 'aliOSS':
      storage.value.accessKey = redact(storage.value.accessKey, '{access_key}');
      storage.value.secret = redact(storage.value.secret, '{secret}');
      break;
  }
}

function startingInfo(room: SimRoom, request: RoomCompositeEgressRequest, file: EncodedFileOutput): EgressInfo {
  const echoed = request.clone();
  redactUpload(egressFile(echoed));
  const sdkSource = request.audioOnly && !request.layout && !request.customBaseUrl;
  const fileInfo = new FileInfo({ filename: recordingFilename(file, room, request.audioOnly) });
  const now = nowNs();
  return new EgressInfo({
    egressId: newId('EG_'),
    roomId: room.sid,
    roomName: room.name,
    sourceType: sdkSource ? EgressSourceType.SDK : EgressSourceType.WEB,
    status: EgressStatus.EGRESS_STARTING,
    startedAt: now,
    updatedAt: now,
    request: { case: 'roomComposite', value: echoed },
    fileResults: [fileInfo],
    // the deprecated single result, filled while the file is the only output (the same FileInfo)
    result: { case: 'file', value: fileInfo },
  });
}

const isEnded = (egress: EgressRecord): boolean => egress.info.status >= EgressStatus.EGRESS_COMPLETE;

function egressTwirpJson(egress: EgressRecord): Record<string, unknown> {
  return egress.info.toJson(TWIRP_JSON) as Record<string, unknown>;
}

// ---------------------------------------------------------------------------------------------
// Default behaviour per method

type Simulation = (body: Body, world: World) => Behaviour;

function participantOf(world: World, body: Body): ParticipantJson | undefined {
  return world.rooms.get(str(body, 'room'))?.participants.get(str(body, 'identity'));
}

const participantNotFound = () => twirpError('not_found', 'participant not found');

function createSipParticipant(body: Body, world: World): Behaviour {
  const roomName = str(body, 'room_name');
  const callTo = str(body, 'sip_call_to');
  const trunkId = str(body, 'sip_trunk_id');
  if (!trunkId && !field(body, 'trunk')) return twirpError('invalid_argument', 'missing sip trunk id');
  if (!callTo) return twirpError('invalid_argument', 'missing sip call to');
  if (!roomName) return twirpError('invalid_argument', 'missing room name');
  const headers = stringMap(body, 'headers');
  const displayName = field(body, 'display_name');
  const invalid = headerProblem(headers);
  if (invalid) return invalid;
  if (typeof displayName === 'string' && displayName.length > MAX_DISPLAY_NAME) {
    return twirpError('invalid_argument', `DisplayName too long (max ${MAX_DISPLAY_NAME} characters)`);
  }
  const room = world.createRoom(roomName);
  const dialing = sipParticipant({
    phoneNumber: callTo,
    trunkPhoneNumber: str(body, 'sip_number') || undefined,
    callStatus: 'dialing',
    identity: str(body, 'participant_identity') || `sip_${callTo}`,
    name: str(body, 'participant_name') || undefined,
    trunkId: trunkId || undefined,
  });
  dialing.attributes = { ...stringMap(body, 'participant_attributes'), ...dialing.attributes };
  const metadata = str(body, 'participant_metadata');
  if (metadata) dialing.metadata = metadata;
  // The SIP participant joins and publishes before the INVITE goes out; the default callee answers at once.
  const answered: ParticipantJson = {
    ...dialing,
    tracks: [audioTrack()],
    attributes: { ...dialing.attributes, 'sip.callStatus': 'active' },
  };
  const stored = world.join(room, answered, dialing);
  const from = str(body, 'sip_number');
  world.sipCalls.push({
    callId: stored.attributes?.['sip.callID'] ?? '',
    room: roomName,
    participantIdentity: stored.identity,
    to: callTo,
    from,
    headers,
    fromDisplayName: typeof displayName === 'string' ? displayName || null : from,
    dtmf: str(body, 'dtmf'),
    playDialtone: bool(body, 'play_dialtone') || bool(body, 'play_ringtone'),
  });
  return ok(
    new SIPParticipantInfo({
      participantId: stored.sid,
      participantIdentity: stored.identity,
      roomName,
      sipCallId: stored.attributes?.['sip.callID'] ?? '',
    }).toJson(TWIRP_JSON) as Record<string, unknown>,
  );
}

function transferSipParticipant(body: Body, world: World): Behaviour {
  const roomName = str(body, 'room_name');
  const identity = str(body, 'participant_identity');
  if (!roomName) return twirpError('invalid_argument', 'Missing room name');
  if (!identity) return twirpError('invalid_argument', 'Missing participant identity');
  const headers = stringMap(body, 'headers');
  const invalid = headerProblem(headers);
  if (invalid) return invalid;
  const participant = world.rooms.get(roomName)?.participants.get(identity);
  if (!participant) return participantNotFound();
  const callId = participant.attributes?.['sip.callID'];
  if (!callId) return twirpError('invalid_argument', 'no SIP session associated with participant');
  world.transfers.push({
    callId,
    room: roomName,
    participantIdentity: identity,
    transferTo: str(body, 'transfer_to'),
    headers,
    ringingTimeoutS: seconds(body, 'ringing_timeout'),
    playDialtone: bool(body, 'play_dialtone'),
  });
  // The participant stays: the caller decides (leaveParticipant) when the transferred leg goes.
  return ok({});
}

function createRoom(body: Body, world: World): Behaviour {
  const name = str(body, 'name');
  if (!name) return twirpError('invalid_argument', 'room name is required');
  const settings: Partial<SimRoom> = { metadata: str(body, 'metadata') };
  if (num(body, 'empty_timeout')) settings.emptyTimeout = num(body, 'empty_timeout');
  if (num(body, 'departure_timeout')) settings.departureTimeout = num(body, 'departure_timeout');
  if (num(body, 'max_participants')) settings.maxParticipants = num(body, 'max_participants');
  return ok(roomTwirpJson(world.createRoom(name, settings)));
}

// livekit-server loads the room first and passes its ErrRoomNotFound through: not_found for a missing room.
function deleteRoom(body: Body, world: World): Behaviour {
  return world.finish(str(body, 'room'), 'ROOM_DELETED') ? ok({}) : twirpError('not_found', 'room not found');
}

function listRooms(body: Body, world: World): Behaviour {
  const names = field(body, 'names');
  const wanted = Array.isArray(names) && names.length > 0 ? new Set(names) : undefined;
  const rooms = [...world.rooms.values()].filter((r) => !wanted || wanted.has(r.name));
  return ok(new ListRoomsResponse({ rooms: rooms.map(roomMessage) }).toJson(TWIRP_JSON) as Record<string, unknown>);
}

function listParticipants(body: Body, world: World): Behaviour {
  const participants = [...(world.rooms.get(str(body, 'room'))?.participants.values() ?? [])];
  return ok(
    new ListParticipantsResponse({
      participants: participants.map((p) => ParticipantInfo.fromJson(asJson(p))),
    }).toJson(TWIRP_JSON) as Record<string, unknown>,
  );
}

function getParticipant(body: Body, world: World): Behaviour {
  const participant = participantOf(world, body);
  return participant ? ok(participantTwirpJson(participant)) : participantNotFound();
}

function removeParticipant(body: Body, world: World): Behaviour {
  const room = world.rooms.get(str(body, 'room'));
  const left = room && world.leave(room, str(body, 'identity'), 'PARTICIPANT_REMOVED');
  return left ? ok({}) : participantNotFound();
}

function applyAttributes(target: Record<string, string>, changes: Record<string, string>): Record<string, string> {
  const next = { ...target };
  for (const [key, value] of Object.entries(changes)) {
    if (value === '') delete next[key];
    else next[key] = value;
  }
  return next;
}

function updateParticipant(body: Body, world: World): Behaviour {
  const participant = participantOf(world, body);
  if (!participant) return participantNotFound();
  const metadata = str(body, 'metadata');
  const name = str(body, 'name');
  if (metadata) participant.metadata = metadata;
  if (name) participant.name = name;
  participant.attributes = applyAttributes(participant.attributes ?? {}, stringMap(body, 'attributes'));
  return ok(participantTwirpJson(participant));
}

function dispatchJson(d: SimDispatch): AgentDispatch {
  return new AgentDispatch({
    id: d.id,
    agentName: d.agentName,
    room: d.room,
    metadata: d.metadata,
    // LiveKit reports dispatch times in nanoseconds
    state: new AgentDispatchState({ createdAt: BigInt(d.createdAt) * 1_000_000n }),
  });
}

// Only records the dispatch: an agent joins when a test calls joinParticipant(room, agentParticipant()).
function createDispatch(body: Body, world: World): Behaviour {
  if (!str(body, 'room')) return twirpError('invalid_argument', 'room is required');
  if (!str(body, 'agent_name')) return twirpError('invalid_argument', 'agent name is required');
  const room = world.createRoom(str(body, 'room'));
  const dispatch: SimDispatch = {
    id: newId('AD_'),
    agentName: str(body, 'agent_name'),
    room: room.name,
    metadata: str(body, 'metadata'),
    createdAt: Date.now(),
  };
  room.dispatches.set(dispatch.id, dispatch);
  return ok(dispatchJson(dispatch).toJson(TWIRP_JSON) as Record<string, unknown>);
}

function listDispatch(body: Body, world: World): Behaviour {
  const id = str(body, 'dispatch_id');
  const all = [...(world.rooms.get(str(body, 'room'))?.dispatches.values() ?? [])];
  const dispatches = all.filter((d) => !id || d.id === id).map(dispatchJson);
  return ok(
    new ListAgentDispatchResponse({ agentDispatches: dispatches }).toJson(TWIRP_JSON) as Record<string, unknown>,
  );
}

function deleteDispatch(body: Body, world: World): Behaviour {
  const dispatches = world.rooms.get(str(body, 'room'))?.dispatches;
  const dispatch = dispatches?.get(str(body, 'dispatch_id'));
  if (!dispatches || !dispatch) return twirpError('not_found', 'dispatch not found');
  dispatches.delete(dispatch.id);
  return ok(dispatchJson(dispatch).toJson(TWIRP_JSON) as Record<string, unknown>);
}

// Twirp decodes the body into the request message, discarding unknown fields (both the proto and
// the JSON names are accepted); a value of the wrong type makes the request malformed.
function decodeRoomComposite(body: Body): RoomCompositeEgressRequest | undefined {
  try {
    return RoomCompositeEgressRequest.fromJson(asJson(body), { ignoreUnknownFields: true });
  } catch {
    return undefined;
  }
}

function startRoomCompositeEgress(body: Body, world: World): Behaviour {
  const request = decodeRoomComposite(body);
  if (!request) return twirpError('malformed', 'the json request could not be decoded');
  const room = world.rooms.get(request.roomName);
  if (request.roomName && !room) return twirpError('not_found', 'requested room does not exist');
  if (request.audioOnly && request.videoOnly) return invalidInput('audio_only and video_only');
  const otherOutputs = request.streamOutputs.length + request.segmentOutputs.length + request.imageOutputs.length;
  if (otherOutputs > 0 || (request.output.case !== undefined && request.output.case !== 'file')) {
    return twirpError('unimplemented', 'the stand-in simulates file outputs only');
  }
  if (request.fileOutputs.length > 1) return invalidInput('multiple file outputs');
  const file = egressFile(request);
  if (!file) return invalidInput('output');
  // without a room name the egress cannot mint the token it joins the room with
  if (!room) return invalidInput('token or api key/secret');
  return ok(egressTwirpJson(world.startEgress(room, request, file)));
}

const egressNotFound = () => twirpError('not_found', 'egress does not exist');

function stopEgress(body: Body, world: World): Behaviour {
  const egress = world.egresses.get(str(body, 'egress_id'));
  if (!egress) return egressNotFound();
  if (isEnded(egress)) {
    return twirpError('failed_precondition', `egress with status ${EgressStatus[egress.info.status]} cannot be stopped`);
  }
  world.stopEgress(egress);
  return ok(egressTwirpJson(egress));
}

function listEgress(body: Body, world: World): Behaviour {
  const egressId = str(body, 'egress_id');
  const roomName = str(body, 'room_name');
  const active = bool(body, 'active');
  let items: EgressRecord[];
  if (egressId) {
    const egress = world.egresses.get(egressId);
    if (!egress) return egressNotFound();
    items = [egress];
  } else {
    items = [...world.egresses.values()].filter((e) => (!roomName || e.roomName === roomName) && (!active || !isEnded(e)));
  }
  return ok(new ListEgressResponse({ items: items.map((e) => e.info) }).toJson(TWIRP_JSON) as Record<string, unknown>);
}

const SIMULATIONS: Record<string, Simulation> = {
  CreateSIPParticipant: createSipParticipant,
  TransferSIPParticipant: transferSipParticipant,
  CreateRoom: createRoom,
  DeleteRoom: deleteRoom,
  ListRooms: listRooms,
  ListParticipants: listParticipants,
  GetParticipant: getParticipant,
  RemoveParticipant: removeParticipant,
  UpdateParticipant: updateParticipant,
  CreateDispatch: createDispatch,
  ListDispatch: listDispatch,
  DeleteDispatch: deleteDispatch,
  StartRoomCompositeEgress: startRoomCompositeEgress,
  StopEgress: stopEgress,
  ListEgress: listEgress,
};

// ---------------------------------------------------------------------------------------------
// HTTP plumbing

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function parseJsonObject(text: string): Body | undefined {
  if (text.trim() === '') return {};
  try {
    const value: unknown = JSON.parse(text);
    return value && typeof value === 'object' && !Array.isArray(value) ? (value as Body) : undefined;
  } catch {
    return undefined;
  }
}

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  // writeHead(status) without a reason lets Node send the standard status text: the SDK names its error after it.
  res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

function sendTwirpError(res: ServerResponse, error: TwirpErrorReply): void {
  const body: Record<string, unknown> = { code: error.code, msg: error.msg };
  if (error.meta && Object.keys(error.meta).length > 0) body.meta = error.meta;
  send(res, error.status ?? twirpStatus(error.code), 'application/json', JSON.stringify(body));
}

const badRoute = (msg: string, req: IncomingMessage, path: string): TwirpErrorReply => ({
  code: 'bad_route',
  msg,
  meta: { twirp_invalid_route: `${req.method} ${path}` },
});

type AuthOutcome = { claims: Claims } | { failure: string } | { anonymous: true };

// LiveKit's API-key middleware; its failures are plain-text 401s, not Twirp errors.
async function authenticate(header: string | undefined, apiKey: string, apiSecret: string): Promise<AuthOutcome> {
  if (!header) return { anonymous: true };
  if (!header.startsWith('Bearer ')) return { failure: 'invalid authorization header. Must start with Bearer ' };
  const token = header.slice('Bearer '.length);
  let issuer: string | undefined;
  try {
    issuer = decodeJwt(token).iss;
  } catch {
    return { failure: 'invalid authorization token' };
  }
  if (issuer !== apiKey) return { failure: `invalid API key: ${issuer ?? ''}` };
  try {
    return { claims: await new TokenVerifier(apiKey, apiSecret).verify(token) };
  } catch (error) {
    return { failure: `invalid token: ${token}, error: ${error instanceof Error ? error.message : String(error)}` };
  }
}

function isJsonContentType(header: string | undefined): boolean {
  return (header ?? '').split(';')[0]?.trim().toLowerCase() === 'application/json';
}

export async function startLiveKitStandIn(options: StandInOptions = {}): Promise<LiveKitStandIn> {
  const apiKey = options.apiKey ?? DEFAULT_API_KEY;
  const apiSecret = options.apiSecret ?? DEFAULT_API_SECRET;
  const webhooks = options.webhookUrl
    ? createWebhookSender({ url: options.webhookUrl, apiKey, apiSecret, retryDelaysMs: options.webhookRetryDelaysMs })
    : undefined;
  const requests: RecordedRequest[] = [];
  const scripts = new Map<string, Behaviour[]>();
  const handlers = new Map<string, Handler>();
  const sockets = new Set<Socket>();
  // pending waits: close() cancels the timer and resolves the wait (whatever follows checks `closed`)
  const timers = new Map<NodeJS.Timeout, () => void>();
  const pending = new Set<Promise<void>>();
  let closed = false;

  function wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        resolve();
      }, ms);
      timers.set(timer, resolve);
    });
  }

  const world = createWorld((event) => webhooks?.send(event) ?? Promise.resolve(), {
    after(ms, fn, gate) {
      const done = Promise.all([gate, wait(ms)]).then(() => {
        if (!closed) fn();
      });
      pending.add(done);
      void done.finally(() => pending.delete(done));
    },
    egressStartDelayMs: options.egressStartDelayMs ?? 50,
    egressEndDelayMs: options.egressEndDelayMs ?? 50,
  });

  function inProgressEgress(egressId: string): EgressRecord | undefined {
    const egress = world.egresses.get(egressId);
    return egress && !isEnded(egress) ? egress : undefined;
  }

  async function simulate(req: RecordedRequest): Promise<Behaviour> {
    const simulation = SIMULATIONS[req.method];
    if (!simulation) return twirpError('unimplemented', `the stand-in does not simulate ${req.method}`);
    return simulation(req.body, world);
  }

  async function behaviourFor(req: RecordedRequest): Promise<Behaviour> {
    const scripted = scripts.get(req.method)?.shift();
    if (scripted) return scripted;
    const handler = handlers.get(req.method);
    try {
      return handler ? await handler(req, standIn) : await simulate(req);
    } catch (error) {
      return twirpError('internal', error instanceof Error ? error.message : String(error));
    }
  }

  function reply(req: IncomingMessage, res: ServerResponse, behaviour: Behaviour): void {
    if ('ok' in behaviour) send(res, 200, 'application/json', JSON.stringify(behaviour.ok));
    else if ('error' in behaviour) sendTwirpError(res, behaviour.error);
    else if ('raw' in behaviour) send(res, behaviour.raw.status, behaviour.raw.contentType, behaviour.raw.body);
    else if ('reset' in behaviour) req.socket.destroy();
    // `hang`: leave the response open; close() destroys the socket.
  }

  function record(req: IncomingMessage, path: string, body: Body | undefined): RecordedRequest {
    const match = /^\/twirp\/livekit\.([^/]+)\/([^/]+)$/.exec(path);
    const requestId = req.headers['x-livekit-request-id'];
    const recorded: RecordedRequest = {
      service: match?.[1] ?? '',
      method: match?.[2] ?? '',
      body: body ?? {},
      claims: {},
      requestId: typeof requestId === 'string' ? requestId : null,
      at: Date.now(),
    };
    requests.push(recorded);
    return recorded;
  }

  // The same checks, in the same order, as LiveKit: auth middleware, mux, Twirp routing, decoding, grants.
  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://stand-in').pathname;
    const text = await readBody(req);
    const body = parseJsonObject(text);
    const recorded = path.startsWith('/twirp/') ? record(req, path, body) : undefined;

    const auth = await authenticate(req.headers.authorization, apiKey, apiSecret);
    if ('failure' in auth) return send(res, 401, 'text/plain; charset=utf-8', auth.failure);
    const claims: Claims = 'claims' in auth ? auth.claims : {};
    if (recorded) recorded.claims = claims as Record<string, unknown>;

    if (!recorded || !SERVICES.has(recorded.service)) {
      return send(res, 404, 'text/plain; charset=utf-8', '404 page not found\n');
    }
    if (req.method !== 'POST') {
      return sendTwirpError(res, badRoute(`unsupported method "${req.method}" (only POST is allowed)`, req, path));
    }
    if (!isJsonContentType(req.headers['content-type'])) {
      const msg = `unexpected Content-Type: "${req.headers['content-type'] ?? ''}" (the stand-in speaks JSON only)`;
      return sendTwirpError(res, badRoute(msg, req, path));
    }
    const known = METHOD_SERVICE[recorded.method] === recorded.service;
    const routable = known || handlers.has(recorded.method) || (scripts.get(recorded.method)?.length ?? 0) > 0;
    if (!routable) return sendTwirpError(res, badRoute(`no handler for path "${path}"`, req, path));
    if (!body) return sendTwirpError(res, { code: 'malformed', msg: 'the json request could not be decoded' });
    const grant = known ? GRANTS[recorded.method] : undefined;
    if (grant && !grant(claims, body)) return sendTwirpError(res, { code: 'unauthenticated', msg: 'permissions denied' });

    const behaviour = await behaviourFor(recorded);
    if (behaviour.delayMs) await wait(behaviour.delayMs);
    if (!closed) reply(req, res, behaviour);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (res.headersSent || closed) return;
      sendTwirpError(res, { code: 'internal', msg: error instanceof Error ? error.message : String(error) });
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  const standIn: LiveKitStandIn = {
    url: `http://127.0.0.1:${port}`,
    apiKey,
    apiSecret,
    requests,
    requestsFor: (method) => requests.filter((r) => r.method === method),
    script(method, ...replies) {
      scripts.set(method, [...(scripts.get(method) ?? []), ...replies]);
    },
    setHandler(method, handler) {
      if (handler) handlers.set(method, handler);
      else handlers.delete(method);
    },
    simulate,
    rooms: world.rooms,
    sipCalls: world.sipCalls,
    transfers: world.transfers,
    webhooks,
    createRoom: (roomName) => world.createRoom(roomName),
    joinParticipant(roomName, participant) {
      const withTracks =
        participant.kind === 'SIP' && !participant.tracks?.length ? { ...participant, tracks: [audioTrack()] } : participant;
      return world.join(world.createRoom(roomName), withTracks);
    },
    leaveParticipant(roomName, identity, reason) {
      const room = world.rooms.get(roomName);
      return room && world.leave(room, identity, reason);
    },
    finishRoom: (roomName, reason = 'ROOM_CLOSED') => world.finish(roomName, reason),
    setAttributes(roomName, identity, attributes) {
      const participant = world.rooms.get(roomName)?.participants.get(identity);
      if (participant) participant.attributes = applyAttributes(participant.attributes ?? {}, attributes);
      return participant;
    },
    egresses: world.egresses,
    failEgress(egressId, error) {
      const egress = inProgressEgress(egressId);
      if (egress) world.failEgress(egress, error);
      return egress;
    },
    endEgress(egressId) {
      const egress = inProgressEgress(egressId);
      if (egress) world.endEgress(egress);
      return egress;
    },
    loseEgressWebhooks(egressId) {
      const egress = world.egresses.get(egressId);
      if (egress) egress.webhooksLost = true;
      return egress !== undefined;
    },
    async settled() {
      // Loop: a delivered webhook can release a transition (an egress end waits for room_finished).
      do {
        await Promise.all(pending);
        await webhooks?.idle();
      } while (pending.size > 0);
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const [timer, resolve] of timers) {
        clearTimeout(timer);
        resolve();
      }
      timers.clear();
      webhooks?.close();
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await stopped;
    },
  };
  return standIn;
}
