// What only the Redis store has: replicas sharing one store (one writer per call), the lock
// lease, indexes that are hints checked against the record, its key layout, and outages.
import { randomUUID } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import type { CallState } from '../../../machines/call.types.js';
import { MemoryCallStore } from '../../../src/store/memory/call.store.js';
import type { CallRecord, CallStore } from '../../../src/store/call-store.port.js';
import { StoreUnavailableError, VersionConflictError } from '../../../src/store/errors.js';
import { RedisCallStore } from '../../../src/store/redis/call.store.js';
import { LuaScript, RedisConnection } from '../../../src/store/redis/connection.js';
import { createLogger } from '../../../src/obs/logger.js';
import { freePort, startRedisOnPort, type RedisHandle } from '../../../dev/redis-server.js';
import { allPages, closeAfterTest, connectionOf, envelope, openRedis, raw, record, seen, sleep, useRedisStores } from '../../support/store-fixtures.js';

useRedisStores();

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
    // stale pointers, as an expired record or a crash of an earlier version could leave them
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
    // The room index keeps an ended call (GET /v1/calls?room=) as long as its record lives.
    expect(await raw(store).pttl(`${prefix}calls:room:room-a`)).toBeGreaterThan(0);
    expect(left.filter((key) => /:(room|sip):/.test(key) && !key.includes(':calls:room:') && !key.endsWith(':RM_b') && !key.endsWith(':room-b') && !key.endsWith(':sip-b') && !key.endsWith(':sip-x'))).toEqual([]);
    expect(await raw(store).zscore(`${prefix}timers`, 'a')).toBeNull();
    expect(await raw(store).zscore(`${prefix}calls:live`, 'a')).toBeNull();
    expect(await raw(store).pttl(`${prefix}call:{a}`)).toBeGreaterThan(0);
  });

  it('ends the writer lease with the commit, so the next writer need not wait for the task to finish', async () => {
    const [first, second] = [openRedis(prefix), openRedis(prefix)];
    let committed!: () => void;
    const afterCommit = new Promise<void>((resolve) => (committed = resolve));
    let finish!: () => void;
    const finished = new Promise<void>((resolve) => (finish = resolve));
    const writer = first.withCallLock('a', async (lease) => {
      await first.commit(record('a', 'ringing', 1), [], [], { lease });
      committed();
      await finished; // still running: publishing, arming timers
    });
    await afterCommit;
    expect(await raw(first).exists(`${prefix}call:{a}:lock`)).toBe(0);
    // Another replica takes the call at once and sees the commit.
    const t0 = Date.now();
    const seen = await second.withCallLock('a', async (lease) => {
      // The first task ends while the second holds the lease: it must not end the second's lease.
      finish();
      await writer;
      expect(await raw(second).exists(`${prefix}call:{a}:lock`)).toBe(1);
      return lease.record?.version;
    });
    expect(seen).toBe(1);
    expect(Date.now() - t0).toBeLessThan(100);
    // A commit that loses the race keeps its lease until its task ends (the runtime retries in it).
    await first.withCallLock('a', async (lease) => {
      await expect(first.commit(record('a', 'connected', 5), [], [], { lease })).rejects.toBeInstanceOf(VersionConflictError);
      expect(await raw(first).exists(`${prefix}call:{a}:lock`)).toBe(1);
    });
    expect(await raw(first).exists(`${prefix}call:{a}:lock`)).toBe(0);
  });

  it('finds and lets go of calls stored before their hash named their room and lookups', async () => {
    const store = openRedis(prefix);
    await store.commit(record('a', 'ringing', 1, { roomName: 'room-a', roomSid: 'RM_a', sipIdentity: 'sip-a' }), []);
    // as an earlier version of the service stored it: the record alone
    await raw(store).hdel(`${prefix}call:{a}`, 'lookups', 'room_sid', 'room_name');
    expect(await store.findLiveByRoom({ sid: 'RM_a', name: 'room-a' })).toBe('a');
    expect(await store.findLiveByRoom({ sid: null, name: 'room-a' })).toBe('a');
    expect(await store.findLiveByRoom({ sid: 'RM_other', name: 'room-a' })).toBeUndefined();
    // Its identity changes: the key of the identity it had goes, read from the record it replaces.
    await store.commit(record('a', 'connected', 2, { roomName: 'room-a', roomSid: 'RM_a', sipIdentity: 'sip-a2' }), []);
    expect(await raw(store).exists(`${prefix}sip:sip-a`)).toBe(0);
    expect(await raw(store).get(`${prefix}sip:sip-a2`)).toBe('a');
    await raw(store).hdel(`${prefix}call:{a}`, 'lookups', 'room_sid', 'room_name');
    await store.commit(record('a', 'ended', 3, { roomName: 'room-a', roomSid: 'RM_a', sipIdentity: 'sip-a2' }), []);
    for (const key of ['room:sid:RM_a', 'room:name:room-a', 'sip:sip-a2']) expect(await raw(store).exists(`${prefix}${key}`), key).toBe(0);
  });

  it('adds a commit\'s events to the shared event log in the same script, numbered in commit order', async () => {
    const store = openRedis(prefix, { eventLogMaxLength: 100 });
    await store.commit(record('a', 'ringing', 1), [envelope('a', 1), envelope('a', 2)]);
    await store.commit(record('b', 'ringing', 1), [envelope('b', 1)]);
    await expect(store.commit(record('a', 'ringing', 1), [envelope('a', 3)])).rejects.toBeInstanceOf(VersionConflictError);
    const entries = (await raw(store).xrange(`${prefix}{events}:stream`, '-', '+')) as [string, string[]][];
    expect(entries.map(([id, fields]) => [id, JSON.parse(fields[1] as string).session_id, JSON.parse(fields[1] as string).seq])).toEqual([
      ['1-0', 'a', 1],
      ['2-0', 'a', 2],
      ['3-0', 'b', 1],
    ]);
    // Without the event log, a commit adds nothing to it.
    const other = openRedis(`${prefix}x:`);
    await other.commit(record('a', 'ringing', 1), [envelope('a', 1)]);
    expect(await raw(other).exists(`${prefix}x:{events}:stream`)).toBe(0);
  });

  it('keeps every key of one call in one hash slot, and expires webhook ids', async () => {
    const store = openRedis(prefix, { webhookDedupTtlMs: 150 });
    await store.commit(record('a', 'ringing', 1), [envelope('a', 1)]);
    const keys = (await raw(store).keys(`${prefix}call:*`)).sort();
    expect(keys).toEqual([`${prefix}call:{a}`, `${prefix}call:{a}:events`]);
    await store.rememberWebhook('EV_1');
    expect(await seen(store, 'EV_1')).toBe(true);
    await sleep(300);
    expect(await seen(store, 'EV_1')).toBe(false);
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
    lookupWebhook: () => store.lookupWebhook('EV_1', { sid: 'RM_a', name: 'room-a' }),
    list: () => store.list({ limit: 5 }),
    events: () => store.events('a'),
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

  it('reports a failed command without its arguments, so a record\'s SIP options never reach a log line', async () => {
    const connection = connectionOf(openRedis(`test-${randomUUID().slice(0, 8)}:`));
    const stored = { ...record('a', 'ringing'), callOptions: { sipHeaders: null, displayName: null, dtmf: '1234#w987' } };
    const refusing = new LuaScript("return redis.error_reply('ERR refused')");
    const failure = await connection.guard('commit', () => connection.run(refusing, [], [JSON.stringify(stored)])).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(StoreUnavailableError);
    const cause = (failure as Error).cause;
    expect(cause).toMatchObject({ message: 'ERR refused', command: { name: 'eval' } });
    expect(cause).not.toHaveProperty('command.args');

    // Whichever of the two is logged.
    const lines: string[] = [];
    const logger = createLogger({ level: 'info', destination: { write: (line: string) => void lines.push(line) } });
    logger.error({ err: failure }, 'call store unavailable');
    logger.error({ err: cause }, 'commit failed');
    expect(lines).toHaveLength(2);
    expect(lines.join('')).toContain('ERR refused');
    expect(lines.join('')).not.toContain('1234#w987');
  });

  it('fails fast while Redis is down and recovers by itself when it is back', async () => {
    const port = await freePort();
    const store = new RedisCallStore({
      connection: new RedisConnection({ url: `redis://127.0.0.1:${port}`, keyPrefix: 'outage:' }),
      retentionMs: 60_000,
      webhookDedupTtlMs: 60_000,
      maxEventsPerCall: 10,
    });
    closeAfterTest(store);
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
