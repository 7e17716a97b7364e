// The status-callback outbox shared by replicas (see outbox.port.ts; the in-memory outbox has the
// same semantics). Keys (after the connection's prefix):
//
//   call:{<id>}:deliveries   hash: event id -> Delivery JSON, and `#pending`, the number of this
//                            call's pending deliveries (event ids never start with '#'). The call's
//                            hash tag: the call's COMMIT script writes it with the record. It never
//                            expires while a delivery is pending; once none is, it expires with the
//                            call record (or goes at once when the record has already expired).
//   {outbox}:due             ZSET call id -> when the call is next due (epoch ms, an integer), or,
//                            while a sender holds it, the lease end + 0.5: a lease score always
//                            ends in .5, and in .75 once new work arrived during the lease (dirty).
//   {outbox}:pending         counter of pending deliveries over every call (the gauge)
//
// The two global keys share the `{outbox}` hash tag; as in the call store, each script touches one
// call's keys or the global keys, never both. A commit marks the call due before its COMMIT script
// records the deliveries (a crash in between leaves a due entry with nothing pending, which the
// next claim drops) and again after it (a sender that claimed the call in between saw none of the
// new deliveries and may have dropped the entry). The lease token is the lease score itself, so a
// release recognises its own lease exactly and leaves the call alone once another sender took it
// over. The global counter moves in the global scripts, apart from each call's `#pending`: a crash
// between a call's script and the global one leaves the gauge off by what changed then.
import type { Delivery, DeliveryChange, Outbox, OutboxLease } from '../outbox.port.js';
import { CLAIM_DUE, LuaScript, type RedisConnection } from './connection.js';

// KEYS: due, pending. ARGV: call id, pending deliveries added, now, force ('1'/'0').
// New work for a call: due now when it is not in the outbox; a lease is marked dirty; a call
// waiting for a retry of an earlier delivery keeps its time unless forced (a redelivery may be of
// an earlier event), then it is due now.
const MARK = new LuaScript(`
local added = tonumber(ARGV[2])
if added ~= 0 then redis.call('INCRBY', KEYS[2], added) end
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not s then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
  return 1
end
local score = tonumber(s)
local fraction = score % 1
if fraction == 0.5 then
  redis.call('ZADD', KEYS[1], score + 0.25, ARGV[1])
elseif fraction == 0 and ARGV[4] == '1' and score > tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
end
return 1`);

// KEYS: deliveries, call record. ARGV: now, then event id / Delivery JSON / series / attempts
// quadruples. Stores each delivery that is still pending in that series with that many attempts
// (the outcome of an attempt; see DeliveryChange) and returns {pending delta, when
// the earliest pending delivery is due or ''}. With nothing pending the hash expires with the
// record, or goes when the record is gone.
const SETTLE = new LuaScript(`
local delta = 0
for i = 2, #ARGV, 4 do
  local stored = redis.call('HGET', KEYS[1], ARGV[i])
  if stored then
    stored = cjson.decode(stored)
    if stored['status'] == 'pending' and stored['series'] == tonumber(ARGV[i + 2]) and stored['attempts'] == tonumber(ARGV[i + 3]) then
      redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
      if cjson.decode(ARGV[i + 1])['status'] ~= 'pending' then delta = delta - 1 end
    end
  end
end
local pending
if delta ~= 0 then
  pending = redis.call('HINCRBY', KEYS[1], '#pending', delta)
else
  pending = tonumber(redis.call('HGET', KEYS[1], '#pending') or '0')
end
if pending <= 0 then
  local ttl = redis.call('PTTL', KEYS[2])
  if ttl == -2 then
    redis.call('DEL', KEYS[1])
  elseif ttl > 0 then
    redis.call('PEXPIRE', KEYS[1], ttl)
  end
  return {delta, ''}
end
if delta > 0 then redis.call('PERSIST', KEYS[1]) end
local head_seq, next_at = nil, nil
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if string.sub(all[i], 1, 1) ~= '#' then
    local delivery = cjson.decode(all[i + 1])
    if delivery['status'] == 'pending' and (head_seq == nil or delivery['seq'] < head_seq) then
      head_seq = delivery['seq']
      next_at = delivery['nextAttemptAt']
    end
  end
end
if head_seq == nil then return {delta, ''} end
if type(next_at) ~= 'number' then next_at = tonumber(ARGV[1]) end
return {delta, string.format('%.0f', math.ceil(next_at))}`);

// KEYS: due, pending. ARGV: call id, lease token, pending delta, next due ('' for none), now.
// Gives a lease back: the call comes due at `next due` or leaves the outbox; due now when work
// arrived during the lease; untouched when another sender holds it now.
const RELEASE = new LuaScript(`
local delta = tonumber(ARGV[3])
if delta ~= 0 then redis.call('INCRBY', KEYS[2], delta) end
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
local token = tonumber(ARGV[2])
if not s or not token then return 0 end
local score = tonumber(s)
if score == token then
  if ARGV[4] == '' then redis.call('ZREM', KEYS[1], ARGV[1]) else redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1]) end
  return 1
elseif score == token + 0.25 then
  redis.call('ZADD', KEYS[1], ARGV[5], ARGV[1])
  return 1
end
return 0`);

// KEYS: deliveries. ARGV: event id, now. Starts a new series of attempts of one delivery; returns
// {pending delta, the renewed Delivery JSON}, or nil when the call has no such delivery.
const REDELIVER = new LuaScript(`
local json = redis.call('HGET', KEYS[1], ARGV[1])
if not json then return false end
local delivery = cjson.decode(json)
local delta = 0
if delivery['status'] ~= 'pending' then
  delta = 1
  redis.call('HINCRBY', KEYS[1], '#pending', 1)
end
delivery['status'] = 'pending'
delivery['attempts'] = 0
delivery['series'] = delivery['series'] + 1
delivery['nextAttemptAt'] = tonumber(ARGV[2])
delivery['deliveredAt'] = cjson.null
local renewed = cjson.encode(delivery)
redis.call('HSET', KEYS[1], ARGV[1], renewed)
redis.call('PERSIST', KEYS[1])
return {delta, renewed}`);

/** The hash field counting a call's pending deliveries (event ids never start with '#'). */
const PENDING_FIELD = '#pending';

/** The key of a call's deliveries (the call's hash tag: its COMMIT script writes it). */
export function deliveriesKey(connection: RedisConnection, sessionId: string): string {
  return connection.key(`call:{${sessionId}}:deliveries`);
}

/** Due times are whole epoch ms, so that a lease score (.5) and a dirty one (.75) stand apart. */
const wholeMs = (ms: number): number => Math.floor(ms);

export class RedisOutbox implements Outbox {
  private readonly due: string;
  private readonly pending: string;

  constructor(private readonly connection: RedisConnection) {
    this.due = connection.key('{outbox}:due');
    this.pending = connection.key('{outbox}:pending');
  }

  /**
   * New deliveries for a call (`pending` of them pending), run by the store before and after the
   * commit that records them: due now unless it waits for a retry, dirty while leased.
   */
  async mark(sessionId: string, pending: number, now: number): Promise<void> {
    await this.connection.run(MARK, [this.due, this.pending], [sessionId, pending, wholeMs(now), '0']);
  }

  /** Takes back the count of a mark whose commit failed (best effort: the counter is a gauge). */
  async unmark(pending: number): Promise<void> {
    if (pending === 0) return;
    await this.connection.client.decrby(this.pending, pending).catch(() => undefined);
  }

  async claim(now: number, limit: number, leaseMs: number): Promise<OutboxLease[]> {
    return this.guard('claim', async () => {
      if (limit <= 0) return [];
      const token = String(wholeMs(now) + Math.max(1, Math.ceil(leaseMs)) + 0.5);
      const ids = (await this.connection.run(CLAIM_DUE, [this.due], [now, limit, token])) as string[];
      return ids.map((sessionId) => ({ sessionId, token }));
    });
  }

  async deliveries(sessionId: string): Promise<Delivery[]> {
    return this.guard('deliveries', async (redis) => {
      const fields = await redis.hgetall(deliveriesKey(this.connection, sessionId));
      const deliveries: Delivery[] = [];
      for (const [field, json] of Object.entries(fields)) if (field !== PENDING_FIELD) deliveries.push(JSON.parse(json) as Delivery);
      return deliveries.sort((a, b) => a.seq - b.seq);
    });
  }

  async release(lease: OutboxLease, changes: readonly DeliveryChange[], now: number): Promise<void> {
    return this.guard('release', async () => {
      const { sessionId } = lease;
      const callKeys = [deliveriesKey(this.connection, sessionId), this.connection.key(`call:{${sessionId}}`)];
      const args: (string | number)[] = [wholeMs(now)];
      for (const { before, after } of changes) args.push(after.eventId, JSON.stringify(after), before.series, before.attempts);
      const [delta, next] = (await this.connection.run(SETTLE, callKeys, args)) as [number, string];
      await this.connection.run(RELEASE, [this.due, this.pending], [sessionId, lease.token, delta, next, wholeMs(now)]);
    });
  }

  async redeliver(sessionId: string, eventId: string, now: number): Promise<Delivery | undefined> {
    return this.guard('redeliver', async () => {
      const result = (await this.connection.run(REDELIVER, [deliveriesKey(this.connection, sessionId)], [eventId, wholeMs(now)])) as
        | [number, string]
        | null;
      if (!result) return undefined;
      const [delta, json] = result;
      await this.connection.run(MARK, [this.due, this.pending], [sessionId, delta, wholeMs(now), '1']);
      return JSON.parse(json) as Delivery;
    });
  }

  async pendingCount(): Promise<number> {
    return this.guard('pendingCount', async (redis) => Math.max(0, Number((await redis.get(this.pending)) ?? 0)));
  }

  /** Redis has no cap on pending deliveries: nothing is ever dropped. */
  onDropped(_listener: (count: number) => void): void {}

  private guard<T>(operation: string, body: (redis: RedisConnection['client']) => Promise<T>): Promise<T> {
    return this.connection.guard(`outbox ${operation}`, body);
  }
}
