// `npm start` as a child process, for the tests that need a real process (signals, kills,
// its own memory): the same entry point a deployment runs.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Writable } from 'node:stream';

export function spawnService(env: Record<string, string | undefined>, output?: Writable): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['ignore', output ? 'pipe' : 'ignore', output ? 'pipe' : 'ignore'],
  });
  if (output) {
    child.stdout?.pipe(output);
    child.stderr?.pipe(output);
  }
  return child;
}
