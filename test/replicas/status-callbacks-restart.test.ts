// A single service on Redis that is killed while its status callbacks are still pending (the
// customer's server was down): the next start of the service sends them, in order, nothing lost.
import type { ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Session } from '../../src/http/session.js';
import { startLiveKitStandIn, type LiveKitStandIn } from '../../dev/livekit-standin.js';
import { freePort } from '../../dev/redis-server.js';
import { startStatusCallbackReceiver, type StatusCallbackReceiver } from '../../dev/status-callback-receiver.js';
import { agentParticipant, sipParticipant } from '../../dev/webhook-events.js';
import { killNow, replicaEnv, spawnService, waitReady } from '../support/service-process.js';

const KEY = 'restart-test-key-0000000001';
const SECRET = `whsec_${Buffer.from('restart-test-status-callback-secret').toString('base64')}`;
const CALLS = 5;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let standIn: LiveKitStandIn;
let receiver: StatusCallbackReceiver;
let port: number;
let child: ChildProcess | null = null;
const logDir = mkdtempSync(join(tmpdir(), 'cp-callback-restart-'));
const prefix = `rst${Math.random().toString(36).slice(2, 8)}:`;

async function startService(): Promise<void> {
  child = spawnService(
    {
      ...replicaEnv(standIn, { controlApiKey: KEY, keyPrefix: prefix, port }),
      LOG_LEVEL: 'warn',
      RECONCILE_INTERVAL_S: '0',
      STATUS_CALLBACK_URL: receiver.url,
      STATUS_CALLBACK_SECRET: SECRET,
      // A call being sent when the service dies waits for its lease (timeout + 15 s) to run out.
      STATUS_CALLBACK_TIMEOUT_S: '1',
      STATUS_CALLBACK_RETRY_SCHEDULE_S: '0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3',
    },
    { output: createWriteStream(join(logDir, 'service.log'), { flags: 'a' }) },
  );
  await waitReady(port, logDir);
}

async function stopService(): Promise<void> {
  const running = child;
  child = null;
  if (running) await killNow(running);
}

async function api<T>(path: string): Promise<T> {
  return (await (await fetch(`http://127.0.0.1:${port}${path}`, { headers: { Authorization: `Bearer ${KEY}` } })).json()) as T;
}

beforeAll(async () => {
  if (!process.env.REDIS_URL) throw new Error('this test needs REDIS_URL (the redis vitest project provides one)');
  receiver = await startStatusCallbackReceiver({ secret: SECRET, respond: () => ({ status: 503 }) });
  standIn = await startLiveKitStandIn({ webhookUrl: 'http://127.0.0.1:1/webhook', webhookRetryDelaysMs: [100, 200, 400] });
  port = await freePort();
  standIn.webhooks?.setUrl(`http://127.0.0.1:${port}/webhook`);
}, 30_000);

afterAll(async () => {
  await stopService();
  await standIn?.close();
  await receiver?.close();
});

describe('status callbacks across a restart (Redis)', () => {
  it('sends after a restart what was pending when the service was killed, each call in seq order', async () => {
    await startService();
    for (let i = 0; i < CALLS; i++) {
      const phone = `+316${String(40_000_000 + i)}`;
      const room = `call-_${phone}_${i}`;
      standIn.joinParticipant(room, sipParticipant({ phoneNumber: phone, trunkPhoneNumber: '+3197010206472', callStatus: 'ringing' }));
      standIn.joinParticipant(room, agentParticipant({ identity: `agent-${i}` }));
      standIn.leaveParticipant(room, `sip_${phone}`, 'CLIENT_INITIATED');
      standIn.finishRoom(room);
    }
    await standIn.webhooks?.idle();
    let calls: Session[] = [];
    for (let i = 0; i < 100 && !(calls.length === CALLS && calls.every((c) => c.state === 'ended')); i++) {
      calls = (await api<{ calls: Session[] }>('/v1/calls')).calls;
      await sleep(100);
    }
    expect(calls.map((c) => c.state)).toEqual(Array(CALLS).fill('ended'));
    // The customer's server refuses everything: each call's first event is retried, nothing after it is sent.
    await receiver.waitFor((r) => new Set(r.map((x) => x.payload?.data.event.session_id)).size === CALLS && r.length >= CALLS * 2);
    expect(receiver.received.every((r) => r.payload?.data.event.seq === 1)).toBe(true);
    await stopService();

    const before = receiver.received.length;
    receiver.respond(() => ({ status: 200 }));
    await startService();
    const events = new Map<string, number>();
    for (const call of calls) events.set(call.id, (await api<{ events: unknown[] }>(`/v1/calls/${call.id}/events`)).events.length);
    const total = [...events.values()].reduce((a, b) => a + b, 0);
    await receiver.waitFor((r) => new Set(r.filter((x) => x.answered === 200).map((x) => x.id)).size === total, 45_000);

    const after = receiver.received.slice(before);
    for (const [sessionId, count] of events) {
      const seqs = after.filter((r) => r.payload?.data.event.session_id === sessionId).map((r) => r.payload?.data.event.seq);
      expect(seqs, sessionId).toEqual(Array.from({ length: count }, (_, i) => i + 1));
      const deliveries = (await api<{ deliveries: { status: string }[] }>(`/v1/calls/${sessionId}/deliveries`)).deliveries;
      expect(deliveries.map((d) => d.status)).toEqual(Array(count).fill('delivered'));
    }
  }, 90_000);
});
