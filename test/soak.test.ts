// Soak: `npm start` under steady mixed load (inbound calls from signed webhooks, outbound calls
// through the Control API) for SOAK_SECONDS (15 in `npm test`; `SOAK_SECONDS=600 npm test` is the
// 10-minute run). The service's own heap and RSS (read from its /metrics) stay flat after
// warm-up, and no actor or timer outlives its call.
import { describe, expect, it } from 'vitest';
import type { Session } from '../src/calls/session.js';
import { startLiveKitStandIn } from './support/livekit-standin.js';
import { freePort } from './support/redis-server.js';
import { spawnService } from './support/service-process.js';
import { agentParticipant, sipParticipant } from './support/webhook-events.js';

const SECONDS = Number(process.env.SOAK_SECONDS ?? 15);
const CONCURRENCY = 8;
const KEY = 'soak-test-key-000000000001';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const mb = (bytes: number) => Math.round((bytes / 1024 / 1024) * 10) / 10;

function gauge(text: string, name: string): number {
  const match = new RegExp(`^${name} ([0-9.e+]+)$`, 'm').exec(text);
  return match ? Number(match[1]) : NaN;
}

describe('soak', () => {
  it(`keeps the service's memory flat and leaks no actor or timer over ${SECONDS} s of mixed load`, async () => {
    const standIn = await startLiveKitStandIn({ webhookUrl: 'http://127.0.0.1:1/webhook' });
    const port = await freePort();
    const child = spawnService({
        LIVEKIT_URL: standIn.url,
        LIVEKIT_API_KEY: standIn.apiKey,
        LIVEKIT_API_SECRET: standIn.apiSecret,
        SIP_OUTBOUND_TRUNK_ID: 'ST_soak',
        CONTROL_API_KEYS: KEY,
        PORT: String(port),
        HOST: '127.0.0.1',
        LOG_LEVEL: 'warn',
        MAX_RETAINED_CALLS: '100',
        ENDING_GRACE_S: '1',
        AGENT_GRACE_S: '1',
        MAX_CONCURRENT_CALLS: '1000',
        CALLS_PER_SECOND: '1000',
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const url = `http://127.0.0.1:${port}`;
    try {
      for (let i = 0; ; i++) {
        if ((await fetch(`${url}/healthz`).then((r) => r.ok, () => false)) || i > 200) break;
        await sleep(100);
      }
      standIn.webhooks?.setUrl(`${url}/webhook`);
      const api = (path: string, init: RequestInit = {}) =>
        fetch(`${url}${path}`, { ...init, headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json', ...init.headers } });

      let calls = 0;
      let stop = false;
      const worker = async (w: number) => {
        for (let i = 0; !stop; i++) {
          const n = w * 1_000_000 + i;
          if (i % 2 === 0) {
            const phone = `+316${String(10_000_000 + (n % 89_999_999))}`;
            const room = `call-_${phone}_${n}`;
            standIn.joinParticipant(room, sipParticipant({ phoneNumber: phone, callStatus: 'ringing' }));
            standIn.joinParticipant(room, agentParticipant({ identity: `agent-${n}` }));
            await sleep(20);
            standIn.leaveParticipant(room, `sip_${phone}`, 'CLIENT_INITIATED');
            standIn.finishRoom(room);
            await standIn.webhooks?.idle();
          } else {
            const { id } = (await (await api('/v1/calls', { method: 'POST', body: JSON.stringify({ to: '+31612345678' }) })).json()) as Session;
            await sleep(20);
            await api(`/v1/calls/${id}/hangup`, { method: 'POST' });
          }
          calls++;
        }
      };
      // The stand-in keeps every request and delivery for tests; a long soak must not fill it.
      const trim = setInterval(() => {
        standIn.requests.splice(0, standIn.requests.length);
        standIn.webhooks?.deliveries.splice(0, standIn.webhooks.deliveries.length);
        for (const [name, room] of standIn.rooms) if (room.participants.size === 0) standIn.rooms.delete(name);
      }, 1000);

      const samples: { heap: number; rss: number }[] = [];
      const sample = async () => {
        const text = await (await fetch(`${url}/metrics`)).text();
        samples.push({ heap: gauge(text, 'control_plane_nodejs_heap_size_used_bytes'), rss: gauge(text, 'control_plane_process_resident_memory_bytes') });
      };
      const workers = Array.from({ length: CONCURRENCY }, (_, w) => worker(w));
      const started = Date.now();
      while (Date.now() - started < SECONDS * 1000) {
        await sleep(1000);
        await sample();
      }
      stop = true;
      await Promise.all(workers);
      clearInterval(trim);
      await sleep(2500); // the last calls' ending grace

      const text = await (await fetch(`${url}/metrics`)).text();
      const liveActors = gauge(text, 'control_plane_live_actors');
      const armedTimers = gauge(text, 'control_plane_armed_timers');
      // Warm-up: the first half, in which the retained final calls fill up to MAX_RETAINED_CALLS.
      const warm = samples.slice(Math.floor(samples.length / 2));
      const first = warm[0] as { heap: number; rss: number };
      const peak = warm.reduce((max, s) => ({ heap: Math.max(max.heap, s.heap), rss: Math.max(max.rss, s.rss) }), first);
      const last = warm.at(-1) as { heap: number; rss: number };
      console.log(
        `soak: ${calls} calls in ${SECONDS} s (${Math.round(calls / SECONDS)}/s); after warm-up heap ${mb(first.heap)} → ${mb(last.heap)} MB ` +
          `(peak ${mb(peak.heap)}), rss ${mb(first.rss)} → ${mb(last.rss)} MB (peak ${mb(peak.rss)}); live actors ${liveActors}, armed timers ${armedTimers}`,
      );
      expect(calls).toBeGreaterThan(SECONDS * 10);
      expect(liveActors).toBe(0);
      expect(armedTimers).toBe(0);
      // Retention caps the final calls kept: the heap must not grow with the number of calls.
      expect(last.heap).toBeLessThan(first.heap * 1.5 + 16 * 1024 * 1024);
    } finally {
      child.kill('SIGTERM');
      await exited;
      await standIn.close();
    }
  }, (SECONDS + 90) * 1000);
});
