// Turns a verified LiveKit webhook into at most one event for one call (CP-02), or a new
// inbound call. Events of a room are handled one at a time, so a room's first SIP participant
// creates exactly one session; an event id is applied at most once.
import type { CallSettings } from '../../machines/call.types.js';
import type { IncomingWebhook, WebhookParticipant } from '../livekit/webhook-event.js';
import type { Logger } from '../obs/logger.js';
import type { CallRuntime, IncomingEvent } from './call-runtime.js';
import { SESSION_ATTRIBUTE } from './outbound.js';
import type { CallStore, RoomRef } from './store.port.js';

export type IngestOutcome =
  /** the event changed a call (or created one) */
  | 'applied'
  /** seen before (LiveKit retried): nothing changes */
  | 'duplicate'
  /** not about a call the plane tracks, or not something that changes a call */
  | 'ignored';

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

/** participant_left and participant_connection_aborted (one that never became active) both mean gone. */
const LEFT = new Set(['participant_left', 'participant_connection_aborted']);

export function createWebhookIngest(options: WebhookIngestOptions) {
  const { runtime, store, settings } = options;

  async function sendTo(sessionId: string | undefined, event: IncomingEvent): Promise<IngestResult> {
    if (!sessionId) return { outcome: 'ignored', sessionId: null };
    const result = await runtime.send(sessionId, event);
    return { outcome: result.outcome === 'applied' ? 'applied' : 'ignored', sessionId };
  }

  async function createInbound(room: RoomRef, caller: WebhookParticipant): Promise<IngestResult> {
    const attributes = caller.attributes;
    const sessionId = runtime.newId();
    await runtime.create({
      sessionId,
      direction: 'inbound',
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
    });
    return { outcome: 'applied', sessionId };
  }

  async function route(webhook: IncomingWebhook, room: RoomRef): Promise<IngestResult> {
    const participant = webhook.participant;
    const ref = participant ? { identity: participant.identity, sid: participant.sid } : null;
    switch (webhook.event) {
      case 'room_started':
        // Binds an outbound call's room (created by name) to its sid.
        return room.sid
          ? sendTo(await store.findLiveByRoom({ sid: null, name: room.name }), { type: 'livekit.room_started', roomSid: room.sid })
          : { outcome: 'ignored', sessionId: null };
      case 'room_finished':
        return sendTo(await store.findLiveByRoom(room), { type: 'livekit.room_finished' });
      case 'participant_joined': {
        if (!participant || !ref) break;
        const sessionId = await store.findLiveByRoom(room);
        if (participant.kind === 'agent') return sendTo(sessionId, { type: 'livekit.agent_joined', participant: ref });
        if (participant.kind !== 'sip') break;
        // The phone leg of an outbound call says whose it is: a late webhook about it (after the
        // call ended) must not look like a new inbound caller.
        const owner = participant.attributes[SESSION_ATTRIBUTE];
        if (!sessionId && !owner) return createInbound(room, participant);
        return sendTo(sessionId ?? owner, {
          type: 'livekit.sip_joined',
          participant: ref,
          callStatus: participant.attributes['sip.callStatus'] ?? null,
          sipCallId: participant.attributes['sip.callID'] ?? null,
        });
      }
      default:
        if (!LEFT.has(webhook.event) || !participant || !ref) break;
        if (participant.kind === 'agent') {
          return sendTo(await store.findLiveByRoom(room), {
            type: 'livekit.agent_left',
            participant: ref,
            reason: participant.disconnectReason,
          });
        }
        if (participant.kind !== 'sip') break;
        return sendTo((await store.findLiveBySipIdentity(participant.identity)) ?? (await store.findLiveByRoom(room)), {
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
