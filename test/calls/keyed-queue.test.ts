// The per-key lanes of the call runtime: one writer per call, calls independent of each other.
import { describe, expect, it } from 'vitest';
import { KeyedQueue } from '../../src/calls/keyed-queue.js';

/** A promise the test settles by hand. */
function deferred(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/** Lets every promise callback that is ready run (no time passes). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A task that logs when it starts and ends, and runs until `gate` opens. */
function logged(log: string[], name: string, gate: Promise<void> = Promise.resolve()): () => Promise<string> {
  return async () => {
    log.push(`${name} starts`);
    await gate;
    log.push(`${name} ends`);
    return name;
  };
}

/** how many keys the queue holds on to (private: the memory the comment on KeyedQueue promises back) */
const keysHeld = (queue: KeyedQueue): number => (queue as unknown as { tails: Map<string, unknown> }).tails.size;

describe('KeyedQueue', () => {
  it('runs the tasks of one key one at a time, in the order they were queued', async () => {
    const queue = new KeyedQueue();
    const log: string[] = [];
    const gates = [deferred(), deferred(), deferred()];
    const done = gates.map((gate, i) => queue.run('call-1', logged(log, `task ${i}`, gate.promise)));
    await settle();
    expect(log).toEqual(['task 0 starts']);

    // the later tasks could finish at once, but wait for their turn
    gates[2]?.open();
    gates[1]?.open();
    await settle();
    expect(log).toEqual(['task 0 starts']);

    gates[0]?.open();
    expect(await Promise.all(done)).toEqual(['task 0', 'task 1', 'task 2']);
    expect(log).toEqual(['task 0 starts', 'task 0 ends', 'task 1 starts', 'task 1 ends', 'task 2 starts', 'task 2 ends']);
  });

  it('runs the tasks of different keys side by side, a slow key holding up no other', async () => {
    const queue = new KeyedQueue();
    const log: string[] = [];
    const slow = deferred();
    const first = queue.run('call-1', logged(log, 'call-1', slow.promise));
    expect(await queue.run('call-2', logged(log, 'call-2'))).toBe('call-2');
    expect(log).toEqual(['call-1 starts', 'call-2 starts', 'call-2 ends']);

    slow.open();
    expect(await first).toBe('call-1');
  });

  it('rejects only the caller whose task failed, and goes on with the next task of that key', async () => {
    const queue = new KeyedQueue();
    const log: string[] = [];
    const boom = new Error('store down');
    const failed = queue.run('call-1', async () => {
      log.push('failing task runs');
      throw boom;
    });
    const next = queue.run('call-1', logged(log, 'next'));
    const other = queue.run('call-2', logged(log, 'other'));

    await expect(failed).rejects.toBe(boom);
    expect(await next).toBe('next');
    expect(await other).toBe('other');
    expect(log.indexOf('next starts')).toBeGreaterThan(log.indexOf('failing task runs'));
  });

  it('goes on with the next task of a key after one that throws before it returns a promise', async () => {
    const queue = new KeyedQueue();
    const boom = new Error('defect');
    const failed = queue.run('call-1', () => {
      throw boom;
    });
    const next = queue.run('call-1', async () => 'next');

    await expect(failed).rejects.toBe(boom);
    expect(await next).toBe('next');
  });

  it('keeps the order of a key whose first task finished while a later one is still running', async () => {
    const queue = new KeyedQueue();
    const log: string[] = [];
    const first = deferred();
    const second = deferred();
    const done = queue.run('call-1', logged(log, 'first', first.promise));
    const running = queue.run('call-1', logged(log, 'second', second.promise));
    first.open();
    await done;
    await settle();
    // a third task arriving now must wait for the second, though the first is long done
    const third = queue.run('call-1', logged(log, 'third'));
    await settle();
    expect(log).toEqual(['first starts', 'first ends', 'second starts']);

    second.open();
    await Promise.all([running, third]);
    expect(log).toEqual(['first starts', 'first ends', 'second starts', 'second ends', 'third starts', 'third ends']);
  });

  it('holds on to no key once its tasks have finished, whether they succeeded or failed', async () => {
    const queue = new KeyedQueue();
    const runs = Array.from({ length: 1000 }, (_, i) =>
      queue.run(`call-${i % 250}`, async () => {
        if (i % 3 === 0) throw new Error(`task ${i} failed`);
        return i;
      }),
    );
    const gate = deferred();
    const pending = queue.run('call-pending', () => gate.promise);
    await Promise.allSettled(runs);
    await settle();
    expect(keysHeld(queue)).toBe(1); // only the key with a task still running

    gate.open();
    await pending;
    await settle();
    expect(keysHeld(queue)).toBe(0);
  });

  it('resolves idle() once every task queued so far has run, also ones queued while it waited', async () => {
    const queue = new KeyedQueue();
    const log: string[] = [];
    const first = deferred();
    void queue.run('call-1', logged(log, 'first', first.promise));
    let idle = false;
    const waiting = queue.idle().then(() => (idle = true));
    await settle();
    const later = deferred();
    void queue.run('call-2', logged(log, 'later', later.promise));

    first.open();
    await settle();
    expect(idle).toBe(false);

    later.open();
    await waiting;
    expect(log).toEqual(['first starts', 'later starts', 'first ends', 'later ends']);
  });

  it('resolves idle() at once when nothing is queued, also after a task failed', async () => {
    const queue = new KeyedQueue();
    await queue.idle();
    await queue.run('call-1', async () => Promise.reject(new Error('failed'))).catch(() => undefined);
    await queue.idle();
    expect(keysHeld(queue)).toBe(0);
  });

  it('starts the task of an idle key at once, and a task that queues on its own key waits for itself', async () => {
    const queue = new KeyedQueue();
    const log: string[] = [];
    let inner: Promise<string> | undefined;
    const outer = queue.run('call-1', async () => {
      log.push('outer starts');
      // queued before the outer task's first await: it must still wait for the outer task to end
      inner = queue.run('call-1', logged(log, 'inner'));
      await settle();
      log.push('outer ends');
      return 'outer';
    });
    expect(log).toEqual(['outer starts']);
    expect(await outer).toBe('outer');
    expect(await inner).toBe('inner');
    expect(log).toEqual(['outer starts', 'outer ends', 'inner starts', 'inner ends']);
  });
});
