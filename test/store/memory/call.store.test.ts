// The embedded store: bounded retention of final calls, bounded webhook de-duplication, and
// version checks on commit.
import { describe, expect, it } from 'vitest';
import { BoundedIdSet, MemoryCallStore } from '../../../src/store/memory/call.store.js';
import type { CallRecord } from '../../../src/store/call-store.port.js';
import { VersionConflictError } from '../../../src/store/errors.js';
import type { CallState } from '../../../machines/call.types.js';
import { seen } from '../../support/store-fixtures.js';

function record(id: string, state: CallState, version = 1): CallRecord {
  return {
    machine: 'call-v1',
    id,
    state,
    version,
    lastSeq: 0,
    webhookIds: [],
    snapshot: {} as never,
    context: {
      roomName: `room-${id}`,
      roomSid: `RM_${id}`,
      sipIdentity: `sip_${id}`,
      direction: 'inbound',
      deadlines: { ring: null, maxDuration: null, retry: null, endingGrace: null, agentGrace: null },
    } as never,
  };
}

describe('MemoryCallStore', () => {
  it('refuses a commit that does not follow the stored version', async () => {
    const store = new MemoryCallStore({ retentionMs: 1000, maxFinalCalls: 10, webhookDedupSize: 10, maxEventsPerCall: 10 });
    await store.commit(record('a', 'ringing', 1), []);
    await expect(store.commit(record('a', 'connected', 1), [])).rejects.toBeInstanceOf(VersionConflictError);
    await expect(store.commit(record('b', 'ringing', 2), [])).rejects.toBeInstanceOf(VersionConflictError);
    await store.commit(record('a', 'connected', 2), []);
    expect((await store.get('a'))?.state).toBe('connected');
  });

  it('keeps at most maxFinalCalls final calls, oldest first out, and never drops a live call', async () => {
    const store = new MemoryCallStore({ retentionMs: 3_600_000, maxFinalCalls: 3, webhookDedupSize: 10, maxEventsPerCall: 10 });
    await store.commit(record('live', 'connected'), []);
    for (const id of ['f1', 'f2', 'f3', 'f4', 'f5']) await store.commit(record(id, 'ended'), []);
    expect(await store.get('f1')).toBeUndefined();
    expect(await store.get('f2')).toBeUndefined();
    expect(await store.get('f3')).toBeDefined();
    expect(await store.get('f5')).toBeDefined();
    expect(await store.get('live')).toBeDefined();
    expect(await store.events('f1')).toBeUndefined();
  });

  it('drops final calls older than the retention period', async () => {
    let now = 1_000_000;
    const store = new MemoryCallStore({ retentionMs: 60_000, maxFinalCalls: 100, webhookDedupSize: 10, maxEventsPerCall: 10, now: () => now });
    await store.commit(record('old', 'failed'), []);
    now += 61_000;
    await store.commit(record('new', 'ringing'), []);
    expect(await store.get('old')).toBeUndefined();
    expect(await store.get('new')).toBeDefined();
  });

  it('keeps at most maxEventsPerCall events of a call', async () => {
    const store = new MemoryCallStore({ retentionMs: 60_000, maxFinalCalls: 10, webhookDedupSize: 10, maxEventsPerCall: 16 });
    const events = Array.from({ length: 20 }, (_, i) => ({ seq: i + 1 }) as never);
    await store.commit(record('a', 'connected'), events);
    expect(await store.events('a')).toHaveLength(16);
  });

  it('remembers webhook ids up to its capacity, forgetting the oldest first', async () => {
    const store = new MemoryCallStore({ retentionMs: 60_000, maxFinalCalls: 10, webhookDedupSize: 3, maxEventsPerCall: 10 });
    for (const id of ['EV_1', 'EV_2', 'EV_3', 'EV_4']) await store.rememberWebhook(id);
    expect(await seen(store, 'EV_1')).toBe(false);
    expect(await seen(store, 'EV_2')).toBe(true);
    expect(await seen(store, 'EV_4')).toBe(true);
  });
});

describe('BoundedIdSet', () => {
  it('holds at most its capacity however many ids pass through', () => {
    const set = new BoundedIdSet(1000);
    for (let i = 0; i < 100_000; i++) set.add(`EV_${i}`);
    expect(set.size).toBe(1000);
    expect(set.has('EV_99999')).toBe(true);
    expect(set.has('EV_98999')).toBe(false);
    set.add('EV_99999');
    expect(set.size).toBe(1000);
  });
});
