// The agent watchdog across a restart on Redis: the service that armed it is gone, and the next
// one on the same store fires it from the deadline stored with the call (its timer poll), on the
// test's clock.
import { afterEach, describe, expect, it } from 'vitest';
import type { Session } from '../../src/http/session.js';
import { newId } from '../../dev/webhook-events.js';
import { ManualClock } from '../support/manual-time.js';
import { startServiceHarness, type ServiceHarness } from '../support/service-harness.js';

let open: ServiceHarness[] = [];
afterEach(async () => {
  for (const h of open) await h.close();
  open = [];
});

async function settle(h: ServiceHarness): Promise<void> {
  for (let i = 0; i < 4; i++) {
    await h.standIn.webhooks?.idle();
    await h.settled();
  }
}

const session = async (h: ServiceHarness, id: string): Promise<Session> => (await (await h.api(`/v1/calls/${id}`)).json()) as Session;

describe('the agent watchdog across a restart (Redis)', () => {
  it('fires from the next service on the same store when the one that armed it is gone', async () => {
    const clock = new ManualClock(Date.now());
    const prefix = `wd${newId('', 6)}:`;
    const options = { clock, redisKeyPrefix: prefix, env: { AGENT_JOIN_TIMEOUT_S: '20' } };
    const first = await startServiceHarness(options);
    const placed = await first.api('/v1/calls', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ to: '+31612345678' }) });
    const call = (await placed.json()) as Session;
    await settle(first);
    expect((await session(first, call.id)).state).toBe('connected');
    await first.close();

    clock.set(clock.now() + 20_000);
    const second = await startServiceHarness(options);
    open.push(second);
    for (let i = 0; i < 100 && (await session(second, call.id)).state === 'connected'; i++) await new Promise((resolve) => setTimeout(resolve, 50));
    await settle(second);
    expect(await session(second, call.id)).toMatchObject({
      state: 'failed',
      end_reason: 'agent_error',
      error: { category: 'agent_error', message: 'no agent joined within 20 s of the answer' },
    });
    expect(second.standIn.requestsFor('DeleteRoom').map((r) => r.body.room)).toEqual([call.livekit_room]);
  });
});
