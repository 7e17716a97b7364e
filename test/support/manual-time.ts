// A clock and scheduler the test moves by hand: timers fire only when time is advanced.
import type { Clock, Scheduler } from '../../src/calls/timers.js';

export class ManualClock implements Clock {
  constructor(private current = Date.UTC(2026, 10, 24, 12, 0, 0)) {}
  now(): number {
    return this.current;
  }
  set(ms: number): void {
    this.current = ms;
  }
}

export class ManualScheduler implements Scheduler {
  private readonly timers = new Map<string, { at: number; fire: () => void }>();

  constructor(private readonly clock: ManualClock) {}

  schedule(key: string, at: number, fire: () => void): void {
    this.timers.set(key, { at, fire });
  }
  cancel(key: string): void {
    this.timers.delete(key);
  }
  get size(): number {
    return this.timers.size;
  }
  cancelAll(): void {
    this.timers.clear();
  }
  /** when the timer of `key` fires, or undefined */
  dueAt(key: string): number | undefined {
    return this.timers.get(key)?.at;
  }
  /** Moves time forward by `ms`, firing every timer that comes due, earliest first. */
  advance(ms: number): void {
    const until = this.clock.now() + ms;
    for (;;) {
      let next: [string, { at: number; fire: () => void }] | undefined;
      for (const entry of this.timers) if (entry[1].at <= until && (!next || entry[1].at < next[1].at)) next = entry;
      if (!next) break;
      this.timers.delete(next[0]);
      this.clock.set(Math.max(this.clock.now(), next[1].at));
      next[1].fire();
    }
    this.clock.set(until);
  }
}
