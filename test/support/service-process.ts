// `npm start` as a child process, for the tests that need a real process (signals, kills,
// its own memory): the same entry point a deployment runs.
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
