// The in-memory outbox's cap (STATUS_CALLBACK_MAX_PENDING): a customer server that is down for
// long cannot grow the process without bound. Redis has no cap: this file runs on memory only.
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { startStatusCallbackReceiver, type StatusCallbackReceiver } from '../../dev/status-callback-receiver.js';
import { playInboundCall } from '../support/inbound-call.js';
import { startServiceHarness, type ServiceHarness } from '../support/service-harness.js';

const SECRET = `whsec_${randomBytes(32).toString('base64')}`;
let h: ServiceHarness | undefined;
let receiver: StatusCallbackReceiver | undefined;
afterEach(async () => {
  await h?.close();
  await receiver?.close();
});

async function deliveriesOf(id: string): Promise<{ status: string; attempts: number; last_error: string | null }[]> {
  return ((await (await h!.api(`/v1/calls/${id}/deliveries`)).json()) as { deliveries: { status: string; attempts: number; last_error: string | null }[] }).deliveries;
}

describe('the in-memory outbox cap', () => {
  it('records deliveries past STATUS_CALLBACK_MAX_PENDING as failed, counts them and says so once in the log', async () => {
    receiver = await startStatusCallbackReceiver({ secret: SECRET, respond: () => ({ hang: true }) });
    h = await startServiceHarness({
      env: { STATUS_CALLBACK_URL: receiver.url, STATUS_CALLBACK_SECRET: SECRET, STATUS_CALLBACK_MAX_PENDING: '100', STATUS_CALLBACK_CONCURRENCY: '1' },
    });
    const ids: string[] = [];
    for (let i = 0; i < 25; i++) ids.push(await playInboundCall(h));
    const all = (await Promise.all(ids.map((id) => deliveriesOf(id)))).flat();
    expect(all.length).toBeGreaterThan(100);
    const dropped = all.filter((d) => d.status === 'failed');
    expect(all.filter((d) => d.status === 'pending')).toHaveLength(100);
    expect(dropped.length).toBe(all.length - 100);
    expect(dropped.every((d) => d.attempts === 0 && /STATUS_CALLBACK_MAX_PENDING/.test(d.last_error ?? ''))).toBe(true);
    const metrics = await (await h!.api('/metrics')).text();
    expect(metrics).toContain(`control_plane_status_callbacks_dropped_total ${dropped.length}`);
    expect(metrics).toContain('control_plane_status_callbacks_pending 100');
    expect(h!.logLines.filter((line) => typeof line.msg === 'string' && line.msg.includes('the outbox is full'))).toHaveLength(1);
  });
});
