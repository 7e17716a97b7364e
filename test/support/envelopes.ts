// OBS-00 envelopes for tests of the event stream: each call gets seq 1, 2, 3... and every
// envelope a fresh event_id and a later timestamp, as the runtime would publish them.
import type { CallState, ObsEventName } from '../../machines/call.types.js';
import type { ObsEnvelope } from '../../src/obs/envelope.js';

let eventCounter = 0;
const seqBySession = new Map<string, number>();

export function envelope(sessionId = 'sess_a', event: ObsEventName = 'call.created', data: Record<string, unknown> = {}): ObsEnvelope {
  const seq = (seqBySession.get(sessionId) ?? 0) + 1;
  seqBySession.set(sessionId, seq);
  eventCounter += 1;
  const state: CallState = 'ringing';
  return {
    event,
    event_id: `evt_${eventCounter}`,
    ts: new Date(Date.UTC(2025, 0, 1, 12, 0, 0, eventCounter)).toISOString(),
    session_id: sessionId,
    seq,
    direction: 'inbound',
    state,
    livekit_room: `room_${sessionId}`,
    data,
  };
}
