// The shared store (docs/replicas.md, with REDIS_URL): calls, their events, webhook de-duplication,
// idempotency keys, timers and per-call writer leases live in Redis, so any replica serves any
// request and a replica that dies mid-call loses nothing. Semantics follow MemoryCallStore
// (the contract suite in test/store/call-store.contract.test.ts runs against both).
//
// Key layout (every key starts with `keyPrefix`, default `cp:`):
//
//   Per call, all with the hash tag of the call id, so one call is one Cluster slot:
//     call:{<id>}              hash: version, state, record (CallRecord JSON), ordinal, and what
//                              lookups need without the record: room_sid, room_name, and
//                              lookups (the lookup keys that lead to the call, JSON)
//     call:{<id>}:events       list of OBS-00 envelopes (JSON), RPUSH; the first maxEventsPerCall kept
//     call:{<id>}:lock         writer lease: random token, PX lockTtlMs
//     call:{<id>}:deliveries   status-callback deliveries: event id -> Delivery JSON, and
//                              `#pending` (outbox.ts); the commit writes them with the record
//   A final call's record and events get PEXPIRE retentionMs once, when it first commits final;
//   its deliveries get the record's remaining TTL once none of them is pending.
//
//   Global (the commit script writes them with the call's own keys, so the store needs one Redis
//   server, not a Cluster; the outbox's two keys share the hash tag `{outbox}`):
//     calls:ordinal            INCR counter: a call's ordinal, taken once, before its first commit
//     calls:all                ZSET id -> ordinal (listing, newest first)
//     calls:state:<state>      ZSET id -> ordinal, the call's current state
//     calls:direction:<dir>    ZSET id -> ordinal
//     calls:room:<room name>   ZSET id -> ordinal of the calls in that LiveKit room; expires with
//                              the room's last ended call
//     calls:live               ZSET id -> ordinal of calls not final (liveCallIds, oldest first)
//     calls:expiry             ZSET id -> when a final call's record expires: the index entries of
//                              expired calls are removed from there (and lazily by readers)
//     room:sid:<sid>           string -> id of the live call in that LiveKit room
//     room:name:<name>         string -> id of the live call last committed with that room name
//     sip:<identity>           string -> id of the live call with that SIP participant
//     egress:<egressId>        string -> id of the call that egress records; expires with a final call
//     recordings:open          ZSET id -> ordinal of calls, live or final, whose recording has not ended
//     timers                   ZSET id -> nextDeadline(record) of live calls, or the lease end
//                              of a claimed timer
//     webhook:<eventId>        "1", SET NX PX webhookDedupTtlMs
//     idem:<key>               {"fingerprint","response"} JSON, claimed with a lease (`lease_until`) and PX ttl;
//                              completed with SET KEEPTTL; released with DEL
//     {outbox}:due             ZSET id -> when the call's next delivery is due, or its lease end
//                              + 0.5 while a sender holds it (outbox.ts)
//     {outbox}:pending         counter of pending deliveries over every call
//
// A commit is one Lua script: compare-and-set on the version, then the record, the events, the
// deliveries, every index and lookup key, the timer, the webhook id it applies and the shared
// event log's entries, all or nothing, and, made under a writer lease, the lease's end. A webhook
// to a known call therefore costs two commands: its de-duplication check with the room lookup and
// the stored record (WEBHOOK_LOOKUP), and the commit (the runtime takes the lease, LOCK, only
// when that commit lost a race). Index entries can still be stale (a record expired, or an
// earlier version of the service crashed between its writes): readers verify every hit against
// the call (state, room, identity, existence) and skip and clean up what does not match. A commit with deliveries marks the call due in the outbox
// before that script and again after it (outbox.ts).
//
// Differences from the embedded store: final calls are bounded by retention time only (no count
// cap), webhook ids by time (webhookDedupTtlMs) instead of by count, a final call never has a
// timer (the embedded store keeps one if a final record still carries a deadline), and pending
// deliveries have no cap (none is ever recorded failed unsent).
import { randomUUID } from 'node:crypto';
import { CALL_STATES, DIRECTIONS, FINAL_STATES, isFinalState, type CallState, type Direction } from '../../../machines/call.types.js';
import type { ObsEnvelope } from '../../obs/envelope.js';
import type { Delivery } from '../outbox.port.js';
import { decodeCursor, encodeCursor } from '../cursor.js';
import { StoreUnavailableError, VersionConflictError } from '../errors.js';
import { CLAIM_DUE, LuaScript, type RedisConnection } from './connection.js';
import { deliveriesKey, type RedisOutbox } from './outbox.js';
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

export interface RedisStoreOptions {
  /** the backend's connection (its key prefix is this store's) */
  connection: RedisConnection;
  /** final calls (record + events) expire after this (Redis PEXPIRE) */
  retentionMs: number;
  /** a webhook id is remembered this long (LiveKit retries for ~30 s) */
  webhookDedupTtlMs: number;
  maxEventsPerCall: number;
  /**
   * with the shared event log (RedisEventLog), the stream's approximate length: each commit adds
   * its events to the log in its own script; absent, commits add nothing to it
   */
  eventLogMaxLength?: number;
  /** per-call writer lease, default 5000 */
  lockTtlMs?: number;
  /** how long withCallLock waits for a busy lock before throwing StoreUnavailableError, default 10000 */
  lockWaitMs?: number;
  /** the clock of the index clean-up of expired calls; record TTLs use the Redis server's clock */
  now?: () => number;
  /** where commits record their status-callback deliveries; a commit with deliveries needs it */
  outbox?: RedisOutbox;
  /**
   * told when the outbox's second due mark or the clean-up of expired calls' index entries failed
   * after a commit that itself succeeded
   */
  onAfterCommitError?: (err: unknown, callId: string) => void;
}

const GC_INTERVAL_MS = 1000;
const GC_BATCH = 64;

// The commit: one script, so a call's record, history, indexes, lookups, timer, webhook
// de-duplication and event-log entries change together or not at all. KEYS: call hash, events
// list, deliveries hash, lock. The global keys it writes are named from the prefix (ARGV[9]).
// ARGV: see COMMIT_ARGS. Returns {0, storedVersion} on a conflict, else {1, ordinal, released}
// (released: 1 when it ended the writer's lease).
const COMMIT = new LuaScript(`
local stored = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if tonumber(ARGV[1]) ~= stored + 1 then return {0, stored} end
local p, id, state = ARGV[9], ARGV[10], ARGV[2]
local final = ARGV[4] == '1'
local previous = redis.call('HMGET', KEYS[1], 'state', 'lookups', 'ordinal')
local previous_state, previous_lookups, ordinal = previous[1], previous[2], previous[3]
if not previous_lookups and stored > 0 then
  -- stored before records listed their lookups: the keys its context names
  previous_lookups = '[]'
  local ok, old = pcall(cjson.decode, redis.call('HGET', KEYS[1], 'record') or '')
  if ok and type(old) == 'table' and type(old['context']) == 'table' then
    local context, keys = old['context'], {}
    for prefix, field in pairs({['room:name:'] = 'roomName', ['room:sid:'] = 'roomSid', ['sip:'] = 'sipIdentity'}) do
      if type(context[field]) == 'string' then keys[#keys + 1] = prefix .. context[field] end
    end
    if #keys > 0 then previous_lookups = cjson.encode(keys) end
  end
end
local new = false
if not ordinal and ARGV[1] == '1' then
  ordinal = tostring(redis.call('INCR', p .. 'calls:ordinal'))
  new = true
end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'state', state, 'record', ARGV[3], 'lookups', ARGV[13],
  'room_sid', ARGV[22], 'room_name', ARGV[12])
if new then redis.call('HSET', KEYS[1], 'ordinal', ordinal) end
local count = redis.call('LLEN', KEYS[2])
local max = tonumber(ARGV[6])
local events = tonumber(ARGV[7])
for i = 23, 22 + events do
  if count >= max then break end
  redis.call('RPUSH', KEYS[2], ARGV[i])
  count = count + 1
end
for i = 23 + events, #ARGV, 2 do redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1]) end
local pending = tonumber(ARGV[8])
if pending > 0 then
  redis.call('HINCRBY', KEYS[3], '#pending', pending)
  redis.call('PERSIST', KEYS[3])
end
if final then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then
    ttl = tonumber(ARGV[5])
    redis.call('PEXPIRE', KEYS[1], ttl)
  end
  if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ttl) end
  if tonumber(redis.call('HGET', KEYS[3], '#pending') or '0') <= 0 then redis.call('PEXPIRE', KEYS[3], ttl) end
end
-- indexes
if ordinal then
  if new then
    redis.call('ZADD', p .. 'calls:all', ordinal, id)
    redis.call('ZADD', p .. 'calls:direction:' .. ARGV[11], ordinal, id)
    redis.call('ZADD', p .. 'calls:room:' .. ARGV[12], ordinal, id)
  end
  if previous_state ~= state then
    if previous_state then redis.call('ZREM', p .. 'calls:state:' .. previous_state, id) end
    redis.call('ZADD', p .. 'calls:state:' .. state, ordinal, id)
    if final then redis.call('ZREM', p .. 'calls:live', id) else redis.call('ZADD', p .. 'calls:live', ordinal, id) end
  end
end
-- lookups: the live call's keys point at it; keys it no longer has are let go
local current = {}
for _, key in ipairs(cjson.decode(ARGV[13])) do
  current[key] = true
  redis.call('SET', p .. key, id)
end
if previous_lookups then
  for _, key in ipairs(cjson.decode(previous_lookups)) do
    if not current[key] and redis.call('GET', p .. key) == id then redis.call('DEL', p .. key) end
  end
end
if ARGV[14] == '' then redis.call('ZREM', p .. 'timers', id) else redis.call('ZADD', p .. 'timers', ARGV[14], id) end
if ARGV[15] ~= '' then
  if final then redis.call('SET', p .. 'egress:' .. ARGV[15], id, 'PX', ARGV[5]) else redis.call('SET', p .. 'egress:' .. ARGV[15], id) end
end
if ARGV[16] == 'open' then
  redis.call('ZADD', p .. 'recordings:open', ordinal or 0, id)
elseif ARGV[16] == 'closed' then
  redis.call('ZREM', p .. 'recordings:open', id)
end
if final then
  redis.call('ZADD', p .. 'calls:expiry', 'NX', tonumber(ARGV[21]) + tonumber(ARGV[5]), id)
  redis.call('PEXPIRE', p .. 'calls:room:' .. ARGV[12], ARGV[5])
end
if ARGV[17] ~= '' then redis.call('SET', p .. 'webhook:' .. ARGV[17], '1', 'PX', ARGV[18], 'NX') end
if ARGV[20] ~= '' then
  local seq_key, stream_key = p .. '{events}:seq', p .. '{events}:stream'
  for i = 23, 22 + events do
    local n = redis.call('INCR', seq_key)
    redis.call('XADD', stream_key, 'MAXLEN', '~', ARGV[20], n .. '-0', 'e', ARGV[i])
  end
end
local released = 0
if ARGV[19] ~= '' and redis.call('GET', KEYS[4]) == ARGV[19] then
  redis.call('DEL', KEYS[4])
  released = 1
end
return {1, ordinal or '', released}`);

// KEYS: call hash, events list. nil for an unknown call.
const EVENTS = new LuaScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
return redis.call('LRANGE', KEYS[2], 0, -1)`);

// KEYS: one key. Deletes it if it holds ARGV[1] (lookup keys, lock release).
const DELETE_IF = new LuaScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`);

// KEYS: lock, call hash. ARGV: token, ttl. Idempotent: a resent acquire of our own lock
// succeeds. Returns {1, record JSON or ''} once held, {0} while another writer holds it.
const LOCK = new LuaScript(`
local held = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
if not held then
  if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {0} end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return {1, redis.call('HGET', KEYS[2], 'record') or ''}`);

// ARGV: prefix, webhook event id ('' none), room sid ('' unknown), room name ('' no room), the
// final states (comma-separated). {1} when the webhook was applied before; else {0, id, record
// JSON} for the live call in the room (by sid, else by name while the call has seen no other
// sid), {0} for none, or {2} when a candidate's hash does not name its room (stored by an earlier
// version of the service: the caller looks it up from the record).
const WEBHOOK_LOOKUP = new LuaScript(`
local p, sid, name = ARGV[1], ARGV[3], ARGV[4]
if ARGV[2] ~= '' and redis.call('EXISTS', p .. 'webhook:' .. ARGV[2]) == 1 then return {1} end
if name == '' then return {0} end
local final = {}
for state in string.gmatch(ARGV[5], '[^,]+') do final[state] = true end
local function candidate(key)
  local id = redis.call('GET', p .. key)
  if not id then return nil end
  local f = redis.call('HMGET', p .. 'call:{' .. id .. '}', 'state', 'room_sid', 'room_name', 'record')
  if not f[1] then return nil end
  if not f[3] then return 'legacy' end
  return id, f
end
if sid ~= '' then
  local id, f = candidate('room:sid:' .. sid)
  if id == 'legacy' then return {2} end
  if id and not final[f[1]] and f[2] == sid then return {0, id, f[4]} end
end
local id, f = candidate('room:name:' .. name)
if id == 'legacy' then return {2} end
if not id or final[f[1]] or f[3] ~= name then return {0} end
-- Room names are reused: a name match counts only while the call has not seen another sid.
if f[2] ~= '' and sid ~= '' and f[2] ~= sid then return {0} end
return {0, id, f[4]}`);

// KEYS: lock. ARGV: token, ttl.
const EXTEND = new LuaScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`);

// KEYS: idempotency key. ARGV: fingerprint, session id, lease ms, ttl ms.
// Returns {'claimed', session id} | {'in_flight', fingerprint} | {'done', stored value}. The
// response is kept as raw JSON text inside the value (never re-encoded by cjson, which would turn
// [] into {}); a claim in flight carries `lease_until` (Redis time), after which a request with
// the same fingerprint takes it over with the same session id.
const CLAIM_IDEMPOTENCY = new LuaScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local value = redis.call('GET', KEYS[1])
if not value then
  local claim = {fingerprint = ARGV[1], session_id = ARGV[2], lease_until = now + tonumber(ARGV[3])}
  redis.call('SET', KEYS[1], cjson.encode(claim), 'PX', ARGV[4])
  return {'claimed', ARGV[2]}
end
local stored = cjson.decode(value)
if stored['response'] ~= nil and stored['response'] ~= cjson.null then return {'done', value} end
if stored['lease_until'] > now or stored['fingerprint'] ~= ARGV[1] then return {'in_flight', stored['fingerprint']} end
stored['lease_until'] = now + tonumber(ARGV[3])
redis.call('SET', KEYS[1], cjson.encode(stored), 'KEEPTTL')
return {'claimed', stored['session_id']}`);

// KEYS: idempotency key. ARGV: response JSON. Keeps the claim's fields and the TTL.
const COMPLETE_IDEMPOTENCY = new LuaScript(`
local value = redis.call('GET', KEYS[1])
if not value then return 0 end
local stored = cjson.decode(value)
redis.call('SET', KEYS[1], '{"fingerprint":' .. cjson.encode(stored['fingerprint']) .. ',"session_id":' .. cjson.encode(stored['session_id']) .. ',"response":' .. ARGV[1] .. '}', 'KEEPTTL')
return 1`);

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The lookup keys (without the prefix) that lead to a live call: its room, by name and sid, and its SIP participant. */
function lookupNames(record: CallRecord): string[] {
  const { roomSid, roomName, sipIdentity } = record.context;
  const names = [`room:name:${roomName}`];
  if (roomSid) names.push(`room:sid:${roomSid}`);
  if (sipIdentity) names.push(`sip:${sipIdentity}`);
  return names;
}

/** A writer's hold on a call: its lock key and random token; a commit under it ends it. */
class RedisCallLease implements CallLease {
  released = false;
  constructor(
    readonly lockKey: string,
    readonly token: string,
    readonly record: CallRecord | undefined,
  ) {}
}

export class RedisCallStore implements CallStore {
  private readonly connection: RedisConnection;
  private readonly lockTtlMs: number;
  private readonly lockWaitMs: number;
  private readonly now: () => number;
  private lastGc = 0;

  constructor(private readonly options: RedisStoreOptions) {
    this.connection = options.connection;
    this.lockTtlMs = options.lockTtlMs ?? 5000;
    this.lockWaitMs = options.lockWaitMs ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  private get redis() {
    return this.connection.client;
  }

  // ---- keys ----

  private callKey(id: string): string {
    return this.key(`call:{${id}}`);
  }
  private eventsKey(id: string): string {
    return this.key(`call:{${id}}:events`);
  }
  private lockKey(id: string): string {
    return this.key(`call:{${id}}:lock`);
  }
  private key(name: string): string {
    return this.connection.key(name);
  }
  private stateKey(state: CallState): string {
    return this.key(`calls:state:${state}`);
  }
  private directionKey(direction: Direction): string {
    return this.key(`calls:direction:${direction}`);
  }
  private roomKey(roomName: string): string {
    return this.key(`calls:room:${roomName}`);
  }
  // ---- CallStore ----

  async get(id: string): Promise<CallRecord | undefined> {
    return this.guard('get', () => this.load(id));
  }

  async commit(record: CallRecord, events: readonly ObsEnvelope[], deliveries: readonly Delivery[] = [], options: CommitOptions = {}): Promise<void> {
    if (deliveries.length > 0 && !this.options.outbox) throw new Error('this store has no outbox for status-callback deliveries');
    const outbox = deliveries.length > 0 ? this.options.outbox : undefined;
    const pending = deliveries.filter((delivery) => delivery.status === 'pending').length;
    const lease = options.lease instanceof RedisCallLease && options.lease.lockKey === this.lockKey(record.id) ? options.lease : null;
    return this.guard('commit', async () => {
      const final = isFinalState(record.state);
      const { context } = record;
      const recording = context.recording;
      const due = final ? null : nextDeadline(record);
      // The call is marked due before its deliveries are recorded: a crash in between leaves a due
      // call with nothing to send, never a delivery no sender looks at.
      // Due when the deliveries say (the service's clock, which the sender claims by).
      const now = Math.min(...deliveries.map((delivery) => delivery.nextAttemptAt ?? this.now()));
      await outbox?.mark(record.id, pending, now);
      // COMMIT_ARGS, in order (the script reads them by position).
      const args = [
        /* 1 */ String(record.version),
        /* 2 */ record.state,
        /* 3 */ JSON.stringify(record),
        /* 4 */ final ? '1' : '0',
        /* 5 */ String(this.options.retentionMs),
        /* 6 */ String(this.options.maxEventsPerCall),
        /* 7 */ String(events.length),
        /* 8 */ String(pending),
        /* 9 */ this.connection.keyPrefix,
        /* 10 */ record.id,
        /* 11 */ context.direction,
        /* 12 */ context.roomName,
        /* 13 */ JSON.stringify(final ? [] : lookupNames(record)),
        /* 14 */ due === null ? '' : String(due),
        /* 15 */ recording?.egressId ?? '',
        /* 16 */ hasOpenRecording(record) ? 'open' : recording ? 'closed' : '',
        /* 17 */ options.webhookId ?? '',
        /* 18 */ String(this.options.webhookDedupTtlMs),
        /* 19 */ lease?.token ?? '',
        /* 20 */ this.options.eventLogMaxLength === undefined ? '' : String(this.options.eventLogMaxLength),
        /* 21 */ String(this.now()),
        /* 22 */ context.roomSid ?? '',
        ...events.map((event) => JSON.stringify(event)),
        ...deliveries.flatMap((delivery) => [delivery.eventId, JSON.stringify(delivery)]),
      ];
      const result = (await this.run(
        COMMIT,
        [this.callKey(record.id), this.eventsKey(record.id), deliveriesKey(this.connection, record.id), this.lockKey(record.id)],
        args,
      ).catch(async (err: unknown) => {
        await outbox?.unmark(pending);
        throw err;
      })) as [number, number | string, number?];
      if (result[0] !== 1) {
        await outbox?.unmark(pending);
        const stored = Number(result[1]);
        throw new VersionConflictError(record.id, stored + 1, record.version);
      }
      if (lease && result[2] === 1) lease.released = true;
      try {
        // Again now that they are recorded: a sender that took the call in between did not see them.
        await outbox?.mark(record.id, 0, now);
        await this.collectExpired();
      } catch (err) {
        this.options.onAfterCommitError?.(err, record.id);
      }
    });
  }

  async findLiveByRoom(room: RoomRef): Promise<string | undefined> {
    return (await this.lookupWebhook(null, room)).call?.id;
  }

  async lookupWebhook(eventId: string | null, room: RoomRef | null): Promise<WebhookLookup> {
    return this.guard('lookupWebhook', async () => {
      const args = [this.connection.keyPrefix, eventId ?? '', room?.sid ?? '', room?.name ?? '', FINAL_STATES.join(',')];
      const [status, , json] = (await this.run(WEBHOOK_LOOKUP, [], args)) as [number, string?, string?];
      if (status === 1) return { seen: true };
      if (status === 2 && room) return { seen: false, call: await this.liveInRoomFromRecords(room) };
      return { seen: false, call: json ? (JSON.parse(json) as CallRecord) : undefined };
    });
  }

  /** findLiveByRoom for calls whose hash does not name their room: from their records. */
  private async liveInRoomFromRecords(room: RoomRef): Promise<CallRecord | undefined> {
    if (room.sid) {
      const id = await this.redis.get(this.key(`room:sid:${room.sid}`));
      const record = id ? await this.load(id) : undefined;
      if (record && !isFinalState(record.state) && record.context.roomSid === room.sid) return record;
    }
    const id = await this.redis.get(this.key(`room:name:${room.name}`));
    const record = id ? await this.load(id) : undefined;
    if (!record || isFinalState(record.state) || record.context.roomName !== room.name) return undefined;
    const sid = record.context.roomSid;
    return !sid || !room.sid || sid === room.sid ? record : undefined;
  }

  async findLiveBySipIdentity(identity: string): Promise<string | undefined> {
    return this.guard('findLiveBySipIdentity', async () => {
      const id = await this.redis.get(this.key(`sip:${identity}`));
      if (!id) return undefined;
      const record = await this.load(id);
      return record && !isFinalState(record.state) && record.context.sipIdentity === identity ? id : undefined;
    });
  }

  async list(query: ListQuery): Promise<ListPage> {
    const before = query.cursor === undefined ? null : decodeCursor(query.cursor);
    return this.guard('list', async () => {
      const index = await this.narrowestIndex(query);
      const records: CallRecord[] = [];
      let lastOrdinal: number | null = null;
      let more = false;
      let max = before === null ? '+inf' : `(${before}`;
      const batch = Math.min(Math.max(query.limit + 1, 16), 500);
      scan: for (;;) {
        const page = await this.redis.zrevrangebyscore(index, max, '-inf', 'WITHSCORES', 'LIMIT', 0, batch);
        if (page.length === 0) break;
        const ids: string[] = [];
        const ordinals: number[] = [];
        for (let i = 0; i + 1 < page.length; i += 2) {
          ids.push(page[i] as string);
          ordinals.push(Number(page[i + 1]));
        }
        const loaded = await Promise.all(ids.map((id) => this.load(id)));
        const missing: string[] = [];
        for (let i = 0; i < ids.length; i++) {
          const record = loaded[i];
          const ordinal = ordinals[i] as number;
          max = `(${ordinal}`;
          if (!record) {
            missing.push(ids[i] as string);
            continue;
          }
          if (query.state && record.state !== query.state) continue;
          if (query.direction && record.context.direction !== query.direction) continue;
          if (query.room !== undefined && record.context.roomName !== query.room) continue;
          if (records.length === query.limit) {
            more = true;
            break;
          }
          records.push(record);
          lastOrdinal = ordinal;
        }
        // Expired calls: their record is gone for good, so the index entry can go too.
        if (missing.length > 0) await this.redis.zrem(index, ...missing);
        if (more || ids.length < batch) break scan;
      }
      return { records, nextCursor: more && lastOrdinal !== null ? encodeCursor(lastOrdinal) : null };
    });
  }

  async events(id: string): Promise<ObsEnvelope[] | undefined> {
    return this.guard('events', async () => {
      const raw = (await this.run(EVENTS, [this.callKey(id), this.eventsKey(id)], [])) as string[] | null;
      return raw ? raw.map((json) => JSON.parse(json) as ObsEnvelope) : undefined;
    });
  }

  async rememberWebhook(eventId: string): Promise<void> {
    return this.guard('rememberWebhook', async () => {
      await this.redis.set(this.key(`webhook:${eventId}`), '1', 'PX', this.options.webhookDedupTtlMs, 'NX');
    });
  }

  async claimIdempotencyKey(key: string, request: IdempotencyRequest): Promise<IdempotencyClaim> {
    return this.guard('claimIdempotencyKey', async () => {
      const args = [request.fingerprint, request.sessionId, String(Math.max(1, Math.ceil(request.leaseMs))), String(Math.max(1, Math.ceil(request.ttlMs)))];
      const [status, value] = (await this.run(CLAIM_IDEMPOTENCY, [this.key(`idem:${key}`)], args)) as [string, string];
      if (status === 'claimed') return { status: 'claimed', sessionId: value };
      if (status === 'in_flight') return { status: 'in_flight', fingerprint: value };
      const stored = JSON.parse(value) as { fingerprint: string; response: StoredResponse };
      return { status: 'done', fingerprint: stored.fingerprint, response: stored.response };
    });
  }

  async completeIdempotencyKey(key: string, response: StoredResponse): Promise<void> {
    return this.guard('completeIdempotencyKey', async () => {
      await this.run(COMPLETE_IDEMPOTENCY, [this.key(`idem:${key}`)], [JSON.stringify(response)]);
    });
  }

  async releaseIdempotencyKey(key: string): Promise<void> {
    return this.guard('releaseIdempotencyKey', async () => {
      await this.redis.del(this.key(`idem:${key}`));
    });
  }

  async withCallLock<T>(id: string, task: (lease: CallLease) => Promise<T>): Promise<T> {
    const lock = this.lockKey(id);
    const token = randomUUID();
    const ttl = String(this.lockTtlMs);
    const record = await this.guard('withCallLock', async () => {
      const giveUpAt = Date.now() + this.lockWaitMs;
      for (;;) {
        const [held, json] = (await this.run(LOCK, [lock, this.callKey(id)], [token, ttl])) as [number, string?];
        if (held === 1) return json ? (JSON.parse(json) as CallRecord) : undefined;
        if (Date.now() >= giveUpAt) {
          throw new StoreUnavailableError(`call ${id} is held by another writer for more than ${this.lockWaitMs} ms`);
        }
        await sleep(5 + Math.random() * 20);
      }
    });
    const lease = new RedisCallLease(lock, token, record);
    // Keep the lease while the task runs longer than a third of it.
    let held = true;
    const renew = setInterval(
      () => {
        if (!held || lease.released) return;
        this.run(EXTEND, [lock], [token, ttl]).then(
          (extended) => {
            if (extended !== 1) held = false; // lost: another writer may have it now
          },
          () => undefined, // Redis is down: try again on the next tick
        );
      },
      Math.max(10, Math.floor(this.lockTtlMs / 3)),
    );
    renew.unref();
    try {
      return await task(lease);
    } finally {
      clearInterval(renew);
      // Ended by the task's commit, as a rule; the lease runs out by itself if Redis cannot be told now.
      if (!lease.released) await this.run(DELETE_IF, [lock], [token]).catch(() => undefined);
    }
  }

  async claimDueTimers(now: number, limit: number, leaseMs: number): Promise<string[]> {
    return this.guard('claimDueTimers', async () => {
      if (limit <= 0) return [];
      return (await this.run(CLAIM_DUE, [this.key('timers')], [String(now), String(limit), String(now + leaseMs)])) as string[];
    });
  }

  async findByEgress(egressId: string): Promise<string | undefined> {
    return this.guard('findByEgress', async () => (await this.redis.get(this.key(`egress:${egressId}`))) ?? undefined);
  }

  async openRecordingIds(limit: number): Promise<string[]> {
    return this.guard('openRecordingIds', async () => {
      const index = this.key('recordings:open');
      const members = await this.redis.zrange(index, 0, limit - 1);
      const records = await Promise.all(members.map((id) => this.load(id)));
      // A call whose record expired, or whose recording ended since, leaves the index.
      const stale = members.filter((_, i) => !records[i] || !hasOpenRecording(records[i] as CallRecord));
      if (stale.length > 0) await this.redis.zrem(index, ...stale);
      return members.filter((id) => !stale.includes(id));
    });
  }

  async liveCallIds(limit: number): Promise<string[]> {
    return this.guard('liveCallIds', async () => {
      const index = this.key('calls:live');
      const ids: string[] = [];
      let min = '-inf';
      const batch = Math.min(Math.max(limit, 16), 500);
      while (ids.length < limit) {
        const page = await this.redis.zrangebyscore(index, min, '+inf', 'WITHSCORES', 'LIMIT', 0, batch);
        if (page.length === 0) break;
        const members: string[] = [];
        for (let i = 0; i + 1 < page.length; i += 2) {
          members.push(page[i] as string);
          min = `(${page[i + 1] as string}`;
        }
        const states = await Promise.all(members.map((id) => this.redis.hget(this.callKey(id), 'state')));
        const stale: string[] = [];
        for (let i = 0; i < members.length && ids.length < limit; i++) {
          const state = states[i] as CallState | null;
          // A missing or final call never becomes live again: drop the stale entry.
          if (!state || isFinalState(state)) stale.push(members[i] as string);
          else ids.push(members[i] as string);
        }
        if (stale.length > 0) await this.redis.zrem(index, ...stale);
        if (members.length < batch) break;
      }
      return ids;
    });
  }

  async ping(): Promise<void> {
    return this.guard('ping', async () => {
      await this.redis.ping();
    });
  }

  /** Closes the backend's connection: the store is the last of its users to stop. */
  async close(): Promise<void> {
    await this.connection.close();
  }

  // ---- internals ----

  private guard<T>(operation: string, body: () => Promise<T>): Promise<T> {
    return this.connection.guard(operation, body);
  }

  private run(script: LuaScript, keys: string[], args: string[]): Promise<unknown> {
    return this.connection.run(script, keys, args);
  }

  private async load(id: string): Promise<CallRecord | undefined> {
    const json = await this.redis.hget(this.callKey(id), 'record');
    return json ? (JSON.parse(json) as CallRecord) : undefined;
  }

  private async narrowestIndex(query: ListQuery): Promise<string> {
    // A room holds one call, or a few over time: its own index is always the narrowest.
    if (query.room !== undefined) return this.roomKey(query.room);
    if (query.state && query.direction) {
      const [byState, byDirection] = await Promise.all([
        this.redis.zcard(this.stateKey(query.state)),
        this.redis.zcard(this.directionKey(query.direction)),
      ]);
      return byState <= byDirection ? this.stateKey(query.state) : this.directionKey(query.direction);
    }
    if (query.state) return this.stateKey(query.state);
    if (query.direction) return this.directionKey(query.direction);
    return this.key('calls:all');
  }

  /** Removes the index entries of final calls whose record has expired (bounded work per run). */
  private async collectExpired(): Promise<void> {
    const now = this.now();
    if (now - this.lastGc < GC_INTERVAL_MS) return;
    this.lastGc = now;
    const expiry = this.key('calls:expiry');
    const due = await this.redis.zrangebyscore(expiry, '-inf', now, 'LIMIT', 0, GC_BATCH);
    if (due.length === 0) return;
    const exists = await Promise.all(due.map((id) => this.redis.exists(this.callKey(id))));
    const gone = due.filter((_, i) => exists[i] === 0);
    const ops: Promise<unknown>[] = [];
    // Clocks differ: a record the server still holds is looked at again a little later.
    for (const [i, id] of due.entries()) if (exists[i] !== 0) ops.push(this.redis.zadd(expiry, now + GC_INTERVAL_MS, id));
    if (gone.length > 0) {
      const indexes = [
        this.key('calls:all'),
        this.key('calls:live'),
        this.key('timers'),
        this.key('recordings:open'),
        ...CALL_STATES.map((state) => this.stateKey(state)),
        ...DIRECTIONS.map((direction) => this.directionKey(direction)),
        expiry,
      ];
      for (const index of indexes) ops.push(this.redis.zrem(index, ...gone));
    }
    await Promise.all(ops);
  }
}
