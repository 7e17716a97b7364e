// Turns a verified LiveKit webhook into at most one event for one call (CP-02), or a new
// inbound call. Events of a room are handled one at a time, so a room's first SIP participant
// creates exactly one session; an event id is applied at most once.
import type { CallSettings } from '../../machines/call.types.js';
import { inboundSessionId, SESSION_ATTRIBUTE, SIP_ATTRIBUTES, sipHeadersOf } from '../livekit/naming.js';
import type { IncomingWebhook, WebhookParticipant } from '../livekit/webhook-event.js';
import type { CallRuntime, IncomingEvent } from '../calls/call-runtime.js';
import { KeyedQueue } from '../calls/keyed-queue.js';
import { VersionConflictError } from '../store/errors.js';
import type { CallRecord, CallStore, RoomRef } from '../store/call-store.port.js';

/**
 * What became of a webhook: `applied`, it changed a call (or created one); `duplicate`, seen
 * before (LiveKit retried) and nothing changes; `ignored`, not about a call the plane tracks, or
 * not something that changes a call.
 */
export const INGEST_OUTCOMES = Object.freeze(['applied', 'duplicate', 'ignored'] as const);
export type IngestOutcome = (typeof INGEST_OUTCOMES)[number];

export interface IngestResult {
  outcome: IngestOutcome;
  sessionId: string | null;
}

export interface WebhookIngestOptions {
  runtime: CallRuntime;
  store: CallStore;
  settings: CallSettings;
}

/** participant_left and participant_connection_aborted (one that never became active) both mean gone. */
const LEFT = new Set(['participant_left', 'participant_connection_aborted']);
/** What LiveKit says of an egress (a call's recording); egress_ended often comes after the call ended. */
const EGRESS = new Set(['egress_started', 'egress_updated', 'egress_ended']);

export function createWebhookIngest(options: WebhookIngestOptions) {
  const { runtime, store, settings } = options;

  async function sendTo(sessionId: string | undefined, event: IncomingEvent, webhookId: string, stored?: CallRecord): Promise<IngestResult> {
    if (!sessionId) return { outcome: 'ignored', sessionId: null };
    const result = await runtime.send(sessionId, { ...event, webhookId: webhookId || undefined }, stored?.id === sessionId ? stored : undefined);
    return { outcome: result.outcome === 'applied' ? 'applied' : 'ignored', sessionId };
  }

  async function createInbound(room: RoomRef, caller: WebhookParticipant, webhookId: string): Promise<IngestResult> {
    const attributes = caller.attributes;
    // The id follows from the room and the caller, so a retried participant_joined whose first
    // delivery created the call (and whose answer was lost with a replica) finds it again.
    const sessionId = inboundSessionId(room, caller.identity);
    const input = {
      sessionId,
      direction: 'inbound' as const,
      callerNumber: attributes[SIP_ATTRIBUTES.phoneNumber] ?? null,
      calleeNumber: attributes[SIP_ATTRIBUTES.trunkPhoneNumber] ?? null,
      roomName: room.name,
      roomSid: room.sid,
      sipIdentity: caller.identity,
      sipCallId: attributes[SIP_ATTRIBUTES.callId] ?? null,
      sipCallStatus: attributes[SIP_ATTRIBUTES.callStatus] ?? null,
      agentName: null,
      metadata: null,
      settings,
    };
    // The caller's SIP headers, as LiveKit reports them when the call starts; it has no display name for inbound callers.
    const sipHeaders = sipHeadersOf(attributes);
    const callOptions = sipHeaders ? { sipHeaders, displayName: null, dtmf: null } : undefined;
    try {
      await runtime.create(input, { webhookId: webhookId || undefined, callOptions });
    } catch (err) {
      if (err instanceof VersionConflictError) return { outcome: 'duplicate', sessionId };
      throw err;
    }
    return { outcome: 'applied', sessionId };
  }

  /** `live`: the live call in the webhook's room, as stored (lookupWebhook) */
  async function route(webhook: IncomingWebhook, room: RoomRef | null, live: CallRecord | undefined): Promise<IngestResult> {
    const participant = webhook.participant;
    const send = (sessionId: string | undefined, event: IncomingEvent) => sendTo(sessionId, event, webhook.id, live);
    const liveId = live?.id;
    if (EGRESS.has(webhook.event)) {
      const egress = webhook.egress;
      if (!egress?.egressId) return { outcome: 'ignored', sessionId: null };
      // By egress once the call knows it; before the start answer is stored, the live call of the room.
      const sessionId = (await store.findByEgress(egress.egressId)) ?? liveId;
      return send(sessionId, { type: 'recording.updated', recording: egress });
    }
    if (!room) return { outcome: 'ignored', sessionId: null };
    const ref = participant ? { identity: participant.identity, sid: participant.sid } : null;
    switch (webhook.event) {
      case 'room_started':
        // Binds an outbound call's room (created by name) to its sid.
        return room.sid
          ? send(await store.findLiveByRoom({ sid: null, name: room.name }), { type: 'livekit.room_started', roomSid: room.sid })
          : { outcome: 'ignored', sessionId: null };
      case 'room_finished':
        return send(liveId, { type: 'livekit.room_finished' });
      case 'participant_joined': {
        if (!participant || !ref) break;
        const sessionId = liveId;
        if (participant.kind === 'agent') return send(sessionId, { type: 'livekit.agent_joined', participant: ref });
        if (participant.kind !== 'sip') break;
        // The phone leg of an outbound call says whose it is: a late webhook about it (after the
        // call ended) must not look like a new inbound caller.
        const owner = participant.attributes[SESSION_ATTRIBUTE];
        if (!sessionId && !owner) return createInbound(room, participant, webhook.id);
        return send(sessionId ?? owner, {
          type: 'livekit.sip_joined',
          participant: ref,
          callStatus: participant.attributes[SIP_ATTRIBUTES.callStatus] ?? null,
          sipCallId: participant.attributes[SIP_ATTRIBUTES.callId] ?? null,
        });
      }
      default:
        if (!LEFT.has(webhook.event) || !participant || !ref) break;
        if (participant.kind === 'agent') {
          return send(liveId, {
            type: 'livekit.agent_left',
            participant: ref,
            reason: participant.disconnectReason,
          });
        }
        if (participant.kind !== 'sip') break;
        // By room first: one number calling twice at once gives two live calls the same identity.
        return send(liveId ?? (await liveInRoom(await store.findLiveBySipIdentity(participant.identity), room)), {
          type: 'livekit.sip_left',
          participant: ref,
          reason: participant.disconnectReason,
        });
    }
    // track_published / track_unpublished are not answer signals (docs/call-lifecycle.md); ingress
    // events and ordinary participants are not about calls.
    return { outcome: 'ignored', sessionId: null };
  }

  /** The call, if it is of this room (by name: a reopened room has a new sid). */
  async function liveInRoom(sessionId: string | undefined, room: RoomRef): Promise<string | undefined> {
    if (!sessionId) return undefined;
    return (await store.get(sessionId))?.context.roomName === room.name ? sessionId : undefined;
  }

  /** LiveKit delivers a room's events one at a time; so does the plane, across requests. */
  const rooms = new KeyedQueue();

  return {
    async ingest(webhook: IncomingWebhook): Promise<IngestResult> {
      const room = webhook.room;
      // An egress event names its room, but one of an older server may not: its egress is the key then.
      const key = room?.name ?? (webhook.egress?.egressId ? `egress:${webhook.egress.egressId}` : null);
      if (key === null) return { outcome: 'ignored', sessionId: null };
      return rooms.run(key, async () => {
        const lookup = await store.lookupWebhook(webhook.id || null, room);
        if (lookup.seen) return { outcome: 'duplicate', sessionId: null };
        const result = await route(webhook, room, lookup.call);
        // An applied webhook was remembered with the change it made (the same commit).
        if (webhook.id && result.outcome !== 'applied') await store.rememberWebhook(webhook.id);
        return result;
      });
    },
    /** Resolves once every webhook taken has been handled. */
    idle: () => rooms.idle(),
  };
}

export type WebhookIngest = ReturnType<typeof createWebhookIngest>;
