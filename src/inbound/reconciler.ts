// Reconciliation (docs/call-lifecycle.md): LiveKit drops webhooks it cannot deliver within about 30 s, and a
// replica can die with a dial in flight. At start-up and every RECONCILE_INTERVAL_S, live calls
// are checked against LiveKit's rooms and participants:
// - a call whose room, or whose phone leg, is gone ends as room_closed (`call.ended` says
//   `reconciled: true`);
// - a call in `dialing` whose dial no replica holds any more gets its outcome from LiveKit: the
//   phone leg is there and active → answered; still ringing → checked again next time; not
//   there → the attempt failed (provider_unavailable, retryable), so the chart dials again with
//   a new participant identity. A dial is never repeated blindly;
// - a call left `queued` but out of line (its replica died between the two) is put in line;
// - a recording LiveKit has not said the end of (its egress_ended lost, or the start answer lost
//   with a replica) is asked about with ListEgress once its call is ending or over, and what
//   LiveKit says is applied like an egress webhook; a final call whose room has no egress at all
//   never started recording, and its recording is marked failed.
import { isFinalState, type CallError, type Recording } from '../../machines/call.types.js';
import { isNotFound } from '../errors/classify.js';
import type { LiveKitPort } from '../livekit/livekit.port.js';
import { SIP_ATTRIBUTES } from '../livekit/naming.js';
import { callLogger, type Logger } from '../obs/logger.js';
import type { Admission } from '../outbound/admission.js';
import type { CallRuntime } from '../calls/call-runtime.js';
import type { Clock } from '../calls/timers.js';
import type { DialLeases } from '../store/dial-leases.port.js';
import { hasOpenRecording, type CallRecord, type CallStore } from '../store/call-store.port.js';

export interface ReconcilerOptions {
  runtime: CallRuntime;
  clock: Clock;
  admission: Admission;
  store: CallStore;
  livekit: LiveKitPort;
  leases: DialLeases;
  logger: Logger;
  /** 0 turns periodic reconciliation off (it still runs once at start-up) */
  intervalMs: number;
  /** calls younger than this are left alone: LiveKit's answers may predate them */
  settleMs?: number;
  /** how many live calls one pass looks at */
  limit?: number;
}

export interface ReconcileReport {
  checked: number;
  ended: number;
  dialsResolved: number;
  /** recordings whose state LiveKit's answer changed */
  recordingsUpdated: number;
}

const LOST_RECORDING: CallError = {
  category: 'provider_unavailable',
  retryable: false,
  message: 'the recording was lost: LiveKit has no egress for the call\'s room',
  sipStatusCode: null,
};

const LOST_DIAL: CallError = {
  category: 'provider_unavailable',
  retryable: true,
  message: 'the dial was lost with a stopped replica and LiveKit has no such participant',
  sipStatusCode: null,
};

export function createReconciler(options: ReconcilerOptions) {
  const { runtime, clock, store, livekit, leases, logger } = options;
  const settleMs = options.settleMs ?? 10_000;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<ReconcileReport> | null = null;

  async function checkDial(record: CallRecord, report: ReconcileReport): Promise<void> {
    const { context } = record;
    // In back-off there is no dial; a fresh dial may not have taken its lease yet.
    if (context.deadlines.retry !== null || context.dialStartedAt === null) return;
    if (clock.now() - context.dialStartedAt < settleMs || (await leases.held(record.id))) return;
    const participants = await livekit.listParticipants(context.roomName).catch((err: unknown) => {
      if (isNotFound(err)) return []; // the room is gone, and the phone leg with it
      throw err;
    });
    const leg = participants.find((p) => p.identity === context.sipIdentity);
    if (leg?.attributes[SIP_ATTRIBUTES.callStatus] === 'active') {
      await runtime.send(record.id, {
        type: 'dial.answered',
        attempt: context.attempt,
        participantIdentity: leg.identity,
        sipCallId: leg.attributes[SIP_ATTRIBUTES.callId] ?? null,
      });
      report.dialsResolved++;
    } else if (!leg) {
      await runtime.send(record.id, { type: 'dial.failed', attempt: context.attempt, error: LOST_DIAL, retryAt: clock.now() });
      report.dialsResolved++;
    }
  }

  /** What LiveKit says of the call's recording now, or null when there is nothing to ask yet. */
  async function askAboutRecording(record: CallRecord): Promise<Recording | null> {
    const recording = record.context.recording;
    if (!recording) return null;
    const final = isFinalState(record.state);
    // A recording of a call in progress ends when the call does: until then its webhooks tell.
    if (!final && record.state !== 'ending' && recording.egressId !== null) return null;
    const since = record.context.endedAt ?? record.context.answeredAt ?? record.context.createdAt;
    if (clock.now() - since < settleMs) return null;
    if (recording.egressId !== null) {
      try {
        return (await livekit.listRecordings({ egressId: recording.egressId }))[0] ?? null;
      } catch (err) {
        if (!isNotFound(err)) throw err;
        return { ...recording, status: 'failed', error: { ...LOST_RECORDING, message: 'LiveKit no longer knows the recording\'s egress' } };
      }
    }
    // The start answer never came back (its replica stopped): the room's own egress, if LiveKit started one.
    const found = (await livekit.listRecordings({ roomName: record.context.roomName })).filter((r) => r.egressId !== null);
    const newest = found.sort((a, b) => (b.startedAt ?? 0) - (a.startedAt ?? 0))[0];
    if (newest) return newest;
    return final ? { ...recording, status: 'failed', error: LOST_RECORDING } : null;
  }

  async function reconcileRecordings(report: ReconcileReport): Promise<void> {
    for (const id of await store.openRecordingIds(options.limit ?? 10_000)) {
      try {
        const record = await store.get(id);
        if (!record || !hasOpenRecording(record)) continue;
        const answer = await askAboutRecording(record);
        if (answer && (await runtime.send(id, { type: 'recording.updated', recording: answer })).outcome === 'applied') {
          callLogger(logger, id).warn({ egress_id: answer.egressId, status: answer.status }, 'reconciliation updated a recording LiveKit had not reported on');
          report.recordingsUpdated++;
        }
      } catch (err) {
        callLogger(logger, id).warn({ err }, 'reconciliation could not check a recording');
      }
    }
  }

  async function pass(): Promise<ReconcileReport> {
    const report: ReconcileReport = { checked: 0, ended: 0, dialsResolved: 0, recordingsUpdated: 0 };
    await reconcileLive(report);
    await reconcileRecordings(report);
    return report;
  }

  async function reconcileLive(report: ReconcileReport): Promise<void> {
    const ids = await store.liveCallIds(options.limit ?? 10_000);
    if (ids.length === 0) return;
    const listedAt = clock.now();
    const rooms = new Set((await livekit.listRooms()).map((room) => room.name));
    for (const id of ids) {
      const record = await store.get(id);
      if (!record || isFinalState(record.state)) continue;
      report.checked++;
      try {
        if (record.state === 'queued') {
          if (record.context.createdAt <= listedAt - settleMs && (await options.admission.ensureWaiting(id))) {
            callLogger(logger, id).warn('reconciliation put a queued call back in line for a dial slot');
          }
          continue;
        }
        if (record.state === 'dialing') {
          await checkDial(record, report);
          continue;
        }
        if (record.context.createdAt > listedAt - settleMs) continue;
        let what: 'room' | 'participant' | null = rooms.has(record.context.roomName) ? null : 'room';
        if (!what && record.context.sipIdentity && record.state !== 'ending') {
          const participants = await livekit.listParticipants(record.context.roomName);
          if (!participants.some((p) => p.identity === record.context.sipIdentity)) what = 'participant';
        }
        if (what && (await runtime.send(id, { type: 'reconcile.gone', what })).outcome === 'applied') {
          callLogger(logger, id).warn({ gone: what }, 'reconciliation ended a call whose LiveKit room or phone leg is gone');
          report.ended++;
        }
      } catch (err) {
        callLogger(logger, id).warn({ err }, 'reconciliation could not check a call');
      }
    }
  }

  return {
    /** One pass over the live calls; concurrent callers share the pass in progress. */
    reconcile(): Promise<ReconcileReport> {
      running ??= pass().finally(() => {
        running = null;
      });
      return running;
    },
    start(): void {
      const run = () =>
        void this.reconcile().catch((err: unknown) => logger.warn({ err }, 'reconciliation pass failed; trying again later'));
      run();
      if (options.intervalMs > 0) {
        timer = setInterval(run, options.intervalMs);
        timer.unref();
      }
    },
    stop(): void {
      if (timer) clearInterval(timer);
      timer = null;
    },
  };
}

export type Reconciler = ReturnType<typeof createReconciler>;
