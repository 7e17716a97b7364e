// The live heap of a child process, measured from outside: a full garbage collection, then V8's
// heap usage, over the inspector protocol of a child started with `--inspect=127.0.0.1:0`.
// `nodejs_heap_size_used_bytes` in /metrics includes garbage not yet collected, so it moves with
// V8's collection schedule (which differs between Node versions); the heap after a full GC is
// what the program actually keeps. Production never opens the inspector: only tests start the
// service this way.
import type { ChildProcess } from 'node:child_process';
import WebSocket from 'ws';

// Evaluated in the child: the used size of the heap spaces that hold the program's objects.
const LIVE_OBJECTS = `process.getBuiltinModule('node:v8').getHeapSpaceStatistics()
  .filter((space) => space.space_name === 'old_space' || space.space_name === 'large_object_space')
  .reduce((sum, space) => sum + space.space_used_size, 0)`;

export interface HeapProbe {
  /**
   * Bytes still reachable after a forced full collection, in the spaces where a program's own
   * objects live: old space and large objects. Code space (grows while the JIT warms up, for a
   * minute or so) and new space (requests in flight) are left out.
   */
  liveHeap(): Promise<number>;
  close(): void;
}

/** Reads the inspector's address from the child's stderr ("Debugger listening on ws://…"). */
export function inspectorUrl(child: ChildProcess, timeoutMs = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => fail(new Error(`the child printed no inspector address within ${timeoutMs} ms: ${seen.slice(-500)}`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      seen += chunk.toString('utf8');
      const match = /Debugger listening on (ws:\/\/\S+)/.exec(seen);
      if (match?.[1]) done(() => resolve(match[1] as string));
    };
    const onExit = (code: number | null) => fail(new Error(`the child exited (${code}) before its inspector listened: ${seen.slice(-500)}`));
    const done = (then: () => void) => {
      clearTimeout(timer);
      child.stderr?.off('data', onData);
      child.off('exit', onExit);
      then();
    };
    const fail = (err: Error) => done(() => reject(err));
    if (!child.stderr) return fail(new Error('the child was started without a stderr pipe'));
    child.stderr.on('data', onData);
    child.once('exit', onExit);
  });
}

export async function connectHeapProbe(url: string): Promise<HeapProbe> {
  const socket = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  let nextId = 1;
  const pending = new Map<number, { resolve: (result: unknown) => void; reject: (err: Error) => void }>();
  socket.on('message', (data) => {
    const message = JSON.parse(data.toString()) as { id?: number; result?: unknown; error?: { message: string } };
    const waiter = message.id === undefined ? undefined : pending.get(message.id);
    if (!waiter || message.id === undefined) return; // notifications: no domain is enabled, so none expected
    pending.delete(message.id);
    if (message.error) waiter.reject(new Error(`inspector: ${message.error.message}`));
    else waiter.resolve(message.result);
  });
  socket.on('close', () => {
    for (const waiter of pending.values()) waiter.reject(new Error('inspector connection closed'));
    pending.clear();
  });
  const call = <T>(method: string, params?: object): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve: resolve as (result: unknown) => void, reject });
      socket.send(JSON.stringify({ id, method, params }));
    });

  return {
    async liveHeap() {
      await call('HeapProfiler.collectGarbage');
      const { result } = await call<{ result: { value: number } }>('Runtime.evaluate', { expression: LIVE_OBJECTS, returnByValue: true });
      return result.value;
    },
    close() {
      socket.close();
    },
  };
}
