// Helpers shared by the benchmark parts: statistics, output, the service's configuration and
// logger for a benchmark, and running a part in a child process that reports back over IPC.
import { fork } from 'node:child_process';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { loadConfig, type Config, type Env } from '../src/config.js';
import { createLogger, type Logger } from '../src/obs/logger.js';

/** One line to stdout (the project's lint rules keep console.log out of non-script code). */
export function out(line = ''): void {
  process.stdout.write(`${line}\n`);
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

export function latencySummary(samples: Float64Array | number[]): { p50: number; p99: number; max: number; mean: number } {
  const sorted = Float64Array.from(samples).sort();
  let sum = 0;
  for (const value of sorted) sum += value;
  return {
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted.length ? (sorted[sorted.length - 1] as number) : Number.NaN,
    mean: sorted.length ? sum / sorted.length : Number.NaN,
  };
}

export function fmt(value: number, digits = 2): string {
  if (!Number.isFinite(value)) return String(value);
  return value.toFixed(digits);
}

export function fmtInt(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

export function verdict(met: boolean): string {
  return met ? 'met' : 'MISSED';
}

/** Plain-text table with aligned columns. */
export function textTable(headers: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)];
}

export function markdownTable(headers: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
  return [line(headers), line(headers.map(() => '---')), ...rows.map(line)];
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The value after `--name` on the command line (`--calls 1000`), or `fallback`. */
export function argument(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 ? (process.argv[index + 1] ?? fallback) : fallback;
}

export const BENCH_API_KEY = 'devkey';
export const BENCH_API_SECRET = 'bench-livekit-secret-0123456789abcdef';
export const BENCH_CONTROL_KEY = 'bench-control-api-key-0001';

/** The service's configuration for a benchmark: production defaults, LiveKit = the stand-in. */
export function benchConfig(livekitUrl: string, env: Env = {}): Config {
  return loadConfig({
    LIVEKIT_URL: livekitUrl,
    LIVEKIT_API_KEY: BENCH_API_KEY,
    LIVEKIT_API_SECRET: BENCH_API_SECRET,
    CONTROL_API_KEYS: BENCH_CONTROL_KEY,
    LOG_LEVEL: 'info',
    HOST: '127.0.0.1',
    PORT: '0',
    ...env,
  });
}

export interface BenchLog {
  logger: Logger;
  path: string;
  /** resolves once every line written so far has reached the file */
  drain(): Promise<void>;
  /** drains and closes the file */
  close(): Promise<void>;
}

/** The production logger (info level, masking, redaction), writing to a file under os.tmpdir() (removed on close unless BENCH_KEEP_LOGS=1). */
export function fileLogger(name: string): BenchLog {
  const path = join(tmpdir(), `control-plane-bench-${name}-${process.pid}.log`);
  // pino's own file destination (SonicBoom, asynchronous writes), as `pino.destination(path)`.
  const destination = pino.destination({ dest: path, sync: false });
  const state = destination as unknown as { _writing: boolean; _len: number; fd: number };
  const drain = async (): Promise<void> => {
    while (state.fd < 0 || state._writing || state._len > 0) await sleep(5);
  };
  return {
    logger: createLogger({ level: 'info', destination }),
    path,
    drain,
    async close() {
      await drain();
      const closed = new Promise<void>((resolve) => destination.once('close', () => resolve()));
      destination.end();
      await closed;
      // The logs of a whole run are hundreds of MiB: kept only on request.
      if (process.env.BENCH_KEEP_LOGS !== '1') rmSync(path, { force: true });
    },
  };
}

/**
 * Removes a part's scratch files: its webhook files always, the servers' logs (and CPU profiles)
 * unless BENCH_KEEP_LOGS=1 (a full run writes about a GiB of both under the OS temp directory).
 */
export function removeScratch(files: { data?: string[]; logs?: string[] }): void {
  for (const path of files.data ?? []) rmSync(path, { force: true });
  if (process.env.BENCH_KEEP_LOGS !== '1') for (const path of files.logs ?? []) rmSync(path, { force: true });
}

/** How a part names its server log: where it is while the part runs, and whether it stays. */
export const logNote = (path: string): string => `${path} (removed at the end unless BENCH_KEEP_LOGS=1)`;

/** Lets I/O callbacks run (a loop of resolved promises never leaves the microtask queue). */
export const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

// ---------------------------------------------------------------------------------------------
// Parts as child processes

interface ResultMessage {
  type: 'bench-result';
  result: unknown;
}

/** Sends a part's result to bench/run.ts when it runs as a child; then exits. */
export async function finish(result: unknown): Promise<never> {
  if (process.send) {
    const message: ResultMessage = { type: 'bench-result', result };
    await new Promise<void>((resolve) => process.send?.(message, undefined, {}, () => resolve()));
  }
  process.exit(0);
}

export const benchDir = fileURLToPath(new URL('.', import.meta.url));

/** Runs `bench/<file>` in a child Node process (TypeScript through tsx) and returns its result. */
export function runPart<T>(file: string, args: string[] = [], nodeFlags: string[] = []): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = fork(join(benchDir, file), args, {
      execArgv: ['--import', 'tsx', ...nodeFlags],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let result: { value: T } | null = null;
    child.on('message', (message: ResultMessage) => {
      if (message?.type === 'bench-result') result = { value: message.result as T };
    });
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (result) resolve(result.value);
      else reject(new Error(`bench/${file} exited (${signal ?? code}) without a result`));
    });
  });
}

