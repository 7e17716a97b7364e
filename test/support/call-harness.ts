// A call runtime on the embedded store with time under the test's control, for tests that
// drive calls by events directly (no HTTP).
import type { CallInput, CallSettings } from '../../machines/call.types.js';
import { CallRuntime } from '../../src/calls/call-runtime.js';
import { MemoryCallStore } from '../../src/store/memory/call.store.js';
import { createEventBus } from '../../src/obs/event-bus.js';
import type { ObsEnvelope } from '../../src/obs/envelope.js';
import { createLogger } from '../../src/obs/logger.js';
import { ManualClock, ManualScheduler } from './manual-time.js';

export const TEST_SETTINGS: CallSettings = {
  ringTimeoutS: 30,
  maxDurationS: 600,
  endingGraceS: 10,
  agentGraceS: 5,
  agentJoinTimeoutS: 20,
  maxDialAttempts: 2,
  record: false,
};

export function inboundInput(overrides: Partial<CallInput> = {}): Omit<CallInput, 'at'> {
  return {
    sessionId: 'call-in-1',
    direction: 'inbound',
    callerNumber: '+31612345678',
    calleeNumber: '+3197010206472',
    roomName: 'call-_+31612345678_abc',
    roomSid: 'RM_inbound',
    sipIdentity: 'sip_+31612345678',
    sipCallId: 'SCL_in',
    sipCallStatus: 'ringing',
    agentName: null,
    metadata: null,
    settings: TEST_SETTINGS,
    ...overrides,
  };
}

export function outboundInput(overrides: Partial<CallInput> = {}): Omit<CallInput, 'at'> {
  return {
    sessionId: 'call-out-1',
    direction: 'outbound',
    callerNumber: '+3197010206472',
    calleeNumber: '+31687654321',
    roomName: 'outbound-call-out-1',
    roomSid: null,
    sipIdentity: null,
    sipCallId: null,
    sipCallStatus: null,
    agentName: 'receptionist',
    metadata: { ticket: 'T-1' },
    settings: TEST_SETTINGS,
    ...overrides,
  };
}

export function createCallHarness() {
  const clock = new ManualClock();
  const scheduler = new ManualScheduler(clock);
  const store = new MemoryCallStore({ retentionMs: 3_600_000, maxFinalCalls: 1000, webhookDedupSize: 1000, maxEventsPerCall: 1000, now: () => clock.now() });
  const published: ObsEnvelope[] = [];
  const bus = createEventBus();
  bus.subscribe((envelope) => published.push(envelope));
  let ids = 0;
  const commands: { command: string; sessionId: string }[] = [];
  const runtime = new CallRuntime({
    store,
    bus,
    logger: createLogger({ level: 'silent' }),
    clock,
    scheduler,
    newId: () => `id-${++ids}`,
    commands: (command, record) => commands.push({ command, sessionId: record.id }),
  });
  return { clock, scheduler, store, runtime, published, commands };
}

/** Asserts the OBS-00 invariant: a call's events have seq 1..n without gaps or repeats. */
export function seqGaps(events: readonly ObsEnvelope[]): number[] {
  return events.map((event, index) => event.seq - (index + 1)).filter((gap) => gap !== 0);
}
