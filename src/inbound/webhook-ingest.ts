// Turns a verified LiveKit webhook into at most one event for one call (CP-02), or a new
// inbound call. Events of a room are handled one at a time, so a room's first SIP participant
// creates exactly one session; an event id is applied at most once.
import { createHash } from 'node:crypto';
import type { CallSettings } from '../../machines/call.types.js';
import type { IncomingWebhook, WebhookParticipant } from '../livekit/webhook-event.js';
import type { Logger } from '../obs/logger.js';
import type { CallRuntime, IncomingEvent } from '../calls/call-runtime.js';
import { SESSION_ATTRIBUTE } from '../outbound/outbound-calls.js';
import { VersionConflictError } from '../store/call-store.port.js';
import type { CallStore, RoomRef } from '../store/call-store.port.js';

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
  logger: Logger;
  settings: CallSettings;
}

/** A UUID-shaped id from the LiveKit room (sid when known) and the caller's identity. */
export function inboundSessionId(room: RoomRef, identity: string): string {
  const hex = createHash('sha256').update(`inbound:${room.sid ?? room.name}:${identity}`).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/** participant_left and participant_connection_aborted (one that never became active) both mean gone. */
const LEFT = new Set(['participant_left', 'participant_connection_aborted']);

export function createWebhookIngest(options: WebhookIngestOptions) {
  const { runtime, store, settings } = options;

  async function sendTo(sessionId: string | undefined, event: IncomingEvent, webhookId: string): Promise<IngestResult> {
    if (!sessionId) return { outcome: 'ignored', sessionId: null };
    const result = await runtime.send(sessionId, { ...event, webhookId: webhookId || undefined });
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
      callerNumber: attributes['sip.phoneNumber'] ?? null,
      calleeNumber: attributes['sip.trunkPhoneNumber'] ?? null,
      roomName: room.name,
      roomSid: room.sid,
      sipIdentity: caller.identity,
      sipCallId: attributes['sip.callID'] ?? null,
      sipCallStatus: attributes['sip.callStatus'] ?? null,
      agentName: null,
      metadata: null,
      settings,
    };
    try {
      await runtime.create(input, webhookId || undefined);
    } catch (err) {
      if (err instanceof VersionConflictError) return { outcome: 'duplicate', sessionId };
      throw err;
    }
    return { outcome: 'applied', sessionId };
  }

  async function route(webhook: IncomingWebhook, room: RoomRef): Promise<IngestResult> {
    const participant = webhook.participant;
    const send = (sessionId: string | undefined, event: IncomingEvent) => sendTo(sessionId, event, webhook.id);
    const ref = participant ? { identity: participant.identity, sid: participant.sid } : null;
    switch (webhook.event) {
      case 'room_started':
        // Binds an outbound call's room (created by name) to its sid.
        return room.sid
          ? send(await store.findLiveByRoom({ sid: null, name: room.name }), { type: 'livekit.room_started', roomSid: room.sid })
          : { outcome: 'ignored', sessionId: null };
      case 'room_finished':
        return send(await store.findLiveByRoom(room), { type: 'livekit.room_finished' });
      case 'participant_joined': {
        if (!participant || !ref) break;
        const sessionId = await store.findLiveByRoom(room);
        if (participant.kind === 'agent') return send(sessionId, { type: 'livekit.agent_joined', participant: ref });
        if (participant.kind !== 'sip') break;
        // The phone leg of an outbound call says whose it is: a late webhook about it (after the
        // call ended) must not look like a new inbound caller.
        const owner = participant.attributes[SESSION_ATTRIBUTE];
        if (!sessionId && !owner) return createInbound(room, participant, webhook.id);
        return send(sessionId ?? owner, {
          type: 'livekit.sip_joined',
          participant: ref,
          callStatus: participant.attributes['sip.callStatus'] ?? null,
          sipCallId: participant.attributes['sip.callID'] ?? null,
        });
      }
      default:
        if (!LEFT.has(webhook.event) || !participant || !ref) break;
        if (participant.kind === 'agent') {
          return send(await store.findLiveByRoom(room), {
            type: 'livekit.agent_left',
            participant: ref,
            reason: participant.disconnectReason,
          });
        }
        if (participant.kind !== 'sip') break;
        return send((await store.findLiveBySipIdentity(participant.identity)) ?? (await store.findLiveByRoom(room)), {
          type: 'livekit.sip_left',
          participant: ref,
          reason: participant.disconnectReason,
        });
    }
    // track_published / track_unpublished are not answer signals (SPEC §3); egress and ingress
    // events and ordinary participants are not about calls.
    return { outcome: 'ignored', sessionId: null };
  }

  return {
    async ingest(webhook: IncomingWebhook): Promise<IngestResult> {
      const room = webhook.room;
      if (!room) return { outcome: 'ignored', sessionId: null };
      // LiveKit delivers a room's events one at a time; so does the plane, across requests.
      return runtime.serialize(`room:${room.name}`, async () => {
        if (webhook.id && (await store.seenWebhook(webhook.id))) return { outcome: 'duplicate', sessionId: null };
        const result = await route(webhook, room);
        if (webhook.id) await store.rememberWebhook(webhook.id);
        return result;
      });
    },
  };
}

export type WebhookIngest = ReturnType<typeof createWebhookIngest>;
