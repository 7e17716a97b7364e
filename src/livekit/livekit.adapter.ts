// LiveKitPort over livekit-server-sdk's Twirp clients.
import { AgentDispatchClient, EgressClient, RoomServiceClient, SipClient } from 'livekit-server-sdk';
import { audioMixing, fileOutput, recordingOf } from './egress.js';
import { isNotFound } from '../errors/classify.js';
import type { DialRequest, DialResult, LiveKitPort } from './livekit.port.js';
import { participantKind } from './webhook-event.js';

export interface LiveKitAdapterOptions {
  url: string;
  apiKey: string;
  apiSecret: string;
  /** per-request timeout (seconds) of ordinary calls; dials wait for the ring window */
  requestTimeoutS: number;
}

export function createLiveKitAdapter(options: LiveKitAdapterOptions): LiveKitPort {
  const clientOptions = { requestTimeout: options.requestTimeoutS };
  const sip = new SipClient(options.url, options.apiKey, options.apiSecret, clientOptions);
  const rooms = new RoomServiceClient(options.url, options.apiKey, options.apiSecret, clientOptions);
  const dispatch = new AgentDispatchClient(options.url, options.apiKey, options.apiSecret, clientOptions);
  const egress = new EgressClient(options.url, options.apiKey, options.apiSecret, clientOptions);

  return {
    async dial(request: DialRequest): Promise<DialResult> {
      // A fresh options object per call: the SDK mutates the one it is given.
      const info = await sip.createSipParticipant(request.trunkId, request.to, request.roomName, {
        fromNumber: request.fromNumber,
        participantIdentity: request.participantIdentity,
        participantAttributes: request.participantAttributes,
        ringingTimeout: request.ringingTimeoutS,
        maxCallDuration: request.maxCallDurationS,
        waitUntilAnswered: true,
        ...(request.headers ? { headers: { ...request.headers } } : {}),
        ...(request.displayName !== undefined ? { displayName: request.displayName } : {}),
        ...(request.dtmf ? { dtmf: request.dtmf } : {}),
      });
      return { participantIdentity: info.participantIdentity, sipCallId: info.sipCallId || null };
    },

    async dispatchAgent(roomName, agentName, metadata) {
      await dispatch.createDispatch(roomName, agentName, { metadata });
    },

    async deleteRoom(roomName) {
      try {
        await rooms.deleteRoom(roomName);
      } catch (err) {
        // The room is gone already: the call is over, which is what was asked.
        if (isNotFound(err)) return;
        throw err;
      }
    },

    async transfer(roomName, participantIdentity, transferTo, options = {}) {
      await sip.transferSipParticipant(roomName, participantIdentity, transferTo, {
        playDialtone: options.playDialtone ?? false,
        ...(options.headers ? { headers: { ...options.headers } } : {}),
        ...(options.ringingTimeoutS !== undefined ? { ringingTimeout: options.ringingTimeoutS } : {}),
      });
    },

    async listParticipants(roomName) {
      const participants = await rooms.listParticipants(roomName);
      return participants.map((p) => ({ identity: p.identity, sid: p.sid, kind: participantKind(p.kind), attributes: { ...p.attributes } }));
    },

    async listRooms() {
      const list = await rooms.listRooms();
      return list.map((room) => ({ name: room.name, sid: room.sid }));
    },

    async startRecording(request) {
      const info = await egress.startRoomCompositeEgress(request.roomName, { file: fileOutput(request) }, {
        audioOnly: true,
        audioMixing: audioMixing(request.audioMixing),
      });
      return recordingOf(info);
    },

    async stopRecording(egressId) {
      return recordingOf(await egress.stopEgress(egressId));
    },

    async listRecordings(filter) {
      return (await egress.listEgress(filter)).map(recordingOf);
    },
  };
}
