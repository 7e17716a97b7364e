// What the store tests share: records, envelopes and status-callback deliveries as the runtime
// writes them, paging, and Redis stores on a private redis-server (each test's own key prefix),
// closed after each test.
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll } from 'vitest';
import type { CallContext, CallState, Direction } from '../../machines/call.types.js';
import type { ObsEnvelope } from '../../src/obs/envelope.js';
import type { CallRecord, CallStore } from '../../src/store/call-store.port.js';
import type { Delivery } from '../../src/store/outbox.port.js';
import { RedisCallStore, type RedisStoreOptions } from '../../src/store/redis/call.store.js';
import { RedisConnection } from '../../src/store/redis/connection.js';
import { RedisOutbox } from '../../src/store/redis/outbox.js';
import { useRedis, type RedisHandle } from '../../dev/redis-server.js';

export const NO_DEADLINES = { ring: null, maxDuration: null, retry: null, endingGrace: null, agentGrace: null };

type ContextPart = Partial<Pick<CallContext, 'roomName' | 'roomSid' | 'sipIdentity' | 'direction' | 'recording'>> & {
  deadlines?: Partial<CallContext['deadlines']>;
};

export function record(id: string, state: CallState, version = 1, context: ContextPart = {}): CallRecord {
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
      ...(context.recording !== undefined ? { recording: context.recording } : {}),
    } as never,
  };
}

export function envelope(id: string, seq: number): ObsEnvelope {
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

/** The status callback of `envelope(id, seq)`: pending, first attempt due at `nextAttemptAt`. */
export function delivery(id: string, seq: number, nextAttemptAt: number, fields: Partial<Delivery> = {}): Delivery {
  return {
    eventId: `EV_${id}_${seq}`,
    sessionId: id,
    seq,
    event: 'call.ringing',
    url: 'https://customer.example/status',
    status: 'pending',
    attempts: 0,
    series: 0,
    lastStatusCode: null,
    lastError: null,
    nextAttemptAt,
    deliveredAt: null,
    body: JSON.stringify(envelope(id, seq)),
    ...fields,
  };
}

/** A key prefix of its own for one test's Redis keys. */
export const freshPrefix = (): string => `test-${randomUUID().slice(0, 8)}:`;

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function allPages(store: CallStore, query: { state?: CallState; direction?: Direction; limit: number }): Promise<string[]> {
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

export interface StoreOptions {
  retentionMs?: number;
  maxEventsPerCall?: number;
  webhookDedupTtlMs?: number;
}

let redis: RedisHandle | null = null;
const opened: CallStore[] = [];

/** Starts (or finds) Redis for the test file that calls it, and closes its stores after each test. */
export function useRedisStores(): void {
  beforeAll(async () => {
    redis = await useRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((store) => store.close()));
  });
}

/** Closed after the test like the stores openRedis makes. */
export function closeAfterTest(store: CallStore): void {
  opened.push(store);
}

export function openRedis(prefix: string, options: StoreOptions & Partial<RedisStoreOptions> = {}): RedisCallStore {
  return openOn(connect(prefix), options);
}

/** A Redis store whose commits record deliveries in `outbox`, both on one connection. */
export function openRedisWithOutbox(
  prefix: string,
  options: StoreOptions & Partial<RedisStoreOptions> = {},
  makeOutbox: (connection: RedisConnection) => RedisOutbox = (connection) => new RedisOutbox(connection),
): { store: RedisCallStore; outbox: RedisOutbox } {
  const connection = connect(prefix);
  const outbox = makeOutbox(connection);
  return { store: openOn(connection, { ...options, outbox }), outbox };
}

function connect(prefix: string): RedisConnection {
  if (!redis) throw new Error('no redis');
  return new RedisConnection({ url: redis.url, keyPrefix: prefix });
}

function openOn(connection: RedisConnection, options: StoreOptions & Partial<RedisStoreOptions>): RedisCallStore {
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
export function raw(store: RedisCallStore): RedisConnection['client'] {
  return connectionOf(store).client;
}

/** The connection under a store from openRedis. */
export function connectionOf(store: RedisCallStore): RedisConnection {
  const connection = connections.get(store);
  if (!connection) throw new Error('not a store from openRedis');
  return connection;
}

/** Whether the store remembers this webhook id as applied. */
export async function seen(store: CallStore, eventId: string): Promise<boolean> {
  return (await store.lookupWebhook(eventId, null)).seen;
}
