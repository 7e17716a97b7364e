// OBS-00 (docs/events.md): the envelope every lifecycle event travels in, to logs, the event stream
// and per-call history.
import type { CallState, Direction, ObsEventName } from '../../machines/call.types.js';

export interface ObsEnvelope {
  event: ObsEventName;
  event_id: string;
  /** ISO-8601 UTC */
  ts: string;
  session_id: string;
  /** 1, 2, 3... per session, no gaps */
  seq: number;
  direction: Direction;
  /** the public state after the transition */
  state: CallState;
  livekit_room: string;
  data: Record<string, unknown>;
}
