// The service as a child process, for the tests that need a real process (signals, kills,
// its own memory): the entry point a deployment runs (src/main.ts), loaded through tsx rather
// than from the compiled dist/ that `npm start` runs, so these tests need no build, run on the
// sources as they are, and can preload TypeScript (test/support/inject-leak.ts patches the
// store class these sources define). test/main.test.ts covers the compiled build itself.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Writable } from 'node:stream';

export interface SpawnOptions {
  /** receives the child's stdout and stderr */
  output?: Writable;
  /** node flags before the entry point (e.g. `--inspect=127.0.0.1:0` for a heap probe) */
  nodeArgs?: readonly string[];
}

export function spawnService(env: Record<string, string | undefined>, options: SpawnOptions = {}): ChildProcess {
  const { output, nodeArgs = [] } = options;
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', 'src/main.ts'], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    // stderr is piped when node flags are given: the inspector prints its address there.
    stdio: ['ignore', output ? 'pipe' : 'ignore', output || nodeArgs.length > 0 ? 'pipe' : 'ignore'],
  });
  if (output) {
    child.stdout?.pipe(output);
    child.stderr?.pipe(output);
  }
  return child;
}

/**
 * What a replica on the tests' shared Redis (REDIS_URL, from the global setup) needs: the LiveKit
 * stand-in, a Control API key, the key prefix the replicas share and a port on 127.0.0.1.
 */
export function replicaEnv(
  standIn: { url: string; apiKey: string; apiSecret: string },
  replica: { controlApiKey: string; keyPrefix: string; port: number },
): Record<string, string | undefined> {
  return {
    LIVEKIT_URL: standIn.url,
    LIVEKIT_API_KEY: standIn.apiKey,
    LIVEKIT_API_SECRET: standIn.apiSecret,
    CONTROL_API_KEYS: replica.controlApiKey,
    REDIS_URL: process.env.REDIS_URL,
    REDIS_KEY_PREFIX: replica.keyPrefix,
    PORT: String(replica.port),
    HOST: '127.0.0.1',
  };
}

/** Waits until the service on `port` answers /readyz 200; `logs` says where to look when it does not. */
export async function waitReady(port: number, logs: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok, () => false))) {
    if (Date.now() > deadline) throw new Error(`the service on port ${port} did not start; see ${logs}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** SIGKILL, and wait for the process to be gone (at once when it is gone already). */
export async function killNow(child: ChildProcess): Promise<void> {
  // A process killed by a signal has no exit code, only its signal.
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}
