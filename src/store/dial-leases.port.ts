// Which dials are in flight. The replica placing a dial holds a short, renewed lease on it; a
// call in `dialing` with no lease lost its dial with a replica, and reconciliation asks LiveKit
// what became of it instead of dialing again blindly (SPEC §8).
import type { RedisCallStore } from './redis/call.store.js';
import type { Clock } from '../calls/timers.js';

export interface DialLeases {
  hold(sessionId: string, ttlMs: number): Promise<void>;
  release(sessionId: string): Promise<void>;
  held(sessionId: string): Promise<boolean>;
}

export class MemoryDialLeases implements DialLeases {
  private readonly leases = new Map<string, number>();

  constructor(private readonly clock: Clock) {}

  async hold(sessionId: string, ttlMs: number): Promise<void> {
    this.leases.set(sessionId, this.clock.now() + ttlMs);
  }

  async release(sessionId: string): Promise<void> {
    this.leases.delete(sessionId);
  }

  async held(sessionId: string): Promise<boolean> {
    const until = this.leases.get(sessionId);
    return until !== undefined && until > this.clock.now();
  }
}

export class RedisDialLeases implements DialLeases {
  constructor(private readonly store: RedisCallStore) {}

  /** Beside the call's own keys (same hash tag). */
  private key(sessionId: string): string {
    return `${this.store.keyPrefix}call:{${sessionId}}:dial`;
  }

  async hold(sessionId: string, ttlMs: number): Promise<void> {
    await this.store.guard('dial lease', () => this.store.redis.set(this.key(sessionId), '1', 'PX', ttlMs));
  }

  async release(sessionId: string): Promise<void> {
    await this.store.guard('dial lease', () => this.store.redis.del(this.key(sessionId)));
  }

  async held(sessionId: string): Promise<boolean> {
    return (await this.store.guard('dial lease', () => this.store.redis.exists(this.key(sessionId)))) === 1;
  }
}
