// What the process-against-process webhook benchmarks share (bench/webhook-ingest.ts,
// bench/cpu-budget.ts): the compiled service and the baseline started as servers of their own, files
// of signed webhooks, and wrk replaying them (bench/replay.lua).
import { execFileSync, fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { signWebhook } from '../dev/webhook-sender.js';
import { BENCH_API_KEY, BENCH_API_SECRET, BENCH_CONTROL_KEY, benchDir, sleep } from './common.js';
import { callEvents, EVENTS_PER_CALL } from './inbound-calls.js';
import type { RoundRequest, RoundResult } from './load-generator.js';

export const CONNECTIONS = 50;
/** calls whose events interleave: a call's next event is sent this many calls later */
const WINDOW = 2000;
export const root = join(benchDir, '..');

/** Builds dist/ as `npm start` would (tsc -b: incremental, quick when nothing changed). */
export function build(): void {
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: 'inherit' });
}

/** Writes `calls` calls' webhooks, signed now, as "<authorization>\t<body>" lines in replay order. */
export async function writeRequests(file: string, calls: number): Promise<number> {
  const lines: string[] = [];
  let bytes = 0;
  for (let start = 0; start < calls; start += WINDOW) {
    const window = Array.from({ length: Math.min(WINDOW, calls - start) }, () => callEvents());
    for (let event = 0; event < EVENTS_PER_CALL; event++) {
      for (const call of window) {
        const body = call.bodies[event] as string;
        bytes += Buffer.byteLength(body);
        lines.push(`${await signWebhook(body, { apiKey: BENCH_API_KEY, apiSecret: BENCH_API_SECRET })}\t${body}`);
      }
    }
  }
  writeFileSync(file, `${lines.join('\n')}\n`);
  return bytes / lines.length;
}

export interface WrkRun {
  requests: number;
  throughput: number;
  p50: number;
  p99: number;
  max: number;
  non2xx: number;
  cpuPct: number;
}

const toMs = (value: string, unit: string): number => Number(value) * ({ us: 0.001, ms: 1, s: 1000, m: 60_000 }[unit] ?? Number.NaN);

/** One wrk run; its CPU time comes from the shell's `times` (children's user and system time). */
export function wrk(port: number, file: string, start: number, seconds: number): WrkRun {
  const script = join(benchDir, 'replay.lua');
  const command = `wrk -t1 -c${CONNECTIONS} -d${seconds}s --latency -s '${script}' http://127.0.0.1:${port} -- '${file}' ${start}; times`;
  const result = spawnSync('bash', ['-c', command], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`wrk failed: ${result.stderr || result.stdout}`);
  const text = result.stdout;
  const latency = (label: string): number => {
    const match = new RegExp(`^\\s*${label}\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(text);
    return match ? toMs(match[1] as string, match[2] as string) : Number.NaN;
  };
  const max = /^\s*Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s|m)/m.exec(text);
  const requests = Number(/(\d+) requests in/.exec(text)?.[1] ?? Number.NaN);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1] ?? 0);
  // `times`: the shell's own line, then its children's: "0m1.234s 0m0.567s 0m2.345s 0m0.678s"
  const times = text.trim().split('\n').at(-1)?.split(/\s+/) ?? [];
  const seconds_ = (value: string | undefined): number => {
    const match = /(\d+)m([\d.]+)s/.exec(value ?? '');
    return match ? Number(match[1]) * 60 + Number(match[2]) : Number.NaN;
  };
  return {
    requests,
    throughput: Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1] ?? Number.NaN),
    p50: latency('50%'),
    p99: latency('99%'),
    max: max ? toMs(max[1] as string, max[2] as string) : Number.NaN,
    non2xx,
    cpuPct: ((seconds_(times[0]) + seconds_(times[1])) / seconds) * 100,
  };
}

export function rssMiB(pid: number | undefined): number {
  try {
    const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb ? Number(kb) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

export async function waitHealthy(port: number, child: ChildProcess, log: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (child.exitCode !== null) throw new Error(`the server exited with ${child.exitCode} (log: ${log})`);
    const ok = await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false);
    if (ok) return;
    await sleep(25);
  }
  throw new Error(`the server did not answer /healthz (log: ${log})`);
}

export async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}


/**
 * Starts the baseline (bench/baseline-server.mjs) or the compiled service on `port`, its output
 * appended to `log`; `nodeArgs` go before the entry point, `env` adds to the service's.
 */
export async function startServer(
  target: 'baseline' | 'service',
  options: { port: number; log: string; livekitUrl: string; nodeArgs?: string[]; env?: Record<string, string> },
): Promise<ChildProcess> {
  const { port, log, nodeArgs = [] } = options;
  const logFd = openSync(log, 'a');
  const child =
    target === 'baseline'
      ? spawn(process.execPath, [...nodeArgs, join(benchDir, 'baseline-server.mjs'), String(port), BENCH_API_KEY, BENCH_API_SECRET], {
          cwd: root,
          stdio: ['ignore', logFd, logFd],
          env: { PATH: process.env.PATH, HOME: process.env.HOME, NODE_ENV: 'production', ...options.env },
        })
      : spawn(process.execPath, [...nodeArgs, '--enable-source-maps', join(root, 'dist', 'src', 'main.js')], {
          cwd: root,
          stdio: ['ignore', logFd, logFd],
          env: {
            PATH: process.env.PATH,
            HOME: process.env.HOME,
            NODE_ENV: 'production',
            PORT: String(port),
            HOST: '127.0.0.1',
            LIVEKIT_URL: options.livekitUrl,
            LIVEKIT_API_KEY: BENCH_API_KEY,
            LIVEKIT_API_SECRET: BENCH_API_SECRET,
            CONTROL_API_KEYS: BENCH_CONTROL_KEY,
            LOG_LEVEL: 'info',
            RECONCILE_INTERVAL_S: '0',
            ...options.env,
          },
        });
  try {
    await waitHealthy(port, child, log);
  } catch (err) {
    await stop(child);
    throw err;
  }
  return child;
}

/** Forks a script and waits for its first message that has `key` (the load generator's module says `ready` wherever it is imported). */
export function forkChild(script: string, args: string[], key: string): Promise<{ child: ChildProcess; hello: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const child = fork(script, args, { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code}`)));
    const onMessage = (hello: unknown): void => {
      if (typeof hello !== 'object' || hello === null || !(key in hello)) return;
      child.off('message', onMessage);
      resolve({ child, hello: hello as Record<string, unknown> });
    };
    child.on('message', onMessage);
  });
}

/** Has the load generator (bench/load-generator.ts, forked with forkChild) send `calls` fresh calls' webhooks to `port`. */
export function generate(generator: ChildProcess, port: number, calls: number, load: { connections: number; window: number }): Promise<RoundResult> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`load generator exited with ${code}`));
    generator.once('exit', onExit);
    const onMessage = (message: { type: string }) => {
      if (message.type !== 'done') return;
      generator.off('message', onMessage);
      generator.off('exit', onExit);
      resolve(message as RoundResult);
    };
    generator.on('message', onMessage);
    const request: RoundRequest = { type: 'round', port, calls, ...load, apiKey: BENCH_API_KEY, apiSecret: BENCH_API_SECRET };
    generator.send(request);
  });
}

/** A sample's value from the server's /metrics (the first line starting with `name`). */
export async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(name));
  return line ? Number(line.split(' ').at(-1)) : Number.NaN;
}
