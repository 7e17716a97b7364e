// vitest globalSetup of the `redis` project: one Redis for the whole run (REDIS_URL when set,
// else a private redis-server), handed to the test workers through REDIS_URL. Each service
// harness then uses a key prefix of its own.
import { useRedis } from '../../dev/redis-server.js';

export default async function setup(): Promise<() => Promise<void>> {
  const redis = await useRedis();
  process.env.REDIS_URL = redis.url;
  return () => redis.stop();
}
