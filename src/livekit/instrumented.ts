// Every LiveKit API call timed into the metrics (`livekit_request_duration_seconds`), with the
// CP-04 category of its error as the outcome.
import { classifyError, type Operation } from '../errors/classify.js';
import type { Metrics } from '../obs/metrics.js';
import type { LiveKitPort } from './livekit.port.js';

/** The CP-04 operation of a LiveKitPort method, for classifyError. */
export function operationFor(method: keyof LiveKitPort): Operation {
  switch (method) {
    case 'dial':
      return 'dial';
    case 'dispatchAgent':
      return 'dispatch';
    case 'deleteRoom':
      return 'hangup';
    case 'transfer':
      return 'transfer';
    case 'listParticipants':
    case 'listRooms':
    case 'listRecordings':
      return 'lookup';
    case 'startRecording':
    case 'stopRecording':
      return 'record';
  }
}

/**
 * Wraps every method of a LiveKitPort to time it into `livekit_request_duration_seconds`
 * (label `method` = port method name, `outcome` = 'ok' or the CP-04 category of the error).
 * Results and errors pass through unchanged (the very same objects).
 */
export function instrumentLiveKit(
  port: LiveKitPort,
  metrics: Pick<Metrics, 'livekitRequest'>,
  /** milliseconds, monotonic */
  now: () => number = () => performance.now(),
): LiveKitPort {
  const record = (method: string, outcome: string, seconds: number): void => metrics.livekitRequest(method, outcome, seconds);
  async function timed<T>(method: keyof LiveKitPort, call: () => Promise<T>): Promise<T> {
    const start = now();
    const elapsed = () => (now() - start) / 1000;
    let value: T;
    try {
      value = await call();
    } catch (err) {
      record(method, classifyError(err, operationFor(method)).category, elapsed());
      throw err;
    }
    record(method, 'ok', elapsed());
    return value;
  }

  // Listed one by one: a method added to the port fails to compile here until it is timed too.
  return {
    dial: (request) => timed('dial', () => port.dial(request)),
    dispatchAgent: (roomName, agentName, metadata) =>
      timed('dispatchAgent', () => port.dispatchAgent(roomName, agentName, metadata)),
    deleteRoom: (roomName) => timed('deleteRoom', () => port.deleteRoom(roomName)),
    transfer: (roomName, participantIdentity, transferTo, options) =>
      timed('transfer', () => port.transfer(roomName, participantIdentity, transferTo, options)),
    listParticipants: (roomName) => timed('listParticipants', () => port.listParticipants(roomName)),
    listRooms: () => timed('listRooms', () => port.listRooms()),
    startRecording: (request) => timed('startRecording', () => port.startRecording(request)),
    stopRecording: (egressId) => timed('stopRecording', () => port.stopRecording(egressId)),
    listRecordings: (filter) => timed('listRecordings', () => port.listRecordings(filter)),
  };
}
