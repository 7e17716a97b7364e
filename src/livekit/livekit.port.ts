// What the control plane asks of LiveKit (CP-02). The adapter in livekit.adapter.ts speaks
// to a real server through livekit-server-sdk; errors reach callers as the SDK throws them,
// and src/errors/classify.ts turns them into CP-04 categories.
import type { Recording } from '../../machines/call.types.js';
import type { RecordingRequest } from './egress.js';
import type { ParticipantKind } from './webhook-event.js';

export interface DialRequest {
  trunkId: string;
  to: string;
  roomName: string;
  fromNumber: string;
  participantIdentity: string;
  participantAttributes: Record<string, string>;
  ringingTimeoutS: number;
  maxCallDurationS: number;
  /** X-headers added to the INVITE */
  headers?: Record<string, string>;
  /** the From display name (`''`: none); absent: LiveKit's default, the from-number */
  displayName?: string;
  /** digits sent once the call is answered (`w`: a 0.5 s pause); may carry a PIN */
  dtmf?: string;
}

/** Options of a SIP REFER; absent ones are LiveKit's defaults. */
export interface TransferRequestOptions {
  /** headers added to the REFER */
  headers?: Record<string, string>;
  /** how long the target may ring (LiveKit: 30 s) */
  ringingTimeoutS?: number;
  /** play a dial tone to the caller while the target rings (default: no) */
  playDialtone?: boolean;
}

export interface DialResult {
  participantIdentity: string;
  sipCallId: string | null;
}

export interface RoomParticipant {
  identity: string;
  sid: string;
  kind: ParticipantKind;
  attributes: Record<string, string>;
}

export interface LiveKitPort {
  /** Places the SIP call and resolves when it is answered (`waitUntilAnswered`). */
  dial(request: DialRequest): Promise<DialResult>;
  dispatchAgent(roomName: string, agentName: string, metadata: string): Promise<void>;
  /** Ends the call for everyone; resolves also when the room is already gone. */
  deleteRoom(roomName: string): Promise<void>;
  transfer(roomName: string, participantIdentity: string, transferTo: string, options?: TransferRequestOptions): Promise<void>;
  listParticipants(roomName: string): Promise<RoomParticipant[]>;
  listRooms(): Promise<{ name: string; sid: string }[]>;
  /** Starts recording the room (an audio-only room composite egress); what LiveKit answered. */
  startRecording(request: RecordingRequest): Promise<Recording>;
  /** Asks the egress to finish its file; what LiveKit answered. */
  stopRecording(egressId: string): Promise<Recording>;
  /** What LiveKit knows of one egress, or of every egress of a room. */
  listRecordings(filter: { egressId: string } | { roomName: string }): Promise<Recording[]>;
}
