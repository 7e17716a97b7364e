// Dial leases shared by replicas (see dial-leases.port.ts): one key beside the call's own keys
// (same hash tag), set with a TTL.
import type { DialLeases } from '../dial-leases.port.js';
import type { RedisConnection } from './connection.js';

export class RedisDialLeases implements DialLeases {
  constructor(private readonly connection: RedisConnection) {}

  private key(sessionId: string): string {
    return this.connection.key(`call:{${sessionId}}:dial`);
  }

  async hold(sessionId: string, ttlMs: number): Promise<void> {
    await this.connection.guard('dial lease', (redis) => redis.set(this.key(sessionId), '1', 'PX', ttlMs));
  }

  async release(sessionId: string): Promise<void> {
    await this.connection.guard('dial lease', (redis) => redis.del(this.key(sessionId)));
  }

  async held(sessionId: string): Promise<boolean> {
    return (await this.connection.guard('dial lease', (redis) => redis.exists(this.key(sessionId)))) === 1;
  }
}
