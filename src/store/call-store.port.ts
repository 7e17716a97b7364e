// What the runtime needs from storage. The in-memory store implements it for one process; a
// Redis store implements the same contract for several replicas. Every method is async and
// nothing here assumes a Map.
import type { Snapshot } from 'xstate';
import type { CallContext, CallState, Direction, ObsEventName } from '../../machines/call.types.js';
import type { ObsEnvelope } from '../obs/envelope.js';
import type { Delivery } from './outbox.port.js';

export interface CallRecord {
  id: string;
  /**
   * The id of the chart that wrote `snapshot` (its version, e.g. `call-v1`). Records stored
   * before records named it were all written by `call-v1`.
   */
  machine: string;
  state: CallState;
  /** the chart's context, kept beside the snapshot for lookups and the API */
  context: CallContext;
  /** `actor.getPersistedSnapshot()`: plain JSON */
  snapshot: Snapshot<unknown>;
  /** the seq of the newest OBS-00 event of this call */
  lastSeq: number;
  /** incremented by every commit; a commit names the version it read (compare-and-set) */
  version: number;
  /**
   * The LiveKit webhook ids this call applied most recently, committed with the state they
   * produced: a webhook retried after its first delivery was applied (the answer was lost with a
   * replica) is recognised here even if the global de-duplication never heard of it.
   */
  webhookIds: string[];
  /**
   * Where this call's status callbacks go when the request chose (`POST /v1/calls`); absent:
   * the configured default endpoint and event filter.
   */
  statusCallback?: StatusCallbackChoice;
  /**
   * The SIP options of the call, fixed at creation: outbound, what the request asked to send;
   * inbound, the caller's SIP headers. Absent (records stored before calls had options): none.
   */
  callOptions?: CallOptions;
}

export interface CallOptions {
  /** outbound: the headers sent with the INVITE; inbound: the caller's `sip.h.*` attributes, by header name */
  sipHeaders: Record<string, string> | null;
  /** outbound: the From display name sent (`''`: none, so the carrier looks the name up) */
  displayName: string | null;
  /**
   * outbound: the digits sent once the call is answered. It may carry a PIN: it only ever goes
   * to LiveKit, never into the chart's context, an event, a log line or an API answer.
   */
  dtmf: string | null;
}

export interface StatusCallbackChoice {
  /** replaces STATUS_CALLBACK_URL for this call */
  url: string | null;
  /** replaces STATUS_CALLBACK_EVENTS for this call */
  events: ObsEventName[] | null;
}

/** A writer's hold on one call (withCallLock). */
export interface CallLease {
  /** the call as stored when the lease was taken; undefined: no such call (yet) */
  readonly record: CallRecord | undefined;
}

export interface CommitOptions {
  /** the LiveKit webhook the commit applies: remembered with it */
  webhookId?: string;
  /** the lease the commit is made under: ended by the commit once it is stored */
  lease?: CallLease;
}

export interface WebhookLookup {
  seen: boolean;
  /** the live call in the webhook's room, as stored; undefined when seen, without a room, or none */
  call?: CallRecord;
}

export interface ListQuery {
  state?: CallState;
  direction?: Direction;
  /** the LiveKit room name (an agent knows only its room) */
  room?: string;
  limit: number;
  /** opaque, from a previous page's `nextCursor` */
  cursor?: string;
}

export interface ListPage {
  records: CallRecord[];
  nextCursor: string | null;
}

export interface RoomRef {
  sid: string | null;
  name: string;
}

/** The response an idempotent request produced, replayed for a repeat of the same request. */
export interface StoredResponse {
  status: number;
  headers: Record<string, string>;
  body: unknown;
}

export type IdempotencyClaim =
  /** yours to process, as call `sessionId`: the one you proposed, or the one an abandoned claim chose */
  | { status: 'claimed'; sessionId: string }
  | { status: 'in_flight'; fingerprint: string }
  | { status: 'done'; fingerprint: string; response: StoredResponse };

export interface IdempotencyRequest {
  fingerprint: string;
  /** the session the request will create if the key is new */
  sessionId: string;
  /** how long a claim in flight holds the key; after that a retry with the same fingerprint takes it over */
  leaseMs: number;
  /** how long the key lives in all */
  ttlMs: number;
}

export interface CallStore {
  get(id: string): Promise<CallRecord | undefined>;
  /**
   * Stores the record, appends its new events and records the status-callback deliveries they
   * cause in the backend's outbox, all or nothing. `record.version` must be one more than the
   * stored version (0 for a new call), else VersionConflictError. With `webhookId`, that webhook
   * is remembered as applied (lookupWebhook) with the commit; with `lease`, the commit ends it.
   */
  commit(record: CallRecord, events: readonly ObsEnvelope[], deliveries?: readonly Delivery[], options?: CommitOptions): Promise<void>;
  /** The live (not final) call in this LiveKit room: by sid when known, else by name. */
  findLiveByRoom(room: RoomRef): Promise<string | undefined>;
  /**
   * What a webhook needs first, in one round trip: whether a webhook with this event id was
   * applied (or remembered) before and, when it was not, the live call in its room (findLiveByRoom)
   * as stored.
   */
  lookupWebhook(eventId: string | null, room: RoomRef | null): Promise<WebhookLookup>;
  /** The live call whose SIP participant has this identity. */
  findLiveBySipIdentity(identity: string): Promise<string | undefined>;
  /** Newest first; stable while calls are created. */
  list(query: ListQuery): Promise<ListPage>;
  /** A call's OBS-00 events in seq order; undefined for an unknown call. */
  events(id: string): Promise<ObsEnvelope[] | undefined>;
  /** Remember a webhook as applied (bounded: old ids are forgotten first). */
  rememberWebhook(eventId: string): Promise<void>;
  /**
   * Claims an idempotency key for a request, unless it is claimed already: then says whether the
   * first request is still in flight or what it answered. A claim whose lease ran out (its
   * replica died) is taken over by a request with the same fingerprint, with the same session id.
   */
  claimIdempotencyKey(key: string, request: IdempotencyRequest): Promise<IdempotencyClaim>;
  /** Records the answer of a claimed key; it is replayed until the key expires. */
  completeIdempotencyKey(key: string, response: StoredResponse): Promise<void>;
  /** Gives a claimed key up (the request failed without effect), so a retry may claim it. */
  releaseIdempotencyKey(key: string): Promise<void>;
  /**
   * Runs `task` as the call's only writer across every replica sharing this store (a short
   * lease per call), handing it the call as stored when the lease was taken. The lease ends when
   * `task` settles, or earlier, with the commit it is passed to. The embedded store serves one
   * process, whose runtime already serializes each call, so it runs `task` at once.
   */
  withCallLock<T>(id: string, task: (lease: CallLease) => Promise<T>): Promise<T>;
  /**
   * Calls whose earliest deadline (the minimum of `context.deadlines`, kept by `commit`) is at or
   * before `now`, at most `limit`. Each returned call is leased for `leaseMs`: another replica
   * gets it again only if the lease runs out before a commit moves its deadline.
   */
  claimDueTimers(now: number, limit: number, leaseMs: number): Promise<string[]>;
  /** Ids of calls that are not final, oldest first, at most `limit` (for reconciliation). */
  liveCallIds(limit: number): Promise<string[]>;
  /** The call (live or final, while it is kept) whose recording is this LiveKit egress. */
  findByEgress(egressId: string): Promise<string | undefined>;
  /**
   * Ids of calls, live or final, whose recording has not ended (starting, active or ending), at
   * most `limit` (for reconciliation: LiveKit may never deliver an egress's end).
   */
  openRecordingIds(limit: number): Promise<string[]>;
  /** Throws StoreUnavailableError when the store cannot serve. */
  ping(): Promise<void>;
  /** Releases connections; the store is unusable afterwards. */
  close(): Promise<void>;
}

/** Whether the call's recording has yet to end (what openRecordingIds lists). */
export function hasOpenRecording(record: CallRecord): boolean {
  const status = record.context.recording?.status;
  return status === 'starting' || status === 'active' || status === 'ending';
}

/** The earliest deadline of a call, or null when none is armed. */
export function nextDeadline(record: CallRecord): number | null {
  let next: number | null = null;
  for (const at of Object.values(record.context.deadlines)) if (at !== null && (next === null || at < next)) next = at;
  return next;
}
