// Dial leases of one process (see dial-leases.port.ts).
import type { Clock } from '../../calls/timers.js';
import type { DialLeases } from '../dial-leases.port.js';

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
