// Timers from absolute deadlines. The runtime keeps one armed timer per live call, for the
// earliest deadline in its context; the chart's guards ignore a timer that fires late or stale.
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

export interface Scheduler {
  /** (Re)arms the timer of `key` to call `fire` at `at` (epoch ms); replaces any earlier one. */
  schedule(key: string, at: number, fire: () => void): void;
  cancel(key: string): void;
  /** number of armed timers */
  readonly size: number;
  cancelAll(): void;
}

// setTimeout takes at most 2^31-1 ms; a longer deadline is re-armed when this wait ends.
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export function createTimerScheduler(clock: Clock = systemClock): Scheduler {
  const timers = new Map<string, NodeJS.Timeout>();
  const arm = (key: string, at: number, fire: () => void): void => {
    const wait = Math.max(0, at - clock.now());
    const timer = setTimeout(
      () => {
        timers.delete(key);
        if (clock.now() < at) arm(key, at, fire);
        else fire();
      },
      Math.min(wait, MAX_TIMEOUT_MS),
    );
    timer.unref();
    timers.set(key, timer);
  };
  return {
    schedule(key, at, fire) {
      const existing = timers.get(key);
      if (existing) clearTimeout(existing);
      arm(key, at, fire);
    },
    cancel(key) {
      const existing = timers.get(key);
      if (existing) clearTimeout(existing);
      timers.delete(key);
    },
    get size() {
      return timers.size;
    },
    cancelAll() {
      for (const timer of timers.values()) clearTimeout(timer);
      timers.clear();
    },
  };
}
