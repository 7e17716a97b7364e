// The CallStore contract (src/store/call-store.port.ts), run against the embedded store and the Redis
// store alike. What only Redis has (replicas sharing one store, outages, its key layout) is in
// test/store/redis/call.store.test.ts.
import { randomUUID } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import { MemoryCallStore } from '../../src/store/memory/call.store.js';
import type { CallStore, StoredResponse } from '../../src/store/call-store.port.js';
import type { RecordingStatus } from '../../machines/call.types.js';
import { InvalidCursorError, VersionConflictError } from '../../src/store/errors.js';
import { allPages, envelope, openRedis, record, seen, sleep, useRedisStores, type StoreOptions } from '../support/store-fixtures.js';

useRedisStores();

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
    expect(await seen(store, 'EV_1')).toBe(false);
    await store.rememberWebhook('EV_1');
    await store.rememberWebhook('EV_1');
    expect(await seen(store, 'EV_1')).toBe(true);
    expect(await seen(store, 'EV_2')).toBe(false);
  });

  it('looks a webhook up: seen before, or the live call of its room as stored', async () => {
    const store = open();
    const a = record('a', 'ringing', 1, { roomName: 'room-1', roomSid: 'RM_1' });
    await store.commit(a, []);
    await store.commit(record('b', 'dialing', 1, { roomName: 'room-2', roomSid: null, direction: 'outbound' }), []);
    expect(await store.lookupWebhook('EV_new', { sid: 'RM_1', name: 'room-1' })).toEqual({ seen: false, call: await store.get('a') });
    expect((await store.lookupWebhook(null, { sid: null, name: 'room-1' })).call?.id).toBe('a');
    expect((await store.lookupWebhook(null, { sid: 'RM_2', name: 'room-2' })).call?.id).toBe('b');
    expect((await store.lookupWebhook(null, { sid: 'RM_9', name: 'room-1' })).call).toBeUndefined();
    expect(await store.lookupWebhook('EV_new', null)).toEqual({ seen: false, call: undefined });
    await store.rememberWebhook('EV_old');
    expect(await store.lookupWebhook('EV_old', { sid: 'RM_1', name: 'room-1' })).toEqual({ seen: true });
    await store.commit(record('a', 'ended', 2, { roomName: 'room-1', roomSid: 'RM_1' }), []);
    expect((await store.lookupWebhook(null, { sid: 'RM_1', name: 'room-1' })).call).toBeUndefined();
  });

  it('remembers the webhook a commit applies, with the commit and only if it is stored', async () => {
    const store = open();
    await store.commit(record('a', 'ringing', 1), [], [], { webhookId: 'EV_applied' });
    expect(await seen(store, 'EV_applied')).toBe(true);
    await expect(store.commit(record('a', 'connected', 3), [], [], { webhookId: 'EV_conflict' })).rejects.toBeInstanceOf(VersionConflictError);
    expect(await seen(store, 'EV_conflict')).toBe(false);
  });

  it('hands a writer the call as stored when it takes the lease', async () => {
    const store = open();
    expect(await store.withCallLock('a', async (lease) => lease.record)).toBeUndefined();
    await store.commit(record('a', 'ringing', 1), []);
    await store.commit(record('a', 'connected', 2), []);
    const held = await store.withCallLock('a', async (lease) => lease.record);
    expect(held).toMatchObject({ id: 'a', state: 'connected', version: 2 });
    expect(held).toEqual(await store.get('a'));
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

  it("finds a call by its recording's egress, also once final, and lists the calls whose recording has not ended", async () => {
    const store = open({ retentionMs: 200 });
    const recording = (status: RecordingStatus, egressId: string | null = 'EG_1') => ({
      recording: { egressId, status, startedAt: null, endedAt: null, durationS: null, sizeBytes: null, location: null, error: null },
    });
    await store.commit(record('a', 'connected', 1, recording('starting', null)), []);
    await store.commit(record('b', 'connected', 1), []);
    await store.commit(record('c', 'connected', 1, recording('active', 'EG_3')), []);
    expect(await store.findByEgress('EG_1')).toBeUndefined();
    expect(await store.openRecordingIds(10)).toEqual(['a', 'c']);
    await store.commit(record('a', 'connected', 2, recording('active')), []);
    await store.commit(record('a', 'ended', 3, recording('ending')), []);
    expect(await store.findByEgress('EG_1')).toBe('a');
    expect(await store.findByEgress('EG_3')).toBe('c');
    expect(await store.openRecordingIds(10)).toEqual(['a', 'c']);
    expect(await store.openRecordingIds(1)).toHaveLength(1);
    await store.commit(record('a', 'ended', 4, recording('complete')), []);
    await store.commit(record('c', 'ended', 2, recording('failed', 'EG_3')), []);
    expect(await store.openRecordingIds(10)).toEqual([]);
    expect(await store.findByEgress('EG_1')).toBe('a');
    // Forgotten with the call.
    await advance(400);
    await store.commit(record('other', 'ringing', 1), []);
    expect(await store.get('a')).toBeUndefined();
    expect(await store.findByEgress('EG_1')).toBeUndefined();
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
