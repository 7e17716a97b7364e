// Types of the CP-01 call chart (context, input and events) and the lists of public names they
// derive from: one `const` list per concept, which the API schemas, the OpenAPI document and the
// metric labels read too. machines/ imports only xstate and each other, so every list the chart's
// types need is declared here. Names are the public contract (docs/README.md): clients depend
// on them. Apart from the lists and isFinalState, no runtime code lives here.

/** Public `state` values (docs/call-lifecycle.md): the top-level states of the chart. */
export const CALL_STATES = Object.freeze(['queued', 'dialing', 'ringing', 'connected', 'transferring', 'ending', 'ended', 'failed'] as const);
export type CallState = (typeof CALL_STATES)[number];

/** The states a call never leaves. */
export const FINAL_STATES = Object.freeze(['ended', 'failed'] as const satisfies readonly CallState[]);
export type FinalState = (typeof FINAL_STATES)[number];

export function isFinalState(state: CallState): boolean {
  return (FINAL_STATES as readonly CallState[]).includes(state);
}

/** Public states of a call that is still live: every state but the final ones. */
export type LiveState = Exclude<CallState, FinalState>;
export const LIVE_STATES: readonly LiveState[] = Object.freeze(CALL_STATES.filter((state): state is LiveState => !isFinalState(state)));

export const DIRECTIONS = Object.freeze(['inbound', 'outbound'] as const);
export type Direction = (typeof DIRECTIONS)[number];

/** CP-04 error categories, in the order of docs/errors.md. */
export const ERROR_CATEGORIES = Object.freeze([
  'busy', 'no_answer', 'declined', 'invalid_number', 'trunk_auth_error', 'carrier_error',
  'rate_limited', 'provider_unavailable', 'timeout', 'auth_error', 'config_error',
  'media_failure', 'agent_error', 'unknown',
] as const);
export type ErrorCategory = (typeof ERROR_CATEGORIES)[number];

/** End reasons of the final state `ended` (docs/call-lifecycle.md). */
export const ENDED_REASONS = Object.freeze([
  'remote_hangup', 'agent_hangup', 'api_hangup', 'transferred', 'busy',
  'no_answer', 'declined', 'canceled', 'max_duration', 'room_closed',
] as const);
export type EndedReason = (typeof ENDED_REASONS)[number];

/** A `failed` session's end reason is its CP-04 category. */
export type EndReason = EndedReason | ErrorCategory;
/** Every end reason once: those of `ended`, then the categories that are not among them. */
export const END_REASONS: readonly EndReason[] = Object.freeze([...new Set<EndReason>([...ENDED_REASONS, ...ERROR_CATEGORIES])]);

/** A classified provider error as the chart stores it (the session's `error`, minus user_message). */
export interface CallError {
  category: ErrorCategory;
  retryable: boolean;
  message: string;
  sipStatusCode: number | null;
}

/** LiveKit's DisconnectReason, by name as webhooks carry it (`UNKNOWN_REASON` when absent). */
export type DisconnectReason =
  | 'UNKNOWN_REASON'
  | 'CLIENT_INITIATED'
  | 'DUPLICATE_IDENTITY'
  | 'SERVER_SHUTDOWN'
  | 'PARTICIPANT_REMOVED'
  | 'ROOM_DELETED'
  | 'STATE_MISMATCH'
  | 'JOIN_FAILURE'
  | 'MIGRATION'
  | 'SIGNAL_CLOSE'
  | 'ROOM_CLOSED'
  | 'USER_UNAVAILABLE'
  | 'USER_REJECTED'
  | 'SIP_TRUNK_FAILURE'
  | 'CONNECTION_TIMEOUT'
  | 'MEDIA_FAILURE'
  | 'AGENT_ERROR';

/** Statuses of a call's recording (docs/recording.md), in the order a recording goes through them. */
export const RECORDING_STATUSES = Object.freeze(['starting', 'active', 'ending', 'complete', 'failed'] as const);
export type RecordingStatus = (typeof RECORDING_STATUSES)[number];

/**
 * A call's recording (a LiveKit egress of its room to an audio file): the session's `recording`.
 * The same shape reports what LiveKit said of the egress (a start or stop answer, an egress webhook,
 * ListEgress) in a `recording.updated` event.
 */
export interface Recording {
  /** LiveKit's egress id; null until LiveKit accepted the start */
  egressId: string | null;
  status: RecordingStatus;
  /** epoch ms the file started recording */
  startedAt: number | null;
  endedAt: number | null;
  durationS: number | null;
  sizeBytes: number | null;
  /** where the file went (LiveKit's upload location) */
  location: string | null;
  error: CallError | null;
}

/** Why the plane itself asked LiveKit to end the call; decides the end reason when LiveKit confirms. */
export type HangupCause = 'api_hangup' | 'agent_hangup' | 'max_duration' | 'no_answer';

/**
 * Absolute deadlines (epoch milliseconds). xstate does not persist `after` timers
 * (statelyai/xstate#5331), so the runtime arms one timer per call from these and sends
 * the matching `timer.*` event; a restored call re-arms from the same values.
 */
export interface Deadlines {
  /** inbound: no agent answered in time; outbound: backstop to LiveKit's own ring timeout. */
  ring: number | null;
  maxDuration: number | null;
  /** outbound: when the next dial attempt starts after a retryable failure. */
  retry: number | null;
  /** ending: end the session even if LiveKit never confirms the hang-up. */
  endingGrace: number | null;
  /** connected with no agent left: hang up unless an agent joins again. */
  agentGrace: number | null;
  /** answered with no agent in the room yet: fail the call unless one joins by then (the agent watchdog). */
  agentJoin: number | null;
}

export type TimerName = keyof Deadlines;

/** Settings of one call, fixed when the session is created. */
export interface CallSettings {
  ringTimeoutS: number;
  maxDurationS: number;
  endingGraceS: number;
  agentGraceS: number;
  /** the agent watchdog; 0: off */
  agentJoinTimeoutS: number;
  maxDialAttempts: number;
  /** record the call once it is connected (RECORDING, or the request's `record`) */
  record: boolean;
}

export interface CallInput {
  sessionId: string;
  direction: Direction;
  /** epoch ms of creation */
  at: number;
  callerNumber: string | null;
  calleeNumber: string | null;
  roomName: string;
  roomSid: string | null;
  /** inbound: the caller's SIP participant; outbound: filled per dial attempt */
  sipIdentity: string | null;
  sipCallId: string | null;
  /** inbound: `sip.callStatus` when the caller joined (`active` means already answered) */
  sipCallStatus: string | null;
  agentName: string | null;
  metadata: Record<string, unknown> | null;
  settings: CallSettings;
}

export interface CallContext {
  sessionId: string;
  direction: Direction;
  createdAt: number;
  callerNumber: string | null;
  calleeNumber: string | null;
  roomName: string;
  roomSid: string | null;
  sipIdentity: string | null;
  sipCallId: string | null;
  sipCallStatus: string | null;
  agentName: string | null;
  /** identities of agent participants in the room now */
  agents: string[];
  metadata: Record<string, unknown> | null;
  settings: CallSettings;
  attempt: number;
  ringingAt: number | null;
  answeredAt: number | null;
  endedAt: number | null;
  endReason: EndReason | null;
  error: CallError | null;
  /** set when the plane asked LiveKit to end the call */
  hangupCause: HangupCause | null;
  transferTarget: string | null;
  /** the REFER options of the transfer in `transferTarget`; absent in calls stored before transfers had options: none */
  transferOptions?: TransferOptions | null;
  /** when the current dial attempt started (outbound) */
  dialStartedAt: number | null;
  /** the phone party left while a transfer was in flight; the transfer result decides */
  phoneLeftReason: DisconnectReason | null;
  deadlines: Deadlines;
  /** null until the plane asks LiveKit to record the call */
  recording: Recording | null;
}

// ---- Events. Every event carries `at` (epoch ms, from the runtime's clock): the chart has no clock.

interface At {
  at: number;
}

export interface ParticipantRef {
  identity: string;
  sid: string | null;
}

/** The phone party's SIP participant joined the room (outbound: before the INVITE is sent). */
export type SipJoinedEvent = At & { type: 'livekit.sip_joined'; participant: ParticipantRef; callStatus: string | null; sipCallId: string | null };
/** The phone party's SIP participant left (participant_left or participant_connection_aborted). */
export type SipLeftEvent = At & { type: 'livekit.sip_left'; participant: ParticipantRef; reason: DisconnectReason };
export type AgentJoinedEvent = At & { type: 'livekit.agent_joined'; participant: ParticipantRef };
export type AgentLeftEvent = At & { type: 'livekit.agent_left'; participant: ParticipantRef; reason: DisconnectReason };
export type RoomStartedEvent = At & { type: 'livekit.room_started'; roomSid: string };
export type RoomFinishedEvent = At & { type: 'livekit.room_finished' };

export type DialSlotEvent = At & { type: 'dial.slot_granted' };
export type DialAnsweredEvent = At & { type: 'dial.answered'; attempt: number; participantIdentity: string; sipCallId: string | null };
/** `retryAt` is chosen by the runtime (back-off with jitter) and used only when the policy allows a retry. */
export type DialFailedEvent = At & { type: 'dial.failed'; attempt: number; error: CallError; retryAt: number | null };

export type TransferSucceededEvent = At & { type: 'transfer.succeeded' };
export type TransferFailedEvent = At & { type: 'transfer.failed'; error: CallError };

export type ApiHangupEvent = At & { type: 'api.hangup' };
/**
 * Reconciliation found the call's LiveKit room, or its phone leg, gone: LiveKit drops webhooks it
 * cannot deliver within about 30 s, so the plane checks live calls against LiveKit (docs/call-lifecycle.md).
 */
export type ReconcileGoneEvent = At & { type: 'reconcile.gone'; what: 'room' | 'participant' };
/** Options of a SIP REFER (`POST /v1/calls/{id}/transfer`); null: LiveKit's default. */
export interface TransferOptions {
  /** headers added to the REFER */
  sipHeaders: Record<string, string> | null;
  /** how long the transfer target may ring */
  ringTimeoutS: number | null;
  /** play a dial tone to the caller while the target rings */
  playDialtone: boolean | null;
}

export type ApiTransferEvent = At & { type: 'api.transfer'; to: string; options?: TransferOptions };

/**
 * What LiveKit said of the call's recording: the start or stop answer, an egress webhook or a
 * ListEgress answer (`recording.egressId` null: the start was refused before there was an egress).
 */
export type RecordingUpdatedEvent = At & { type: 'recording.updated'; recording: Recording };

export type TimerEvent = At & {
  type:
    | 'timer.ring_deadline'
    | 'timer.max_duration'
    | 'timer.retry'
    | 'timer.ending_grace'
    | 'timer.agent_grace'
    | 'timer.agent_join';
};

export type CallEvent =
  | SipJoinedEvent
  | SipLeftEvent
  | AgentJoinedEvent
  | AgentLeftEvent
  | RoomStartedEvent
  | RoomFinishedEvent
  | DialSlotEvent
  | DialAnsweredEvent
  | DialFailedEvent
  | TransferSucceededEvent
  | TransferFailedEvent
  | ApiHangupEvent
  | ApiTransferEvent
  | ReconcileGoneEvent
  | RecordingUpdatedEvent
  | TimerEvent;

export type CallEventType = CallEvent['type'];

/** OBS-00 event names (docs/events.md). */
export const OBS_EVENT_NAMES = Object.freeze([
  'call.created', 'call.queued', 'call.dialing', 'call.ringing', 'call.started',
  'call.agent_joined', 'call.agent_left', 'call.transfer_requested', 'call.transfer_failed',
  'call.ending', 'call.ended', 'call.failed', 'call.error', 'call.retry_scheduled',
  'call.recording_started', 'call.recording_ended', 'call.recording_failed',
] as const);
export type ObsEventName = (typeof OBS_EVENT_NAMES)[number];

/** Effects the chart asks the runtime to carry out after a transition is stored. */
export type CallCommand = 'dial' | 'hangUp' | 'transfer' | 'startRecording';
