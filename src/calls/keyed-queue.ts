// Runs tasks one at a time per key, in arrival order: one writer per call (and per room while
// webhooks decide which call a room belongs to). Keys with nothing pending hold no memory.
export class KeyedQueue {
  private readonly tails = new Map<string, Promise<void>>();

  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key);
    // The key's new tail is in place before the task starts, so a task that queues on its own key
    // waits for itself to finish, also when it starts at once.
    let settle!: () => void;
    const tail = new Promise<void>((resolve) => {
      settle = resolve;
    });
    this.tails.set(key, tail);
    // A key with nothing pending starts its task at once, without waiting a tick.
    const result = previous ? previous.then(task, task) : start(task);
    const done = (): void => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
      settle();
    };
    result.then(done, done);
    return result;
  }

  /** Resolves once everything queued so far has run. */
  async idle(): Promise<void> {
    while (this.tails.size > 0) await Promise.all([...this.tails.values()]);
  }
}

function start<T>(task: () => Promise<T>): Promise<T> {
  try {
    return task();
  } catch (err) {
    return Promise.reject(err);
  }
}
