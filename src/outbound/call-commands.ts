// Carries out the chart's commands against LiveKit and sends each result back to the call as
// an event. Every failure is classified (CP-04) and logged; none escapes as an exception.
import type { CallCommand, CallError } from '../../machines/call.types.js';
import { classifyError, ConfigError, type ClassifiedError } from '../errors/classify.js';
import { retryDelayMs } from '../errors/policy.js';
import type { DialResult, LiveKitPort } from '../livekit/livekit.port.js';
import { agentDispatchMetadata, outboundSipIdentity, SESSION_ATTRIBUTE } from '../livekit/naming.js';
import type { Logger } from '../obs/logger.js';
import type { CallRuntime, CommandRunner } from '../calls/call-runtime.js';
import type { DialLeases } from '../store/dial-leases.port.js';

const DIAL_LEASE_MS = 15_000;
import type { CallRecord } from '../store/call-store.port.js';

export interface OutboundSettings {
  trunkId: string | null;
  callerId: string;
  retryBaseMs: number;
  retryMaxMs: number;
}

export interface CallCommandsOptions {
  runtime: CallRuntime;
  livekit: LiveKitPort;
  leases: DialLeases;
  logger: Logger;
  outbound: OutboundSettings;
  random?: () => number;
}

export interface CommandRunnerHandle extends CommandRunner {
  /** Resolves once every command in flight has finished and its result was applied. */
  inFlight(): Promise<void>;
  /**
   * Shutdown: hands dials in flight over to the other replicas (their leases are released, so
   * reconciliation asks LiveKit what became of them) and waits at most `waitMs` for the rest.
   */
  handOver(waitMs: number): Promise<void>;
}

export function createCommandRunner(options: CallCommandsOptions): CommandRunnerHandle {
  const { runtime, livekit, logger, outbound, leases } = options;
  const random = options.random ?? Math.random;
  const pending = new Set<Promise<void>>();
  /** dial commands among `pending` */
  const pendingDials = new Set<Promise<void>>();
  /** dials in flight by session; a hang-up while dialing marks its dial abandoned */
  const dials = new Map<string, { abandoned: boolean }>();

  const track = (work: Promise<void>): void => {
    pending.add(work);
    void work.finally(() => pending.delete(work));
  };

  const deliver = (record: CallRecord, event: Parameters<CallRuntime['send']>[1]): Promise<void> =>
    runtime.send(record.id, event).then(
      () => undefined,
      (err: unknown) => logger.error({ err, session_id: record.id, event: event.type }, 'command result could not be applied'),
    );

  async function dial(record: CallRecord): Promise<void> {
    const flight = { abandoned: false };
    dials.set(record.id, flight);
    // The lease tells the other replicas this dial is alive; it lapses if this process dies.
    const lease = () =>
      leases.hold(record.id, DIAL_LEASE_MS).catch((err: unknown) => logger.warn({ err, session_id: record.id }, 'dial lease could not be renewed'));
    await lease();
    const renew = setInterval(lease, DIAL_LEASE_MS / 3);
    renew.unref();
    try {
      await placeDial(record, flight);
    } finally {
      clearInterval(renew);
      if (dials.get(record.id) === flight) dials.delete(record.id);
      await leases.release(record.id).catch(() => undefined);
    }
  }

  async function placeDial(record: CallRecord, flight: { abandoned: boolean }): Promise<void> {
    const { context } = record;
    const attempt = context.attempt;
    const fail = async (error: ClassifiedError): Promise<void> => {
      logger.warn({ session_id: record.id, attempt, category: error.category, sip_status_code: error.sipStatusCode, message: error.message }, 'dial failed');
      const retryAt = error.retryable
        ? runtime.now() + retryDelayMs(attempt, { baseMs: outbound.retryBaseMs, maxMs: outbound.retryMaxMs, random })
        : null;
      await deliver(record, { type: 'dial.failed', attempt, error: toCallError(error), retryAt });
    };
    if (!outbound.trunkId) return fail(classifyError(new ConfigError('SIP_OUTBOUND_TRUNK_ID is not configured'), 'dial'));
    if (!context.calleeNumber) return fail(classifyError(new ConfigError('the call has no number to dial'), 'dial'));
    if (context.agentName && attempt === 1) {
      try {
        await livekit.dispatchAgent(context.roomName, context.agentName, agentDispatchMetadata(record.id));
      } catch (err) {
        return fail(classifyError(err, 'dispatch'));
      }
    }
    let answered: DialResult;
    try {
      answered = await livekit.dial({
        trunkId: outbound.trunkId,
        to: context.calleeNumber,
        roomName: context.roomName,
        fromNumber: context.callerNumber ?? outbound.callerId,
        participantIdentity: context.sipIdentity ?? outboundSipIdentity(record.id, attempt),
        participantAttributes: { [SESSION_ATTRIBUTE]: record.id },
        ringingTimeoutS: context.settings.ringTimeoutS,
        maxCallDurationS: context.settings.maxDurationS,
      });
    } catch (err) {
      return fail(classifyError(err, 'dial'));
    }
    if (flight.abandoned) {
      // Answered after the call was hung up (the room's deletion raced the answer): end it again.
      logger.warn({ session_id: record.id, attempt }, 'dial answered after hang-up; deleting the room again');
      await hangUp(record);
    }
    await deliver(record, { type: 'dial.answered', attempt, participantIdentity: answered.participantIdentity, sipCallId: answered.sipCallId });
  }

  async function hangUp(record: CallRecord): Promise<void> {
    try {
      await livekit.deleteRoom(record.context.roomName);
    } catch (err) {
      // The ending grace deadline still ends the session; LiveKit closes an empty room itself.
      const error = classifyError(err, 'hangup');
      logger.warn({ session_id: record.id, category: error.category, message: error.message }, 'hang-up request failed');
    }
  }

  async function transfer(record: CallRecord): Promise<void> {
    const { context } = record;
    try {
      if (!context.sipIdentity || !context.transferTarget) throw new ConfigError('the call has no SIP participant or transfer target');
      await livekit.transfer(context.roomName, context.sipIdentity, context.transferTarget);
      await deliver(record, { type: 'transfer.succeeded' });
    } catch (err) {
      const error = toCallError(classifyError(err, 'transfer'));
      logger.warn({ session_id: record.id, category: error.category, sip_status_code: error.sipStatusCode }, 'transfer failed');
      await deliver(record, { type: 'transfer.failed', error });
    }
  }

  const run = ((command: CallCommand, record: CallRecord) => {
    switch (command) {
      case 'dial': {
        const work = dial(record);
        pendingDials.add(work);
        void work.finally(() => pendingDials.delete(work));
        return track(work);
      }
      case 'hangUp':
        return track(hangUp(record));
      case 'transfer':
        return track(transfer(record));
      case 'abortDial': {
        // The SDK takes no abort signal: deleting the room (hangUp, which comes with this command)
        // ends the dial at LiveKit, and the chart ignores the late result of a finished call.
        const flight = dials.get(record.id);
        if (flight) flight.abandoned = true;
        return undefined;
      }
    }
  }) as CommandRunnerHandle;
  run.handOver = async (waitMs) => {
    await Promise.allSettled([...dials.keys()].map((sessionId) => leases.release(sessionId)));
    const others = [...pending].filter((work) => !pendingDials.has(work));
    await Promise.race([Promise.allSettled(others), new Promise((resolve) => setTimeout(resolve, waitMs).unref())]);
  };
  run.inFlight = async () => {
    while (pending.size > 0) await Promise.allSettled([...pending]);
  };
  return run;
}

/** The chart keeps the CallError fields only. */
function toCallError(error: ClassifiedError): CallError {
  return { category: error.category, retryable: error.retryable, message: error.message, sipStatusCode: error.sipStatusCode };
}
