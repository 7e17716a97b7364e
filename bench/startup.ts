// Start-up time and idle memory of the service process, each run a fresh process:
//
//   npx tsx bench/startup.ts [--runs 7] [--settle 3]     (Linux: reads /proc)
//
// Compares `tsx src/main.ts` (how the service ran before it had a build) with the command
// `npm start` runs after its build (package.json: `exec node --enable-source-maps dist/src/main.js`;
// this script runs `npm run build` first),
// interleaved, after one uncounted warm-up run of each (which also fills tsx's transform cache).
// Start-up = spawn until the first `GET /healthz` answering 200. Idle RSS = VmRSS, --settle seconds
// later, summed over the process and its children (the tsx command runs the service in a child
// node process). npm itself, when the service runs under `npm start`, is not counted.
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { freePort } from '../dev/redis-server.js';
import { startLiveKitStandIn } from '../dev/livekit-standin.js';
import { BENCH_CONTROL_KEY, fmt, median, out, sleep, textTable } from './common.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '7' }, settle: { type: 'string', default: '3' } } });
const runs = Number(values.runs);
const settleMs = Number(values.settle) * 1000;

const root = join(import.meta.dirname, '..');
const { scripts } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
const [, command, ...startArgs] = (scripts.start ?? '').split(/\s+/);
if (command !== 'node') throw new Error(`expected the start script to be "exec node ...", got ${JSON.stringify(scripts.start)}`);
execFileSync('npm', ['run', 'build'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });

interface Variant {
  label: string;
  args: string[];
}
const variants: Variant[] = [
  { label: 'tsx src/main.ts', args: [join(root, 'node_modules/tsx/dist/cli.mjs'), 'src/main.ts'] },
  { label: ['node', ...startArgs].join(' '), args: startArgs },
];

/** VmRSS in bytes of pid and every process below it. */
function treeRss(pid: number): number {
  const parentOf = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // pid (comm) state ppid ...: comm may contain spaces, so read after the last ')'.
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      parentOf.set(Number(name), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // the process ended meanwhile
    }
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) for (const [child, parent] of parentOf) if (parent === tree[i]) tree.push(child);
  let bytes = 0;
  for (const member of tree) {
    const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${member}/status`, 'utf8'));
    bytes += Number(match?.[1] ?? 0) * 1024;
  }
  return bytes;
}

const standIn = await startLiveKitStandIn();

async function measure(variant: Variant): Promise<{ startupMs: number; rssBytes: number }> {
  const port = await freePort();
  const started = performance.now();
  const child = spawn(process.execPath, variant.args, {
    cwd: root,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      LIVEKIT_URL: standIn.url,
      LIVEKIT_API_KEY: standIn.apiKey,
      LIVEKIT_API_SECRET: standIn.apiSecret,
      CONTROL_API_KEYS: BENCH_CONTROL_KEY,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
    },
    stdio: 'ignore',
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let startupMs = NaN;
  while (child.exitCode === null && Number.isNaN(startupMs)) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`);
      if (res.ok) startupMs = performance.now() - started;
      await res.arrayBuffer();
    } catch {
      await sleep(5);
    }
  }
  if (Number.isNaN(startupMs)) throw new Error(`${variant.label} exited before answering /healthz`);
  await sleep(settleMs);
  const rssBytes = treeRss(child.pid!);
  child.kill('SIGTERM');
  await exited;
  return { startupMs, rssBytes };
}

const results = variants.map(() => ({ startupMs: [] as number[], rssBytes: [] as number[] }));
for (const variant of variants) await measure(variant);
for (let run = 0; run < runs; run++) {
  // Alternate the order so neither variant always runs second.
  const order = run % 2 === 0 ? [0, 1] : [1, 0];
  for (const index of order) {
    const figures = await measure(variants[index]!);
    results[index]!.startupMs.push(figures.startupMs);
    results[index]!.rssBytes.push(figures.rssBytes);
  }
  out(`run ${run + 1}/${runs} done`);
}
await standIn.close();

out(`\nnode ${process.version}, ${runs} runs each, idle RSS ${settleMs / 1000} s after /healthz first answered (medians; min-max)`);
const mb = (bytes: number): string => fmt(bytes / 1024 / 1024, 1);
for (const line of textTable(
  ['command', 'start-up ms', 'idle RSS MB'],
  variants.map((variant, i) => {
    const { startupMs, rssBytes } = results[i]!;
    return [
      variant.label,
      `${fmt(median(startupMs), 0)} (${fmt(Math.min(...startupMs), 0)}-${fmt(Math.max(...startupMs), 0)})`,
      `${mb(median(rssBytes))} (${mb(Math.min(...rssBytes))}-${mb(Math.max(...rssBytes))})`,
    ];
  }),
))
  out(line);
