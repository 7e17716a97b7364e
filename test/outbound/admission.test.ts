// Admission control of outbound dials: concurrency, calls per second, first in first out.
import { describe, expect, it } from 'vitest';
import { Admission } from '../../src/outbound/admission.js';
import { MemoryDialQueue } from '../../src/store/memory/dial-queue.js';
import { createLogger } from '../../src/obs/logger.js';
import type { ObsEnvelope } from '../../src/obs/envelope.js';
import { ManualClock, ManualScheduler } from '../support/manual-time.js';

function setup(options: { maxConcurrent: number; callsPerSecond: number; maxQueued: number }) {
  const clock = new ManualClock(0);
  const scheduler = new ManualScheduler(clock);
  const granted: { id: string; at: number }[] = [];
  const queue = new MemoryDialQueue(clock);
  const admission = new Admission({
    ...options,
    queue,
    clock,
    scheduler,
    logger: createLogger({ level: 'silent' }),
    grant: async (id) => {
      granted.push({ id, at: clock.now() });
      return true;
    },
  });
  const tick = () => new Promise((resolve) => setTimeout(resolve, 5));
  const end = (id: string) => admission.observe({ session_id: id, direction: 'outbound', state: 'ended' } as ObsEnvelope);
  return { clock, scheduler, granted, admission, queue, tick, end };
}

describe('Admission', () => {
  it('grants at most CALLS_PER_SECOND dials a second, in arrival order', async () => {
    const { scheduler, granted, admission, tick } = setup({ maxConcurrent: 100, callsPerSecond: 2, maxQueued: 100 });
    for (const id of ['a', 'b', 'c', 'd', 'e']) await admission.enqueue(id);
    await tick();
    expect(granted.map((g) => g.id)).toEqual(['a', 'b']);
    for (let i = 0; i < 4; i++) {
      scheduler.advance(500);
      await tick();
    }
    expect(granted).toEqual([
      { id: 'a', at: 0 },
      { id: 'b', at: 0 },
      { id: 'c', at: 500 },
      { id: 'd', at: 1000 },
      { id: 'e', at: 1500 },
    ]);
  });

  it('holds a slot until the call is final and then grants the next', async () => {
    const { granted, admission, queue, tick, end } = setup({ maxConcurrent: 2, callsPerSecond: 1000, maxQueued: 100 });
    for (const id of ['a', 'b', 'c']) await admission.enqueue(id);
    await tick();
    expect(granted.map((g) => g.id)).toEqual(['a', 'b']);
    expect(await queue.size()).toBe(1);
    end('b');
    await tick();
    expect(granted.map((g) => g.id)).toEqual(['a', 'b', 'c']);
  });

  it('drops a queued call that ended before its turn', async () => {
    const { granted, admission, tick, end } = setup({ maxConcurrent: 1, callsPerSecond: 1000, maxQueued: 100 });
    for (const id of ['a', 'b', 'c']) await admission.enqueue(id);
    await tick();
    end('b');
    end('a');
    await tick();
    expect(granted.map((g) => g.id)).toEqual(['a', 'c']);
  });

  it('says when the queue is full', async () => {
    const { admission, tick } = setup({ maxConcurrent: 1, callsPerSecond: 1000, maxQueued: 2 });
    await admission.enqueue('a');
    await tick();
    expect(await admission.hasRoom()).toBe(true);
    await admission.enqueue('b');
    await admission.enqueue('c');
    expect(await admission.hasRoom()).toBe(false);
  });
});
