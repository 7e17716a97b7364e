// The embedded backend (the default without REDIS_URL): everything in this process's memory.
import type { Clock } from '../../calls/timers.js';
import type { Config } from '../../config.js';
import type { Backend } from '../backend.js';
import type { CallStore } from '../call-store.port.js';
import type { DialLeases } from '../dial-leases.port.js';
import { MemoryCallStore } from './call.store.js';
import { MemoryDialLeases } from './dial-leases.js';
import { MemoryDialQueue } from './dial-queue.js';
import { MemoryEventLog } from './event-log.js';
import { MemoryOutbox } from './outbox.js';

export function createMemoryBackend(
  config: Config,
  clock: Clock,
  /** parts a test wants to hold itself */
  parts: { store?: CallStore; dialLeases?: DialLeases; outbox?: MemoryOutbox } = {},
): Backend {
  const outbox = parts.outbox ?? new MemoryOutbox({ maxPending: config.statusCallbacks.maxPending });
  const store =
    parts.store ??
    new MemoryCallStore({
      retentionMs: config.retention.finalCallsS * 1000,
      maxFinalCalls: config.retention.maxFinalCalls,
      webhookDedupSize: config.webhook.dedupSize,
      maxEventsPerCall: config.retention.maxEventsPerCall,
      outbox,
      now: () => clock.now(),
    });
  const eventLog = new MemoryEventLog();
  return {
    store,
    dialQueue: new MemoryDialQueue(clock),
    dialLeases: parts.dialLeases ?? new MemoryDialLeases(clock),
    eventLog,
    outbox,
    replicas: null,
    async close() {
      await eventLog.stop();
      await store.close();
    },
  };
}
