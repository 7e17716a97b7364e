// Placing outbound calls (CP-02): a session in `queued`, admitted to dial when a slot is free.
import type { CallSettings } from '../../machines/call.types.js';
import type { Admission } from './admission.js';
import type { CallRuntime } from './call-runtime.js';
import type { CallRecord } from './store.port.js';

export interface PlaceCallRequest {
  /** E.164 */
  to: string;
  /** E.164; CALLER_ID when null */
  from: string | null;
  agent: string | null;
  metadata: Record<string, unknown> | null;
  ringTimeoutS: number | null;
  maxDurationS: number | null;
}

export interface OutboundOptions {
  runtime: CallRuntime;
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

/** The SIP participant attribute that ties an outbound call's phone leg to its session. */
export const SESSION_ATTRIBUTE = 'control_plane.session_id';

/** The LiveKit room of an outbound call: named after the session, never after a phone number. */
export const outboundRoomName = (sessionId: string): string => `call-${sessionId}`;

export function createOutboundCalls(options: OutboundOptions) {
  const { runtime, admission } = options;
  return {
    /** Creates the session (`queued`) and puts it in line for a dial slot. */
    async place(request: PlaceCallRequest): Promise<CallRecord> {
      if (!options.trunkId) throw new OutboundNotConfiguredError();
      if (!(await admission.hasRoom())) throw new QueueFullError();
      const sessionId = runtime.newId();
      const record = await runtime.create({
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
        },
      });
      await admission.enqueue(sessionId);
      return record;
    },
  };
}

export type OutboundCalls = ReturnType<typeof createOutboundCalls>;
