// The Outbox contract (src/store/outbox.port.ts), run against the in-memory outbox and the Redis
// outbox alike, with deliveries recorded the one way the service records them: by the call's
// commit. What only one of them has (Redis key expiry and the steps between its scripts, the
// in-memory cap) closes the file.
import { beforeEach, describe, expect, it } from 'vitest';
import type { CallStore } from '../../src/store/call-store.port.js';
import { VersionConflictError } from '../../src/store/errors.js';
import { MemoryCallStore } from '../../src/store/memory/call.store.js';
import { MemoryOutbox } from '../../src/store/memory/outbox.js';
import { headOf, type Delivery, type Outbox, type OutboxLease } from '../../src/store/outbox.port.js';
import { RedisOutbox } from '../../src/store/redis/outbox.js';
import { delivery, freshPrefix, openRedis, openRedisWithOutbox, raw, record, useRedisStores } from '../support/store-fixtures.js';

useRedisStores();

const LEASE_MS = 1000;
const RETENTION_MS = 60_000;

/** What a sender writes back after an attempt the customer's server accepted. */
function delivered(d: Delivery, at: number): Delivery {
  return { ...d, status: 'delivered', attempts: d.attempts + 1, lastStatusCode: 200, nextAttemptAt: null, deliveredAt: at };
}

/** What a sender writes back after an attempt that failed and is tried again at `retryAt`. */
function retried(d: Delivery, retryAt: number): Delivery {
  return { ...d, attempts: d.attempts + 1, lastStatusCode: 503, lastError: 'HTTP 503', nextAttemptAt: retryAt };
}

const ids = (leases: readonly OutboxLease[]): string[] => leases.map((lease) => lease.sessionId);

describe.each(['memory', 'redis'] as const)('Outbox contract: %s', (kind) => {
  let prefix = '';
  let now = 0;

  beforeEach(() => {
    prefix = freshPrefix();
    now = 1_000_000;
  });

  function open(): { store: CallStore; outbox: Outbox } {
    if (kind === 'redis') return openRedisWithOutbox(prefix, { retentionMs: RETENTION_MS, now: () => now });
    const outbox = new MemoryOutbox({ maxPending: 10_000 });
    const store = new MemoryCallStore({
      retentionMs: RETENTION_MS,
      maxFinalCalls: 10_000,
      webhookDedupSize: 10_000,
      maxEventsPerCall: 50,
      outbox,
      now: () => now,
    });
    return { store, outbox };
  }

  /** Claims the one call that is due, failing when another or none is. */
  async function claimOnly(outbox: Outbox, sessionId: string, at = now): Promise<OutboxLease> {
    const leases = await outbox.claim(at, 10, LEASE_MS);
    expect(ids(leases)).toEqual([sessionId]);
    return leases[0] as OutboxLease;
  }

  it('records a commit’s deliveries in seq order, and none of a commit that conflicts', async () => {
    const { store, outbox } = open();
    expect(await outbox.deliveries('a')).toEqual([]);
    await store.commit(record('a', 'ringing', 1), [], [delivery('a', 2, now), delivery('a', 1, now)]);
    await store.commit(record('a', 'connected', 2), [], [delivery('a', 3, now)]);
    expect((await outbox.deliveries('a')).map((d) => d.seq)).toEqual([1, 2, 3]);
    expect(await outbox.deliveries('a')).toEqual([1, 2, 3].map((seq) => delivery('a', seq, now)));
    expect(await outbox.pendingCount()).toBe(3);

    // a stale writer, and a new call that skips its first version
    await expect(store.commit(record('a', 'ended', 2), [], [delivery('a', 4, now)])).rejects.toBeInstanceOf(VersionConflictError);
    await expect(store.commit(record('b', 'ringing', 2), [], [delivery('b', 1, now)])).rejects.toBeInstanceOf(VersionConflictError);
    expect((await outbox.deliveries('a')).map((d) => d.seq)).toEqual([1, 2, 3]);
    expect(await outbox.deliveries('b')).toEqual([]);
    expect(await outbox.pendingCount()).toBe(3);
  });

  it('needs an outbox for a commit with deliveries', async () => {
    const store =
      kind === 'redis'
        ? openRedis(prefix)
        : new MemoryCallStore({ retentionMs: RETENTION_MS, maxFinalCalls: 10, webhookDedupSize: 10, maxEventsPerCall: 50 });
    await expect(store.commit(record('a', 'ringing', 1), [], [delivery('a', 1, now)])).rejects.toThrow(/no outbox/);
    await store.commit(record('a', 'ringing', 1), []);
    expect((await store.get('a'))?.version).toBe(1);
  });

  it('leases a due call to one sender until the lease runs out, then to another', async () => {
    const { store, outbox } = open();
    expect(await outbox.claim(now, 10, LEASE_MS)).toEqual([]);
    await store.commit(record('a', 'ringing', 1), [], [delivery('a', 1, now)]);
    await store.commit(record('b', 'ringing', 1), [], [delivery('b', 1, now)]);

    const first = await outbox.claim(now, 1, LEASE_MS);
    expect(first).toHaveLength(1);
    const second = await outbox.claim(now, 10, LEASE_MS);
    expect(ids([...first, ...second]).sort()).toEqual(['a', 'b']);
    expect(await outbox.claim(now, 10, LEASE_MS)).toEqual([]);
    expect(await outbox.claim(now + LEASE_MS - 1, 10, LEASE_MS)).toEqual([]);

    // Both holders went silent: their calls go to the next sender, under a new lease.
    const takeover = await outbox.claim(now + LEASE_MS + 1, 10, LEASE_MS);
    expect(ids(takeover).sort()).toEqual(['a', 'b']);
    for (const lease of takeover) {
      const before = [...first, ...second].find((old) => old.sessionId === lease.sessionId);
      expect(lease.token).not.toBe(before?.token);
    }
    expect(await outbox.claim(now + LEASE_MS + 2, 10, LEASE_MS)).toEqual([]);
  });

  it('brings a call back for its next delivery once the head is delivered, and lets it go after the last', async () => {
    const { store, outbox } = open();
    await store.commit(record('a', 'ringing', 1), [], [delivery('a', 1, now), delivery('a', 2, now)]);
    let lease = await claimOnly(outbox, 'a');
    const head = headOf(await outbox.deliveries('a')) as Delivery;
    expect(head.seq).toBe(1);
    await outbox.release(lease, [{ before: head, after: delivered(head, now) }], now);

    lease = await claimOnly(outbox, 'a');
    const next = headOf(await outbox.deliveries('a')) as Delivery;
    expect(next.seq).toBe(2);
    await outbox.release(lease, [{ before: next, after: delivered(next, now) }], now);

    expect(await outbox.claim(now + 3_600_000, 10, LEASE_MS)).toEqual([]);
    expect((await outbox.deliveries('a')).map((d) => d.status)).toEqual(['delivered', 'delivered']);
    expect(headOf(await outbox.deliveries('a'))).toBeUndefined();
  });

  it('keeps a call waiting for a retry until its time, even when later deliveries arrive', async () => {
    const { store, outbox } = open();
    const start = now;
    await store.commit(record('a', 'ringing', 1), [], [delivery('a', 1, now)]);
    const lease = await claimOnly(outbox, 'a');
    await outbox.release(lease, [{ before: delivery('a', 1, now), after: retried(delivery('a', 1, now), start + 5000) }], now);
    expect(await outbox.claim(start + 4999, 10, LEASE_MS)).toEqual([]);

    // The later event must wait behind the earlier one.
    now += 100;
    await store.commit(record('a', 'connected', 2), [], [delivery('a', 2, now)]);
    expect(await outbox.claim(start + 4999, 10, LEASE_MS)).toEqual([]);

    await claimOnly(outbox, 'a', start + 5000);
    expect(headOf(await outbox.deliveries('a'))).toEqual(retried(delivery('a', 1, start), start + 5000));
  });

  it('brings a call back at once when new work arrived during its lease, whatever its holder saw', async () => {
    const { store, outbox } = open();
    await store.commit(record('a', 'ringing', 1), [], [delivery('a', 1, now)]);
    const lease = await claimOnly(outbox, 'a');
    const seen = await outbox.deliveries('a');
    // Committed while the holder sends what it saw: not due by its own time for a minute.
    await store.commit(record('a', 'connected', 2), [], [delivery('a', 2, now + 60_000)]);
    await outbox.release(
      lease,
      seen.map((d) => ({ before: d, after: delivered(d, now) })),
      now,
    );
    await claimOnly(outbox, 'a');
  });

  it('lets a stale lease holder write its outcome without disturbing the new holder', async () => {
    const { store, outbox } = open();
    await store.commit(record('a', 'ringing', 1), [], [delivery('a', 1, now)]);
    const stale = await claimOnly(outbox, 'a');
    now += LEASE_MS + 1;
    const current = await claimOnly(outbox, 'a');

    await outbox.release(stale, [], now);
    expect(await outbox.claim(now, 10, LEASE_MS)).toEqual([]);
    // new work during the current lease is the current holder's to hand back
    await store.commit(record('a', 'connected', 2), [], [delivery('a', 2, now)]);
    await outbox.release(stale, [], now);
    expect(await outbox.claim(now, 10, LEASE_MS)).toEqual([]);

    await outbox.release(current, [{ before: delivery('a', 1, now), after: delivered(delivery('a', 1, now), now) }], now);
    const last = await claimOnly(outbox, 'a');
    await outbox.release(last, [{ before: delivery('a', 2, now), after: delivered(delivery('a', 2, now), now) }], now);
    await outbox.release(stale, [], now);
    expect(await outbox.claim(now + 3_600_000, 10, LEASE_MS)).toEqual([]);
  });

  it('never writes an outcome over newer news: a stale holder after a takeover, an attempt overtaken by a redelivery', async () => {
    const { store, outbox } = open();
    await store.commit(record('a', 'ringing', 1), [], [delivery('a', 1, now)]);
    const stale = await claimOnly(outbox, 'a');
    now += LEASE_MS + 1;
    const current = await claimOnly(outbox, 'a');
    const sent = delivered(delivery('a', 1, now), now);
    await outbox.release(current, [{ before: delivery('a', 1, now), after: sent }], now);
    // The stale holder's attempt failed: its retry must not undo the delivery.
    await outbox.release(stale, [{ before: delivery('a', 1, now), after: retried(delivery('a', 1, now), now + 5000) }], now);
    expect(await outbox.deliveries('a')).toEqual([sent]);
    expect(await outbox.pendingCount()).toBe(0);

    // A redelivery asked for while an attempt is in flight is sent after it, whatever that attempt's fate.
    await store.commit(record('a', 'connected', 2), [], [delivery('a', 2, now)]);
    const lease = await claimOnly(outbox, 'a');
    const inFlight = delivery('a', 2, now);
    const renewed = await outbox.redeliver('a', 'EV_a_2', now);
    await outbox.release(lease, [{ before: inFlight, after: delivered(inFlight, now) }], now);
    expect(headOf(await outbox.deliveries('a'))).toEqual(renewed);
    await claimOnly(outbox, 'a');
  });

  it('redelivers a delivery as a new series, due at once, also ahead of a later one waiting for a retry', async () => {
    const { store, outbox } = open();
    expect(await outbox.redeliver('nope', 'EV_nope_1', now)).toBeUndefined();
    await store.commit(record('a', 'ringing', 1), [], [delivery('a', 1, now), delivery('a', 2, now)]);
    expect(await outbox.redeliver('a', 'EV_a_9', now)).toBeUndefined();

    let lease = await claimOnly(outbox, 'a');
    const first = delivered(delivery('a', 1, now), now);
    await outbox.release(lease, [{ before: delivery('a', 1, now), after: first }], now);
    lease = await claimOnly(outbox, 'a');
    await outbox.release(lease, [{ before: delivery('a', 2, now), after: retried(delivery('a', 2, now), now + 60_000) }], now);
    expect(await outbox.claim(now + 100, 10, LEASE_MS)).toEqual([]);

    now += 100;
    const renewed = await outbox.redeliver('a', 'EV_a_1', now);
    expect(renewed).toEqual({ ...first, status: 'pending', attempts: 0, series: 1, nextAttemptAt: now, deliveredAt: null });
    expect(headOf(await outbox.deliveries('a'))).toEqual(renewed);
    expect(await outbox.pendingCount()).toBe(2);
    lease = await claimOnly(outbox, 'a');

    // during a lease: due again once it is given back
    await outbox.release(lease, [{ before: renewed as Delivery, after: delivered(renewed as Delivery, now) }], now);
    expect(await outbox.claim(now, 10, LEASE_MS)).toEqual([]);
    lease = await claimOnly(outbox, 'a', now + 60_000);
    now += 60_000;
    const again = await outbox.redeliver('a', 'EV_a_1', now);
    expect(again?.series).toBe(2);
    await outbox.release(lease, [], now);
    await claimOnly(outbox, 'a');
  });

  it('counts pending deliveries through commits, outcomes and redeliveries', async () => {
    const { store, outbox } = open();
    expect(await outbox.pendingCount()).toBe(0);
    await store.commit(
      record('a', 'ringing', 1),
      [],
      [delivery('a', 1, now), delivery('a', 2, now), delivery('a', 3, now, { status: 'canceled', nextAttemptAt: null })],
    );
    await store.commit(record('b', 'ringing', 1), [], [delivery('b', 1, now)]);
    expect(await outbox.pendingCount()).toBe(3);

    const leases = await outbox.claim(now, 10, LEASE_MS);
    const a = leases.find((lease) => lease.sessionId === 'a') as OutboxLease;
    await outbox.release(a, [{ before: delivery('a', 1, now), after: delivered(delivery('a', 1, now), now) }, { before: delivery('a', 2, now), after: { ...delivery('a', 2, now), status: 'failed', attempts: 8, nextAttemptAt: null } }], now);
    expect(await outbox.pendingCount()).toBe(1);
    // unknown deliveries are not stored and not counted
    await outbox.release(leases.find((lease) => lease.sessionId === 'b') as OutboxLease, [{ before: delivery('b', 7, now), after: delivery('b', 7, now) }], now);
    expect(await outbox.deliveries('b')).toEqual([delivery('b', 1, now)]);
    expect(await outbox.pendingCount()).toBe(1);

    await outbox.redeliver('a', 'EV_a_2', now);
    await outbox.redeliver('a', 'EV_a_3', now);
    expect(await outbox.pendingCount()).toBe(3);
    await outbox.redeliver('a', 'EV_a_2', now);
    expect(await outbox.pendingCount()).toBe(3);
  });
});

describe('Redis outbox', () => {
  let prefix = '';
  const now = 1_000_000;

  beforeEach(() => {
    prefix = freshPrefix();
  });

  it('keeps a final call’s deliveries while any is pending, then lets them expire with the call', async () => {
    const { store, outbox } = openRedisWithOutbox(prefix, { retentionMs: RETENTION_MS, now: () => now });
    const redis = raw(store);
    const deliveries = `${prefix}call:{a}:deliveries`;
    await store.commit(record('a', 'ringing', 1), [], [delivery('a', 1, now)]);
    await store.commit(record('a', 'ended', 2), [], [delivery('a', 2, now)]);
    expect(await redis.pttl(`${prefix}call:{a}`)).toBeGreaterThan(0);
    expect(await redis.pttl(deliveries)).toBe(-1);

    let lease = await outbox.claim(now, 10, LEASE_MS);
    await outbox.release(lease[0] as OutboxLease, [{ before: delivery('a', 1, now), after: delivered(delivery('a', 1, now), now) }], now);
    expect(await redis.pttl(deliveries)).toBe(-1);
    lease = await outbox.claim(now, 10, LEASE_MS);
    await outbox.release(lease[0] as OutboxLease, [{ before: delivery('a', 2, now), after: delivered(delivery('a', 2, now), now) }], now);
    // The call's TTL read first: the deliveries' (copied from it) cannot be longer a moment later.
    const callTtl = await redis.pttl(`${prefix}call:{a}`);
    const ttl = await redis.pttl(deliveries);
    expect(ttl).toBeGreaterThan(RETENTION_MS - 5000);
    expect(ttl).toBeLessThanOrEqual(callTtl);

    const renewed = (await outbox.redeliver('a', 'EV_a_1', now)) as Delivery;
    expect(await redis.pttl(deliveries)).toBe(-1);
    lease = await outbox.claim(now, 10, LEASE_MS);
    await outbox.release(lease[0] as OutboxLease, [{ before: renewed, after: delivered(renewed, now) }], now);
    expect(await redis.pttl(deliveries)).toBeGreaterThan(0);

    // A call that is final with nothing pending: its deliveries expire with it from the start.
    await store.commit(record('b', 'ended', 1), [], [delivery('b', 1, now, { status: 'canceled', nextAttemptAt: null })]);
    expect(await redis.pttl(`${prefix}call:{b}:deliveries`)).toBeGreaterThan(0);
  });

  it('drops the deliveries of a call that expired once none of them is pending', async () => {
    const { store, outbox } = openRedisWithOutbox(prefix, { retentionMs: RETENTION_MS, now: () => now });
    await store.commit(record('a', 'ended', 1), [], [delivery('a', 1, now)]);
    await raw(store).del(`${prefix}call:{a}`);
    const [lease] = await outbox.claim(now, 10, LEASE_MS);
    await outbox.release(lease as OutboxLease, [{ before: delivery('a', 1, now), after: delivered(delivery('a', 1, now), now) }], now);
    expect(await raw(store).exists(`${prefix}call:{a}:deliveries`)).toBe(0);
    expect(await outbox.deliveries('a')).toEqual([]);
    expect(await outbox.pendingCount()).toBe(0);
  });

  /** Runs `between` once, after the next commit marked its call due and before it records its deliveries. */
  class SteppedOutbox extends RedisOutbox {
    between: (() => Promise<void>) | null = null;
    override async mark(sessionId: string, pending: number, at: number): Promise<void> {
      await super.mark(sessionId, pending, at);
      const step = this.between;
      this.between = null;
      await step?.();
    }
  }

  /** A sender that claims every due call, finds nothing to send and gives it back. */
  async function emptyHanded(outbox: Outbox): Promise<void> {
    for (const lease of await outbox.claim(now, 10, LEASE_MS)) {
      expect(headOf(await outbox.deliveries(lease.sessionId))).toBeUndefined();
      await outbox.release(lease, [], now);
    }
  }

  it('does not lose deliveries to a sender that took the call between the mark and the commit', async () => {
    const { store, outbox } = openRedisWithOutbox(prefix, { now: () => now }, (connection) => new SteppedOutbox(connection));
    const stepped = outbox as SteppedOutbox;
    await store.commit(record('a', 'ringing', 1), []);
    stepped.between = () => emptyHanded(outbox);
    await store.commit(record('a', 'connected', 2), [], [delivery('a', 1, now)]);
    const [lease] = await outbox.claim(now, 10, LEASE_MS);
    expect(lease?.sessionId).toBe('a');
    expect(headOf(await outbox.deliveries('a'))?.seq).toBe(1);

    // The same while leased: the holder gives the call back (it saw nothing pending), another
    // sender takes it and also finds nothing, then the commit lands.
    await outbox.release(lease as OutboxLease, [{ before: delivery('a', 1, now), after: delivered(delivery('a', 1, now), now) }], now);
    const [held] = await outbox.claim(now, 10, LEASE_MS);
    expect(held).toBeUndefined();
    await store.commit(record('a', 'ending', 3), [], [delivery('a', 2, now)]);
    const [holder] = await outbox.claim(now, 10, LEASE_MS);
    stepped.between = async () => {
      await outbox.release(holder as OutboxLease, [{ before: delivery('a', 2, now), after: delivered(delivery('a', 2, now), now) }], now);
      await emptyHanded(outbox);
    };
    await store.commit(record('a', 'ended', 4), [], [delivery('a', 3, now)]);
    const [next] = await outbox.claim(now, 10, LEASE_MS);
    expect(next?.sessionId).toBe('a');
    expect(headOf(await outbox.deliveries('a'))?.seq).toBe(3);
  });

  it('gives the count back when the commit fails', async () => {
    const { store, outbox } = openRedisWithOutbox(prefix, { now: () => now });
    await store.commit(record('a', 'ringing', 1), [], [delivery('a', 1, now)]);
    await expect(store.commit(record('a', 'ringing', 1), [], [delivery('a', 2, now), delivery('a', 3, now)])).rejects.toBeInstanceOf(
      VersionConflictError,
    );
    expect(await outbox.pendingCount()).toBe(1);
    // the mark it left is harmless: the call is due for what it has
    const [lease] = await outbox.claim(now, 10, LEASE_MS);
    expect(headOf(await outbox.deliveries('a'))?.seq).toBe(1);
    await outbox.release(lease as OutboxLease, [{ before: delivery('a', 1, now), after: delivered(delivery('a', 1, now), now) }], now);
    expect(await outbox.claim(now, 10, LEASE_MS)).toEqual([]);
  });
});

describe('in-memory outbox', () => {
  it('records deliveries past maxPending failed without an attempt, and says so', async () => {
    const now = 1_000_000;
    const outbox = new MemoryOutbox({ maxPending: 2 });
    const dropped: number[] = [];
    outbox.onDropped((count) => dropped.push(count));
    const store = new MemoryCallStore({ retentionMs: RETENTION_MS, maxFinalCalls: 10, webhookDedupSize: 10, maxEventsPerCall: 50, outbox, now: () => now });
    await store.commit(record('a', 'ringing', 1), [], [1, 2, 3].map((seq) => delivery('a', seq, now)));
    const [, , third] = await outbox.deliveries('a');
    expect(third).toMatchObject({ seq: 3, status: 'failed', attempts: 0, nextAttemptAt: null });
    expect(third?.lastError).toMatch(/STATUS_CALLBACK_MAX_PENDING/);
    expect(dropped).toEqual([1]);
    expect(await outbox.pendingCount()).toBe(2);

    const [lease] = await outbox.claim(now, 10, LEASE_MS);
    await outbox.release(lease as OutboxLease, [{ before: delivery('a', 1, now), after: delivered(delivery('a', 1, now), now) }], now);
    await store.commit(record('a', 'connected', 2), [], [delivery('a', 4, now)]);
    expect((await outbox.deliveries('a')).map((d) => d.status)).toEqual(['delivered', 'pending', 'failed', 'pending']);
    expect(dropped).toEqual([1]);
    // a dropped delivery can be redelivered (the cap applies to commits only)
    expect((await outbox.redeliver('a', 'EV_a_3', now))?.status).toBe('pending');
  });
});
