// The shared backend (with REDIS_URL): calls, admission, dial leases, the event log and the
// status-callback outbox live in one Redis, so any number of replicas serve the same calls
// (docs/replicas.md).
import type { Config } from '../../config.js';
import type { Logger } from '../../obs/logger.js';
import type { Backend } from '../backend.js';
import { RedisCallStore } from './call.store.js';
import { RedisConnection } from './connection.js';
import { RedisDialLeases } from './dial-leases.js';
import { RedisDialQueue } from './dial-queue.js';
import { RedisEventLog } from './event-log.js';
import { RedisOutbox } from './outbox.js';

/**
 * How long a webhook id is remembered in Redis. LiveKit gives up on an event after about 30 s, and
 * a resent webhook is accepted only while its signature token is valid (5 minutes, plus the
 * verifier's 10 s clock tolerance): after that the same bytes are refused as unsigned anyway.
 */
const WEBHOOK_DEDUP_TTL_MS = 6 * 60 * 1000;
/** how often each replica looks for due timers and free dial slots */
const TIMER_POLL_MS = 250;
const ADMISSION_POLL_MS = 250;

export function createRedisBackend(config: Config, logger: Logger, options: { keyPrefix?: string } = {}): Backend {
  if (!config.redisUrl) throw new Error('createRedisBackend needs REDIS_URL');
  const connection = new RedisConnection({ url: config.redisUrl, keyPrefix: options.keyPrefix ?? config.redisKeyPrefix });
  const outbox = new RedisOutbox(connection);
  const store = new RedisCallStore({
    connection,
    outbox,
    retentionMs: config.retention.finalCallsS * 1000,
    webhookDedupTtlMs: WEBHOOK_DEDUP_TTL_MS,
    maxEventsPerCall: config.retention.maxEventsPerCall,
    eventLogMaxLength: config.events.bufferSize,
    onAfterCommitError: (err, callId) => logger.warn({ err, session_id: callId }, 'after a commit: the outbox mark or the clean-up of expired calls failed (the next commit tries again)'),
  });
  const eventLog = new RedisEventLog({ connection, logger });
  return {
    store,
    dialQueue: new RedisDialQueue(connection),
    dialLeases: new RedisDialLeases(connection),
    eventLog,
    outbox,
    replicas: { timerPollMs: TIMER_POLL_MS, admissionPollMs: ADMISSION_POLL_MS },
    async close() {
      await eventLog.stop();
      await store.close();
    },
  };
}
