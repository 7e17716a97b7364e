// Start-up time and idle memory: the service against a bare Koa app, each run a fresh process.
//
//   tsx bench/startup.ts [--runs 7] [--settle-s 3]     (Linux: reads /proc)
//
// The service runs as `npm start` runs it after its build (`node --enable-source-maps
// dist/src/main.js`, in-memory store, LiveKit = the stand-in); the baseline is
// bench/baseline-server.mjs (Koa 3 + @koa/router with the webhook receiver and /healthz). They
// alternate, after one uncounted run of each. Start-up = spawn until the first `GET /healthz`
// answering 200; idle RSS = VmRSS --settle-s seconds later.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startLiveKitStandIn } from '../dev/livekit-standin.js';
import { freePort } from '../dev/redis-server.js';
import { argument, BENCH_API_KEY, BENCH_API_SECRET, BENCH_CONTROL_KEY, benchDir, finish, fmt, median, out, sleep, textTable } from './common.js';
import { build, root, rssMiB } from './servers.js';

export interface StartupFigures {
  /** medians */
  startupMs: number;
  idleRssMiB: number;
  startupRange: [number, number];
  rssRange: [number, number];
}

export interface StartupResult {
  runs: number;
  settleS: number;
  baseline: StartupFigures;
  service: StartupFigures;
}

type Target = 'baseline' | 'service';

async function measure(target: Target, livekitUrl: string, settleMs: number): Promise<{ startupMs: number; rssMiB: number }> {
  const port = await freePort();
  const args =
    target === 'baseline'
      ? [join(benchDir, 'baseline-server.mjs'), String(port), BENCH_API_KEY, BENCH_API_SECRET]
      : ['--enable-source-maps', join(root, 'dist', 'src', 'main.js')];
  const started = performance.now();
  const child = spawn(process.execPath, args, {
    cwd: root,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      NODE_ENV: 'production',
      LIVEKIT_URL: livekitUrl,
      LIVEKIT_API_KEY: BENCH_API_KEY,
      LIVEKIT_API_SECRET: BENCH_API_SECRET,
      CONTROL_API_KEYS: BENCH_CONTROL_KEY,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
    },
    stdio: 'ignore',
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let startupMs = Number.NaN;
  while (child.exitCode === null && Number.isNaN(startupMs)) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`);
      if (res.ok) startupMs = performance.now() - started;
      await res.arrayBuffer();
    } catch {
      await sleep(5);
    }
  }
  if (Number.isNaN(startupMs)) throw new Error(`the ${target} exited before answering /healthz`);
  await sleep(settleMs);
  const rss = rssMiB(child.pid);
  child.kill('SIGTERM');
  await exited;
  return { startupMs, rssMiB: rss };
}

function figures(samples: { startupMs: number; rssMiB: number }[]): StartupFigures {
  const startup = samples.map((s) => s.startupMs);
  const rss = samples.map((s) => s.rssMiB);
  return {
    startupMs: median(startup),
    idleRssMiB: median(rss),
    startupRange: [Math.min(...startup), Math.max(...startup)],
    rssRange: [Math.min(...rss), Math.max(...rss)],
  };
}

async function main(): Promise<void> {
  const runs = Number(argument('runs', '7'));
  const settleS = Number(argument('settle-s', '3'));
  build();
  const standIn = await startLiveKitStandIn({ apiKey: BENCH_API_KEY, apiSecret: BENCH_API_SECRET });
  const samples: Record<Target, { startupMs: number; rssMiB: number }[]> = { baseline: [], service: [] };
  try {
    for (const target of ['baseline', 'service'] as const) await measure(target, standIn.url, 0);
    for (let run = 0; run < runs; run++) {
      // Alternate the order so neither always runs second.
      for (const target of run % 2 === 0 ? (['baseline', 'service'] as const) : (['service', 'baseline'] as const)) {
        samples[target].push(await measure(target, standIn.url, settleS * 1000));
      }
    }
  } finally {
    await standIn.close();
  }
  const result: StartupResult = { runs, settleS, baseline: figures(samples.baseline), service: figures(samples.service) };
  out(`start-up and idle: ${runs} runs each, fresh processes, idle RSS ${settleS} s after /healthz first answered (medians; min-max)`);
  const row = (label: string, f: StartupFigures): string[] => [
    label,
    `${fmt(f.startupMs, 0)} (${fmt(f.startupRange[0], 0)}-${fmt(f.startupRange[1], 0)})`,
    `${fmt(f.idleRssMiB, 0)} (${fmt(f.rssRange[0], 0)}-${fmt(f.rssRange[1], 0)})`,
  ];
  for (const line of textTable(['process', 'start-up ms', 'idle RSS MiB'], [row('baseline (bare Koa)', result.baseline), row('service', result.service)])) out(`  ${line}`);
  out(`  ratio service/baseline: start-up ${fmt(result.service.startupMs / result.baseline.startupMs)}, idle RSS ${fmt(result.service.idleRssMiB / result.baseline.idleRssMiB)}`);
  await finish(result);
}

await main();
