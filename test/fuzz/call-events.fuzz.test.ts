// Fuzzing the CP-01 chart through the runtime: random, duplicated and dropped event sequences for
// one call, with time moving in between, must never break the invariants of docs/call-lifecycle.md, docs/events.md, nor
// lose a deadline. And LiveKit's retries (every webhook delivered twice) must change nothing over HTTP.
//
// Bounded so it runs inside `npm test`. FUZZ_RUNS sets the number of runs (long variant:
// `FUZZ_RUNS=5000 npm test`); FUZZ_SEED replays a failure (fast-check prints seed and path).
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CALL_STATES,
  ENDED_REASONS,
  ERROR_CATEGORIES,
  isFinalState,
  RECORDING_STATUSES,
  type CallError,
  type CallEventType,
  type CallState,
  type DisconnectReason,
  type RecordingStatus,
  type TimerName,
} from '../../machines/call.types.js';
import type { IncomingEvent, SendResult } from '../../src/calls/call-runtime.js';
import { toSession } from '../../src/http/session.js';
import type { CallRecord } from '../../src/store/call-store.port.js';
import { CATEGORY_POLICIES } from '../../src/errors/policy.js';
import type { ObsEnvelope } from '../../src/obs/envelope.js';
import { createCallHarness, inboundInput, outboundInput, seqGaps, TEST_SETTINGS } from '../support/call-harness.js';
import { startServiceHarness, type ServiceHarness } from '../support/service-harness.js';
import {
  agentParticipant,
  newId,
  roomJson,
  sipParticipant,
  standardParticipant,
  webhookEvents,
  type ParticipantJson,
  type RoomJson,
  type WebhookEventJson,
} from '../../dev/webhook-events.js';
import { fuzzParameters, fuzzRuns, fuzzRunsGiven, timeoutFor } from './fuzz-budget.js';

/** runs per property; the slower HTTP de-duplication property takes 30, or a tenth of FUZZ_RUNS when it is set */
const FUZZ_RUNS = fuzzRuns(200);
const DEDUP_RUNS = fuzzRunsGiven() ? Math.max(1, Math.ceil(FUZZ_RUNS / 10)) : 30;

// ---- the vocabulary of the chart -------------------------------------------------------------

const DISCONNECT_REASONS: readonly DisconnectReason[] = [
  'UNKNOWN_REASON',
  'CLIENT_INITIATED',
  'DUPLICATE_IDENTITY',
  'SERVER_SHUTDOWN',
  'PARTICIPANT_REMOVED',
  'ROOM_DELETED',
  'STATE_MISMATCH',
  'JOIN_FAILURE',
  'MIGRATION',
  'SIGNAL_CLOSE',
  'ROOM_CLOSED',
  'USER_UNAVAILABLE',
  'USER_REJECTED',
  'SIP_TRUNK_FAILURE',
  'CONNECTION_TIMEOUT',
  'MEDIA_FAILURE',
  'AGENT_ERROR',
];


const TIMERS = {
  'timer.ring_deadline': 'ring',
  'timer.max_duration': 'maxDuration',
  'timer.retry': 'retry',
  'timer.ending_grace': 'endingGrace',
  'timer.agent_grace': 'agentGrace',
  'timer.agent_join': 'agentJoin',
} as const satisfies Record<string, TimerName>;
type TimerType = keyof typeof TIMERS;

// ---- symbolic events: resolved against the call as it is when they are sent ------------------

/** whose SIP participant an event is about: the call's current one, a stranger's, or an earlier attempt's */
type Who = 'current' | 'other' | 'previous';
/** which dial attempt a dial result is about */
type AttemptRef = 'current' | 'previous' | 'next';
/** when a timer event comes relative to its deadline */
type When = 'before' | 'at' | 'after';

type EventSpec =
  | { type: 'livekit.sip_joined'; who: Who; callStatus: string | null; sipCallId: string | null }
  | { type: 'livekit.sip_left'; who: Who; reason: DisconnectReason }
  | { type: 'livekit.agent_joined'; agent: string }
  | { type: 'livekit.agent_left'; agent: string; reason: DisconnectReason }
  | { type: 'livekit.room_started'; roomSid: string }
  | { type: 'livekit.room_finished' }
  | { type: 'dial.slot_granted' }
  | { type: 'dial.answered'; attempt: AttemptRef; who: Who; sipCallId: string | null }
  | { type: 'dial.failed'; attempt: AttemptRef; error: CallError; retryInMs: number | null }
  | { type: 'transfer.succeeded' }
  | { type: 'transfer.failed'; error: CallError }
  | { type: 'api.hangup' }
  | { type: 'api.transfer'; to: string }
  | { type: 'reconcile.gone'; what: 'room' | 'participant' }
  | { type: 'recording.updated'; egress: 'current' | 'other' | 'none'; status: RecordingStatus }
  | { type: TimerType; when: When; lateMs: number };

// Every CallEvent type has a generator below; this fails to compile when the chart gains one.
type Covered = EventSpec['type'];
const _everyEventTypeCovered: [CallEventType] extends [Covered] ? ([Covered] extends [CallEventType] ? true : never) : never = true;

type CallKind = 'inbound ringing' | 'inbound answered on arrival' | 'outbound';

interface Step {
  event: EventSpec;
  /** delivered twice in a row (the same event object) */
  twice: boolean;
  /** time that passes before the event, firing whatever timers come due */
  advanceMs: number | null;
}

const reasonArb = fc.constantFrom(...DISCONNECT_REASONS);
const whoArb = fc.constantFrom<Who>('current', 'current', 'other', 'previous');
const attemptArb = fc.constantFrom<AttemptRef>('current', 'current', 'previous', 'next');
const agentArb = fc.constantFrom('agent-a', 'agent-b', 'agent-c');

/** retryable as its category's policy says, or (now and then) the opposite */
const callErrorArb: fc.Arbitrary<CallError> = fc
  .tuple(
    fc.constantFrom(...ERROR_CATEGORIES),
    fc.oneof({ arbitrary: fc.constant(false), weight: 3 }, { arbitrary: fc.constant(true), weight: 1 }),
    fc.option(fc.constantFrom(404, 408, 480, 486, 487, 503, 603), { nil: null }),
  )
  .map(([category, flip, sipStatusCode]) => ({
    category,
    retryable: CATEGORY_POLICIES[category].retryable !== flip,
    message: `fuzzed ${category}`,
    sipStatusCode,
  }));

const timerArb: fc.Arbitrary<EventSpec> = fc.record({
  type: fc.constantFrom(...(Object.keys(TIMERS) as TimerType[])),
  when: fc.constantFrom<When>('before', 'at', 'after'),
  lateMs: fc.oneof(fc.constant(1), fc.integer({ min: 1, max: 120_000 })),
});

// Events that end a call in almost every state come less often, so sequences get deep.
const w = <T>(weight: number, arbitrary: fc.Arbitrary<T>) => ({ weight, arbitrary });
const eventArb: fc.Arbitrary<EventSpec> = fc.oneof(
  w(
    3,
    fc.record({
      type: fc.constant('livekit.sip_joined' as const),
      who: whoArb,
      callStatus: fc.constantFrom<string | null>('dialing', 'ringing', 'automation', 'active', 'hangup', null),
      sipCallId: fc.constantFrom<string | null>('SCL_fuzz1', 'SCL_fuzz2', null),
    }),
  ),
  w(2, fc.record({ type: fc.constant('livekit.sip_left' as const), who: whoArb, reason: reasonArb })),
  w(4, fc.record({ type: fc.constant('livekit.agent_joined' as const), agent: agentArb })),
  w(3, fc.record({ type: fc.constant('livekit.agent_left' as const), agent: agentArb, reason: reasonArb })),
  w(2, fc.record({ type: fc.constant('livekit.room_started' as const), roomSid: fc.constantFrom('RM_inbound', 'RM_fuzz_other') })),
  w(1, fc.constant({ type: 'livekit.room_finished' as const })),
  w(3, fc.constant({ type: 'dial.slot_granted' as const })),
  w(
    4,
    fc.record({
      type: fc.constant('dial.answered' as const),
      attempt: attemptArb,
      who: whoArb,
      sipCallId: fc.constantFrom<string | null>('SCL_answer', null),
    }),
  ),
  w(
    4,
    fc.record({
      type: fc.constant('dial.failed' as const),
      attempt: attemptArb,
      error: callErrorArb,
      retryInMs: fc.option(fc.integer({ min: 1, max: 30_000 }), { nil: null, freq: 4 }),
    }),
  ),
  w(2, fc.constant({ type: 'transfer.succeeded' as const })),
  w(3, fc.record({ type: fc.constant('transfer.failed' as const), error: callErrorArb })),
  w(1, fc.constant({ type: 'api.hangup' as const })),
  w(3, fc.record({ type: fc.constant('api.transfer' as const), to: fc.constantFrom('+31201234567', 'sip:desk@example.com') })),
  w(1, fc.record({ type: fc.constant('reconcile.gone' as const), what: fc.constantFrom<'room' | 'participant'>('room', 'participant') })),
  w(
    4,
    fc.record({
      type: fc.constant('recording.updated' as const),
      egress: fc.constantFrom<'current' | 'other' | 'none'>('current', 'current', 'current', 'other', 'none'),
      status: fc.constantFrom(...RECORDING_STATUSES),
    }),
  ),
  w(6, timerArb),
);

// Mostly short waits (agent grace 5 s, ending grace 10 s), sometimes past the ring deadline (30 s,
// outbound 35 s), rarely past the maximum duration (600 s).
const advanceArb: fc.Arbitrary<number> = fc.oneof(
  w(6, fc.constantFrom(0, 1, 999, 1_000, 4_999, 5_000, 10_000)),
  w(6, fc.integer({ min: 0, max: 12_000 })),
  w(2, fc.constantFrom(29_999, 30_000, 35_000, 40_000)),
  w(1, fc.constantFrom(599_999, 600_000, 610_000)),
  w(1, fc.integer({ min: 0, max: 700_000 })),
);

const stepArb: fc.Arbitrary<Step> = fc.record({
  event: eventArb,
  twice: fc.oneof({ arbitrary: fc.constant(false), weight: 5 }, { arbitrary: fc.constant(true), weight: 1 }),
  advanceMs: fc.oneof(w(4, fc.constant(null)), w(1, advanceArb)),
});

const retryable: CallError = { category: 'carrier_error', retryable: true, message: 'SIP 503', sipStatusCode: 503 };
const busy: CallError = { category: 'busy', retryable: false, message: 'SIP 486', sipStatusCode: 486 };

/** Plausible lifecycles, so deep states (transferring, backoff, ending) are reached often. */
const INBOUND_SCRIPTS: EventSpec[][] = [
  [
    { type: 'livekit.room_started', roomSid: 'RM_inbound' },
    { type: 'livekit.agent_joined', agent: 'agent-a' },
    { type: 'livekit.agent_joined', agent: 'agent-b' },
    { type: 'livekit.agent_left', agent: 'agent-a', reason: 'CLIENT_INITIATED' },
    { type: 'api.transfer', to: '+31201234567' },
    { type: 'transfer.failed', error: busy },
    { type: 'livekit.agent_left', agent: 'agent-b', reason: 'CLIENT_INITIATED' },
    { type: 'timer.agent_grace', when: 'after', lateMs: 1 },
    { type: 'livekit.sip_left', who: 'current', reason: 'PARTICIPANT_REMOVED' },
    { type: 'livekit.room_finished' },
  ],
  [
    { type: 'livekit.agent_joined', agent: 'agent-a' },
    { type: 'api.transfer', to: 'sip:desk@example.com' },
    { type: 'livekit.sip_left', who: 'current', reason: 'CLIENT_INITIATED' },
    { type: 'transfer.succeeded' },
    { type: 'api.hangup' },
    { type: 'timer.ending_grace', when: 'at', lateMs: 1 },
    { type: 'reconcile.gone', what: 'room' },
  ],
  [
    { type: 'timer.ring_deadline', when: 'before', lateMs: 1 },
    { type: 'timer.ring_deadline', when: 'at', lateMs: 1 },
    { type: 'api.hangup' },
    { type: 'livekit.sip_left', who: 'other', reason: 'CLIENT_INITIATED' },
    { type: 'livekit.sip_left', who: 'current', reason: 'ROOM_DELETED' },
    { type: 'timer.max_duration', when: 'after', lateMs: 1 },
  ],
  // Hung up, and the agent leaves with the room, but LiveKit never confirms the phone leg's end:
  // the ending grace deadline has to end the call.
  [
    { type: 'livekit.agent_joined', agent: 'agent-a' },
    { type: 'api.hangup' },
    { type: 'livekit.agent_left', agent: 'agent-a', reason: 'ROOM_DELETED' },
  ],
];

const OUTBOUND_SCRIPTS: EventSpec[][] = [
  [
    { type: 'dial.slot_granted' },
    { type: 'livekit.room_started', roomSid: 'RM_fuzz_other' },
    { type: 'livekit.sip_joined', who: 'current', callStatus: 'ringing', sipCallId: 'SCL_fuzz1' },
    { type: 'livekit.sip_left', who: 'current', reason: 'USER_UNAVAILABLE' },
    { type: 'dial.failed', attempt: 'current', error: retryable, retryInMs: 1_000 },
    { type: 'timer.retry', when: 'after', lateMs: 1 },
    { type: 'livekit.sip_left', who: 'previous', reason: 'SIP_TRUNK_FAILURE' },
    { type: 'dial.answered', attempt: 'previous', who: 'previous', sipCallId: 'SCL_fuzz1' },
    { type: 'dial.answered', attempt: 'current', who: 'current', sipCallId: 'SCL_answer' },
    { type: 'livekit.agent_joined', agent: 'agent-a' },
    { type: 'api.transfer', to: '+31201234567' },
    { type: 'livekit.sip_left', who: 'current', reason: 'MEDIA_FAILURE' },
    { type: 'transfer.failed', error: retryable },
    { type: 'livekit.room_finished' },
  ],
  [
    { type: 'dial.slot_granted' },
    { type: 'timer.ring_deadline', when: 'before', lateMs: 1 },
    { type: 'dial.failed', attempt: 'current', error: retryable, retryInMs: 5_000 },
    { type: 'timer.retry', when: 'before', lateMs: 1 },
    { type: 'timer.retry', when: 'at', lateMs: 1 },
    { type: 'dial.failed', attempt: 'current', error: busy, retryInMs: null },
    { type: 'api.hangup' },
  ],
  [
    { type: 'api.hangup' },
    { type: 'dial.slot_granted' },
    { type: 'dial.answered', attempt: 'current', who: 'current', sipCallId: null },
    { type: 'livekit.agent_left', agent: 'agent-a', reason: 'AGENT_ERROR' },
    { type: 'timer.agent_grace', when: 'after', lateMs: 1 },
    { type: 'timer.max_duration', when: 'at', lateMs: 1 },
    { type: 'livekit.sip_left', who: 'current', reason: 'CLIENT_INITIATED' },
  ],
  [
    { type: 'dial.slot_granted' },
    { type: 'dial.answered', attempt: 'current', who: 'current', sipCallId: 'SCL_answer' },
    { type: 'livekit.agent_joined', agent: 'agent-a' },
    { type: 'api.hangup' },
    { type: 'livekit.agent_left', agent: 'agent-a', reason: 'ROOM_DELETED' },
  ],
];

type Mode = 'keep' | 'drop' | 'twice';

/** A script with some events dropped, some duplicated and random steps inserted anywhere. */
function scriptedArb(script: EventSpec[]): fc.Arbitrary<Step[]> {
  const modeArb = fc.constantFrom<Mode>('keep', 'keep', 'keep', 'keep', 'drop', 'twice');
  return fc
    .tuple(
      fc.array(fc.tuple(modeArb, fc.option(advanceArb, { nil: null, freq: 3 })), { minLength: script.length, maxLength: script.length }),
      fc.array(fc.tuple(fc.nat({ max: script.length }), stepArb), { maxLength: 12 }),
    )
    .map(([modes, inserts]) => {
      const steps: Step[] = [];
      script.forEach((event, index) => {
        for (const [at, step] of inserts) if (at === index) steps.push(step);
        const [mode, advanceMs] = modes[index] ?? ['keep', null];
        if (mode !== 'drop') steps.push({ event, twice: mode === 'twice', advanceMs });
      });
      for (const [at, step] of inserts) if (at === script.length) steps.push(step);
      return steps.slice(0, 40);
    })
    .filter((steps) => steps.length > 0);
}

/** Random steps; an outbound call is mostly granted its dial slot first, or it rarely gets further. */
function stepsArb(kind: CallKind, scripts: EventSpec[][]): fc.Arbitrary<Step[]> {
  const random = fc.array(stepArb, { minLength: 1, maxLength: 40 });
  const granted = fc
    .array(stepArb, { minLength: 0, maxLength: 39 })
    .map((steps): Step[] => [{ event: { type: 'dial.slot_granted' }, twice: false, advanceMs: null }, ...steps]);
  return fc.oneof(w(2, random), ...(kind === 'outbound' ? [w(3, granted)] : []), ...scripts.map((script) => w(1, scriptedArb(script))));
}

// ---- applying the steps ----------------------------------------------------------------------

type CallHarness = ReturnType<typeof createCallHarness>;

function sipIdentity(record: CallRecord, who: Who): string {
  const { context } = record;
  const outbound = context.direction === 'outbound';
  const current = context.sipIdentity ?? `sip-${record.id}-${Math.max(1, context.attempt)}`;
  if (who === 'current') return current;
  if (who === 'other') return outbound ? 'sip-someone-else' : 'sip_+31600000000';
  return outbound ? `sip-${record.id}-${Math.max(0, context.attempt - 1)}` : `${current}-earlier`;
}

function attemptNumber(record: CallRecord, ref: AttemptRef): number {
  const { attempt } = record.context;
  return ref === 'current' ? attempt : ref === 'previous' ? attempt - 1 : attempt + 1;
}

/** The concrete event for the call as it is now; may move the clock for timer events. */
function resolve(h: CallHarness, record: CallRecord, spec: EventSpec): IncomingEvent {
  const now = h.clock.now();
  switch (spec.type) {
    case 'livekit.sip_joined':
      return {
        type: spec.type,
        participant: { identity: sipIdentity(record, spec.who), sid: 'PA_sip' },
        callStatus: spec.callStatus,
        sipCallId: spec.sipCallId,
      };
    case 'livekit.sip_left':
      return { type: spec.type, participant: { identity: sipIdentity(record, spec.who), sid: 'PA_sip' }, reason: spec.reason };
    case 'livekit.agent_joined':
      return { type: spec.type, participant: { identity: spec.agent, sid: null } };
    case 'livekit.agent_left':
      return { type: spec.type, participant: { identity: spec.agent, sid: null }, reason: spec.reason };
    case 'dial.answered':
      return {
        type: spec.type,
        attempt: attemptNumber(record, spec.attempt),
        participantIdentity: sipIdentity(record, spec.who),
        sipCallId: spec.sipCallId,
      };
    case 'dial.failed':
      return {
        type: spec.type,
        attempt: attemptNumber(record, spec.attempt),
        error: spec.error,
        retryAt: spec.retryInMs === null ? null : now + spec.retryInMs,
      };
    case 'timer.ring_deadline':
    case 'timer.max_duration':
    case 'timer.retry':
    case 'timer.ending_grace':
    case 'timer.agent_grace':
    case 'timer.agent_join': {
      const deadline = record.context.deadlines[TIMERS[spec.type]];
      if (deadline === null) return { type: spec.type };
      // Before: stamped just short of the deadline. At / after: the clock moves there without
      // firing the runtime's own timer, which then fires late, on the next advance.
      if (spec.when === 'before') return { type: spec.type, at: Math.min(now, deadline - 1) };
      h.clock.set(Math.max(now, spec.when === 'at' ? deadline : deadline + spec.lateMs));
      return { type: spec.type };
    }
    case 'recording.updated': {
      const egressId = spec.egress === 'none' ? null : spec.egress === 'other' ? 'EG_fuzz_other' : (record.context.recording?.egressId ?? 'EG_fuzz1');
      const ended = spec.status === 'complete' || spec.status === 'failed';
      return {
        type: spec.type,
        recording: {
          egressId,
          status: spec.status,
          startedAt: spec.status === 'starting' ? null : now - 1000,
          endedAt: ended ? now : null,
          durationS: spec.status === 'complete' ? 1 : null,
          sizeBytes: spec.status === 'complete' ? 16_000 : null,
          location: spec.status === 'complete' ? 'recordings/fuzz.ogg' : null,
          error: spec.status === 'failed' ? { category: 'media_failure', retryable: false, message: 'egress failed', sipStatusCode: null } : null,
        },
      };
    }
    default:
      return spec;
  }
}

/**
 * Moves time on with the runtime's own timers only, letting every timer that comes due fire and be
 * applied, also ones armed meanwhile. The timer path only logs a failure and retries, so failures
 * are collected by the wrapper `watchTimers` puts around `fireDue` and reported here.
 */
async function advance(h: CallHarness, id: string, ms: number, timerErrors: unknown[]): Promise<void> {
  const settle = async () => {
    await h.runtime.idle();
    await new Promise((resolve) => setTimeout(resolve, 0));
  };
  const until = h.clock.now() + ms;
  for (let round = 0; round < 50; round++) {
    const due = h.scheduler.dueAt(id);
    if (due === undefined || due > until) break;
    h.scheduler.advance(Math.max(0, due - h.clock.now()));
    await settle();
  }
  h.scheduler.advance(Math.max(0, until - h.clock.now()));
  await settle();
  if (timerErrors.length > 0) {
    const err = timerErrors[0];
    throw new Error(`a timer event failed: ${String(err)}${err instanceof Error && err.cause ? ` (cause: ${String(err.cause)})` : ''}`, { cause: err });
  }
}

/** Records every failure of the runtime's timer path, which itself only logs them. */
function watchTimers(h: CallHarness): unknown[] {
  const errors: unknown[] = [];
  const fireDue = h.runtime.fireDue.bind(h.runtime);
  h.runtime.fireDue = (sessionId: string) =>
    fireDue(sessionId).catch((err: unknown) => {
      errors.push(err);
      throw err;
    });
  return errors;
}

interface Frozen {
  state: CallState;
  endReason: string | null;
  /** the context without its recording, which may still change */
  context: string;
  events: ObsEnvelope[];
}

const RECORDING_EVENTS = ['call.recording_started', 'call.recording_ended', 'call.recording_failed'];
const withoutRecording = (record: CallRecord): string => JSON.stringify({ ...record.context, recording: undefined });

const LIVE_ANSWERED: readonly CallState[] = ['connected', 'transferring'];

/** Every invariant of one call, as stored now; returns the call's frozen form once it is final. */
async function checkCall(h: CallHarness, id: string, frozen: Frozen | null, where: string): Promise<Frozen | null> {
  const record = await h.store.get(id);
  const events = await h.store.events(id);
  if (!record || !events) throw new Error(`${where}: the call or its events are gone from the store`);
  const final = isFinalState(record.state);
  const session = toSession(record);

  expect(CALL_STATES, `${where}: public state`).toContain(record.state);
  expect(seqGaps(events), `${where}: seq 1..n without gaps`).toEqual([]);
  expect(events.length, `${where}: every committed event is stored`).toBe(record.lastSeq);
  expect(events.at(-1)?.state, `${where}: the newest event carries the state after its transition`).toBe(record.state);
  const terminal = events.filter((e) => e.event === 'call.ended' || e.event === 'call.failed');
  expect(terminal.length, `${where}: one call.ended/call.failed exactly when final`).toBe(final ? 1 : 0);
  if (final) {
    const lastOfCall = events.filter((e) => !RECORDING_EVENTS.includes(e.event)).at(-1);
    expect(lastOfCall?.event, `${where}: the final event is the call's last one`).toBe(record.state === 'ended' ? 'call.ended' : 'call.failed');
  }
  const recordingEvents = events.filter((e) => RECORDING_EVENTS.includes(e.event)).map((e) => e.event);
  expect(recordingEvents.filter((e) => e === 'call.recording_started').length, `${where}: one call.recording_started at most`).toBeLessThanOrEqual(1);
  expect(recordingEvents.filter((e) => e !== 'call.recording_started').length, `${where}: one end of the recording at most`).toBeLessThanOrEqual(1);
  if (recordingEvents.includes('call.recording_ended')) expect(recordingEvents[0], `${where}: a recording ends after it started`).toBe('call.recording_started');
  const status = record.context.recording?.status;
  expect(recordingEvents.includes('call.recording_ended'), `${where}: call.recording_ended exactly when complete`).toBe(status === 'complete');
  expect(recordingEvents.includes('call.recording_failed'), `${where}: call.recording_failed exactly when failed`).toBe(status === 'failed');

  expect(session.end_reason !== null, `${where}: end_reason is set exactly when final (state ${record.state})`).toBe(final);
  if (record.state === 'failed') expect(ERROR_CATEGORIES, `${where}: a failed call ends with a CP-04 category`).toContain(session.end_reason);
  if (record.state === 'ended') expect(ENDED_REASONS, `${where}: an ended call ends with an end reason of docs/call-lifecycle.md`).toContain(session.end_reason);
  if (LIVE_ANSWERED.includes(record.state)) expect(session.answered_at, `${where}: a ${record.state} call has answered_at`).not.toBeNull();
  if (session.duration_s !== null) expect(session.duration_s, `${where}: duration_s`).toBeGreaterThanOrEqual(0);
  const { answeredAt, endedAt } = record.context;
  if (answeredAt !== null && endedAt !== null) expect(endedAt, `${where}: ended_at is not before answered_at`).toBeGreaterThanOrEqual(answeredAt);
  for (const event of terminal) {
    const duration = event.data.duration_s;
    if (duration !== null) expect(duration, `${where}: ${event.event} duration_s`).toBeGreaterThanOrEqual(0);
  }

  if (frozen) {
    expect(record.state, `${where}: a final state never changes`).toBe(frozen.state);
    expect(record.context.endReason, `${where}: a final end_reason never changes`).toBe(frozen.endReason);
    expect(withoutRecording(record), `${where}: a final call changes nothing but its recording`).toBe(frozen.context);
    expect(events.slice(0, frozen.events.length), `${where}: no event of a final call changes`).toEqual(frozen.events);
    const appended = events.slice(frozen.events.length).map((e) => e.event);
    expect(appended.every((e) => RECORDING_EVENTS.includes(e)), `${where}: only recording events follow the final one (${appended.join(', ')})`).toBe(true);
    return frozen;
  }
  return final ? { state: record.state, endReason: record.context.endReason, context: withoutRecording(record), events } : null;
}

const OUTCOMES: readonly SendResult['outcome'][] = ['applied', 'rejected', 'ignored'];

/** States in which a call has no deadline and may wait for ever (an outbound call without a dial slot). */
const WAITING_STATES: readonly CallState[] = ['queued'];

/**
 * Plays the steps on a fresh call, checking every invariant after each. With `liveness`, then waits
 * past every deadline a call can have (ring 35 s, retry 30 s, max duration 600 s, ending grace
 * 10 s) and requires the call to have ended: no deadline may be lost.
 */
async function play(kind: CallKind, steps: Step[], options: { liveness: boolean }): Promise<void> {
  const h = createCallHarness();
  const timerErrors = watchTimers(h);
  // Every fuzzed call is recorded, so recording updates meet every state.
  const settings = { ...TEST_SETTINGS, record: true };
  const input =
    kind === 'outbound'
      ? outboundInput({ settings })
      : inboundInput({ sipCallStatus: kind === 'inbound answered on arrival' ? 'active' : 'ringing', settings });
  const id = input.sessionId;
  await h.runtime.create(input);
  let frozen = await checkCall(h, id, null, 'after create');
  try {
    for (const [index, step] of steps.entries()) {
      if (step.advanceMs !== null) {
        await advance(h, id, step.advanceMs, timerErrors);
        frozen = await checkCall(h, id, frozen, `step ${index}: after advancing ${step.advanceMs} ms`);
      }
      const record = await h.store.get(id);
      if (!record) throw new Error(`step ${index}: the call is gone`);
      const event = resolve(h, record, step.event);
      for (const delivery of step.twice ? [1, 2] : [1]) {
        const where = `step ${index}${delivery === 2 ? ' (again)' : ''}: ${JSON.stringify(event)}`;
        const wasFinal = frozen !== null;
        let result: SendResult;
        try {
          result = await h.runtime.send(id, event);
        } catch (err) {
          throw new Error(`${where}: send threw ${String(err)}${err instanceof Error && err.cause ? ` (cause: ${String(err.cause)})` : ''}`, { cause: err });
        }
        expect(OUTCOMES, `${where}: outcome`).toContain(result.outcome);
        // A final call takes recording updates (applied or rejected by the chart) and ignores the rest.
        const finalTakes = wasFinal && event.type === 'recording.updated';
        expect(result.outcome === 'ignored', `${where}: ignored exactly when the call was already final`).toBe(wasFinal && !finalTakes);
        frozen = await checkCall(h, id, frozen, where);
      }
    }
    const before = await h.store.get(id);
    const startedAt = h.clock.now();
    await advance(h, id, 700_000, timerErrors);
    await checkCall(h, id, frozen, 'after the last step and a long wait');
    if (options.liveness) {
      const after = await h.store.get(id);
      if (after && !isFinalState(after.state) && !WAITING_STATES.includes(after.state)) {
        const relative = (deadlines: object | undefined) =>
          JSON.stringify(Object.fromEntries((Object.entries(deadlines ?? {}) as [string, number | null][]).map(([name, at]) => [name, at === null ? null : at - startedAt])));
        const armed = h.scheduler.dueAt(id);
        throw new Error(
          `the call is still ${after.state} 700 s after its last event (it was ${before?.state}). ` +
            `Deadlines before the wait, in ms from its start: ${relative(before?.context.deadlines)}; after: ${relative(after.context.deadlines)}; ` +
            `timer armed: ${armed === undefined ? 'none' : armed - startedAt}`,
        );
      }
    }
  } finally {
    await h.runtime.stop();
  }
}

const KINDS: { kind: CallKind; scripts: EventSpec[][] }[] = [
  { kind: 'inbound ringing', scripts: INBOUND_SCRIPTS },
  { kind: 'inbound answered on arrival', scripts: INBOUND_SCRIPTS },
  { kind: 'outbound', scripts: OUTBOUND_SCRIPTS },
];

describe('CP-01 under fuzzed event sequences', () => {
  for (const { kind, scripts } of KINDS) {
    it(
      `keeps every state, seq and end-reason invariant of an ${kind} call under any sequence of events, duplicates, drops and timer firings`,
      async () => {
        await fc.assert(
          fc.asyncProperty(stepsArb(kind, scripts), (steps) => play(kind, steps, { liveness: false })),
          fuzzParameters(FUZZ_RUNS),
        );
      },
      timeoutFor(FUZZ_RUNS, 150),
    );
  }

  it(
    'ends every call that has a deadline once time passes all of its deadlines, whatever events came before: no timer is lost',
    async () => {
      const scenarioArb = fc.oneof(...KINDS.map(({ kind, scripts }) => stepsArb(kind, scripts).map((steps): [CallKind, Step[]] => [kind, steps])));
      await fc.assert(
        fc.asyncProperty(scenarioArb, ([kind, steps]) => play(kind, steps, { liveness: true })),
        fuzzParameters(FUZZ_RUNS),
      );
    },
    timeoutFor(FUZZ_RUNS, 150),
  );
});

// ---- LiveKit delivering every webhook twice ------------------------------------------------

type WebhookSpec =
  | { kind: 'caller_joined'; callStatus: 'ringing' | 'active' }
  | { kind: 'caller_left'; reason: DisconnectReason; aborted: boolean }
  | { kind: 'agent_joined'; agent: string }
  | { kind: 'agent_left'; agent: string; reason: DisconnectReason }
  | { kind: 'second_sip_joined' }
  | { kind: 'second_sip_left'; reason: DisconnectReason }
  | { kind: 'stranger_joined' }
  | { kind: 'track_published' }
  | { kind: 'room_started' }
  | { kind: 'room_finished' }
  | { kind: 'advance'; ms: number };

const webhookSpecArb: fc.Arbitrary<WebhookSpec> = fc.oneof(
  fc.record({ kind: fc.constant('caller_joined' as const), callStatus: fc.constantFrom<'ringing' | 'active'>('ringing', 'active') }),
  fc.record({ kind: fc.constant('caller_left' as const), reason: reasonArb, aborted: fc.boolean() }),
  fc.record({ kind: fc.constant('agent_joined' as const), agent: agentArb }),
  fc.record({ kind: fc.constant('agent_joined' as const), agent: agentArb }),
  fc.record({ kind: fc.constant('agent_left' as const), agent: agentArb, reason: reasonArb }),
  fc.constant({ kind: 'second_sip_joined' as const }),
  fc.record({ kind: fc.constant('second_sip_left' as const), reason: reasonArb }),
  fc.constant({ kind: 'stranger_joined' as const }),
  fc.constant({ kind: 'track_published' as const }),
  fc.constant({ kind: 'room_started' as const }),
  fc.constant({ kind: 'room_finished' as const }),
  fc.record({ kind: fc.constant('advance' as const), ms: fc.constantFrom(1_000, 5_000, 10_000, 31_000) }),
);

const webhookSequenceArb: fc.Arbitrary<WebhookSpec[]> = fc
  .tuple(
    fc.option(fc.constantFrom<'ringing' | 'active'>('ringing', 'active'), { nil: null, freq: 8 }),
    fc.array(webhookSpecArb, { minLength: 1, maxLength: 16 }),
  )
  .map(([first, rest]) => (first === null ? rest : [{ kind: 'caller_joined' as const, callStatus: first }, ...rest]));

/** One inbound call's room, with everything that tells it apart from its twin. */
interface RoomSide {
  room: RoomJson;
  phone: string;
  callId: string;
  sessions: string[];
}

let roomCounter = 0;

function newSide(): RoomSide {
  roomCounter += 1;
  const digits = String(1_000_000 + Math.floor(Math.random() * 8_999_999));
  return { room: roomJson(`call-_fuzz${roomCounter}_${newId('', 8)}`), phone: `+316${digits}${roomCounter % 10}`, callId: newId('SCL_'), sessions: [] };
}

function webhookFor(side: RoomSide, spec: Exclude<WebhookSpec, { kind: 'advance' }>): WebhookEventJson {
  const caller = (callStatus: 'ringing' | 'active' = 'ringing'): ParticipantJson =>
    sipParticipant({ phoneNumber: side.phone, trunkPhoneNumber: '+3197010206472', callStatus, callId: side.callId, sid: `PA_${side.callId}` });
  const second = sipParticipant({ phoneNumber: '+31200000000', identity: `sip_second_${side.callId}`, callId: `${side.callId}_2` });
  const agent = (identity: string) => agentParticipant({ identity, sid: `PA_${identity}` });
  switch (spec.kind) {
    case 'caller_joined':
      return webhookEvents.participantJoined(side.room, caller(spec.callStatus));
    case 'caller_left':
      return spec.aborted
        ? webhookEvents.participantConnectionAborted(side.room, caller(), spec.reason)
        : webhookEvents.participantLeft(side.room, caller(), spec.reason);
    case 'agent_joined':
      return webhookEvents.participantJoined(side.room, agent(spec.agent));
    case 'agent_left':
      return webhookEvents.participantLeft(side.room, agent(spec.agent), spec.reason);
    case 'second_sip_joined':
      return webhookEvents.participantJoined(side.room, second);
    case 'second_sip_left':
      return webhookEvents.participantLeft(side.room, second, spec.reason);
    case 'stranger_joined':
      return webhookEvents.participantJoined(side.room, standardParticipant({ identity: 'observer' }));
    case 'track_published':
      return webhookEvents.trackPublished(side.room, caller());
    case 'room_started':
      return webhookEvents.roomStarted(side.room);
    case 'room_finished':
      return webhookEvents.roomFinished(side.room);
  }
}

async function readJson<T>(response: Response): Promise<T> {
  expect(response.status, `${response.url}`).toBe(200);
  return (await response.json()) as T;
}

/** The sessions and events of one side, with what differs between the twins replaced by placeholders. */
async function observe(h: ServiceHarness, side: RoomSide): Promise<unknown> {
  const calls: unknown[] = [];
  for (const id of side.sessions) {
    const session = await readJson<Record<string, unknown>>(await h.api(`/v1/calls/${encodeURIComponent(id)}`));
    const { events } = await readJson<{ events: ObsEnvelope[] }>(await h.api(`/v1/calls/${encodeURIComponent(id)}/events`));
    calls.push({ session, events: events.map(({ event_id: _id, session_id: _session, ...rest }) => rest) });
  }
  let text = JSON.stringify(calls);
  const tokens: [string, string][] = [
    [side.room.name, '<room>'],
    [side.room.sid, '<room-sid>'],
    [side.callId, '<call-id>'],
    [side.phone, '<phone>'],
    ...side.sessions.map((id, index): [string, string] => [id, `<session-${index}>`]),
  ];
  for (const [token, placeholder] of tokens) text = text.split(token).join(placeholder);
  return JSON.parse(text);
}

async function settle(h: ServiceHarness, advanceMs = 0): Promise<void> {
  // Timers armed by a commit during the advance come due at once: a few rounds let them fire too.
  for (let round = 0; round < 4; round++) {
    h.scheduler?.advance(round === 0 ? advanceMs : 0);
    await h.settled();
  }
}

describe('POST /webhook under LiveKit retries', () => {
  let h: ServiceHarness;
  beforeAll(async () => {
    h = await startServiceHarness();
  });
  afterAll(async () => {
    await h?.close();
  });

  it(
    'ends in the same final state with the same events whether each webhook of a sequence is delivered once or twice in a row',
    async () => {
      await fc.assert(
        fc.asyncProperty(webhookSequenceArb, async (specs) => {
          const once = newSide();
          const twice = newSide();
          const track = (side: RoomSide, text: string) => {
            const sessionId = (JSON.parse(text) as { session_id: string | null }).session_id;
            if (sessionId && !side.sessions.includes(sessionId)) side.sessions.push(sessionId);
          };
          for (const spec of specs) {
            if (spec.kind === 'advance') {
              await settle(h, spec.ms);
              continue;
            }
            const single = JSON.stringify(webhookFor(once, spec));
            const first = await h.postSigned(single);
            expect(first.status, `${spec.kind} once: ${first.body}`).toBe(200);
            track(once, first.body);

            const doubled = JSON.stringify(webhookFor(twice, spec));
            const a = await h.postSigned(doubled);
            const b = await h.postSigned(doubled);
            expect(a.status, `${spec.kind} first delivery: ${a.body}`).toBe(200);
            expect(b.status, `${spec.kind} second delivery: ${b.body}`).toBe(200);
            expect(JSON.parse(b.body), `${spec.kind}: the retry is recognised`).toMatchObject({ status: 'duplicate' });
            track(twice, a.body);
            await settle(h);
          }
          await settle(h);
          expect(twice.sessions.length, 'as many calls either way').toBe(once.sessions.length);
          expect(await observe(h, twice)).toEqual(await observe(h, once));
        }),
        fuzzParameters(DEDUP_RUNS),
      );
    },
    timeoutFor(DEDUP_RUNS, 1_500),
  );
});
