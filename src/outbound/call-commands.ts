// Carries out the chart's commands against LiveKit and sends each result back to the call as
// an event. Every failure is classified (CP-04) and logged; none escapes as an exception.
import type { CallCommand, CallError, Recording, TransferOptions } from '../../machines/call.types.js';
import type { RecordingConfig } from '../config.js';
import { classifyError, ConfigError, type ClassifiedError } from '../errors/classify.js';
import { retryDelayMs } from '../errors/policy.js';
import type { RecordingRequest } from '../livekit/egress.js';
import type { DialRequest, DialResult, LiveKitPort, TransferRequestOptions } from '../livekit/livekit.port.js';
import { agentDispatchMetadata, outboundSipIdentity, SESSION_ATTRIBUTE } from '../livekit/naming.js';
import { callLogger, type Logger } from '../obs/logger.js';
import type { CallEvents, CommandRunner, IncomingEvent } from '../calls/call-runtime.js';
import type { Clock } from '../calls/timers.js';
import type { DialLeases } from '../store/dial-leases.port.js';
import type { CallOptions, CallRecord } from '../store/call-store.port.js';

const DIAL_LEASE_MS = 15_000;
/** A refused recording start is tried this often in all when CP-04 says a retry may help. */
const RECORDING_START_ATTEMPTS = 3;
const RECORDING_RETRY = { baseMs: 1000, maxMs: 8000 };

export interface OutboundSettings {
  trunkId: string | null;
  callerId: string;
  retryBaseMs: number;
  retryMaxMs: number;
}

export interface CallCommandsOptions {
  /** where results go: the runtime */
  calls: CallEvents;
  clock: Clock;
  livekit: LiveKitPort;
  leases: DialLeases;
  logger: Logger;
  outbound: OutboundSettings;
  /** where and how calls are recorded (RECORDING_*) */
  recording: Omit<RecordingConfig, 'mode'>;
  random?: () => number;
  /** waits between recording start attempts (tests pass a quicker one) */
  sleep?: (ms: number) => Promise<void>;
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
  const { calls, clock, livekit, outbound, leases } = options;
  const random = options.random ?? Math.random;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref()));
  const pending = new Set<Promise<void>>();
  /** dial commands among `pending` */
  const pendingDials = new Set<Promise<void>>();
  /** sessions with a dial in flight, and how to stop renewing each one's lease */
  const dials = new Map<string, () => void>();

  const track = (work: Promise<void>): void => {
    pending.add(work);
    void work.finally(() => pending.delete(work));
  };

  /** Tells the call what a command came to; undefined when that could not be stored. */
  const deliver = (record: CallRecord, event: IncomingEvent, logger: Logger) =>
    calls.send(record.id, event).catch((err: unknown) => {
      logger.error({ err, event: event.type }, 'command result could not be applied');
      return undefined;
    });

  async function dial(record: CallRecord): Promise<void> {
    const logger = callLogger(options.logger, record.id);
    // The lease tells the other replicas this dial is alive; it lapses if this process dies.
    const lease = () => leases.hold(record.id, DIAL_LEASE_MS).catch((err: unknown) => logger.warn({ err }, 'dial lease could not be renewed'));
    await lease();
    const renew = setInterval(lease, DIAL_LEASE_MS / 3);
    renew.unref();
    dials.set(record.id, () => clearInterval(renew));
    try {
      await placeDial(record, logger);
    } finally {
      clearInterval(renew);
      dials.delete(record.id);
      await leases.release(record.id).catch(() => undefined);
    }
  }

  async function placeDial(record: CallRecord, logger: Logger): Promise<void> {
    const { context } = record;
    const attempt = context.attempt;
    const fail = async (error: ClassifiedError): Promise<void> => {
      logger.warn({ attempt, category: error.category, sip_status_code: error.sipStatusCode, message: error.message }, 'dial failed');
      const retryAt = error.retryable
        ? clock.now() + retryDelayMs(attempt, { baseMs: outbound.retryBaseMs, maxMs: outbound.retryMaxMs, random })
        : null;
      await deliver(record, { type: 'dial.failed', attempt, error: toCallError(error), retryAt }, logger);
    };
    if (!outbound.trunkId) return fail(classifyError(new ConfigError('SIP_OUTBOUND_TRUNK_ID is not configured'), 'dial'));
    if (!context.calleeNumber) return fail(classifyError(new ConfigError('the call has no number to dial'), 'dial'));
    if (context.agentName && attempt === 1) {
      try {
        await livekit.dispatchAgent(context.roomName, context.agentName, agentDispatchMetadata(context));
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
        ...dialOptions(record.callOptions),
      });
    } catch (err) {
      return fail(classifyError(err, 'dial'));
    }
    const result = await deliver(record, { type: 'dial.answered', attempt, participantIdentity: answered.participantIdentity, sipCallId: answered.sipCallId }, logger);
    if (result?.outcome === 'ignored') {
      // The call ended while this dial rang (hung up, or its ring deadline passed) and its room
      // was deleted, but the answer raced the deletion: end the phone leg again.
      logger.warn({ attempt }, 'dial answered after the call ended; deleting the room again');
      await hangUp(record, logger);
    }
  }

  async function hangUp(record: CallRecord, logger = callLogger(options.logger, record.id)): Promise<void> {
    // The recording is stopped before the room goes: LiveKit cuts the file's tail when the room is deleted under it.
    const stopped = await stopRecording(record, logger);
    try {
      await livekit.deleteRoom(record.context.roomName);
    } catch (err) {
      // The ending grace deadline still ends the session; LiveKit closes an empty room itself.
      const error = classifyError(err, 'hangup');
      logger.warn({ category: error.category, message: error.message }, 'hang-up request failed');
    }
    if (stopped) await deliver(record, { type: 'recording.updated', recording: stopped }, logger);
  }

  /** Stops the call's recording if it runs; LiveKit's answer, or null (none running, or the stop failed: the room's end stops it). */
  async function stopRecording(record: CallRecord, logger: Logger): Promise<Recording | null> {
    const recording = record.context.recording;
    if (!recording?.egressId || (recording.status !== 'starting' && recording.status !== 'active')) return null;
    try {
      return await livekit.stopRecording(recording.egressId);
    } catch (err) {
      const error = classifyError(err, 'record');
      logger.warn({ egress_id: recording.egressId, category: error.category, message: error.message }, 'recording could not be stopped before the hang-up');
      return null;
    }
  }

  async function startRecording(record: CallRecord): Promise<void> {
    const logger = callLogger(options.logger, record.id);
    const request = recordingRequest(record, options.recording, clock.now());
    for (let attempt = 1; ; attempt++) {
      try {
        const started = await livekit.startRecording(request);
        await deliver(record, { type: 'recording.updated', recording: started }, logger);
        return;
      } catch (err) {
        const error = classifyError(err, 'record');
        if (error.retryable && attempt < RECORDING_START_ATTEMPTS) {
          logger.warn({ attempt, category: error.category, message: error.message }, 'recording could not be started; trying again');
          await sleep(retryDelayMs(attempt, { ...RECORDING_RETRY, random }));
          continue;
        }
        // The call goes on unrecorded.
        logger.warn({ attempt, category: error.category, message: error.message }, 'recording could not be started');
        await deliver(record, { type: 'recording.updated', recording: failedRecording(toCallError(error)) }, logger);
        return;
      }
    }
  }

  async function transfer(record: CallRecord): Promise<void> {
    const { context } = record;
    const logger = callLogger(options.logger, record.id);
    try {
      if (!context.sipIdentity || !context.transferTarget) throw new ConfigError('the call has no SIP participant or transfer target');
      await livekit.transfer(context.roomName, context.sipIdentity, context.transferTarget, transferOptions(context.transferOptions));
      await deliver(record, { type: 'transfer.succeeded' }, logger);
    } catch (err) {
      const error = toCallError(classifyError(err, 'transfer'));
      logger.warn({ category: error.category, sip_status_code: error.sipStatusCode }, 'transfer failed');
      await deliver(record, { type: 'transfer.failed', error }, logger);
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
      case 'startRecording':
        return track(startRecording(record));
    }
  }) as CommandRunnerHandle;
  run.handOver = async (waitMs) => {
    // Renewing stops first: a renewal after the release would take the dial back.
    for (const stopRenewing of dials.values()) stopRenewing();
    await Promise.allSettled([...dials.keys()].map((sessionId) => leases.release(sessionId)));
    const others = [...pending].filter((work) => !pendingDials.has(work));
    await Promise.race([Promise.allSettled(others), new Promise((resolve) => setTimeout(resolve, waitMs).unref())]);
  };
  run.inFlight = async () => {
    while (pending.size > 0) await Promise.allSettled([...pending]);
  };
  return run;
}

/** The SIP options of a dial, from the call's record (absent in records stored before calls had options). */
function dialOptions(options: CallOptions | undefined): Pick<DialRequest, 'headers' | 'displayName' | 'dtmf'> {
  if (!options) return {};
  return {
    ...(options.sipHeaders ? { headers: options.sipHeaders } : {}),
    ...(options.displayName !== null ? { displayName: options.displayName } : {}),
    ...(options.dtmf ? { dtmf: options.dtmf } : {}),
  };
}

/** The REFER options of a transfer, from the chart (absent in calls stored before transfers had options). */
function transferOptions(options: TransferOptions | null | undefined): TransferRequestOptions {
  if (!options) return {};
  return {
    ...(options.sipHeaders ? { headers: options.sipHeaders } : {}),
    ...(options.ringTimeoutS !== null ? { ringingTimeoutS: options.ringTimeoutS } : {}),
    ...(options.playDialtone !== null ? { playDialtone: options.playDialtone } : {}),
  };
}

/** The file path of a call's recording: RECORDING_FILEPATH with its placeholders filled in. */
function recordingFilepath(template: string, record: CallRecord, now: number): string {
  const time = new Date(now).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  const values: Record<string, string> = {
    '{session_id}': record.id,
    // A room name is the caller's to choose on inbound trunks: never a path of its own.
    '{room}': record.context.roomName.replace(/[^A-Za-z0-9_+.-]/g, '_'),
    '{time}': time,
  };
  return template.replace(/\{session_id\}|\{room\}|\{time\}/g, (placeholder) => values[placeholder] ?? placeholder);
}

function recordingRequest(record: CallRecord, recording: Omit<RecordingConfig, 'mode'>, now: number): RecordingRequest {
  return {
    roomName: record.context.roomName,
    filepath: recordingFilepath(recording.filepath, record, now),
    audioMixing: recording.audioMixing,
    s3: recording.s3,
  };
}

/** A recording LiveKit refused to start. */
function failedRecording(error: CallError): Recording {
  return { egressId: null, status: 'failed', startedAt: null, endedAt: null, durationS: null, sizeBytes: null, location: null, error };
}

/** The chart keeps the CallError fields only. */
function toCallError(error: ClassifiedError): CallError {
  return { category: error.category, retryable: error.retryable, message: error.message, sipStatusCode: error.sipStatusCode };
}
