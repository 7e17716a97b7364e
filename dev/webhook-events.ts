// Builders for webhook bodies shaped exactly like LiveKit's: protobuf JSON of `livekit.WebhookEvent`
// (camelCase keys, zero values omitted, int64 as decimal strings, enums as names).
// The stand-in also stores its simulated participants in this shape, so what it sends and what
// tests build by hand can never drift apart.
import { randomInt } from 'node:crypto';

export interface TrackJson {
  sid: string;
  type: 'AUDIO' | 'VIDEO' | 'DATA';
  source?: 'CAMERA' | 'MICROPHONE' | 'SCREEN_SHARE' | 'SCREEN_SHARE_AUDIO';
  name?: string;
  mimeType?: string;
  muted?: boolean;
  [k: string]: unknown;
}

export interface ParticipantJson {
  sid: string;
  identity: string;
  state?: 'JOINING' | 'JOINED' | 'ACTIVE' | 'DISCONNECTED';
  tracks?: TrackJson[];
  metadata?: string;
  joinedAt?: string;
  joinedAtMs?: string;
  name?: string;
  /** absent for an ordinary participant (STANDARD is the zero value) */
  kind?: 'INGRESS' | 'EGRESS' | 'SIP' | 'AGENT' | 'CONNECTOR' | 'BRIDGE';
  attributes?: Record<string, string>;
  /** absent when UNKNOWN_REASON (the zero value) */
  disconnectReason?: string;
  [k: string]: unknown;
}

export interface RoomJson {
  sid: string;
  name: string;
  [k: string]: unknown;
}

export type WebhookEventJson = {
  event: string;
  id: string;
  createdAt: string;
  room?: RoomJson;
  participant?: ParticipantJson;
  track?: Record<string, unknown>;
  [k: string]: unknown;
};

/** `livekit.FileInfo` in protobuf JSON: int64 times (ns), duration (ns) and size (bytes) as strings */
export interface FileInfoJson {
  filename?: string;
  startedAt?: string;
  endedAt?: string;
  duration?: string;
  size?: string;
  location?: string;
}

/** `livekit.EgressInfo` in protobuf JSON (camelCase, zero values omitted); times are int64 nanoseconds */
export interface EgressInfoJson {
  egressId: string;
  roomId?: string;
  roomName?: string;
  /** an EgressStatus name; absent when EGRESS_STARTING (the zero value) */
  status?: 'EGRESS_ACTIVE' | 'EGRESS_ENDING' | 'EGRESS_COMPLETE' | 'EGRESS_FAILED' | 'EGRESS_ABORTED' | 'EGRESS_LIMIT_REACHED';
  startedAt?: string;
  endedAt?: string;
  updatedAt?: string;
  fileResults?: FileInfoJson[];
  error?: string;
  errorCode?: number;
  details?: string;
  [k: string]: unknown;
}

export type SipCallStatus = 'dialing' | 'ringing' | 'automation' | 'active' | 'hangup';

const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** LiveKit ids are a type prefix plus 12 base62 characters: `RM_`, `PA_`, `TR_`, `EV_`, `SCL_`, `ST_`, `AD_`... */
export function newId(prefix: string, length = 12): string {
  let suffix = '';
  for (let i = 0; i < length; i += 1) suffix += ALPHANUMERIC[randomInt(ALPHANUMERIC.length)];
  return `${prefix}${suffix}`;
}

export function nowSeconds(): string {
  return String(Math.floor(Date.now() / 1000));
}

// LiveKit's default codec list; present on every room it reports.
const DEFAULT_CODECS = ['audio/opus', 'audio/red', 'video/VP8', 'video/H264', 'video/VP9', 'video/AV1'];

export function roomJson(name: string, sid: string = newId('RM_')): RoomJson {
  const nowMs = Date.now();
  return {
    sid,
    name,
    emptyTimeout: 300,
    departureTimeout: 20,
    creationTime: String(Math.floor(nowMs / 1000)),
    creationTimeMs: String(nowMs),
    enabledCodecs: DEFAULT_CODECS.map((mime) => ({ mime })),
  };
}

export function audioTrack(opts: { sid?: string; name?: string } = {}): TrackJson {
  const track: TrackJson = {
    sid: opts.sid ?? newId('TR_AM'),
    type: 'AUDIO',
    source: 'MICROPHONE',
    mimeType: 'audio/opus',
    mid: '0',
  };
  if (opts.name) track.name = opts.name;
  return track;
}

function joinedNow(): Pick<ParticipantJson, 'joinedAt' | 'joinedAtMs'> {
  const nowMs = Date.now();
  return { joinedAt: String(Math.floor(nowMs / 1000)), joinedAtMs: String(nowMs) };
}

const PUBLISHER_PERMISSION = { canSubscribe: true, canPublish: true, canPublishData: true };

export interface SipParticipantOptions {
  /** the remote party: the caller for inbound, the dialed number for outbound */
  phoneNumber: string;
  /** the number dialed for inbound, the from-number for outbound */
  trunkPhoneNumber?: string;
  callStatus?: SipCallStatus;
  /** default `sip_<phoneNumber>`, LiveKit's identity for inbound callers */
  identity?: string;
  sid?: string;
  name?: string;
  callId?: string;
  trunkId?: string;
  /** only inbound calls are matched by a dispatch rule, so only they carry `sip.ruleID` */
  ruleId?: string;
  /**
   * SIP headers of the caller's INVITE that the trunk maps to attributes (`include_headers`):
   * LiveKit reports each as `sip.h.<lower-case name>`.
   */
  headers?: Record<string, string>;
  /** extra or overriding attributes (carrier ids, ...) */
  attributes?: Record<string, string>;
}

/** The attribute prefix of a SIP participant's mapped headers (livekit/protocol's AttrSIPHeaderPrefix). */
const SIP_HEADER_ATTRIBUTE_PREFIX = 'sip.h.';

export function sipParticipant(opts: SipParticipantOptions): ParticipantJson {
  const attributes: Record<string, string> = {
    'sip.callID': opts.callId ?? newId('SCL_'),
    'sip.callStatus': opts.callStatus ?? 'active',
    'sip.phoneNumber': opts.phoneNumber,
    'sip.trunkID': opts.trunkId ?? newId('ST_'),
  };
  if (opts.trunkPhoneNumber) attributes['sip.trunkPhoneNumber'] = opts.trunkPhoneNumber;
  if (opts.ruleId) attributes['sip.ruleID'] = opts.ruleId;
  for (const [name, value] of Object.entries(opts.headers ?? {})) attributes[`${SIP_HEADER_ATTRIBUTE_PREFIX}${name.toLowerCase()}`] = value;
  return {
    sid: opts.sid ?? newId('PA_'),
    identity: opts.identity ?? `sip_${opts.phoneNumber}`,
    state: 'ACTIVE',
    ...joinedNow(),
    name: opts.name ?? `Phone ${opts.phoneNumber}`,
    permission: { ...PUBLISHER_PERMISSION },
    kind: 'SIP',
    attributes: { ...attributes, ...opts.attributes },
  };
}

export function agentParticipant(opts: { identity?: string; sid?: string; agentName?: string } = {}): ParticipantJson {
  const participant: ParticipantJson = {
    sid: opts.sid ?? newId('PA_'),
    // agents join as `agent-<job id>`
    identity: opts.identity ?? `agent-${newId('AJ_')}`,
    state: 'ACTIVE',
    ...joinedNow(),
    permission: { ...PUBLISHER_PERMISSION, canUpdateMetadata: true },
    kind: 'AGENT',
  };
  // The stand-in's convention for telling agents apart; LiveKit itself does not report the agent name.
  if (opts.agentName) participant.name = opts.agentName;
  return participant;
}

export function standardParticipant(opts: { identity?: string; sid?: string } = {}): ParticipantJson {
  return {
    sid: opts.sid ?? newId('PA_'),
    identity: opts.identity ?? `user-${newId('', 6)}`,
    state: 'ACTIVE',
    ...joinedNow(),
    permission: { ...PUBLISHER_PERMISSION },
  };
}

function baseEvent(event: string, fields: Omit<WebhookEventJson, 'event' | 'id' | 'createdAt'>): WebhookEventJson {
  return { event, ...fields, id: newId('EV_'), createdAt: nowSeconds() };
}

// In track events LiveKit reports the room and participant by sid and name/identity only.
function roomRef(room: RoomJson): RoomJson {
  return { sid: room.sid, name: room.name };
}

function participantRef(p: ParticipantJson): ParticipantJson {
  return { sid: p.sid, identity: p.identity };
}

function departed(p: ParticipantJson, reason: string | undefined): ParticipantJson {
  const copy: ParticipantJson = { ...p, state: 'DISCONNECTED' };
  delete copy.disconnectReason;
  if (reason && reason !== 'UNKNOWN_REASON') copy.disconnectReason = reason;
  return copy;
}

// Egress events name their room by sid and name only (livekit-server's toMinimalRoomProto).
function egressRoom(info: EgressInfoJson): RoomJson {
  const room: Record<string, string> = {};
  if (info.roomId) room.sid = info.roomId;
  if (info.roomName) room.name = info.roomName;
  return room as RoomJson;
}

function firstTrack(p: ParticipantJson): TrackJson {
  return p.tracks?.[0] ?? audioTrack();
}

export const webhookEvents = {
  roomStarted(room: RoomJson): WebhookEventJson {
    return baseEvent('room_started', { room });
  },
  roomFinished(room: RoomJson): WebhookEventJson {
    return baseEvent('room_finished', { room });
  },
  participantJoined(room: RoomJson, p: ParticipantJson): WebhookEventJson {
    return baseEvent('participant_joined', { room, participant: p });
  },
  /** `reason` is a DisconnectReason name; omitted means UNKNOWN_REASON (no field, as LiveKit sends it) */
  participantLeft(room: RoomJson, p: ParticipantJson, reason?: string): WebhookEventJson {
    return baseEvent('participant_left', { room, participant: departed(p, reason) });
  },
  /** a participant that never became active: LiveKit sends this instead of the joined/left pair */
  participantConnectionAborted(room: RoomJson, p: ParticipantJson, reason?: string): WebhookEventJson {
    return baseEvent('participant_connection_aborted', { room, participant: departed(p, reason) });
  },
  /** `track` defaults to the participant's first track, else a fresh microphone track */
  trackPublished(room: RoomJson, p: ParticipantJson, track: TrackJson = firstTrack(p)): WebhookEventJson {
    return baseEvent('track_published', { room: roomRef(room), participant: participantRef(p), track });
  },
  trackUnpublished(room: RoomJson, p: ParticipantJson, track: TrackJson = firstTrack(p)): WebhookEventJson {
    return baseEvent('track_unpublished', { room: roomRef(room), participant: participantRef(p), track });
  },
  // livekit-server sends egress_started when the egress is created (still EGRESS_STARTING),
  // egress_updated when it turns EGRESS_ACTIVE and again EGRESS_ENDING, and egress_ended for every
  // final status (COMPLETE, FAILED, ABORTED, LIMIT_REACHED); each carries the whole EgressInfo.
  egressStarted(info: EgressInfoJson): WebhookEventJson {
    return baseEvent('egress_started', { room: egressRoom(info), egressInfo: info });
  },
  egressUpdated(info: EgressInfoJson): WebhookEventJson {
    return baseEvent('egress_updated', { room: egressRoom(info), egressInfo: info });
  },
  egressEnded(info: EgressInfoJson): WebhookEventJson {
    return baseEvent('egress_ended', { room: egressRoom(info), egressInfo: info });
  },
};
