// LiveKit-side naming: the names the plane gives rooms and participants, the attributes it reads
// and writes on SIP participants, the agent dispatch metadata, and the session ids it derives
// from LiveKit's names. Other replicas, older records and agents depend on these, so each rule is
// written once, here.
import { createHash } from 'node:crypto';
import type { CallContext } from '../../machines/call.types.js';

/** The SIP participant attribute that ties an outbound call's phone leg to its session. */
export const SESSION_ATTRIBUTE = 'control_plane.session_id';

/** The attributes LiveKit sets on a SIP participant that the plane reads. */
export const SIP_ATTRIBUTES = Object.freeze({
  callId: 'sip.callID',
  callStatus: 'sip.callStatus',
  /** the remote party: the caller of an inbound call, the dialed number of an outbound one */
  phoneNumber: 'sip.phoneNumber',
  /** the number dialed for an inbound call */
  trunkPhoneNumber: 'sip.trunkPhoneNumber',
} as const);

/** LiveKit reports a SIP participant's headers as attributes `sip.h.<lower-case header name>`. */
const SIP_HEADER_ATTRIBUTE_PREFIX = 'sip.h.';

/** A SIP participant's headers, by the lower-case names LiveKit gives them; null when it reports none. */
export function sipHeadersOf(attributes: Record<string, string>): Record<string, string> | null {
  const headers = Object.entries(attributes)
    .filter(([key]) => key.startsWith(SIP_HEADER_ATTRIBUTE_PREFIX) && key.length > SIP_HEADER_ATTRIBUTE_PREFIX.length)
    .map(([key, value]) => [key.slice(SIP_HEADER_ATTRIBUTE_PREFIX.length), value] as const);
  return headers.length > 0 ? Object.fromEntries(headers) : null;
}

/** The LiveKit room of an outbound call: named after the session, never after a phone number. */
export function outboundRoomName(sessionId: string): string {
  return `call-${sessionId}`;
}

/** The participant identity of one outbound dial attempt: unique per session and attempt. */
export function outboundSipIdentity(sessionId: string, attempt: number): string {
  return `sip-${sessionId}-${attempt}`;
}

/**
 * The metadata of an agent dispatched into a call's room (JSON): the session it serves, who
 * calls whom, and the `metadata` the call was placed with.
 */
export function agentDispatchMetadata(context: Pick<CallContext, 'sessionId' | 'direction' | 'callerNumber' | 'calleeNumber' | 'metadata'>): string {
  return JSON.stringify({
    session_id: context.sessionId,
    direction: context.direction,
    caller_number: context.callerNumber,
    callee_number: context.calleeNumber,
    metadata: context.metadata,
  });
}

/**
 * The session id of an inbound call: UUID-shaped, from the LiveKit room (its sid when known) and
 * the caller's identity, so a retried participant_joined finds the call its first delivery made.
 */
export function inboundSessionId(room: { name: string; sid: string | null }, callerIdentity: string): string {
  const hex = createHash('sha256').update(`inbound:${room.sid ?? room.name}:${callerIdentity}`).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}
