// Stored calls written by an earlier version of the CP-01 chart, brought to the current one when
// their actor is restored (docs/call-lifecycle.md, chart versions). A version is never changed in
// place: each new one names what it adds and how a call stored by the one before goes on.
import { CALL_MACHINE_ID } from '../../machines/call.machine.js';
import type { CallContext } from '../../machines/call.types.js';
import type { CallRecord } from '../store/call-store.port.js';

/** The chart of every record stored before records named theirs. */
const UNNAMED_RECORDS_MACHINE = 'call-v1';

/** The chart that wrote a record. */
function machineOf(record: CallRecord): string {
  return (record as Partial<CallRecord>).machine ?? UNNAMED_RECORDS_MACHINE;
}

/**
 * call-v1 → call-v2: v2 adds the agent watchdog (the `agentJoin` deadline, the
 * `agentJoinTimeoutS` setting). A call stored by v1 was answered under v1's rules: it goes on
 * without a watchdog.
 */
function v1ToV2(context: CallContext): CallContext {
  return {
    ...context,
    settings: { ...context.settings, agentJoinTimeoutS: context.settings.agentJoinTimeoutS ?? 0 },
    deadlines: { ...context.deadlines, agentJoin: context.deadlines.agentJoin ?? null },
  };
}

/**
 * call-v2 → call-v3: v3 adds recording (the `recording` of the context, the `record` setting, and
 * the final states' acceptance of recording updates). A call stored by v2 was not recorded.
 */
function v2ToV3(context: CallContext): CallContext {
  return {
    ...context,
    settings: { ...context.settings, record: context.settings.record ?? false },
    recording: context.recording ?? null,
  };
}

const MIGRATIONS: Record<string, { to: string; context: (context: CallContext) => CallContext }> = {
  'call-v1': { to: 'call-v2', context: v1ToV2 },
  'call-v2': { to: 'call-v3', context: v2ToV3 },
};

/**
 * A stored call written by another version of the chart that this one has no migration from: its
 * snapshot cannot be restored.
 */
export class MachineVersionError extends Error {
  constructor(sessionId: string, stored: string) {
    super(`call ${sessionId} was stored by chart ${stored}; this service runs ${CALL_MACHINE_ID} and has no migration from it`);
    this.name = 'MachineVersionError';
  }
}

/** The record as the current chart restores it; the record itself is not changed. */
export function upgrade(record: CallRecord): CallRecord {
  let current = record;
  let machine = machineOf(record);
  while (machine !== CALL_MACHINE_ID) {
    const step = MIGRATIONS[machine];
    if (!step) throw new MachineVersionError(record.id, machineOf(record));
    const context = step.context(current.context);
    current = { ...current, machine: step.to, context, snapshot: { ...(current.snapshot as object), context } as unknown as CallRecord['snapshot'] };
    machine = step.to;
  }
  return current;
}
