// The real bodies of the CP-01 chart's named actions and guards. Context updates are pure
// `assign`s driven by the event's `at`; the two side-effecting actions (`emit`, `command`)
// only hand an effect to the runtime, which carries it out after the transition is stored.
import { assign } from 'xstate';
import { callMachine } from '../../machines/call.machine.js';
import type {
  CallCommand,
  CallContext,
  CallError,
  CallEvent,
  Deadlines,
  DisconnectReason,
  ObsEventName,
  Recording,
  RecordingStatus,
} from '../../machines/call.types.js';
import { CATEGORY_POLICIES } from '../errors/policy.js';
import { outboundSipIdentity } from '../livekit/naming.js';
import { disconnectOutcome } from './disconnect.js';

export type CallEffect =
  | { kind: 'emit'; event: ObsEventName; data: Record<string, unknown> }
  | { kind: 'command'; command: CallCommand };

/** Receives the effects of the transition being taken; called synchronously during `send`. */
export type EffectSink = (sessionId: string, effect: CallEffect) => void;

const NO_DEADLINES: Deadlines = { ring: null, maxDuration: null, retry: null, endingGrace: null, agentGrace: null, agentJoin: null };

/** Seconds of margin the plane's ring backstop allows over LiveKit's own ring timeout. */
const RING_BACKSTOP_MARGIN_S = 5;

function eventTime(context: CallContext, event: CallEvent | { type: string }): number {
  return 'at' in event && typeof event.at === 'number' ? event.at : context.createdAt;
}

/** The phone party's leave reason: from the event, or remembered while a transfer was in flight. */
function leaveReason(context: CallContext, event: CallEvent): DisconnectReason {
  return event.type === 'livekit.sip_left' ? event.reason : (context.phoneLeftReason ?? 'UNKNOWN_REASON');
}

function categoryError(category: CallError['category'], message: string): CallError {
  return { category, retryable: CATEGORY_POLICIES[category].retryable, message, sipStatusCode: null };
}

/** Whole seconds from answer to end (`duration_s` of the session and of its final event); null until both are known. */
export function callDurationS(context: CallContext): number | null {
  if (context.answeredAt === null || context.endedAt === null) return null;
  return Math.max(0, Math.round((context.endedAt - context.answeredAt) / 1000));
}

/** How far along a recording status is: an update never takes a recording back. */
const RECORDING_PROGRESS: Record<RecordingStatus, number> = { starting: 0, active: 1, ending: 2, complete: 3, failed: 3 };

/** A recording the plane has asked for and LiveKit has not answered yet. */
const REQUESTED_RECORDING: Recording = Object.freeze({
  egressId: null,
  status: 'starting',
  startedAt: null,
  endedAt: null,
  durationS: null,
  sizeBytes: null,
  location: null,
  error: null,
});

/** News about the call's own recording: a later status of its egress, or the egress id of the start in flight. */
function isRecordingProgress(current: Recording | null, update: Recording): boolean {
  // Nothing changes a recording that has ended, not even learning an egress id.
  if (current === null || RECORDING_PROGRESS[current.status] === RECORDING_PROGRESS.complete) return false;
  if (current.egressId !== null && update.egressId !== current.egressId) return false;
  if (RECORDING_PROGRESS[update.status] > RECORDING_PROGRESS[current.status]) return true;
  return current.egressId === null && update.egressId !== null && update.status === current.status;
}

/** The recording after an update: what it reports, and what was known before where it says nothing. */
function mergeRecording(current: Recording, update: Recording): Recording {
  return {
    egressId: update.egressId ?? current.egressId,
    status: update.status,
    startedAt: update.startedAt ?? current.startedAt,
    endedAt: update.endedAt ?? current.endedAt,
    durationS: update.durationS ?? current.durationS,
    sizeBytes: update.sizeBytes ?? current.sizeBytes,
    location: update.location ?? current.location,
    error: update.error ?? current.error,
  };
}

/** The `data` of each OBS-00 event, read from the context after the transition's updates. */
export function eventData(name: ObsEventName, context: CallContext, event: CallEvent): Record<string, unknown> {
  switch (name) {
    case 'call.created':
      return {
        caller_number: context.callerNumber,
        callee_number: context.calleeNumber,
        agent: context.agentName,
        metadata: context.metadata,
      };
    case 'call.queued':
    case 'call.ringing':
      return {};
    case 'call.dialing':
      return { attempt: context.attempt, sip_participant_identity: context.sipIdentity };
    case 'call.started':
      return { answered_at: context.answeredAt === null ? null : new Date(context.answeredAt).toISOString() };
    case 'call.agent_joined':
    case 'call.agent_left':
      return {
        agent_identity: 'participant' in event ? event.participant.identity : null,
        agents: context.agents.length,
      };
    case 'call.transfer_requested':
      return { to: context.transferTarget };
    case 'call.transfer_failed':
      return {
        to: context.transferTarget,
        category: context.error?.category ?? null,
        sip_status_code: context.error?.sipStatusCode ?? null,
      };
    case 'call.ending':
      return { cause: context.hangupCause };
    case 'call.ended':
      return {
        end_reason: context.endReason,
        duration_s: callDurationS(context),
        category: context.error?.category ?? null,
        // LiveKit's own webhook never came; the plane found the room or phone leg gone.
        ...(event.type === 'reconcile.gone' ? { reconciled: true, gone: event.what } : {}),
      };
    case 'call.failed':
      return {
        end_reason: context.endReason,
        category: context.error?.category ?? null,
        message: context.error?.message ?? null,
        duration_s: callDurationS(context),
      };
    case 'call.error': {
      const error = event.type === 'dial.failed' || event.type === 'transfer.failed' ? event.error : context.error;
      return {
        category: error?.category ?? null,
        retryable: error?.retryable ?? false,
        attempt: context.attempt,
        sip_status_code: error?.sipStatusCode ?? null,
        message: error?.message ?? null,
      };
    }
    case 'call.recording_started':
    case 'call.recording_ended':
      return {
        egress_id: context.recording?.egressId ?? null,
        status: context.recording?.status ?? null,
        location: context.recording?.location ?? null,
        duration_s: context.recording?.durationS ?? null,
        size_bytes: context.recording?.sizeBytes ?? null,
      };
    case 'call.recording_failed':
      return {
        egress_id: context.recording?.egressId ?? null,
        category: context.recording?.error?.category ?? null,
        message: context.recording?.error?.message ?? null,
      };
    case 'call.retry_scheduled':
      return {
        next_attempt: context.attempt + 1,
        retry_at: context.deadlines.retry === null ? null : new Date(context.deadlines.retry).toISOString(),
        delay_ms: context.deadlines.retry === null ? null : Math.max(0, context.deadlines.retry - eventTime(context, event)),
      };
  }
}

export function createCallLogic(sink: EffectSink) {
  return callMachine.provide({
    actions: {
      emit: ({ context, event }, params) =>
        sink(context.sessionId, { kind: 'emit', event: params.event, data: eventData(params.event, context, event) }),
      command: ({ context }, params) => sink(context.sessionId, { kind: 'command', command: params.command }),

      bindRoom: assign(({ event }) => (event.type === 'livekit.room_started' ? { roomSid: event.roomSid } : {})),

      markRinging: assign(({ context, event }) => {
        const at = eventTime(context, event);
        return {
          ringingAt: at,
          deadlines: { ...context.deadlines, ring: at + context.settings.ringTimeoutS * 1000 },
        };
      }),

      markAnswered: assign(({ context, event }) => {
        const at = eventTime(context, event);
        const answered = event.type === 'dial.answered' ? { sipIdentity: event.participantIdentity, sipCallId: event.sipCallId ?? context.sipCallId } : {};
        return {
          ...answered,
          answeredAt: at,
          error: null,
          deadlines: { ...NO_DEADLINES, maxDuration: at + context.settings.maxDurationS * 1000 },
        };
      }),

      startAttempt: assign(({ context, event }) => {
        const at = eventTime(context, event);
        const attempt = context.attempt + 1;
        return {
          attempt,
          sipIdentity: outboundSipIdentity(context.sessionId, attempt),
          sipCallId: null,
          dialStartedAt: at,
          deadlines: {
            ...NO_DEADLINES,
            ring: at + (context.settings.ringTimeoutS + RING_BACKSTOP_MARGIN_S) * 1000,
          },
        };
      }),

      recordSipJoined: assign(({ context, event }) =>
        event.type === 'livekit.sip_joined' ? { sipCallId: event.sipCallId ?? context.sipCallId, sipCallStatus: event.callStatus } : {},
      ),

      scheduleRetry: assign(({ context, event }) =>
        event.type === 'dial.failed' && event.retryAt !== null
          ? { error: event.error, deadlines: { ...NO_DEADLINES, retry: event.retryAt } }
          : { deadlines: context.deadlines },
      ),

      addAgent: assign(({ context, event }) => {
        if (event.type !== 'livekit.agent_joined') return {};
        const agents = context.agents.includes(event.participant.identity)
          ? context.agents
          : [...context.agents, event.participant.identity];
        return { agents, deadlines: { ...context.deadlines, agentGrace: null } };
      }),

      removeAgent: assign(({ context, event }) =>
        event.type === 'livekit.agent_left' ? { agents: context.agents.filter((identity) => identity !== event.participant.identity) } : {},
      ),

      // The agent leaving a connected call hangs it up after a grace period unless another joins.
      startAgentGrace: assign(({ context, event }) =>
        context.agents.length === 0 && context.deadlines.agentGrace === null
          ? { deadlines: { ...context.deadlines, agentGrace: eventTime(context, event) + context.settings.agentGraceS * 1000 } }
          : {},
      ),

      // Answered with no agent in the room: one must join within AGENT_JOIN_TIMEOUT_S.
      armAgentWatchdog: assign(({ context, event }) =>
        context.agents.length === 0 && context.settings.agentJoinTimeoutS > 0
          ? { deadlines: { ...context.deadlines, agentJoin: eventTime(context, event) + context.settings.agentJoinTimeoutS * 1000 } }
          : {},
      ),

      disarmAgentWatchdog: assign(({ context }) => ({ deadlines: { ...context.deadlines, agentJoin: null } })),

      endAgentTimeout: assign(({ context, event }) => ({
        endReason: 'agent_error' as const,
        endedAt: eventTime(context, event),
        deadlines: NO_DEADLINES,
        error: categoryError('agent_error', `no agent joined within ${context.settings.agentJoinTimeoutS} s of the answer`),
      })),

      requestHangup: assign(({ context, event }, params) => ({
        hangupCause: params.cause,
        deadlines: { ...NO_DEADLINES, endingGrace: eventTime(context, event) + context.settings.endingGraceS * 1000 },
      })),

      requestTransfer: assign(({ context, event }) =>
        event.type === 'api.transfer' ? { transferTarget: event.to, transferOptions: event.options ?? null, phoneLeftReason: null } : { transferTarget: context.transferTarget },
      ),

      recordTransferFailure: assign(({ event }) => (event.type === 'transfer.failed' ? { error: event.error } : {})),

      recordPhoneLeft: assign(({ event }) => (event.type === 'livekit.sip_left' ? { phoneLeftReason: event.reason } : {})),

      endWith: assign(({ context, event }, params) => {
        const category = params.reason === 'no_answer' ? ('no_answer' as const) : null;
        return {
          endReason: params.reason,
          endedAt: eventTime(context, event),
          deadlines: NO_DEADLINES,
          ...(category ? { error: categoryError(category, 'no answer before the ring deadline') } : {}),
        };
      }),

      endFromDisconnect: assign(({ context, event }) => {
        const reason = leaveReason(context, event);
        const outcome = disconnectOutcome(reason, context.answeredAt !== null);
        const common = { endedAt: eventTime(context, event), deadlines: NO_DEADLINES };
        if (outcome.state === 'failed') {
          return { ...common, endReason: outcome.category, error: categoryError(outcome.category, `phone leg disconnected: ${reason}`) };
        }
        return {
          ...common,
          endReason: outcome.reason,
          error: outcome.category ? categoryError(outcome.category, `phone leg disconnected: ${reason}`) : context.error,
        };
      }),

      endFromDialFailure: assign(({ context, event }) =>
        event.type === 'dial.failed'
          ? { endReason: event.error.category, error: event.error, endedAt: event.at, deadlines: NO_DEADLINES }
          : { endReason: context.endReason },
      ),

      endAsRequested: assign(({ context, event }) => ({
        endReason: context.hangupCause ?? 'api_hangup',
        endedAt: eventTime(context, event),
        deadlines: NO_DEADLINES,
        ...(context.hangupCause === 'no_answer' ? { error: categoryError('no_answer', 'no agent answered before the ring deadline') } : {}),
      })),

      acknowledgeHangup: () => undefined,

      requestRecording: assign(() => ({ recording: REQUESTED_RECORDING })),

      updateRecording: assign(({ context, event }) =>
        event.type === 'recording.updated' && context.recording ? { recording: mergeRecording(context.recording, event.recording) } : {},
      ),
    },
    guards: {
      isOutbound: ({ context }) => context.direction === 'outbound',
      isAnsweredOnArrival: ({ context }) => context.sipCallStatus === 'active',
      roomNotBound: ({ context }) => context.roomSid === null,
      deadlineReached: ({ context, event }, params) => {
        const deadline = context.deadlines[params.timer];
        return deadline !== null && eventTime(context, event) >= deadline;
      },
      isCurrentSipParticipant: ({ context, event }) =>
        'participant' in event && context.sipIdentity !== null && event.participant.identity === context.sipIdentity,
      isFailureDisconnect: ({ context, event }) =>
        disconnectOutcome(leaveReason(context, event), context.answeredAt !== null).state === 'failed',
      isCurrentAttempt: ({ context, event }) =>
        (event.type === 'dial.answered' || event.type === 'dial.failed') && event.attempt === context.attempt,
      canRetryDial: ({ context, event }) =>
        event.type === 'dial.failed' &&
        event.attempt === context.attempt &&
        event.error.retryable &&
        event.retryAt !== null &&
        context.attempt < context.settings.maxDialAttempts,
      isCalleeOutcome: ({ event }) =>
        event.type === 'dial.failed' && CATEGORY_POLICIES[event.error.category].outcome === 'ended',
      phoneLeftDuringTransfer: ({ context }) => context.phoneLeftReason !== null,
      recordingWanted: ({ context }) => context.settings.record && context.recording === null,
      isRecordingProgress: ({ context, event }) => event.type === 'recording.updated' && isRecordingProgress(context.recording, event.recording),
      recordingNotStarted: ({ context }) => context.recording?.status === 'starting',
      reportsRecordingRunning: ({ event }) => event.type === 'recording.updated' && (event.recording.status === 'active' || event.recording.status === 'ending'),
      reportsRecordingComplete: ({ event }) => event.type === 'recording.updated' && event.recording.status === 'complete',
      reportsRecordingFailed: ({ event }) => event.type === 'recording.updated' && event.recording.status === 'failed',
    },
  });
}

export type CallLogic = ReturnType<typeof createCallLogic>;
