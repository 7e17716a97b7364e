// LiveKit webhook events (as livekit-server-sdk decodes them) in the few terms the plane uses.
import { DisconnectReason as ProtoDisconnectReason, ParticipantInfo_Kind } from '@livekit/protocol';
import type { WebhookEvent } from 'livekit-server-sdk';
import type { DisconnectReason, Recording } from '../../machines/call.types.js';
import { recordingOf } from './egress.js';

export type ParticipantKind = 'sip' | 'agent' | 'other';

export interface WebhookParticipant {
  identity: string;
  sid: string | null;
  kind: ParticipantKind;
  attributes: Record<string, string>;
  disconnectReason: DisconnectReason;
}

export interface IncomingWebhook {
  id: string;
  event: string;
  room: { name: string; sid: string | null } | null;
  participant: WebhookParticipant | null;
  /** egress_started / egress_updated / egress_ended: what the event says of the recording */
  egress: Recording | null;
}

export function participantKind(kind: ParticipantInfo_Kind): ParticipantKind {
  if (kind === ParticipantInfo_Kind.SIP) return 'sip';
  if (kind === ParticipantInfo_Kind.AGENT) return 'agent';
  return 'other';
}

function disconnectReasonName(reason: ProtoDisconnectReason): DisconnectReason {
  const name = ProtoDisconnectReason[reason] as DisconnectReason | undefined;
  // A reason newer than this build of the protocol reads as unknown.
  return name ?? 'UNKNOWN_REASON';
}

export function toIncomingWebhook(event: WebhookEvent): IncomingWebhook {
  const room = event.room && event.room.name ? { name: event.room.name, sid: event.room.sid || null } : null;
  const p = event.participant;
  const participant =
    p && p.identity
      ? {
          identity: p.identity,
          sid: p.sid || null,
          kind: participantKind(p.kind),
          attributes: { ...p.attributes },
          disconnectReason: disconnectReasonName(p.disconnectReason),
        }
      : null;
  const egress = event.egressInfo?.egressId ? recordingOf(event.egressInfo) : null;
  return { id: event.id, event: event.event, room, participant, egress };
}
