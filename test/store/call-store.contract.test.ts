// The CallStore contract (src/store/call-store.port.ts), run against the embedded store and the Redis
// store alike, plus what only Redis has: replicas sharing one store, and outages.
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CallContext, CallState, Direction } from '../../machines/call.types.js';
import { MemoryCallStore } from '../../src/store/memory/call.store.js';
import { RedisCallStore, type RedisStoreOptions } from '../../src/store/redis/call.store.js';
import { RedisConnection } from '../../src/store/redis/connection.js';
import { type CallRecord, type CallStore, type StoredResponse } from '../../src/store/call-store.port.js';
import { InvalidCursorError, StoreUnavailableError, VersionConflictError } from '../../src/store/errors.js';
import type { ObsEnvelope } from '../../src/obs/envelope.js';
import { freePort, startRedisOnPort, useRedis, type RedisHandle } from '../../dev/redis-server.js';

const NO_DEADLINES = { ring: null, maxDuration: null, retry: null, endingGrace: null, agentGrace: null };

type ContextPart = Partial<Pick<CallContext, 'roomName' | 'roomSid' | 'sipIdentity' | 'direction'>> & {
  deadlines?: Partial<CallContext['deadlines']>;
};

function record(id: string, state: CallState, version = 1, context: ContextPart = {}): CallRecord {
  return {
    machine: 'call-v1',
    id,
    state,
    version,
    lastSeq: version * 2,
    webhookIds: [`EV_${id}_${version}`],
    snapshot: { status: 'active', value: state, context: { nested: [1, { deep: true }] } } as never,
    context: {
      roomName: context.roomName ?? `room-${id}`,
      roomSid: context.roomSid === undefined ? `RM_${id}` : context.roomSid,
      sipIdentity: context.sipIdentity === undefined ? `sip_${id}` : context.sipIdentity,
      direction: context.direction ?? 'inbound',
      deadlines: { ...NO_DEADLINES, ...context.deadlines },
    } as never,
  };
}

function envelope(id: string, seq: number): ObsEnvelope {
  return {
    event: 'call.ringing' as never,
    event_id: `EV_${id}_${seq}`,
    ts: new Date(1_700_000_000_000 + seq).toISOString(),
    session_id: id,
    seq,
    direction: 'inbound',
    state: 'ringing',
    livekit_room: `room-${id}`,
    data: { seq, list: [], map: {} },
  };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function allPages(store: CallStore, query: { state?: CallState; direction?: Direction; limit: number }): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | undefined;
  for (let pages = 0; pages < 1000; pages++) {
    const page = await store.list({ ...query, cursor });
    ids.push(...page.records.map((r) => r.id));
    if (page.nextCursor === null) return ids;
    cursor = page.nextCursor;
  }
  throw new Error('list did not end');
}

interface StoreOptions {
  retentionMs?: number;
  maxEventsPerCall?: number;
  webhookDedupTtlMs?: number;
}

let redis: RedisHandle | null = null;
const opened: CallStore[] = [];

beforeAll(async () => {
  redis = await useRedis();
});

afterAll(async () => {
  await redis?.stop();
});

afterEach(async () => {
  await Promise.all(opened.splice(0).map((store) => store.close()));
});

function openRedis(prefix: string, options: StoreOptions & Partial<RedisStoreOptions> = {}): RedisCallStore {
  if (!redis) throw new Error('no redis');
  const connection = new RedisConnection({ url: redis.url, keyPrefix: prefix });
  const store = new RedisCallStore({
    connection,
    retentionMs: 3_600_000,
    webhookDedupTtlMs: 3_600_000,
    maxEventsPerCall: 50,
    ...options,
  });
  opened.push(store);
  connections.set(store, connection);
  return store;
}

/** The Redis client under a store: the tests below inspect and corrupt keys directly. */
const connections = new WeakMap<RedisCallStore, RedisConnection>();
function raw(store: RedisCallStore): RedisConnection['client'] {
  const connection = connections.get(store);
  if (!connection) throw new Error('not a store from openRedis');
  return connection.client;
}

describe.each(['memory', 'redis'] as const)('CallStore contract: %s', (kind) => {
  let prefix = '';
  let now = 0;

  beforeEach(() => {
    prefix = `test-${randomUUID().slice(0, 8)}:`;
    now = 1_000_000;
  });

  function open(options: StoreOptions = {}): CallStore {
    if (kind === 'redis') return openRedis(prefix, options);
    return new MemoryCallStore({
      retentionMs: options.retentionMs ?? 3_600_000,
      maxFinalCalls: 10_000,
      webhookDedupSize: 10_000,
      maxEventsPerCall: options.maxEventsPerCall ?? 50,
      now: () => now,
    });
  }

  /** Lets time pass: the memory store's clock, or real time for Redis TTLs. */
  async function advance(ms: number): Promise<void> {
    if (kind === 'memory') now += ms;
    else await sleep(ms);
  }

  it('commits with compare-and-set on the version', async () => {
    const store = open();
    await store.commit(record('a', 'ringing', 1), [envelope('a', 1)]);
    // created twice
    await expect(store.commit(record('a', 'ringing', 1), [envelope('a', 2)])).rejects.toBeInstanceOf(VersionConflictError);
    // skipping a version
    await expect(store.commit(record('a', 'connected', 3), [])).rejects.toBeInstanceOf(VersionConflictError);
    // a new call must start at 1
    await expect(store.commit(record('b', 'ringing', 2), [])).rejects.toBeInstanceOf(VersionConflictError);
    expect(await store.get('b')).toBeUndefined();
    expect((await store.get('a'))?.state).toBe('ringing');
    expect((await store.events('a'))?.map((e) => e.seq)).toEqual([1]);

    await store.commit(record('a', 'connected', 2), [envelope('a', 2)]);
    // a stale writer that read version 1
    await expect(store.commit(record('a', 'ending', 2), [])).rejects.toBeInstanceOf(VersionConflictError);
    expect(await store.get('a')).toEqual(record('a', 'connected', 2));
    expect((await store.events('a'))?.map((e) => e.seq)).toEqual([1, 2]);
  });

  it('round-trips records and events', async () => {
    const store = open();
    expect(await store.get('nope')).toBeUndefined();
    expect(await store.events('nope')).toBeUndefined();
    const a = record('a', 'dialing', 1, { direction: 'outbound', roomSid: null, sipIdentity: null, deadlines: { ring: 123 } });
    await store.commit(a, []);
    expect(await store.get('a')).toEqual(a);
    expect(await store.events('a')).toEqual([]);
    await store.commit(record('a', 'ringing', 2), [envelope('a', 1), envelope('a', 2)]);
    expect(await store.events('a')).toEqual([envelope('a', 1), envelope('a', 2)]);
    expect((await store.get('a'))?.lastSeq).toBe(4);
  });

  it('appends events in order and keeps the first maxEventsPerCall', async () => {
    const store = open({ maxEventsPerCall: 5 });
    await store.commit(record('a', 'ringing', 1), [1, 2, 3].map((seq) => envelope('a', seq)));
    await store.commit(record('a', 'connected', 2), [4, 5, 6, 7].map((seq) => envelope('a', seq)));
    await store.commit(record('a', 'ended', 3), [envelope('a', 8)]);
    expect((await store.events('a'))?.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
  });

  it('lists newest first, filtered by state and direction', async () => {
    const store = open();
    await store.commit(record('c1', 'ringing', 1, { direction: 'inbound' }), []);
    await store.commit(record('c2', 'dialing', 1, { direction: 'outbound' }), []);
    await store.commit(record('c3', 'ringing', 1, { direction: 'outbound' }), []);
    await store.commit(record('c4', 'connected', 1, { direction: 'inbound' }), []);
    await store.commit(record('c2', 'ringing', 2, { direction: 'outbound' }), []);
    await store.commit(record('c4', 'ended', 2, { direction: 'inbound' }), []);

    expect(await allPages(store, { limit: 10 })).toEqual(['c4', 'c3', 'c2', 'c1']);
    expect(await allPages(store, { limit: 1 })).toEqual(['c4', 'c3', 'c2', 'c1']);
    expect(await allPages(store, { state: 'ringing', limit: 2 })).toEqual(['c3', 'c2', 'c1']);
    expect(await allPages(store, { state: 'dialing', limit: 2 })).toEqual([]);
    expect(await allPages(store, { state: 'ended', limit: 2 })).toEqual(['c4']);
    expect(await allPages(store, { direction: 'outbound', limit: 1 })).toEqual(['c3', 'c2']);
    expect(await allPages(store, { state: 'ringing', direction: 'inbound', limit: 5 })).toEqual(['c1']);
    const page = await store.list({ limit: 2 });
    expect(page.records).toEqual([record('c4', 'ended', 2), record('c3', 'ringing', 1, { direction: 'outbound' })]);
    // exactly `limit` matches left: no further page
    expect((await store.list({ state: 'ringing', limit: 3 })).nextCursor).toBeNull();
  });

  it('keeps a cursor stable while new calls are committed', async () => {
    const store = open();
    for (let i = 1; i <= 5; i++) await store.commit(record(`c${i}`, 'ringing'), []);
    const first = await store.list({ limit: 2 });
    expect(first.records.map((r) => r.id)).toEqual(['c5', 'c4']);
    await store.commit(record('c6', 'ringing'), []);
    await store.commit(record('c7', 'ringing'), []);
    await store.commit(record('c3', 'connected', 2), []);
    const second = await store.list({ limit: 2, cursor: first.nextCursor as string });
    expect(second.records.map((r) => r.id)).toEqual(['c3', 'c2']);
    expect(second.records[0]?.state).toBe('connected');
    const third = await store.list({ limit: 2, cursor: second.nextCursor as string });
    expect(third.records.map((r) => r.id)).toEqual(['c1']);
    expect(third.nextCursor).toBeNull();
    expect((await store.list({ limit: 2 })).records.map((r) => r.id)).toEqual(['c7', 'c6']);
  });

  it('rejects cursors it did not issue', async () => {
    const store = open();
    await store.commit(record('a', 'ringing'), []);
    await expect(store.list({ limit: 1, cursor: 'garbage!' })).rejects.toBeInstanceOf(InvalidCursorError);
    await expect(store.list({ limit: 1, cursor: Buffer.from('o:abc').toString('base64url') })).rejects.toBeInstanceOf(InvalidCursorError);
    await expect(store.list({ limit: 1, cursor: '' })).rejects.toBeInstanceOf(InvalidCursorError);
  });

  it('finds live calls by room sid, room name and SIP identity', async () => {
    const store = open();
    await store.commit(record('a', 'ringing', 1, { roomName: 'room-1', roomSid: 'RM_1', sipIdentity: 'sip-1' }), []);
    expect(await store.findLiveByRoom({ sid: 'RM_1', name: 'room-1' })).toBe('a');
    expect(await store.findLiveByRoom({ sid: null, name: 'room-1' })).toBe('a');
    expect(await store.findLiveByRoom({ sid: 'RM_1', name: 'another-name' })).toBe('a');
    // the name is reused by another room: not this call
    expect(await store.findLiveByRoom({ sid: 'RM_other', name: 'room-1' })).toBeUndefined();
    expect(await store.findLiveByRoom({ sid: null, name: 'room-unknown' })).toBeUndefined();
    expect(await store.findLiveBySipIdentity('sip-1')).toBe('a');
    expect(await store.findLiveBySipIdentity('sip-unknown')).toBeUndefined();

    // a call that has not seen its room's sid yet matches by name whatever the sid
    await store.commit(record('b', 'dialing', 1, { roomName: 'room-2', roomSid: null, sipIdentity: null, direction: 'outbound' }), []);
    expect(await store.findLiveByRoom({ sid: 'RM_2', name: 'room-2' })).toBe('b');
    await store.commit(record('b', 'ringing', 2, { roomName: 'room-2', roomSid: 'RM_2', sipIdentity: 'sip-2', direction: 'outbound' }), []);
    expect(await store.findLiveByRoom({ sid: 'RM_2', name: 'x' })).toBe('b');
    expect(await store.findLiveBySipIdentity('sip-2')).toBe('b');

    // the SIP identity changes (a new dial attempt): the old one no longer finds the call
    await store.commit(record('a', 'connected', 2, { roomName: 'room-1', roomSid: 'RM_1', sipIdentity: 'sip-1b' }), []);
    expect(await store.findLiveBySipIdentity('sip-1')).toBeUndefined();
    expect(await store.findLiveBySipIdentity('sip-1b')).toBe('a');

    // final: nothing finds it any more
    await store.commit(record('a', 'ended', 3, { roomName: 'room-1', roomSid: 'RM_1', sipIdentity: 'sip-1b' }), []);
    expect(await store.findLiveByRoom({ sid: 'RM_1', name: 'room-1' })).toBeUndefined();
    expect(await store.findLiveByRoom({ sid: null, name: 'room-1' })).toBeUndefined();
    expect(await store.findLiveBySipIdentity('sip-1b')).toBeUndefined();
    expect(await store.get('a')).toBeDefined();

    // the room name comes back with a new room
    await store.commit(record('c', 'ringing', 1, { roomName: 'room-1', roomSid: 'RM_3', sipIdentity: 'sip-3' }), []);
    expect(await store.findLiveByRoom({ sid: 'RM_3', name: 'room-1' })).toBe('c');
    expect(await store.findLiveByRoom({ sid: 'RM_1', name: 'room-1' })).toBeUndefined();
    expect(await store.findLiveByRoom({ sid: 'RM_2', name: 'room-2' })).toBe('b');
    await store.commit(record('b', 'failed', 3, { roomName: 'room-2', roomSid: 'RM_2', sipIdentity: 'sip-2', direction: 'outbound' }), []);
    expect(await store.findLiveByRoom({ sid: 'RM_2', name: 'room-2' })).toBeUndefined();
    expect(await store.findLiveBySipIdentity('sip-2')).toBeUndefined();
  });

  it('remembers webhook ids', async () => {
    const store = open();
    expect(await store.seenWebhook('EV_1')).toBe(false);
    await store.rememberWebhook('EV_1');
    await store.rememberWebhook('EV_1');
    expect(await store.seenWebhook('EV_1')).toBe(true);
    expect(await store.seenWebhook('EV_2')).toBe(false);
  });

  const claim = (store: CallStore, key: string, fingerprint: string, sessionId = `s-${fingerprint}`, leaseMs = 60_000, ttlMs = 60_000) =>
    store.claimIdempotencyKey(key, { fingerprint, sessionId, leaseMs, ttlMs });

  it('claims, completes and releases idempotency keys', async () => {
    const store = open();
    const response: StoredResponse = {
      status: 201,
      headers: { 'content-type': 'application/json', location: '/v1/calls/c_1' },
      body: { id: 'c_1', tags: [], metadata: {}, text: 'quote " and \\ and ü', n: 1.5 },
    };
    expect(await claim(store, 'k1', 'fp-1')).toEqual({ status: 'claimed', sessionId: 's-fp-1' });
    expect(await claim(store, 'k1', 'fp-2')).toEqual({ status: 'in_flight', fingerprint: 'fp-1' });
    await store.completeIdempotencyKey('k1', response);
    expect(await claim(store, 'k1', 'fp-1')).toEqual({ status: 'done', fingerprint: 'fp-1', response });
    expect(await claim(store, 'k1', 'fp-3')).toEqual({ status: 'done', fingerprint: 'fp-1', response });

    expect(await claim(store, 'k2', 'fp-a')).toEqual({ status: 'claimed', sessionId: 's-fp-a' });
    await store.releaseIdempotencyKey('k2');
    expect(await claim(store, 'k2', 'fp-b')).toEqual({ status: 'claimed', sessionId: 's-fp-b' });
    expect(await claim(store, 'k2', 'fp-c')).toEqual({ status: 'in_flight', fingerprint: 'fp-b' });

    // completing a key nobody holds does not create it
    await store.completeIdempotencyKey('k3', response);
    expect(await claim(store, 'k3', 'fp-x')).toEqual({ status: 'claimed', sessionId: 's-fp-x' });
  });

  it('lets a retry take over a claim whose lease ran out, with the session id the first claim chose', async () => {
    const store = open();
    expect(await claim(store, 'k1', 'fp-1', 'first-session', 150)).toEqual({ status: 'claimed', sessionId: 'first-session' });
    expect(await claim(store, 'k1', 'fp-1', 'second-session', 150)).toEqual({ status: 'in_flight', fingerprint: 'fp-1' });
    await advance(400);
    // another body may not take it over
    expect(await claim(store, 'k1', 'fp-2', 'third-session', 150)).toEqual({ status: 'in_flight', fingerprint: 'fp-1' });
    expect(await claim(store, 'k1', 'fp-1', 'second-session', 150)).toEqual({ status: 'claimed', sessionId: 'first-session' });
    expect(await claim(store, 'k1', 'fp-1', 'third-session', 150)).toEqual({ status: 'in_flight', fingerprint: 'fp-1' });
  });

  it('forgets idempotency keys after their TTL', async () => {
    const store = open();
    expect(await claim(store, 'k1', 'fp-1', 's1', 150, 150)).toEqual({ status: 'claimed', sessionId: 's1' });
    expect(await claim(store, 'k2', 'fp-1', 's2', 150, 150)).toEqual({ status: 'claimed', sessionId: 's2' });
    await store.completeIdempotencyKey('k2', { status: 200, headers: {}, body: null });
    await advance(400);
    expect(await claim(store, 'k1', 'fp-2', 's3', 150, 150)).toEqual({ status: 'claimed', sessionId: 's3' });
    expect(await claim(store, 'k2', 'fp-2', 's4', 150, 150)).toEqual({ status: 'claimed', sessionId: 's4' });
  });

  it('hands out due timers with a lease, and follows commits', async () => {
    const store = open();
    await store.commit(record('t1', 'ringing', 1, { deadlines: { ring: 1000, maxDuration: 9000 } }), []);
    await store.commit(record('t2', 'ringing', 1, { deadlines: { ring: 5000 } }), []);
    await store.commit(record('t3', 'connected', 1), []);
    expect(await store.claimDueTimers(999, 10, 500)).toEqual([]);
    expect(await store.claimDueTimers(1000, 10, 500)).toEqual(['t1']);
    // leased until 1500: another replica does not get it
    expect(await store.claimDueTimers(1200, 10, 500)).toEqual([]);
    expect(await store.claimDueTimers(1500, 10, 500)).toEqual(['t1']);

    // a commit that clears the deadlines removes the timer
    await store.commit(record('t1', 'connected', 2, { deadlines: { ring: null } }), []);
    expect(await store.claimDueTimers(6000, 10, 500)).toEqual(['t2']);
    // a commit that arms a deadline brings it back, whatever lease was running
    await store.commit(record('t1', 'connected', 3, { deadlines: { agentGrace: 7000 } }), []);
    await store.commit(record('t2', 'ringing', 2, { deadlines: { ring: 6200 } }), []);
    expect(await store.claimDueTimers(6100, 10, 500)).toEqual([]);
    expect((await store.claimDueTimers(8000, 10, 500)).sort()).toEqual(['t1', 't2']);
    // limit
    expect((await store.claimDueTimers(20_000, 1, 500)).length).toBe(1);
    expect((await store.claimDueTimers(20_000, 0, 500)).length).toBe(0);
    // a final call has no timer
    await store.commit(record('t1', 'ended', 4), []);
    await store.commit(record('t2', 'failed', 3), []);
    expect(await store.claimDueTimers(100_000, 10, 500)).toEqual([]);
  });

  it('lists live call ids oldest first', async () => {
    const store = open();
    await store.commit(record('a', 'ringing'), []);
    await store.commit(record('b', 'ended'), []);
    await store.commit(record('c', 'queued'), []);
    await store.commit(record('d', 'connected'), []);
    expect(await store.liveCallIds(10)).toEqual(['a', 'c', 'd']);
    expect(await store.liveCallIds(2)).toEqual(['a', 'c']);
    await store.commit(record('a', 'failed', 2), []);
    await store.commit(record('c', 'connected', 2), []);
    expect(await store.liveCallIds(10)).toEqual(['c', 'd']);
  });

  it('drops a final call and its events after the retention period, and keeps live calls', async () => {
    const store = open({ retentionMs: 200 });
    await store.commit(record('f', 'ringing', 1), [envelope('f', 1)]);
    await store.commit(record('f', 'ended', 2), [envelope('f', 2)]);
    await store.commit(record('live', 'connected', 1), [envelope('live', 1)]);
    expect(await store.get('f')).toBeDefined();
    expect(await store.events('f')).toHaveLength(2);
    await advance(400);
    // the embedded store prunes on commit
    await store.commit(record('other', 'ringing', 1), []);
    expect(await store.get('f')).toBeUndefined();
    expect(await store.events('f')).toBeUndefined();
    expect(await allPages(store, { limit: 10 })).toEqual(['other', 'live']);
    expect(await allPages(store, { state: 'ended', limit: 10 })).toEqual([]);
    expect(await store.get('live')).toBeDefined();
    expect(await store.events('live')).toHaveLength(1);
  });

  it('runs tasks under the call lock, and does not serialize different calls', async () => {
    const store = open();
    expect(await store.withCallLock('a', async () => 42)).toBe(42);
    const boom = new Error('boom');
    await expect(store.withCallLock('a', async () => Promise.reject(boom))).rejects.toBe(boom);
    // the task of `x` waits for the task of `y`: this deadlocks if the two are serialized
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const x = store.withCallLock('x', async () => {
      await Promise.race([released, sleep(3000).then(() => Promise.reject(new Error('serialized')))]);
      return 'x';
    });
    const y = store.withCallLock('y', async () => {
      release();
      return 'y';
    });
    expect(await Promise.all([x, y])).toEqual(['x', 'y']);
    // a lock is free again after its task
    expect(await store.withCallLock('a', async () => 'again')).toBe('again');
  });
});

describe('RedisCallStore', () => {
  let prefix = '';

  beforeEach(() => {
    prefix = `test-${randomUUID().slice(0, 8)}:`;
  });

  it('serializes one call across replicas', async () => {
    const replicas = [openRedis(prefix), openRedis(prefix)];
    const log: string[] = [];
    const task = (name: string) => async () => {
      log.push(`${name}:in`);
      await sleep(40);
      log.push(`${name}:out`);
      return name;
    };
    const results = await Promise.all([0, 1, 2, 3].map((i) => (replicas[i % 2] as RedisCallStore).withCallLock('call', task(`t${i}`))));
    expect(results).toEqual(['t0', 't1', 't2', 't3']);
    for (let i = 0; i < log.length; i += 2) {
      expect(log[i]?.replace(':in', '')).toBe(log[i + 1]?.replace(':out', ''));
    }
    expect(log).toHaveLength(8);
  });

  it('keeps the lease of a long task, and gives up waiting after lockWaitMs', async () => {
    const first = openRedis(prefix, { lockTtlMs: 150 });
    const second = openRedis(prefix, { lockTtlMs: 150, lockWaitMs: 250 });
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    const long = first.withCallLock('call', async () => {
      started();
      await sleep(700);
      return 'long';
    });
    await running;
    const t0 = Date.now();
    await expect(second.withCallLock('call', async () => 'second')).rejects.toBeInstanceOf(StoreUnavailableError);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(240);
    expect(await long).toBe('long');
    const t1 = Date.now();
    expect(await second.withCallLock('call', async () => 'second')).toBe('second');
    expect(Date.now() - t1).toBeLessThan(200);
  });

  it('treats its indexes as hints checked against the record', async () => {
    const store = openRedis(prefix);
    await store.commit(record('a', 'ringing', 1, { roomName: 'room-a', roomSid: 'RM_a', sipIdentity: 'sip-a' }), []);
    await store.commit(record('b', 'ended', 1, { roomName: 'room-b', roomSid: 'RM_b', sipIdentity: 'sip-b' }), []);
    // stale pointers, as a crash between a commit and its index writes could leave them
    await raw(store).set(`${prefix}room:sid:RM_b`, 'b');
    await raw(store).set(`${prefix}room:name:room-b`, 'b');
    await raw(store).set(`${prefix}sip:sip-b`, 'b');
    await raw(store).set(`${prefix}sip:sip-x`, 'a');
    await raw(store).zadd(`${prefix}calls:state:connected`, 1, 'a');
    await raw(store).zadd(`${prefix}calls:live`, 2, 'b');
    await raw(store).zadd(`${prefix}calls:all`, 0, 'gone');
    expect(await store.findLiveByRoom({ sid: 'RM_b', name: 'room-b' })).toBeUndefined();
    expect(await store.findLiveBySipIdentity('sip-b')).toBeUndefined();
    expect(await store.findLiveBySipIdentity('sip-x')).toBeUndefined();
    expect(await allPages(store, { state: 'connected', limit: 5 })).toEqual([]);
    expect(await allPages(store, { limit: 5 })).toEqual(['b', 'a']);
    expect(await store.liveCallIds(10)).toEqual(['a']);
    expect(await raw(store).zscore(`${prefix}calls:all`, 'gone')).toBeNull();
    // the next commit writes them again
    await store.commit(record('a', 'connected', 2, { roomName: 'room-a', roomSid: 'RM_a', sipIdentity: 'sip-a' }), []);
    expect(await allPages(store, { state: 'connected', limit: 5 })).toEqual(['a']);
    expect(await raw(store).zscore(`${prefix}calls:state:ringing`, 'a')).toBeNull();
    expect(await store.findLiveByRoom({ sid: 'RM_a', name: 'room-a' })).toBe('a');
    // a changed identity and a final call leave no lookup keys behind
    await store.commit(record('a', 'connected', 3, { roomName: 'room-a', roomSid: 'RM_a', sipIdentity: 'sip-a2' }), []);
    expect(await raw(store).exists(`${prefix}sip:sip-a`)).toBe(0);
    expect(await raw(store).get(`${prefix}sip:sip-a2`)).toBe('a');
    await store.commit(record('a', 'ended', 4, { roomName: 'room-a', roomSid: 'RM_a', sipIdentity: 'sip-a2' }), []);
    const left = await raw(store).keys(`${prefix}*`);
    expect(left.filter((key) => /:(room|sip):/.test(key) && !key.endsWith(':RM_b') && !key.endsWith(':room-b') && !key.endsWith(':sip-b') && !key.endsWith(':sip-x'))).toEqual([]);
    expect(await raw(store).zscore(`${prefix}timers`, 'a')).toBeNull();
    expect(await raw(store).zscore(`${prefix}calls:live`, 'a')).toBeNull();
    expect(await raw(store).pttl(`${prefix}call:{a}`)).toBeGreaterThan(0);
  });

  it('keeps every key of one call in one hash slot, and expires webhook ids', async () => {
    const store = openRedis(prefix, { webhookDedupTtlMs: 150 });
    await store.commit(record('a', 'ringing', 1), [envelope('a', 1)]);
    const keys = (await raw(store).keys(`${prefix}call:*`)).sort();
    expect(keys).toEqual([`${prefix}call:{a}`, `${prefix}call:{a}:events`]);
    await store.rememberWebhook('EV_1');
    expect(await store.seenWebhook('EV_1')).toBe(true);
    await sleep(300);
    expect(await store.seenWebhook('EV_1')).toBe(false);
  });

  it('behaves like the embedded store for the same commits', async () => {
    const memory = new MemoryCallStore({ retentionMs: 3_600_000, maxFinalCalls: 10_000, webhookDedupSize: 100, maxEventsPerCall: 4 });
    const stores: CallStore[] = [memory, openRedis(prefix, { maxEventsPerCall: 4 })];
    let seed = 12345;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const pick = <T>(items: readonly T[]): T => items[random(items.length)] as T;
    const names = ['r0', 'r1', 'r2'];
    const sids = [null, 'RM_0', 'RM_1', 'RM_2', 'RM_3'];
    const identities = [null, 'sip-0', 'sip-1', 'sip-2'];
    const live: CallState[] = ['queued', 'dialing', 'ringing', 'connected', 'transferring', 'ending'];
    const calls = new Map<string, CallRecord>();
    let nextId = 0;
    let clock = 10_000;

    async function same<T>(question: (store: CallStore) => Promise<T>): Promise<T> {
      const [expected, actual] = await Promise.all(stores.map(question));
      expect(actual).toEqual(expected);
      return expected as T;
    }

    for (let step = 0; step < 60; step++) {
      const open = [...calls.values()].filter((c) => !['ended', 'failed'].includes(c.state));
      const previous = open.length > 0 && random(3) > 0 ? pick(open) : null;
      const id = previous?.id ?? `c${nextId++}`;
      const version = (previous?.version ?? 0) + 1;
      const final = previous !== null && random(4) === 0;
      const ring = random(3) === 0 ? clock + random(50) : null;
      const next = record(id, final ? pick(['ended', 'failed'] as const) : pick(live), version, {
        roomName: random(3) === 0 || !previous ? pick(names) : previous.context.roomName,
        roomSid: random(3) === 0 || !previous ? pick(sids) : previous.context.roomSid,
        sipIdentity: random(3) === 0 || !previous ? pick(identities) : previous.context.sipIdentity,
        direction: previous?.context.direction ?? pick(['inbound', 'outbound'] as const),
        deadlines: { ring: final ? null : ring },
      });
      const events = Array.from({ length: random(3) }, (_, i) => envelope(id, previous ? previous.lastSeq + i + 1 : i + 1));
      for (const store of stores) await store.commit(next, events);
      calls.set(id, next);
      clock += 20;

      for (const name of names) for (const sid of sids) await same((s) => s.findLiveByRoom({ sid, name }));
      for (const identity of identities) if (identity) await same((s) => s.findLiveBySipIdentity(identity));
      await same((s) => s.liveCallIds(100));
      await same(async (s) => (await s.claimDueTimers(clock, 100, 30)).sort());
      if (step % 10 === 9) {
        for (const state of [undefined, ...live, 'ended', 'failed'] as const) {
          for (const direction of [undefined, 'inbound', 'outbound'] as const) {
            await same((s) => allPages(s, { state, direction, limit: 3 }));
          }
        }
        for (const callId of calls.keys()) {
          await same((s) => s.get(callId));
          await same((s) => s.events(callId));
        }
      }
    }
  });
});

describe('RedisCallStore outages', () => {
  const everyMethod = (store: RedisCallStore): Record<string, () => Promise<unknown>> => ({
    get: () => store.get('a'),
    commit: () => store.commit(record('z', 'ringing'), [envelope('z', 1)]),
    findLiveByRoom: () => store.findLiveByRoom({ sid: 'RM_a', name: 'room-a' }),
    findLiveBySipIdentity: () => store.findLiveBySipIdentity('sip_a'),
    list: () => store.list({ limit: 5 }),
    events: () => store.events('a'),
    seenWebhook: () => store.seenWebhook('EV_1'),
    rememberWebhook: () => store.rememberWebhook('EV_1'),
    claimIdempotencyKey: () => store.claimIdempotencyKey('k', { fingerprint: 'fp', sessionId: 's', leaseMs: 1000, ttlMs: 1000 }),
    completeIdempotencyKey: () => store.completeIdempotencyKey('k', { status: 200, headers: {}, body: null }),
    releaseIdempotencyKey: () => store.releaseIdempotencyKey('k'),
    withCallLock: () => store.withCallLock('a', async () => 'ran'),
    claimDueTimers: () => store.claimDueTimers(Date.now(), 10, 1000),
    liveCallIds: () => store.liveCallIds(10),
    ping: () => store.ping(),
  });

  async function expectUnavailable(store: RedisCallStore): Promise<void> {
    for (const [name, call] of Object.entries(everyMethod(store))) {
      const started = Date.now();
      const outcome = await call().then(
        () => 'resolved',
        (err: unknown) => err,
      );
      expect(outcome, name).toBeInstanceOf(StoreUnavailableError);
      expect((outcome as StoreUnavailableError).cause, name).toBeDefined();
      expect(Date.now() - started, name).toBeLessThan(2000);
    }
  }

  async function eventually(probe: () => Promise<unknown>, withinMs: number): Promise<void> {
    const deadline = Date.now() + withinMs;
    for (;;) {
      try {
        await probe();
        return;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await sleep(50);
      }
    }
  }

  it('fails fast while Redis is down and recovers by itself when it is back', async () => {
    const port = await freePort();
    const store = new RedisCallStore({
      connection: new RedisConnection({ url: `redis://127.0.0.1:${port}`, keyPrefix: 'outage:' }),
      retentionMs: 60_000,
      webhookDedupTtlMs: 60_000,
      maxEventsPerCall: 10,
    });
    opened.push(store);
    let server: RedisHandle | null = null;
    try {
      // nothing listens yet
      await expectUnavailable(store);

      server = await startRedisOnPort(port);
      await eventually(() => store.ping(), 5000);
      await store.commit(record('a', 'ringing'), [envelope('a', 1)]);
      expect((await store.get('a'))?.state).toBe('ringing');

      // Redis goes away under a working store
      await server.stop();
      server = null;
      await expectUnavailable(store);

      // and comes back (empty: no persistence); the same store instance works again
      server = await startRedisOnPort(port);
      await eventually(() => store.ping(), 5000);
      await store.commit(record('a', 'ringing'), []);
      expect(await store.withCallLock('a', async () => store.get('a'))).toEqual(record('a', 'ringing'));
      expect(await store.liveCallIds(10)).toEqual(['a']);
    } finally {
      await server?.stop();
    }
  });
});
