// Placing outbound calls (CP-02): a session in `queued`, admitted to dial when a slot is free.
import type { CallSettings } from '../../machines/call.types.js';
import { outboundRoomName } from '../livekit/naming.js';
import type { Admission } from './admission.js';
import type { CallRuntime } from '../calls/call-runtime.js';
import { type CallOptions, type CallRecord, type CallStore, type StatusCallbackChoice } from '../store/call-store.port.js';
import { VersionConflictError } from '../store/errors.js';

export interface PlaceCallRequest {
  /** E.164 */
  to: string;
  /** E.164; CALLER_ID when null */
  from: string | null;
  agent: string | null;
  metadata: Record<string, unknown> | null;
  ringTimeoutS: number | null;
  maxDurationS: number | null;
  /** where this call's status callbacks go, when the request chose (its URL is allowed already) */
  statusCallback: StatusCallbackChoice | null;
  /** X-headers for the INVITE */
  sipHeaders?: Record<string, string>;
  /** the From display name (`''`: none) */
  displayName?: string;
  /** digits sent once answered; kept on the record only, never in the chart's context */
  dtmf?: string;
  /** record the call (RECORDING decides when absent) */
  record?: boolean;
}

export interface OutboundOptions {
  runtime: CallRuntime;
  /** new session ids */
  newId: () => string;
  store: CallStore;
  admission: Admission;
  settings: CallSettings;
  trunkId: string | null;
  callerId: string;
  defaultAgent: string | null;
}

export class OutboundNotConfiguredError extends Error {
  constructor() {
    super('outbound calls need SIP_OUTBOUND_TRUNK_ID');
    this.name = 'OutboundNotConfiguredError';
  }
}

export class QueueFullError extends Error {
  constructor() {
    super('the outbound call queue is full');
    this.name = 'QueueFullError';
  }
}

export function createOutboundCalls(options: OutboundOptions) {
  const { runtime, admission, store } = options;
  return {
    /** An id for a session not created yet (an idempotency key claims it before the call exists). */
    newSessionId: (): string => options.newId(),
    /**
     * Creates the session (`queued`) and puts it in line for a dial slot. With a given session id
     * that exists already (a retried request), answers that call instead: `existing` is true.
     */
    async place(request: PlaceCallRequest, givenId?: string): Promise<{ record: CallRecord; existing: boolean }> {
      if (!options.trunkId) throw new OutboundNotConfiguredError();
      const sessionId = givenId ?? options.newId();
      if (givenId) {
        const existing = await store.get(givenId);
        if (existing) return { record: existing, existing: true };
      }
      if (!(await admission.hasRoom())) throw new QueueFullError();
      let record: CallRecord;
      try {
        record = await runtime.create({
          sessionId,
          direction: 'outbound',
          callerNumber: request.from ?? options.callerId,
          calleeNumber: request.to,
          roomName: outboundRoomName(sessionId),
          roomSid: null,
          sipIdentity: null,
          sipCallId: null,
          sipCallStatus: null,
          agentName: request.agent ?? options.defaultAgent,
          metadata: request.metadata,
          settings: {
            ...options.settings,
            ringTimeoutS: request.ringTimeoutS ?? options.settings.ringTimeoutS,
            maxDurationS: request.maxDurationS ?? options.settings.maxDurationS,
            record: request.record ?? options.settings.record,
          },
        }, { statusCallback: request.statusCallback ?? undefined, callOptions: callOptionsOf(request) });
      } catch (err) {
        const existing = err instanceof VersionConflictError ? await store.get(sessionId) : undefined;
        if (existing) return { record: existing, existing: true };
        throw err;
      }
      await admission.enqueue(sessionId);
      return { record, existing: false };
    },
  };
}

/** The call's SIP options for its record; undefined when the request gave none. */
function callOptionsOf(request: PlaceCallRequest): CallOptions | undefined {
  const { sipHeaders, displayName, dtmf } = request;
  if (sipHeaders === undefined && displayName === undefined && dtmf === undefined) return undefined;
  return { sipHeaders: sipHeaders ?? null, displayName: displayName ?? null, dtmf: dtmf ?? null };
}

export type OutboundCalls = ReturnType<typeof createOutboundCalls>;
