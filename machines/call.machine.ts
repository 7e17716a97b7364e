// CP-01: the lifecycle of one phone call. The chart only: every action and guard is a named
// stub here and gets its real body in src/calls/call.logic.ts through `.provide()`, so this
// file opens unchanged in Stately's editor and stays pure (no clock, no ids, no I/O).
//
// Top-level states are the public `state` values of docs/call-lifecycle.md. Nested states (dialing.attempting,
// dialing.backoff) are internal detail and never leave the service.
//
// There are no `after` timers and no invoked actors on purpose: xstate neither persists nor
// re-arms `after` timers (statelyai/xstate#5331) and re-runs an invoked promise on restore
// (a second dial). Deadlines are absolute times in context, which the runtime arms as timers
// (`timer.*` events); I/O is a `command` the runtime carries out once the transition is
// stored, and its result comes back as an event (`dial.*`, `transfer.*`, `recording.updated`).
//
// `ended` and `failed` are final for the call: its state and end reason never change again. They
// are not xstate `final` states all the same, because a recording ends after its call (LiveKit
// finishes the file once the room is gone): a final call accepts `recording.updated` and nothing
// else (RECORDING_UPDATES below).
import { and, setup } from 'xstate';
import type {
  CallCommand,
  CallContext,
  CallEvent,
  CallInput,
  EndedReason,
  HangupCause,
  ObsEventName,
  TimerName,
} from './call.types.js';

/**
 * The machine id is its version: a persisted state is never renamed or removed. Stored calls
 * name the version that wrote them, and the runtime refuses to restore another one.
 */
export const CALL_MACHINE_ID = 'call-v3';
/** A top-level state, as a transition target from inside a nested state. */
const top = (state: string): string => `#${CALL_MACHINE_ID}.${state}`;

function notProvided(kind: string, name: string): () => never {
  return () => {
    throw new Error(`call machine: ${kind} "${name}" has no implementation; provide it with callMachine.provide()`);
  };
}
const action = (name: string) => notProvided('action', name);
const guard = (name: string) => notProvided('guard', name);

/** A room created by name (outbound) learns its sid from room_started; every live state takes it. */
const BIND_ROOM = { 'livekit.room_started': { guard: 'roomNotBound', actions: 'bindRoom' } } as const;

/**
 * What LiveKit says of the call's recording, from the moment the plane asks for one, also after
 * the call is final. An update counts only when it is news about the call's own egress (a later
 * status, or the egress id of a start in flight); the first update that finds it recording says
 * so once (call.recording_started), and the end says how it went (call.recording_ended with the
 * file, or call.recording_failed).
 */
const RECORDING_UPDATES = {
  'recording.updated': [
    {
      guard: and(['isRecordingProgress', 'reportsRecordingFailed']),
      actions: ['updateRecording', { type: 'emit', params: { event: 'call.recording_failed' } }],
    },
    {
      guard: and(['isRecordingProgress', 'reportsRecordingComplete', 'recordingNotStarted']),
      actions: [
        'updateRecording',
        { type: 'emit', params: { event: 'call.recording_started' } },
        { type: 'emit', params: { event: 'call.recording_ended' } },
      ],
    },
    {
      guard: and(['isRecordingProgress', 'reportsRecordingComplete']),
      actions: ['updateRecording', { type: 'emit', params: { event: 'call.recording_ended' } }],
    },
    {
      guard: and(['isRecordingProgress', 'reportsRecordingRunning', 'recordingNotStarted']),
      actions: ['updateRecording', { type: 'emit', params: { event: 'call.recording_started' } }],
    },
    { guard: 'isRecordingProgress', actions: 'updateRecording' },
  ],
} as const;

export const callMachine = setup({
  types: {
    context: {} as CallContext,
    events: {} as CallEvent,
    input: {} as CallInput,
  },
  actions: {
    /** OBS-00: emit a lifecycle event (docs/events.md). */
    emit: action('emit') as (_: unknown, params: { event: ObsEventName }) => void,
    /** Ask the runtime for I/O once the transition is stored. */
    command: action('command') as (_: unknown, params: { command: CallCommand }) => void,
    bindRoom: action('bindRoom'),
    markRinging: action('markRinging'),
    markAnswered: action('markAnswered'),
    startAttempt: action('startAttempt'),
    recordSipJoined: action('recordSipJoined'),
    scheduleRetry: action('scheduleRetry'),
    addAgent: action('addAgent'),
    removeAgent: action('removeAgent'),
    startAgentGrace: action('startAgentGrace'),
    armAgentWatchdog: action('armAgentWatchdog'),
    disarmAgentWatchdog: action('disarmAgentWatchdog'),
    endAgentTimeout: action('endAgentTimeout'),
    requestHangup: action('requestHangup') as (_: unknown, params: { cause: HangupCause }) => void,
    requestTransfer: action('requestTransfer'),
    recordTransferFailure: action('recordTransferFailure'),
    recordPhoneLeft: action('recordPhoneLeft'),
    endWith: action('endWith') as (_: unknown, params: { reason: EndedReason }) => void,
    endFromDisconnect: action('endFromDisconnect'),
    endFromDialFailure: action('endFromDialFailure'),
    endAsRequested: action('endAsRequested'),
    acknowledgeHangup: action('acknowledgeHangup'),
    requestRecording: action('requestRecording'),
    updateRecording: action('updateRecording'),
  },
  guards: {
    isOutbound: guard('isOutbound'),
    isAnsweredOnArrival: guard('isAnsweredOnArrival'),
    roomNotBound: guard('roomNotBound'),
    deadlineReached: guard('deadlineReached') as (_: unknown, params: { timer: TimerName }) => boolean,
    isCurrentSipParticipant: guard('isCurrentSipParticipant'),
    isFailureDisconnect: guard('isFailureDisconnect'),
    isCurrentAttempt: guard('isCurrentAttempt'),
    canRetryDial: guard('canRetryDial'),
    isCalleeOutcome: guard('isCalleeOutcome'),
    phoneLeftDuringTransfer: guard('phoneLeftDuringTransfer'),
    recordingWanted: guard('recordingWanted'),
    isRecordingProgress: guard('isRecordingProgress'),
    recordingNotStarted: guard('recordingNotStarted'),
    reportsRecordingRunning: guard('reportsRecordingRunning'),
    reportsRecordingComplete: guard('reportsRecordingComplete'),
    reportsRecordingFailed: guard('reportsRecordingFailed'),
  },
}).createMachine({
  id: CALL_MACHINE_ID,
  context: ({ input }) => ({
    sessionId: input.sessionId,
    direction: input.direction,
    createdAt: input.at,
    callerNumber: input.callerNumber,
    calleeNumber: input.calleeNumber,
    roomName: input.roomName,
    roomSid: input.roomSid,
    sipIdentity: input.sipIdentity,
    sipCallId: input.sipCallId,
    sipCallStatus: input.sipCallStatus,
    agentName: input.agentName,
    agents: [],
    metadata: input.metadata,
    settings: input.settings,
    attempt: 0,
    ringingAt: null,
    answeredAt: null,
    endedAt: null,
    endReason: null,
    error: null,
    hangupCause: null,
    transferTarget: null,
    dialStartedAt: null,
    phoneLeftReason: null,
    deadlines: { ring: null, maxDuration: null, retry: null, endingGrace: null, agentGrace: null, agentJoin: null },
    recording: null,
  }),
  initial: 'created',
  states: {
    // Transient: decides the first public state from the input.
    created: {
      entry: { type: 'emit', params: { event: 'call.created' } },
      always: [
        { guard: 'isOutbound', target: 'queued' },
        {
          guard: 'isAnsweredOnArrival',
          target: 'connected',
          actions: ['markAnswered', 'armAgentWatchdog', { type: 'emit', params: { event: 'call.started' } }],
        },
        { target: 'ringing' },
      ],
    },

    queued: {
      entry: { type: 'emit', params: { event: 'call.queued' } },
      on: {
        ...BIND_ROOM,
        'dial.slot_granted': { target: 'dialing' },
        'api.hangup': { target: 'ended', actions: { type: 'endWith', params: { reason: 'canceled' } } },
      },
    },

    dialing: {
      initial: 'attempting',
      states: {
        attempting: {
          entry: [
            'startAttempt',
            { type: 'emit', params: { event: 'call.dialing' } },
            { type: 'command', params: { command: 'dial' } },
          ],
          on: {
            // The dial result decides an attempt's outcome (not webhooks, docs/call-lifecycle.md).
            'dial.answered': {
              guard: 'isCurrentAttempt',
              target: top('connected'),
              actions: ['markAnswered', 'armAgentWatchdog', { type: 'emit', params: { event: 'call.started' } }],
            },
            'dial.failed': [
              {
                guard: 'canRetryDial',
                target: 'backoff',
                actions: [
                  'scheduleRetry',
                  { type: 'emit', params: { event: 'call.error' } },
                  { type: 'emit', params: { event: 'call.retry_scheduled' } },
                ],
              },
              {
                guard: and(['isCurrentAttempt', 'isCalleeOutcome']),
                target: top('ended'),
                actions: ['endFromDialFailure', { type: 'emit', params: { event: 'call.error' } }],
              },
              {
                guard: 'isCurrentAttempt',
                target: top('failed'),
                actions: ['endFromDialFailure', { type: 'emit', params: { event: 'call.error' } }],
              },
            ],
            'timer.ring_deadline': {
              guard: { type: 'deadlineReached', params: { timer: 'ring' } },
              target: top('ended'),
              actions: [
                { type: 'command', params: { command: 'hangUp' } },
                { type: 'endWith', params: { reason: 'no_answer' } },
              ],
            },
            'livekit.sip_joined': { guard: 'isCurrentSipParticipant', actions: 'recordSipJoined' },
          },
        },
        backoff: {
          on: {
            'timer.retry': {
              guard: { type: 'deadlineReached', params: { timer: 'retry' } },
              target: 'attempting',
            },
          },
        },
      },
      on: {
        ...BIND_ROOM,
        'api.hangup': {
          target: 'ended',
          actions: [
            { type: 'command', params: { command: 'hangUp' } },
            { type: 'endWith', params: { reason: 'canceled' } },
          ],
        },
        'livekit.agent_joined': {
          actions: ['addAgent', { type: 'emit', params: { event: 'call.agent_joined' } }],
        },
        'livekit.agent_left': {
          actions: ['removeAgent', { type: 'emit', params: { event: 'call.agent_left' } }],
        },
      },
    },

    ringing: {
      entry: ['markRinging', { type: 'emit', params: { event: 'call.ringing' } }],
      on: {
        ...BIND_ROOM,
        'reconcile.gone': { target: 'ended', actions: { type: 'endWith', params: { reason: 'room_closed' } } },
        // LiveKit answers an inbound call once the agent subscribes; no webhook carries that
        // moment, so the agent joining is the answer signal (docs/call-lifecycle.md).
        'livekit.agent_joined': {
          target: 'connected',
          actions: [
            'addAgent',
            { type: 'emit', params: { event: 'call.agent_joined' } },
            'markAnswered',
            { type: 'emit', params: { event: 'call.started' } },
          ],
        },
        'livekit.sip_left': [
          {
            guard: and(['isCurrentSipParticipant', 'isFailureDisconnect']),
            target: 'failed',
            actions: 'endFromDisconnect',
          },
          { guard: 'isCurrentSipParticipant', target: 'ended', actions: 'endFromDisconnect' },
        ],
        'livekit.room_finished': {
          target: 'ended',
          actions: { type: 'endWith', params: { reason: 'room_closed' } },
        },
        'api.hangup': {
          target: 'ending',
          actions: { type: 'requestHangup', params: { cause: 'api_hangup' } },
        },
        'timer.ring_deadline': {
          guard: { type: 'deadlineReached', params: { timer: 'ring' } },
          target: 'ending',
          actions: { type: 'requestHangup', params: { cause: 'no_answer' } },
        },
      },
    },

    connected: {
      // Recorded calls start recording once connected (again after a failed transfer: no).
      always: {
        guard: 'recordingWanted',
        actions: ['requestRecording', { type: 'command', params: { command: 'startRecording' } }],
      },
      on: {
        ...BIND_ROOM,
        ...RECORDING_UPDATES,
        'reconcile.gone': { target: 'ended', actions: { type: 'endWith', params: { reason: 'room_closed' } } },
        'livekit.agent_joined': {
          actions: ['addAgent', 'disarmAgentWatchdog', { type: 'emit', params: { event: 'call.agent_joined' } }],
        },
        // Answered, and no agent came: the person who picked up would hear silence.
        'timer.agent_join': {
          guard: { type: 'deadlineReached', params: { timer: 'agentJoin' } },
          target: 'failed',
          actions: [
            { type: 'command', params: { command: 'hangUp' } },
            'endAgentTimeout',
            { type: 'emit', params: { event: 'call.error' } },
          ],
        },
        'livekit.agent_left': {
          actions: ['removeAgent', 'startAgentGrace', { type: 'emit', params: { event: 'call.agent_left' } }],
        },
        'timer.agent_grace': {
          guard: { type: 'deadlineReached', params: { timer: 'agentGrace' } },
          target: 'ending',
          actions: { type: 'requestHangup', params: { cause: 'agent_hangup' } },
        },
        'timer.max_duration': {
          guard: { type: 'deadlineReached', params: { timer: 'maxDuration' } },
          target: 'ending',
          actions: { type: 'requestHangup', params: { cause: 'max_duration' } },
        },
        'livekit.sip_left': [
          {
            guard: and(['isCurrentSipParticipant', 'isFailureDisconnect']),
            target: 'failed',
            actions: 'endFromDisconnect',
          },
          { guard: 'isCurrentSipParticipant', target: 'ended', actions: 'endFromDisconnect' },
        ],
        'livekit.room_finished': {
          target: 'ended',
          actions: { type: 'endWith', params: { reason: 'room_closed' } },
        },
        'api.hangup': {
          target: 'ending',
          actions: { type: 'requestHangup', params: { cause: 'api_hangup' } },
        },
        'api.transfer': { target: 'transferring', actions: 'requestTransfer' },
      },
    },

    transferring: {
      entry: [
        { type: 'emit', params: { event: 'call.transfer_requested' } },
        { type: 'command', params: { command: 'transfer' } },
      ],
      on: {
        ...BIND_ROOM,
        ...RECORDING_UPDATES,
        'reconcile.gone': { target: 'ended', actions: { type: 'endWith', params: { reason: 'room_closed' } } },
        'transfer.succeeded': {
          target: 'ended',
          actions: { type: 'endWith', params: { reason: 'transferred' } },
        },
        'transfer.failed': [
          // The phone party left while the REFER was in flight: the call is over after all.
          {
            guard: and(['phoneLeftDuringTransfer', 'isFailureDisconnect']),
            target: 'failed',
            actions: ['recordTransferFailure', { type: 'emit', params: { event: 'call.transfer_failed' } }, 'endFromDisconnect'],
          },
          {
            guard: 'phoneLeftDuringTransfer',
            target: 'ended',
            actions: ['recordTransferFailure', { type: 'emit', params: { event: 'call.transfer_failed' } }, 'endFromDisconnect'],
          },
          {
            target: 'connected',
            // An agent that left during the transfer leaves a connected call with no agent.
            actions: ['recordTransferFailure', 'startAgentGrace', { type: 'emit', params: { event: 'call.transfer_failed' } }],
          },
        ],
        // A successful REFER makes LiveKit hang up the phone leg, and its webhook may overtake
        // the API answer: keep the reason and let the transfer result decide.
        'livekit.sip_left': { guard: 'isCurrentSipParticipant', actions: 'recordPhoneLeft' },
        'livekit.agent_joined': {
          actions: ['addAgent', { type: 'emit', params: { event: 'call.agent_joined' } }],
        },
        'livekit.agent_left': {
          actions: ['removeAgent', { type: 'emit', params: { event: 'call.agent_left' } }],
        },
        'livekit.room_finished': {
          target: 'ended',
          actions: { type: 'endWith', params: { reason: 'room_closed' } },
        },
        'api.hangup': {
          target: 'ending',
          actions: { type: 'requestHangup', params: { cause: 'api_hangup' } },
        },
        'timer.max_duration': {
          guard: { type: 'deadlineReached', params: { timer: 'maxDuration' } },
          target: 'ending',
          actions: { type: 'requestHangup', params: { cause: 'max_duration' } },
        },
      },
    },

    ending: {
      entry: [
        { type: 'emit', params: { event: 'call.ending' } },
        { type: 'command', params: { command: 'hangUp' } },
      ],
      on: {
        ...BIND_ROOM,
        ...RECORDING_UPDATES,
        'reconcile.gone': { target: 'ended', actions: 'endAsRequested' },
        'livekit.sip_left': { guard: 'isCurrentSipParticipant', target: 'ended', actions: 'endAsRequested' },
        'livekit.room_finished': { target: 'ended', actions: 'endAsRequested' },
        'timer.ending_grace': {
          guard: { type: 'deadlineReached', params: { timer: 'endingGrace' } },
          target: 'ended',
          actions: 'endAsRequested',
        },
        // A second hang-up while LiveKit confirms the first is acknowledged and changes nothing.
        'api.hangup': { actions: 'acknowledgeHangup' },
        'livekit.agent_left': {
          actions: ['removeAgent', { type: 'emit', params: { event: 'call.agent_left' } }],
        },
      },
    },

    // Final: the call's state and end reason never change; its recording may still end.
    ended: {
      description: 'final: accepts recording updates and nothing else',
      entry: { type: 'emit', params: { event: 'call.ended' } },
      on: { ...RECORDING_UPDATES },
    },
    failed: {
      description: 'final: accepts recording updates and nothing else',
      entry: { type: 'emit', params: { event: 'call.failed' } },
      on: { ...RECORDING_UPDATES },
    },
  },
});

export type CallMachine = typeof callMachine;
