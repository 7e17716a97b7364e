// Model-based tests of the CP-01 chart: paths are derived from the chart itself with
// `createTestModel` (xstate/graph) and replayed against the real call runtime (real call
// logic, embedded store, OBS-00 events). A coverage test lists every transition of the chart
// and fails, naming them, if any path never takes it.
import { describe, expect, it } from 'vitest';
import { createActor, type AnyStateNode } from 'xstate';
import { createTestModel } from 'xstate/graph';
import { callMachine } from '../../machines/call.machine.js';
import type { CallContext, CallError, CallEvent, CallInput, RecordingStatus, TimerName } from '../../machines/call.types.js';
import { createCallLogic } from '../../src/calls/call.logic.js';
import { publicState } from '../../src/http/session.js';
import { createCallHarness, inboundInput, outboundInput, seqGaps, TEST_SETTINGS } from '../support/call-harness.js';

const logic = createCallLogic(() => undefined);
type Snapshot = ReturnType<ReturnType<typeof createActor<typeof logic>>['getSnapshot']>;

const T0 = Date.UTC(2026, 10, 24, 12, 0, 0);
const error = (category: CallError['category'], retryable: boolean, sipStatusCode: number | null = null): CallError => ({
  category,
  retryable,
  message: `test ${category}`,
  sipStatusCode,
});

const TIMERS: Record<TimerName, CallEvent['type']> = {
  ring: 'timer.ring_deadline',
  maxDuration: 'timer.max_duration',
  retry: 'timer.retry',
  endingGrace: 'timer.ending_grace',
  agentGrace: 'timer.agent_grace',
  agentJoin: 'timer.agent_join',
};

/** Every event the outside world can send to a call in this snapshot, with plausible payloads. */
function eventsFor(snapshot: Snapshot): CallEvent[] {
  const context: CallContext = snapshot.context;
  const at = T0 + 1000;
  const phone = { identity: context.sipIdentity ?? 'sip-unknown', sid: 'PA_phone' };
  const agent = { identity: 'agent-1', sid: 'PA_agent' };
  const timers = (Object.entries(context.deadlines) as [TimerName, number | null][])
    .filter(([, deadline]) => deadline !== null)
    .map(([timer, deadline]) => ({ type: TIMERS[timer], at: deadline as number }) as CallEvent);
  return [
    ...timers,
    { type: 'dial.slot_granted', at },
    { type: 'dial.answered', at, attempt: context.attempt, participantIdentity: phone.identity, sipCallId: 'SCL_1' },
    { type: 'dial.failed', at, attempt: context.attempt, error: error('carrier_error', true, 503), retryAt: at + 2000 },
    { type: 'dial.failed', at, attempt: context.attempt, error: error('busy', false, 486), retryAt: null },
    { type: 'dial.failed', at, attempt: context.attempt, error: error('auth_error', false), retryAt: null },
    { type: 'livekit.room_started', at, roomSid: 'RM_model' },
    { type: 'livekit.sip_joined', at, participant: phone, callStatus: 'dialing', sipCallId: 'SCL_1' },
    { type: 'livekit.sip_left', at, participant: phone, reason: 'CLIENT_INITIATED' },
    { type: 'livekit.sip_left', at, participant: phone, reason: 'MEDIA_FAILURE' },
    { type: 'livekit.agent_joined', at, participant: agent },
    { type: 'livekit.agent_left', at, participant: agent, reason: 'CLIENT_INITIATED' },
    { type: 'livekit.room_finished', at },
    { type: 'transfer.succeeded', at },
    { type: 'transfer.failed', at, error: error('declined', false, 603) },
    { type: 'api.hangup', at },
    { type: 'api.transfer', at, to: '+31201234567' },
    { type: 'reconcile.gone', at, what: 'room' },
    ...recordingUpdates(context, at),
  ];
}

/** What LiveKit may say of the call's recording: each status of its egress, a refused start, another egress. */
function recordingUpdates(context: CallContext, at: number): CallEvent[] {
  const egressId = context.recording?.egressId ?? 'EG_model';
  const update = (status: RecordingStatus, id: string | null = egressId): CallEvent => ({
    type: 'recording.updated',
    at,
    recording: {
      egressId: id,
      status,
      startedAt: status === 'starting' ? null : at - 1000,
      endedAt: status === 'complete' || status === 'failed' ? at : null,
      durationS: status === 'complete' ? 1 : null,
      sizeBytes: status === 'complete' ? 16_000 : null,
      location: status === 'complete' ? 'recordings/model.ogg' : null,
      error: status === 'failed' ? error('media_failure', false) : null,
    },
  });
  return [update('starting'), update('active'), update('ending'), update('complete'), update('failed'), update('failed', null), update('complete', 'EG_other')];
}

/** States differ by what changes behaviour, not by timestamps. */
function serializeState(snapshot: Snapshot): string {
  const c = snapshot.context;
  return JSON.stringify([
    snapshot.value,
    c.attempt,
    c.agents.length,
    c.roomSid !== null,
    c.hangupCause,
    c.phoneLeftReason,
    Object.entries(c.deadlines).filter(([, v]) => v !== null).map(([k]) => k),
    c.recording?.status ?? null,
    c.recording?.egressId != null,
  ]);
}

const transitionKey = (source: AnyStateNode, eventType: string, index: number) => `${source.id} on ${eventType} #${index}`;

/** Every transition of the chart, as "<state id> on <event> #<index among that event's transitions>". */
function allTransitions(): string[] {
  const keys: string[] = [];
  const visit = (node: AnyStateNode) => {
    for (const [eventType, transitions] of node.transitions) {
      transitions.forEach((_t, index) => keys.push(transitionKey(node, eventType, index)));
    }
    node.always?.forEach((_t, index) => keys.push(transitionKey(node, 'always', index)));
    Object.values(node.states).forEach(visit);
  };
  visit(callMachine.root);
  return keys;
}

/** The transitions `event` takes from `snapshot`, in the same key format. */
function takenBy(snapshot: Snapshot, event: CallEvent): string[] {
  return logic.getTransitionData(snapshot as never, event).map((t) => {
    const list = t.source.transitions.get(t.eventType) ?? [];
    return transitionKey(t.source, t.eventType, list.indexOf(t));
  });
}

const SCENARIOS: { name: string; input: Omit<CallInput, 'at'>; initial: string }[] = [
  { name: 'inbound call that rings first', input: inboundInput(), initial: 'ringing' },
  { name: 'inbound call already answered on arrival', input: inboundInput({ sipCallStatus: 'active' }), initial: 'connected' },
  { name: 'outbound call', input: outboundInput(), initial: 'queued' },
  { name: 'inbound call whose room sid came later', input: inboundInput({ roomSid: null }), initial: 'ringing' },
  {
    name: 'inbound call recorded from its answer on arrival',
    input: inboundInput({ sipCallStatus: 'active', settings: { ...TEST_SETTINGS, record: true } }),
    initial: 'connected',
  },
];

const connectedNode = logic.root.states.connected as AnyStateNode;
/** A recorded call's `connected` asks for its recording by an eventless transition, which getTransitionData does not report. */
const requestsRecording = (before: Snapshot | null, after: Snapshot): boolean =>
  (before === null || before.context.recording === null) && after.context.recording !== null;

function modelFor(input: Omit<CallInput, 'at'>) {
  return createTestModel(logic, {
    input: { ...input, at: T0 },
    events: (snapshot) => eventsFor(snapshot as Snapshot),
    serializeState: (snapshot) => serializeState(snapshot as Snapshot),
  });
}

/** The shortest path to every state, plus one path per edge of the adjacency map. */
function pathsFor(input: Omit<CallInput, 'at'>) {
  const model = modelFor(input);
  const shortest = model.getShortestPaths({ allowDuplicatePaths: true });
  const adjacency = model.getAdjacencyMap();
  const toState = new Map(shortest.map((path) => [serializeState(path.state as Snapshot), path]));
  const edges: { steps: { event: CallEvent; state: Snapshot }[]; state: Snapshot }[] = [];
  for (const [key, { transitions }] of Object.entries(adjacency)) {
    const prefix = toState.get(key);
    if (!prefix) continue;
    for (const { event, state } of Object.values(transitions) as { event: CallEvent; state: Snapshot }[]) {
      edges.push({ steps: [...(prefix.steps as { event: CallEvent; state: Snapshot }[]), { event, state }], state });
    }
  }
  return { model, shortest, edges };
}

/** Replays every edge path of a scenario against a fresh runtime; returns the transitions taken. */
async function replay(scenario: (typeof SCENARIOS)[number]): Promise<Set<string>> {
  const taken = new Set<string>();
  const { edges } = pathsFor(scenario.input);
  expect(edges.length).toBeGreaterThan(5);
  for (const path of edges) {
    const { runtime, store } = createCallHarness();
    const created = await runtime.create({ ...scenario.input, at: T0 });
    expect(created.state).toBe(scenario.initial);
    // The initial snapshot tells which `always` branch of `created` was taken.
    const initial = createActor(logic, { input: { ...scenario.input, at: T0 } }).start().getSnapshot();
    const createdNode = logic.root.states.created as AnyStateNode;
    const branch = createdNode.always?.findIndex((t) => t.target?.[0]?.key === publicState(initial.value)) ?? -1;
    taken.add(transitionKey(createdNode, 'always', branch));
    if (requestsRecording(null, initial)) taken.add(transitionKey(connectedNode, 'always', 0));

    let previous = initial;
    for (const step of path.steps) {
      const event = step.event as CallEvent;
      for (const key of takenBy(previous, event)) taken.add(key);
      if (requestsRecording(previous, step.state as Snapshot)) taken.add(transitionKey(connectedNode, 'always', 0));
      const result = await runtime.send(scenario.input.sessionId, event);
      const expected = publicState((step.state as Snapshot).value);
      expect(result.outcome === 'not_found' ? null : result.record.state, `after ${event.type}`).toBe(expected);
      previous = step.state as Snapshot;
    }
    const events = (await store.events(scenario.input.sessionId)) ?? [];
    expect(seqGaps(events)).toEqual([]);
    const finals = events.filter((e) => e.event === 'call.ended' || e.event === 'call.failed');
    expect(finals.length).toBeLessThanOrEqual(1);
    // Only recording events may follow the call's final event.
    const callEvents = events.filter((e) => !e.event.startsWith('call.recording_'));
    if (finals[0]) expect(finals[0]).toBe(callEvents[callEvents.length - 1]);
  }
  return taken;
}

const replays = new Map<string, Promise<Set<string>>>();
const replayOnce = (scenario: (typeof SCENARIOS)[number]) => {
  if (!replays.has(scenario.name)) replays.set(scenario.name, replay(scenario));
  return replays.get(scenario.name) as Promise<Set<string>>;
};

describe('call chart (model-based)', () => {
  for (const scenario of SCENARIOS) {
    it(`drives every reachable transition of an ${scenario.name} through the runtime with gap-free OBS-00 events`, async () => {
      const taken = await replayOnce(scenario);
      expect(taken.size).toBeGreaterThan(0);
    });
  }

  it('takes every transition of the chart in at least one path', async () => {
    const taken = new Set<string>();
    for (const scenario of SCENARIOS) for (const key of await replayOnce(scenario)) taken.add(key);
    const all = allTransitions();
    expect(all.length).toBeGreaterThan(40);
    const untaken = all.filter((key) => !taken.has(key));
    expect(untaken, `transitions no path takes:\n${untaken.join('\n')}`).toEqual([]);
  });

  it('uses createTestModel paths that reach every public state', () => {
    const reached = new Set<string>();
    for (const scenario of SCENARIOS) {
      for (const path of modelFor(scenario.input).getShortestPaths({ allowDuplicatePaths: true })) reached.add(publicState((path.state as Snapshot).value));
    }
    expect([...reached].sort()).toEqual(['connected', 'dialing', 'ended', 'ending', 'failed', 'queued', 'ringing', 'transferring']);
  });
});
