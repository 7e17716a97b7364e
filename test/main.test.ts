// `npm start`, the production entry point as deployed: the compiled service (dist/, built by this
// project's globalSetup) run by plain node, with the arguments of package.json's start script.
// It starts in seconds against a LiveKit (here the stand-in), serves, and drains on SIGTERM; a bad
// configuration stops it with one line. What counts as a bad configuration is in config.test.ts.
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { startLiveKitStandIn, type LiveKitStandIn } from '../dev/livekit-standin.js';

let standIn: LiveKitStandIn | null = null;
afterEach(async () => {
  await standIn?.close();
});

/** `npm start`'s command after its prestart build, e.g. `exec node --enable-source-maps dist/src/main.js`. */
const startScript = (JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> }).scripts.start ?? '';
const [shellExec, startCommand, ...startArgs] = startScript.split(/\s+/);

describe('npm start (dist/src/main.js)', () => {
  it('runs the compiled build with plain node, in place of the shell npm starts', () => {
    // exec: SIGTERM sent to npm reaches the service (npm passes it to its child, which a shell
    // running node as a child of its own would not).
    expect(shellExec).toBe('exec');
    expect(startCommand).toBe('node');
    expect(startArgs.at(-1)).toBe('dist/src/main.js');
    expect(startArgs.join(' ')).not.toContain('tsx');
  });

  it('listens, answers /healthz, logs no secret, and exits 0 on SIGTERM', async () => {
    standIn = await startLiveKitStandIn();
    const started = Date.now();
    const child = spawn(process.execPath, startArgs, {
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        LIVEKIT_URL: standIn.url,
        LIVEKIT_API_KEY: standIn.apiKey,
        LIVEKIT_API_SECRET: standIn.apiSecret,
        CONTROL_API_KEYS: 'main-test-key-0123456789',
        PORT: '0',
        HOST: '127.0.0.1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: Record<string, unknown>[] = [];
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const listening = new Promise<number>((resolve, reject) => {
      createInterface({ input: child.stdout }).on('line', (line) => {
        const parsed = JSON.parse(line) as Record<string, unknown>;
        lines.push(parsed);
        if (typeof parsed.port === 'number') resolve(parsed.port);
      });
      void exited.then((code) => reject(new Error(`exited early with ${code}`)));
    });
    const port = await listening;
    console.log(`npm start: listening after ${Date.now() - started} ms`);

    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(health.status).toBe(200);
    const calls = await fetch(`http://127.0.0.1:${port}/v1/calls`, { headers: { Authorization: 'Bearer main-test-key-0123456789' } });
    expect(calls.status).toBe(200);

    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    const text = JSON.stringify(lines);
    expect(text).toContain('stopped');
    expect(text).not.toContain(standIn.apiSecret);
    expect(text).not.toContain('main-test-key-0123456789');
  }, 30_000);

  it('exits non-zero with exactly one stderr line naming LIVEKIT_URL when LIVEKIT_URL is missing', () => {
    const started = Date.now();
    const result = spawnSync(process.execPath, startArgs, {
      cwd: join(import.meta.dirname, '..'),
      env: { PATH: process.env.PATH, HOME: process.env.HOME },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(result.error).toBeUndefined();
    expect(result.signal).toBeNull();
    expect(result.status).not.toBe(0);
    expect(result.status).not.toBeNull();
    expect(Date.now() - started).toBeLessThan(20_000);
    const lines = result.stderr.split('\n').filter((line) => line.trim() !== '');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('LIVEKIT_URL');
    expect(result.stdout).toBe('');
  });
});
