// The event stream and metrics of a running service: SSE clients follow a call live and resume
// after a reconnect; /metrics counts calls by state and outcome.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Session } from '../../src/http/session.js';
import type { ObsEnvelope } from '../../src/obs/envelope.js';
import { startServiceHarness, type ServiceHarness } from '../support/service-harness.js';
import { readSse, type SseEvent } from '../support/sse.js';

let h: ServiceHarness;
beforeEach(async () => {
  h = await startServiceHarness();
});
afterEach(async () => {
  await h.close();
});

/** Opens GET /v1/events and collects its events until `until` holds or the time is up. */
const readEvents = (path: string, until: (events: SseEvent[]) => boolean, headers: Record<string, string> = {}) => readSse(h, path, until, headers);

async function placeCall(): Promise<Session> {
  const response = await h.api('/v1/calls', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ to: '+31612345678' }) });
  return (await response.json()) as Session;
}

describe('GET /v1/events', () => {
  it('streams a call\'s OBS-00 events live and resumes after a reconnect without loss or repeats', async () => {
    const streaming = readEvents('/v1/events', (events) => events.some((e) => e.event === 'call.started'));
    await new Promise((resolve) => setTimeout(resolve, 50));
    const call = await placeCall();
    await h.settled();
    const live = await streaming;
    const mine = live.filter((e) => (JSON.parse(e.data) as ObsEnvelope).session_id === call.id);
    expect(mine.map((e) => e.event)).toEqual(['call.created', 'call.queued', 'call.dialing', 'call.started']);
    const envelope = JSON.parse(mine[0]?.data ?? '{}') as ObsEnvelope;
    expect(envelope).toMatchObject({ event: 'call.created', session_id: call.id, seq: 1, direction: 'outbound', state: 'queued' });

    // While the client is away, the call is hung up; it resumes from the last id it saw.
    const lastId = live.at(-1)?.id as string;
    await h.api(`/v1/calls/${call.id}/hangup`, { method: 'POST' });
    await h.standIn.webhooks?.idle();
    await h.settled();
    const resumed = await readEvents(`/v1/events?session_id=${call.id}`, (events) => events.some((e) => e.event === 'call.ended'), { 'Last-Event-ID': lastId });
    expect(resumed.map((e) => e.event)).toEqual(['call.ending', 'call.ended']);
    expect(resumed.map((e) => Number(e.id))).toEqual([Number(lastId) + 1, Number(lastId) + 2]);
  });

  it('answers 401 without a key', async () => {
    expect((await h.api('/v1/events', { key: null })).status).toBe(401);
  });
});

/**
 * /metrics once it shows `line`: the live-calls gauge follows the shared event stream, which a
 * service on Redis reads a moment after the commit.
 */
async function metricsShowing(line: RegExp): Promise<string> {
  let text = '';
  for (let i = 0; i < 100; i++) {
    text = await (await h.api('/metrics', { key: null })).text();
    if (line.test(text)) return text;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return text;
}

describe('GET /metrics', () => {
  it('counts live calls by state, ended calls by reason, dial outcomes and webhooks', async () => {
    const call = await placeCall();
    await h.settled();
    let text = await metricsShowing(/^control_plane_calls\{state="connected"\} 1$/m);
    expect(text).toMatch(/^control_plane_calls\{state="connected"\} 1$/m);
    expect(text).toMatch(/^control_plane_dial_outcomes_total\{outcome="answered"\} 1$/m);
    await h.api(`/v1/calls/${call.id}/hangup`, { method: 'POST' });
    // The hang-up's room deletion is what makes LiveKit send the webhooks that end the call.
    await h.settled();
    await h.standIn.webhooks?.idle();
    await h.settled();
    text = await metricsShowing(/^control_plane_calls_ended_total\{state="ended",end_reason="api_hangup"\} 1$/m);
    expect(text).toMatch(/^control_plane_calls\{state="connected"\} 0$/m);
    expect(text).toMatch(/^control_plane_calls_ended_total\{state="ended",end_reason="api_hangup"\} 1$/m);
    expect(text).toMatch(/^control_plane_webhooks_total\{outcome="applied"\} [1-9]/m);
    expect(text).toMatch(/^control_plane_livekit_request_duration_seconds_count\{method="dial",outcome="ok"\} 1$/m);
    expect(text).not.toContain('31612345678');
    expect(text).not.toContain(call.id);
  });
});
