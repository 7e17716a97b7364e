// Admission state shared by every replica: the waiting line (a list), the calls holding a slot
// (a set) and the calls-per-second bucket (a hash), all under the `{dial}` hash tag so one script
// can take a call atomically, also in a Redis Cluster. Redis's own clock drives the bucket, so
// replicas with skewed clocks agree.
import type { AdmissionLimits, DialQueue, TakeResult } from '../dial-queue.port.js';
import { LuaScript, type RedisConnection } from './connection.js';

const TAKE = new LuaScript(`
local queue, active, bucket = KEYS[1], KEYS[2], KEYS[3]
local max_concurrent, cps = tonumber(ARGV[1]), tonumber(ARGV[2])
if redis.call('SCARD', active) >= max_concurrent or redis.call('LLEN', queue) == 0 then return {0} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local burst = math.max(1, cps)
local tokens = tonumber(redis.call('HGET', bucket, 'tokens') or burst)
local at = tonumber(redis.call('HGET', bucket, 'at') or now)
tokens = math.min(burst, tokens + math.max(0, now - at) / 1000 * cps)
if tokens < 1 then
  redis.call('HSET', bucket, 'tokens', tostring(tokens), 'at', now)
  return {1, math.ceil((1 - tokens) / cps * 1000)}
end
local id = redis.call('LPOP', queue)
redis.call('SADD', active, id)
redis.call('HSET', bucket, 'tokens', tostring(tokens - 1), 'at', now)
return {2, id}`);

const ENSURE = new LuaScript(`
redis.call('SREM', KEYS[2], ARGV[1])
if redis.call('LPOS', KEYS[1], ARGV[1]) then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[1])
return 1`);

export class RedisDialQueue implements DialQueue {
  private readonly keys: [string, string, string];

  constructor(private readonly connection: RedisConnection) {
    this.keys = [connection.key('{dial}:queue'), connection.key('{dial}:active'), connection.key('{dial}:bucket')];
  }

  private guard<T>(body: (redis: RedisConnection['client']) => Promise<T>): Promise<T> {
    return this.connection.guard('dial queue', body);
  }

  async push(id: string): Promise<void> {
    await this.guard((redis) => redis.rpush(this.keys[0], id));
  }

  async size(): Promise<number> {
    return this.guard((redis) => redis.llen(this.keys[0]));
  }

  async take(limits: AdmissionLimits): Promise<TakeResult> {
    const [kind, value] = (await this.guard(() => this.connection.run(TAKE, this.keys, [limits.maxConcurrent, limits.callsPerSecond]))) as [number, number | string];
    if (kind === 1) return { waitMs: Number(value) };
    if (kind === 2) return { id: String(value) };
    return null;
  }

  async release(id: string): Promise<boolean> {
    return (await this.guard((redis) => redis.srem(this.keys[1], id))) === 1;
  }

  async remove(id: string): Promise<void> {
    await this.guard((redis) => redis.lrem(this.keys[0], 0, id));
  }

  async ensure(id: string): Promise<boolean> {
    return (await this.guard(() => this.connection.run(ENSURE, [this.keys[0], this.keys[1]], [id]))) === 1;
  }
}
