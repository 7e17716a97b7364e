// How the phone party leaving the room ends a call (docs/call-lifecycle.md, CP-02): LiveKit's
// DisconnectReason of the SIP participant decides the final state and end reason.
import type { DisconnectReason, EndedReason, ErrorCategory } from '../../machines/call.types.js';

export type DisconnectOutcome =
  | { state: 'ended'; reason: EndedReason; category: ErrorCategory | null }
  | { state: 'failed'; category: ErrorCategory };

/**
 * @param answered whether the call was answered; a caller hanging up before that is `canceled`.
 * PARTICIPANT_REMOVED / ROOM_DELETED mean `api_hangup` only when the plane asked, which the
 * chart handles in `ending`; arriving anywhere else, someone else (the agent) removed the phone leg.
 */
export function disconnectOutcome(reason: DisconnectReason, answered: boolean): DisconnectOutcome {
  switch (reason) {
    // Older LiveKit servers leave the reason out for an ordinary BYE.
    case 'CLIENT_INITIATED':
    case 'UNKNOWN_REASON':
      return { state: 'ended', reason: answered ? 'remote_hangup' : 'canceled', category: null };
    // Without a SIP code a rejection cannot be told apart from busy; declined is the safer word.
    case 'USER_REJECTED':
      return { state: 'ended', reason: 'declined', category: 'declined' };
    case 'USER_UNAVAILABLE':
      return { state: 'ended', reason: 'no_answer', category: 'no_answer' };
    case 'PARTICIPANT_REMOVED':
      return { state: 'ended', reason: 'agent_hangup', category: null };
    case 'ROOM_DELETED':
    case 'ROOM_CLOSED':
      return { state: 'ended', reason: 'room_closed', category: null };
    case 'SIP_TRUNK_FAILURE':
      return { state: 'failed', category: 'carrier_error' };
    // A SIP participant times out when its RTP stops: the media path broke.
    case 'MEDIA_FAILURE':
    case 'CONNECTION_TIMEOUT':
      return { state: 'failed', category: 'media_failure' };
    case 'AGENT_ERROR':
      return { state: 'failed', category: 'agent_error' };
    case 'SERVER_SHUTDOWN':
    case 'JOIN_FAILURE':
      return { state: 'failed', category: 'provider_unavailable' };
    case 'DUPLICATE_IDENTITY':
    case 'STATE_MISMATCH':
    case 'MIGRATION':
    case 'SIGNAL_CLOSE':
      return { state: 'failed', category: 'unknown' };
  }
}
