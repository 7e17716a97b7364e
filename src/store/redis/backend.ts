// What the service runs on: the embedded in-memory store for one process, or, with REDIS_URL,
// Redis shared by any number of replicas (SPEC §8).
import { RedisDialQueue } from './dial-queue.js';
import { RedisDialLeases } from '../dial-leases.port.js';
import { RedisCallStore } from './call.store.js';
import type { Config } from '../../config.js';
import type { Logger } from '../../obs/logger.js';
import { RedisEventLog } from './event-log.js';
import type { ServiceDeps } from '../../service.js';

/** How long a webhook id is remembered in Redis: LiveKit gives up on an event after about 30 s. */
const WEBHOOK_DEDUP_TTL_MS = 60 * 60 * 1000;

export function redisDeployment(
  config: Config,
  logger: Logger,
  options: { keyPrefix?: string } = {},
): Pick<ServiceDeps, 'store' | 'shared'> & { store: RedisCallStore } {
  if (!config.redisUrl) throw new Error('redisDeployment needs REDIS_URL');
  const keyPrefix = options.keyPrefix ?? config.redisKeyPrefix;
  const store = new RedisCallStore({
    url: config.redisUrl,
    keyPrefix,
    retentionMs: config.retention.finalCallsS * 1000,
    webhookDedupTtlMs: WEBHOOK_DEDUP_TTL_MS,
    maxEventsPerCall: config.retention.maxEventsPerCall,
    onIndexError: (err, callId) => logger.warn({ err, session_id: callId }, 'call indexes could not be written; the next commit writes them again'),
  });
  return {
    store,
    shared: {
      dialQueue: new RedisDialQueue(store),
      dialLeases: new RedisDialLeases(store),
      eventLog: new RedisEventLog({ redis: store.redis, keyPrefix, maxLength: config.events.bufferSize, logger }),
    },
  };
}
