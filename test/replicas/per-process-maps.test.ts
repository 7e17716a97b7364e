// Two services on one Redis, one starting calls and the other ending them: what each process keeps
// per call (the live-calls gauge's map, the runtime's actors) returns to zero on both, so neither
// grows while the other does the ending.
import { afterEach, describe, expect, it } from 'vitest';
import { agentParticipant, newId, roomJson, sipParticipant, webhookEvents } from '../../dev/webhook-events.js';
import { startServiceHarness, type ServiceHarness } from '../support/service-harness.js';

const CALLS = 20;
let open: ServiceHarness[] = [];
afterEach(async () => {
  for (const h of open) await h.close();
  open = [];
});

/** The sum of `control_plane_calls` over every live state, as the service exposes it. */
async function liveCalls(h: ServiceHarness): Promise<number> {
  const text = await (await h.api('/metrics')).text();
  return text
    .split('\n')
    .filter((line) => line.startsWith('control_plane_calls{'))
    .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
}

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`${what} did not happen within 5 s`);
}

describe('per-process call maps with two replicas on one Redis', () => {
  it('empties the live-calls gauge and the actors of the replica that started calls another one ended', async () => {
    const prefix = `maps${newId('', 6)}:`;
    const starter = await startServiceHarness({ redisKeyPrefix: prefix });
    const ender = await startServiceHarness({ redisKeyPrefix: prefix });
    open.push(starter, ender);

    const calls = Array.from({ length: CALLS }, (_, i) => {
      const phone = `+3161111${String(i).padStart(4, '0')}`;
      return { room: roomJson(`call-_${phone}_${i}`), caller: sipParticipant({ phoneNumber: phone, trunkPhoneNumber: '+3197010206472', callStatus: 'ringing' }) };
    });
    for (const { room, caller } of calls) {
      expect((await starter.postSigned(JSON.stringify(webhookEvents.participantJoined(room, caller)))).status).toBe(200);
      expect((await starter.postSigned(JSON.stringify(webhookEvents.participantJoined(room, agentParticipant())))).status).toBe(200);
    }
    await starter.settled();
    expect(starter.service.stats().liveActors).toBe(CALLS);
    await until('the starter counting every call as live', async () => (await liveCalls(starter)) === CALLS);
    await until('the ender counting every call as live', async () => (await liveCalls(ender)) === CALLS);

    for (const { room, caller } of calls) {
      expect((await ender.postSigned(JSON.stringify(webhookEvents.participantLeft(room, caller, 'CLIENT_INITIATED')))).status).toBe(200);
    }
    await ender.settled();
    const ended = (await (await ender.api('/v1/calls?state=ended&limit=200')).json()) as { calls: unknown[] };
    expect(ended.calls).toHaveLength(CALLS);

    // The gauge follows the shared event stream: the starter sees the ender's final events.
    await until('the starter dropping the ended calls from its gauge', async () => (await liveCalls(starter)) === 0);
    expect(await liveCalls(ender)).toBe(0);
    // The starter's actors go when their next deadline finds the calls final in the store.
    expect(starter.service.stats().liveActors).toBe(CALLS);
    starter.scheduler?.advance(starter.config.calls.maxDurationS * 1000);
    await starter.settled();
    expect(starter.service.stats()).toEqual({ liveActors: 0, armedTimers: 0 });
    expect(ender.service.stats()).toEqual({ liveActors: 0, armedTimers: 0 });
  });
});
