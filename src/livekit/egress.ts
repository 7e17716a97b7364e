// LiveKit Egress in the plane's terms: the request that records a call's room to an audio file,
// and what an EgressInfo (a start or stop answer, an egress webhook, ListEgress) says of the
// recording (docs/recording.md).
import {
  AudioMixing,
  EgressStatus,
  EncodedFileOutput,
  EncodedFileType,
  S3Upload,
  type EgressInfo,
} from '@livekit/protocol';
import type { CallError, Recording, RecordingStatus } from '../../machines/call.types.js';
import type { RecordingConfig } from '../config.js';
import { maskSensitive } from '../errors/classify.js';

/** What the plane asks LiveKit to record (RECORDING_* settings, the file path already filled in). */
export interface RecordingRequest extends Pick<RecordingConfig, 'audioMixing' | 's3'> {
  roomName: string;
  filepath: string;
}

/** The audio-only OGG file output of a recording: to the bucket when one is configured, else where the egress service writes. */
export function fileOutput(request: RecordingRequest): EncodedFileOutput {
  const { s3 } = request;
  return new EncodedFileOutput({
    fileType: EncodedFileType.OGG,
    filepath: request.filepath,
    ...(s3
      ? {
          output: {
            case: 's3' as const,
            value: new S3Upload({
              bucket: s3.bucket,
              ...(s3.region ? { region: s3.region } : {}),
              ...(s3.endpoint ? { endpoint: s3.endpoint, forcePathStyle: true } : {}),
              ...(s3.accessKey && s3.secret ? { accessKey: s3.accessKey, secret: s3.secret } : {}),
            }),
          },
        }
      : {}),
  });
}

/** LiveKit's mixing: `dual_channel` puts the caller and the agent each on a channel of their own. */
export function audioMixing(mixing: RecordingRequest['audioMixing']): AudioMixing {
  return mixing === 'dual_channel' ? AudioMixing.DUAL_CHANNEL_AGENT : AudioMixing.DEFAULT_MIXING;
}

/**
 * The recording status of an egress status. LIMIT_REACHED stopped at the egress's own time limit,
 * and its file is complete up to there; ABORTED never recorded.
 */
function recordingStatus(status: EgressStatus): RecordingStatus {
  switch (status) {
    case EgressStatus.EGRESS_STARTING:
      return 'starting';
    case EgressStatus.EGRESS_ACTIVE:
      return 'active';
    case EgressStatus.EGRESS_ENDING:
      return 'ending';
    case EgressStatus.EGRESS_COMPLETE:
    case EgressStatus.EGRESS_LIMIT_REACHED:
      return 'complete';
    default:
      return 'failed';
  }
}

const nsToMs = (ns: bigint): number | null => (ns > 0n ? Number(ns / 1_000_000n) : null);

/** What an EgressInfo says of the recording: status, the file's times, length, size and location, or why it failed. */
export function recordingOf(info: EgressInfo): Recording {
  const status = recordingStatus(info.status);
  // The file result (file_results, or the deprecated `file` of older servers).
  const file = info.fileResults[0] ?? (info.result.case === 'file' ? info.result.value : undefined);
  const ended = status === 'complete' || status === 'failed';
  const error: CallError | null =
    status === 'failed'
      ? {
          category: 'media_failure',
          retryable: false,
          message: maskSensitive(`recording ${EgressStatus[info.status] ?? info.status}: ${info.error || info.details || 'no reason given'}`),
          sipStatusCode: null,
        }
      : null;
  return {
    egressId: info.egressId || null,
    status,
    startedAt: file ? nsToMs(file.startedAt) : null,
    endedAt: ended ? (nsToMs(file?.endedAt ?? 0n) ?? nsToMs(info.endedAt)) : null,
    durationS: ended && file && file.duration > 0n ? Math.round(Number(file.duration / 1_000_000n)) / 1000 : null,
    sizeBytes: ended && file && file.size > 0n ? Number(file.size) : null,
    location: ended && file?.location ? file.location : null,
    error,
  };
}
