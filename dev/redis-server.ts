// A Redis for tests: REDIS_URL when set, else a private redis-server child process on a free
// loopback port (no persistence), so tests never touch a Redis they did not start.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RedisHandle {
  url: string;
  /** the port of a server this module started; null for REDIS_URL */
  port: number | null;
  stop(): Promise<void>;
}

export const NO_REDIS_MESSAGE =
  'Redis tests need a Redis: set REDIS_URL or install redis-server (Debian: apt-get install redis-server)';

/** Whether a `redis-server` binary is on PATH. */
export function redisServerAvailable(): boolean {
  const probe = spawnSync('redis-server', ['--version'], { stdio: 'ignore' });
  return !probe.error && probe.status === 0;
}

/** REDIS_URL when set (stop does nothing), else a redis-server of its own. */
export async function useRedis(): Promise<RedisHandle> {
  const url = process.env.REDIS_URL;
  if (url) return { url, port: null, stop: async () => undefined };
  if (!redisServerAvailable()) throw new Error(NO_REDIS_MESSAGE);
  return startRedisOnPort(await freePort());
}

/** A loopback port nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Starts redis-server on this port (again, for outage tests) and waits until it answers PING. */
export async function startRedisOnPort(port: number): Promise<RedisHandle> {
  if (!redisServerAvailable()) throw new Error(NO_REDIS_MESSAGE);
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 5000;
  while (!(await pingOnce(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stopRedis(child, exited);
      throw new Error(`redis-server on port ${port} did not answer PING within 5 s${stderr ? `: ${stderr.trim()}` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return { url: `redis://127.0.0.1:${port}`, port, stop: () => stopRedis(child, exited) };
}

/** Kills a redis-server child and waits for it to exit (SIGKILL after 2 s). */
export async function stopRedis(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const killer = setTimeout(() => child.kill('SIGKILL'), 2000);
  await exited;
  clearTimeout(killer);
}

function pingOnce(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const finish = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => finish(false));
    socket.once('error', () => finish(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data: Buffer) => finish(data.toString().startsWith('+PONG')));
  });
}

/**
 * A redis-server that keeps its data across a restart (append-only file in `dir`), for tests that
 * stop Redis and bring it back. `stop` kills it (SIGKILL: nothing is flushed that was not fsynced).
 */
export async function startPersistentRedis(port: number, dir: string): Promise<{ stop(): Promise<void> }> {
  if (!redisServerAvailable()) throw new Error(NO_REDIS_MESSAGE);
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--dir', dir],
    { stdio: 'ignore' },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 5000;
  while (!(await pingOnce(port))) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer PING within 5 s`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return {
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** A Redis on a port of its own that a test stops and starts again, keeping its data. */
export async function restartableRedis(): Promise<{ url: string; start(): Promise<void>; stop(): Promise<void> }> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'cp-redis-'));
  let server: { stop(): Promise<void> } | null = null;
  return {
    url: `redis://127.0.0.1:${port}`,
    async start() {
      server = await startPersistentRedis(port, dir);
    },
    async stop() {
      await server?.stop();
      server = null;
    },
  };
}
