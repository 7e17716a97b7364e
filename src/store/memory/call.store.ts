// The embedded store: one process, everything in memory (docs/replicas.md, the default without REDIS_URL).
// Final calls and their history are kept for a bounded time and count; live calls always stay.
import type { ObsEnvelope } from '../../obs/envelope.js';
import { isFinalState } from '../../../machines/call.types.js';
import { decodeCursor, encodeCursor } from '../cursor.js';
import { VersionConflictError } from '../errors.js';
import type { Delivery } from '../outbox.port.js';
import type { MemoryOutbox } from './outbox.js';
import {
  hasOpenRecording,
  nextDeadline,
  type CallLease,
  type CallRecord,
  type CallStore,
  type CommitOptions,
  type IdempotencyClaim,
  type IdempotencyRequest,
  type ListPage,
  type ListQuery,
  type RoomRef,
  type StoredResponse,
  type WebhookLookup,
} from '../call-store.port.js';

export interface MemoryStoreOptions {
  /** how long a final call stays readable */
  retentionMs: number;
  /** at most this many final calls are kept; the oldest go first */
  maxFinalCalls: number;
  /** how many webhook event ids are remembered for de-duplication */
  webhookDedupSize: number;
  /** at most this many events are kept per call; later ones are counted but not stored */
  maxEventsPerCall: number;
  /** where commits record their status-callback deliveries; a commit with deliveries needs it */
  outbox?: MemoryOutbox;
  now?: () => number;
}

interface Entry {
  record: CallRecord;
  events: ObsEnvelope[];
  ordinal: number;
  finalAt: number | null;
}

/** A set that forgets its oldest member once full: a ring buffer of ids beside a Set. */
export class BoundedIdSet {
  private readonly ring: (string | undefined)[];
  private readonly members = new Set<string>();
  private next = 0;

  constructor(readonly capacity: number) {
    this.ring = new Array<string | undefined>(capacity);
  }

  has(id: string): boolean {
    return this.members.has(id);
  }

  add(id: string): void {
    if (this.members.has(id)) return;
    const evicted = this.ring[this.next];
    if (evicted !== undefined) this.members.delete(evicted);
    this.ring[this.next] = id;
    this.members.add(id);
    this.next = (this.next + 1) % this.capacity;
  }

  get size(): number {
    return this.members.size;
  }
}

export class MemoryCallStore implements CallStore {
  private readonly entries = new Map<string, Entry>();
  /** ids in creation order; ordinals ascend, so a page is a backwards scan */
  private order: { id: string; ordinal: number }[] = [];
  private nextOrdinal = 1;
  private readonly finalQueue: string[] = [];
  private finalHead = 0;
  private readonly liveByRoomSid = new Map<string, string>();
  private readonly liveByRoomName = new Map<string, string>();
  private readonly liveBySipIdentity = new Map<string, string>();
  private readonly byEgress = new Map<string, string>();
  /** calls whose recording has not ended, in the order they started one */
  private readonly openRecordings = new Set<string>();
  private readonly webhooks: BoundedIdSet;
  /** live calls' earliest deadline */
  private readonly timers = new Map<string, number>();
  /** idempotency keys in claim order (Map order), so expired ones are found at the front */
  private readonly idempotency = new Map<
    string,
    { fingerprint: string; sessionId: string; leaseUntil: number; expiresAt: number; response: StoredResponse | null }
  >();
  private readonly now: () => number;

  constructor(private readonly options: MemoryStoreOptions) {
    this.webhooks = new BoundedIdSet(options.webhookDedupSize);
    this.now = options.now ?? Date.now;
  }

  async get(id: string): Promise<CallRecord | undefined> {
    return this.entries.get(id)?.record;
  }

  async commit(record: CallRecord, events: readonly ObsEnvelope[], deliveries: readonly Delivery[] = [], options: CommitOptions = {}): Promise<void> {
    const existing = this.entries.get(record.id);
    const storedVersion = existing?.record.version ?? 0;
    if (record.version !== storedVersion + 1) throw new VersionConflictError(record.id, storedVersion + 1, record.version);
    if (deliveries.length > 0 && !this.options.outbox) throw new Error('this store has no outbox for status-callback deliveries');

    const entry: Entry = existing ?? { record, events: [], ordinal: this.nextOrdinal++, finalAt: null };
    if (!existing) {
      this.entries.set(record.id, entry);
      this.order.push({ id: record.id, ordinal: entry.ordinal });
    }
    if (existing) this.unindex(existing.record);
    entry.record = record;
    for (const event of events) {
      if (entry.events.length < this.options.maxEventsPerCall) entry.events.push(event);
    }
    const due = nextDeadline(record);
    if (due === null) this.timers.delete(record.id);
    else this.timers.set(record.id, due);
    if (isFinalState(record.state)) {
      if (entry.finalAt === null) {
        entry.finalAt = this.now();
        this.finalQueue.push(record.id);
      }
    } else {
      this.index(record);
    }
    const egressId = record.context.recording?.egressId;
    if (egressId) this.byEgress.set(egressId, record.id);
    if (hasOpenRecording(record)) this.openRecordings.add(record.id);
    else this.openRecordings.delete(record.id);
    this.options.outbox?.add(deliveries, this.now());
    if (options.webhookId) this.webhooks.add(options.webhookId);
    this.prune();
  }

  async findByEgress(egressId: string): Promise<string | undefined> {
    return this.byEgress.get(egressId);
  }

  async openRecordingIds(limit: number): Promise<string[]> {
    return [...this.openRecordings].slice(0, limit);
  }

  async findLiveByRoom(room: RoomRef): Promise<string | undefined> {
    if (room.sid) {
      const bySid = this.liveByRoomSid.get(room.sid);
      if (bySid) return bySid;
    }
    const byName = this.liveByRoomName.get(room.name);
    if (!byName) return undefined;
    // Room names are reused: a name match counts only while the call has not seen another sid.
    const sid = this.entries.get(byName)?.record.context.roomSid;
    return !sid || !room.sid || sid === room.sid ? byName : undefined;
  }

  async lookupWebhook(eventId: string | null, room: RoomRef | null): Promise<WebhookLookup> {
    if (eventId !== null && this.webhooks.has(eventId)) return { seen: true };
    const id = room ? await this.findLiveByRoom(room) : undefined;
    return { seen: false, call: id === undefined ? undefined : this.entries.get(id)?.record };
  }

  async findLiveBySipIdentity(identity: string): Promise<string | undefined> {
    return this.liveBySipIdentity.get(identity);
  }

  async list(query: ListQuery): Promise<ListPage> {
    const before = query.cursor === undefined ? Number.POSITIVE_INFINITY : decodeCursor(query.cursor);
    const records: CallRecord[] = [];
    let lastOrdinal: number | null = null;
    let more = false;
    for (let i = this.order.length - 1; i >= 0; i--) {
      const item = this.order[i];
      if (!item || item.ordinal >= before) continue;
      const entry = this.entries.get(item.id);
      if (!entry) continue;
      const { record } = entry;
      if (query.state && record.state !== query.state) continue;
      if (query.direction && record.context.direction !== query.direction) continue;
      if (query.room !== undefined && record.context.roomName !== query.room) continue;
      if (records.length === query.limit) {
        more = true;
        break;
      }
      records.push(record);
      lastOrdinal = item.ordinal;
    }
    return { records, nextCursor: more && lastOrdinal !== null ? encodeCursor(lastOrdinal) : null };
  }

  async events(id: string): Promise<ObsEnvelope[] | undefined> {
    const entry = this.entries.get(id);
    return entry ? [...entry.events] : undefined;
  }

  async rememberWebhook(eventId: string): Promise<void> {
    this.webhooks.add(eventId);
  }

  async claimIdempotencyKey(key: string, request: IdempotencyRequest): Promise<IdempotencyClaim> {
    this.expireIdempotencyKeys();
    const now = this.now();
    const existing = this.idempotency.get(key);
    if (existing && existing.expiresAt > now) {
      if (existing.response) return { status: 'done', fingerprint: existing.fingerprint, response: existing.response };
      if (existing.leaseUntil > now || existing.fingerprint !== request.fingerprint) {
        return { status: 'in_flight', fingerprint: existing.fingerprint };
      }
      existing.leaseUntil = now + request.leaseMs;
      return { status: 'claimed', sessionId: existing.sessionId };
    }
    this.idempotency.delete(key);
    this.idempotency.set(key, {
      fingerprint: request.fingerprint,
      sessionId: request.sessionId,
      leaseUntil: now + request.leaseMs,
      expiresAt: now + request.ttlMs,
      response: null,
    });
    return { status: 'claimed', sessionId: request.sessionId };
  }

  async completeIdempotencyKey(key: string, response: StoredResponse): Promise<void> {
    const entry = this.idempotency.get(key);
    if (entry) entry.response = response;
  }

  async releaseIdempotencyKey(key: string): Promise<void> {
    this.idempotency.delete(key);
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {}

  withCallLock<T>(id: string, task: (lease: CallLease) => Promise<T>): Promise<T> {
    return task({ record: this.entries.get(id)?.record });
  }

  async claimDueTimers(now: number, limit: number, leaseMs: number): Promise<string[]> {
    const due: string[] = [];
    for (const [id, at] of this.timers) {
      if (due.length >= limit) break;
      if (at <= now) due.push(id);
    }
    for (const id of due) this.timers.set(id, now + leaseMs);
    return due;
  }

  async liveCallIds(limit: number): Promise<string[]> {
    const ids: string[] = [];
    for (const item of this.order) {
      if (ids.length >= limit) break;
      const entry = this.entries.get(item.id);
      if (entry && !isFinalState(entry.record.state)) ids.push(item.id);
    }
    return ids;
  }

  private expireIdempotencyKeys(): void {
    const now = this.now();
    for (const [key, entry] of this.idempotency) {
      // Every key lives equally long, so claim order is expiry order.
      if (entry.expiresAt > now) break;
      this.idempotency.delete(key);
    }
  }

  private index(record: CallRecord): void {
    const { roomSid, roomName, sipIdentity } = record.context;
    if (roomSid) this.liveByRoomSid.set(roomSid, record.id);
    this.liveByRoomName.set(roomName, record.id);
    if (sipIdentity) this.liveBySipIdentity.set(sipIdentity, record.id);
  }

  private unindex(record: CallRecord): void {
    const { roomSid, roomName, sipIdentity } = record.context;
    const drop = (map: Map<string, string>, key: string | null) => {
      if (key && map.get(key) === record.id) map.delete(key);
    };
    drop(this.liveByRoomSid, roomSid);
    drop(this.liveByRoomName, roomName);
    drop(this.liveBySipIdentity, sipIdentity);
  }

  private prune(): void {
    const oldestKept = this.now() - this.options.retentionMs;
    while (this.finalHead < this.finalQueue.length) {
      const id = this.finalQueue[this.finalHead] as string;
      const entry = this.entries.get(id);
      const count = this.finalQueue.length - this.finalHead;
      if (entry && count <= this.options.maxFinalCalls && (entry.finalAt ?? 0) > oldestKept) break;
      const egressId = entry?.record.context.recording?.egressId;
      if (egressId) this.byEgress.delete(egressId);
      this.openRecordings.delete(id);
      this.entries.delete(id);
      this.options.outbox?.forget(id);
      this.finalHead++;
    }
    // Compact the bookkeeping arrays once most of them is dead weight.
    if (this.finalHead > 1024 && this.finalHead * 2 > this.finalQueue.length) {
      this.finalQueue.splice(0, this.finalHead);
      this.finalHead = 0;
    }
    if (this.order.length > 1024 && this.order.length > this.entries.size * 2) {
      this.order = this.order.filter((item) => this.entries.has(item.id));
    }
  }
}
