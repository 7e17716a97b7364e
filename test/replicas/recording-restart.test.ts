// A recorded call on two replicas sharing Redis: the replica that started the recording is killed
// (SIGKILL) while it runs, the call ends, and LiveKit's late egress_ended reaches the other
// replica: the recording still ends up complete on the session, with the file's location.
import type { ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EgressStatus } from '@livekit/protocol';
import type { ObsEnvelope } from '../../src/obs/envelope.js';
import type { Session } from '../../src/http/session.js';
import { startLiveKitStandIn, type LiveKitStandIn } from '../../dev/livekit-standin.js';
import { freePort } from '../../dev/redis-server.js';
import { agentParticipant, sipParticipant } from '../../dev/webhook-events.js';
import { killNow, replicaEnv, spawnService, waitReady } from '../support/service-process.js';

const KEY = 'recording-restart-key-0000001';
const CALLER = '+31612345678';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let standIn: LiveKitStandIn;
const replicas: { child: ChildProcess; port: number }[] = [];
const logDir = mkdtempSync(join(tmpdir(), 'cp-recording-restart-'));
const prefix = `rec${Math.random().toString(36).slice(2, 8)}:`;

async function startReplica(name: string): Promise<{ child: ChildProcess; port: number }> {
  const port = await freePort();
  const child = spawnService(
    {
      ...replicaEnv(standIn, { controlApiKey: KEY, keyPrefix: prefix, port }),
      LOG_LEVEL: 'info',
      RECONCILE_INTERVAL_S: '0',
      AGENT_JOIN_TIMEOUT_S: '0',
      RECORDING: 'inbound',
    },
    { output: createWriteStream(join(logDir, `${name}.log`), { flags: 'a' }) },
  );
  await waitReady(port, logDir);
  const replica = { child, port };
  replicas.push(replica);
  return replica;
}

async function api<T>(port: number, path: string): Promise<T> {
  return (await (await fetch(`http://127.0.0.1:${port}${path}`, { headers: { Authorization: `Bearer ${KEY}` } })).json()) as T;
}

async function until<T>(what: string, read: () => Promise<T>, ok: (value: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (ok(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(value)} (logs in ${logDir})`);
    await sleep(50);
  }
}

beforeAll(async () => {
  if (!process.env.REDIS_URL) throw new Error('this test needs REDIS_URL (the redis vitest project provides one)');
  standIn = await startLiveKitStandIn({ webhookUrl: 'http://127.0.0.1:1/webhook', webhookRetryDelaysMs: [100, 200, 400], egressEndDelayMs: 300 });
}, 30_000);

afterAll(async () => {
  for (const replica of replicas) await killNow(replica.child);
  await standIn?.close();
});

describe('recording across replicas', () => {
  it('completes the recording on the session after the replica that started it was killed', async () => {
    const a = await startReplica('a');
    const b = await startReplica('b');
    standIn.webhooks?.setUrl(`http://127.0.0.1:${a.port}/webhook`);

    const room = 'call-_+31612345678_rec1';
    const identity = 'sip_+31612345678_rec1';
    standIn.joinParticipant(room, sipParticipant({ identity, phoneNumber: CALLER, trunkPhoneNumber: '+3197010206472', callStatus: 'ringing' }));
    await standIn.settled();
    standIn.joinParticipant(room, agentParticipant({ identity: 'agent-rec1' }));
    const active = await until(
      'the recording on replica a',
      async () => (await api<{ calls: Session[] }>(a.port, `/v1/calls?room=${encodeURIComponent(room)}`)).calls[0],
      (call) => call?.recording?.status === 'active',
    );
    const id = (active as Session).id;
    const egress = standIn.egresses.get(active?.recording?.egress_id ?? '');
    expect(egress?.roomName).toBe(room);

    await killNow(a.child);
    standIn.webhooks?.setUrl(`http://127.0.0.1:${b.port}/webhook`);
    // The caller hangs up; LiveKit closes the room, and finishes the file after it.
    standIn.leaveParticipant(room, identity, 'CLIENT_INITIATED');
    standIn.finishRoom(room);
    await standIn.settled();
    expect(egress?.info.status).toBe(EgressStatus.EGRESS_COMPLETE);

    const done = await until('the recording on replica b', () => api<Session>(b.port, `/v1/calls/${id}`), (call) => call.recording?.status === 'complete');
    expect(done).toMatchObject({ state: 'ended', end_reason: 'remote_hangup', recording: { egress_id: egress?.egressId, location: `recordings/${id}.ogg` } });
    expect(done.recording?.duration_s).toBeGreaterThan(0);
    const { events } = await api<{ events: ObsEnvelope[] }>(b.port, `/v1/calls/${id}/events`);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    const names = events.map((e) => e.event);
    expect(names.indexOf('call.recording_ended')).toBeGreaterThan(names.indexOf('call.ended'));
    expect(names.filter((n) => n === 'call.recording_started')).toHaveLength(1);
  }, 60_000);
});
