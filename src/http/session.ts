// The session object of the Control API (docs/api.md), projected from a call's stored record.
import { CALL_STATES, type CallContext, type CallError, type CallState, type Direction, type EndReason, type ErrorCategory, type Recording, type RecordingStatus } from '../../machines/call.types.js';
import { callDurationS } from '../calls/call.logic.js';
import { userMessage, type Language } from '../errors/messages.js';
import type { CallRecord } from '../store/call-store.port.js';

/** The public state of a chart state value: its top-level key (`{dialing: 'backoff'}` → `dialing`). */
export function publicState(value: unknown): CallState {
  const key = typeof value === 'string' ? value : Object.keys(value as object)[0];
  // `created` is transient: a started actor has always left it.
  if (key && (CALL_STATES as readonly string[]).includes(key)) return key as CallState;
  throw new Error(`call chart state ${JSON.stringify(value)} has no public state`);
}

export interface SessionError {
  category: ErrorCategory;
  retryable: boolean;
  message: string;
  user_message: string;
  sip_status_code: number | null;
}

export interface SessionRecording {
  egress_id: string | null;
  status: RecordingStatus;
  started_at: string | null;
  ended_at: string | null;
  duration_s: number | null;
  size_bytes: number | null;
  location: string | null;
  error: SessionError | null;
}

export interface Session {
  id: string;
  direction: Direction;
  state: CallState;
  end_reason: EndReason | null;
  caller_number: string | null;
  callee_number: string | null;
  livekit_room: string;
  sip_participant_identity: string | null;
  sip_call_id: string | null;
  agent: string | null;
  attempt: number;
  created_at: string;
  ringing_at: string | null;
  answered_at: string | null;
  ended_at: string | null;
  duration_s: number | null;
  error: SessionError | null;
  metadata: Record<string, unknown> | null;
  sip_headers: Record<string, string> | null;
  display_name: string | null;
  recording: SessionRecording | null;
}

/** Epoch ms as the API writes times (ISO-8601 UTC), null as null. */
export const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

function sessionError(error: CallError | null, language: Language): SessionError | null {
  return error
    ? {
        category: error.category,
        retryable: error.retryable,
        message: error.message,
        user_message: userMessage(error.category, language),
        sip_status_code: error.sipStatusCode,
      }
    : null;
}

function sessionRecording(recording: Recording | null | undefined, language: Language): SessionRecording | null {
  if (!recording) return null;
  return {
    egress_id: recording.egressId,
    status: recording.status,
    started_at: iso(recording.startedAt),
    ended_at: iso(recording.endedAt),
    duration_s: recording.durationS,
    size_bytes: recording.sizeBytes,
    location: recording.location,
    error: sessionError(recording.error, language),
  };
}

export function toSession(record: CallRecord, language: Language = 'en'): Session {
  const context: CallContext = record.context;
  return {
    id: record.id,
    direction: context.direction,
    state: record.state,
    end_reason: context.endReason,
    caller_number: context.callerNumber,
    callee_number: context.calleeNumber,
    livekit_room: context.roomName,
    sip_participant_identity: context.sipIdentity,
    sip_call_id: context.sipCallId,
    agent: context.agentName,
    attempt: context.attempt,
    created_at: new Date(context.createdAt).toISOString(),
    ringing_at: iso(context.ringingAt),
    answered_at: iso(context.answeredAt),
    ended_at: iso(context.endedAt),
    duration_s: callDurationS(context),
    error: sessionError(context.error, language),
    metadata: context.metadata,
    // Never the dtmf of the options: it may carry a PIN.
    sip_headers: record.callOptions?.sipHeaders ?? null,
    display_name: record.callOptions?.displayName ?? null,
    // Calls stored by call-v2 and earlier have none.
    recording: sessionRecording(context.recording, language),
  };
}
