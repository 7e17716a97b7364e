// Admission state of one process: the waiting line, the slots and the calls-per-second bucket.
import type { Clock } from '../../calls/timers.js';
import type { AdmissionLimits, DialQueue, TakeResult } from '../dial-queue.port.js';

export class MemoryDialQueue implements DialQueue {
  private readonly waiting: string[] = [];
  private readonly active = new Set<string>();
  private tokens: number | null = null;
  private refilledAt = 0;

  constructor(private readonly clock: Clock) {}

  async push(id: string): Promise<void> {
    this.waiting.push(id);
  }

  async size(): Promise<number> {
    return this.waiting.length;
  }

  async take(limits: AdmissionLimits): Promise<TakeResult> {
    if (this.active.size >= limits.maxConcurrent || this.waiting.length === 0) return null;
    const burst = Math.max(1, limits.callsPerSecond);
    const now = this.clock.now();
    this.tokens = Math.min(burst, (this.tokens ?? burst) + ((now - this.refilledAt) / 1000) * limits.callsPerSecond);
    this.refilledAt = now;
    if (this.tokens < 1) return { waitMs: Math.ceil(((1 - this.tokens) / limits.callsPerSecond) * 1000) };
    this.tokens -= 1;
    const id = this.waiting.shift() as string;
    this.active.add(id);
    return { id };
  }

  async release(id: string): Promise<boolean> {
    return this.active.delete(id);
  }

  async remove(id: string): Promise<void> {
    const index = this.waiting.indexOf(id);
    if (index >= 0) this.waiting.splice(index, 1);
  }

  async ensure(id: string): Promise<boolean> {
    this.active.delete(id);
    if (this.waiting.includes(id)) return false;
    this.waiting.push(id);
    return true;
  }
}
