// Reconciliation (docs/call-lifecycle.md): LiveKit drops webhooks it cannot deliver within about 30 s, and a
// replica can die with a dial in flight. At start-up and every RECONCILE_INTERVAL_S, live calls
// are checked against LiveKit's rooms and participants:
// - a call whose room, or whose phone leg, is gone ends as room_closed (`call.ended` says
//   `reconciled: true`);
// - a call in `dialing` whose dial no replica holds any more gets its outcome from LiveKit: the
//   phone leg is there and active → answered; still ringing → checked again next time; not
//   there → the attempt failed (provider_unavailable, retryable), so the chart dials again with
//   a new participant identity. A dial is never repeated blindly;
// - a call left `queued` but out of line (its replica died between the two) is put in line.
import { isFinalState, type CallError } from '../../machines/call.types.js';
import { isNotFound } from '../errors/classify.js';
import type { LiveKitPort } from '../livekit/livekit.port.js';
import { SIP_ATTRIBUTES } from '../livekit/naming.js';
import { callLogger, type Logger } from '../obs/logger.js';
import type { Admission } from '../outbound/admission.js';
import type { CallRuntime } from '../calls/call-runtime.js';
import type { Clock } from '../calls/timers.js';
import type { DialLeases } from '../store/dial-leases.port.js';
import type { CallRecord, CallStore } from '../store/call-store.port.js';

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
}

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

  async function pass(): Promise<ReconcileReport> {
    const report: ReconcileReport = { checked: 0, ended: 0, dialsResolved: 0 };
    const ids = await store.liveCallIds(options.limit ?? 10_000);
    if (ids.length === 0) return report;
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
    return report;
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
