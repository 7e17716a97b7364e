// INSPECT=1: the Stately inspector bridge listens on loopback only and never sees a phone number.
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startInspector, type InspectorHandle } from '../../src/obs/inspector.js';
import { createLogger } from '../../src/obs/logger.js';
import { createCallHarness, inboundInput } from '../support/call-harness.js';
import { CallRuntime } from '../../src/calls/call-runtime.js';
import { createEventBus } from '../../src/obs/event-bus.js';

let inspector: InspectorHandle | null = null;
afterEach(async () => {
  await inspector?.stop();
  inspector = null;
});

describe('Stately inspector bridge', () => {
  it('listens on 127.0.0.1 and relays masked call snapshots and events to the inspector page', async () => {
    inspector = await startInspector(0, createLogger({ level: 'silent' }));
    expect(new URL(inspector.url).hostname).toBe('127.0.0.1');

    const page = new WebSocket(inspector.url.replace('http', 'ws'));
    const received: string[] = [];
    page.on('message', (data) => received.push(data.toString()));
    await new Promise((resolve) => page.once('open', resolve));

    const { clock, scheduler, store } = createCallHarness();
    const runtime = new CallRuntime({
      store,
      bus: createEventBus(),
      logger: createLogger({ level: 'silent' }),
      clock,
      scheduler,
      newId: () => 'inspected-call',
      commands: () => undefined,
      inspect: inspector.inspect,
    });
    await runtime.create({ ...inboundInput(), sessionId: 'inspected-call' });
    await runtime.send('inspected-call', { type: 'livekit.agent_joined', participant: { identity: 'agent-1', sid: 'PA_a' } });

    await expect.poll(() => received.some((m) => m.includes('livekit.agent_joined')), { timeout: 5000 }).toBe(true);
    const all = received.join('\n');
    expect(all).toContain('+31*******78');
    expect(all).not.toContain('31612345678');
    page.close();
    await runtime.stop();
  });
});
