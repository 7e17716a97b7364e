import Koa from 'koa';
import { register as globalRegistry } from 'prom-client';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import type { CallState, Direction, ObsEventName } from '../../machines/call.types.js';
import type { DialRequest, LiveKitPort } from '../../src/livekit/livekit.port.js';
import type { ObsEnvelope } from '../../src/obs/envelope.js';
import { metricsRoutes } from '../../src/http/metrics.routes.js';
import { instrumentLiveKit, operationFor } from '../../src/livekit/instrumented.js';
import { createMetrics, type Metrics } from '../../src/obs/metrics.js';

// ---- Exposition text parsing ------------------------------------------------------------------

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!match) throw new Error(`unparsable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[pair[1]!] = pair[2]!;
    }
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

/** The value of the sample with exactly this name and label set, undefined when absent. */
function sample(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const wanted = Object.entries(labels).sort();
  const found = samples.find(
    (s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === JSON.stringify(wanted),
  );
  return found?.value;
}

async function scrape(metrics: Metrics): Promise<Sample[]> {
  return parseExposition(await metrics.registry.metrics());
}

// ---- Envelopes as the call runtime publishes them ---------------------------------------------

function session(id: string, direction: Direction) {
  let seq = 0;
  return (event: ObsEventName, state: CallState, data: Record<string, unknown> = {}): ObsEnvelope => {
    seq += 1;
    return {
      event,
      event_id: `${id}-evt-${seq}`,
      ts: new Date(Date.UTC(2025, 0, 1, 12, 0, seq)).toISOString(),
      session_id: id,
      seq,
      direction,
      state,
      livekit_room: `room-${id}`,
      data,
    };
  };
}

const INBOUND_ID = 'cs_inbound_0001';
const OUTBOUND_ID = 'cs_outbound_0002';

function inboundCall(): ObsEnvelope[] {
  const e = session(INBOUND_ID, 'inbound');
  return [
    e('call.created', 'ringing', { caller_number: '+31612345678', callee_number: '+31201234567', agent: 'support' }),
    e('call.ringing', 'ringing'),
    e('call.agent_joined', 'connected', { agent_identity: 'agent-1', agents: 1 }),
    e('call.started', 'connected', { answered_at: '2025-01-01T12:00:03.000Z' }),
    e('call.ended', 'ended', { end_reason: 'remote_hangup', duration_s: 42, category: null }),
  ];
}

function outboundCall(): ObsEnvelope[] {
  const e = session(OUTBOUND_ID, 'outbound');
  return [
    e('call.created', 'queued', { caller_number: '+31201234567', callee_number: '+31687654321', agent: 'sales' }),
    e('call.queued', 'queued'),
    e('call.dialing', 'dialing', { attempt: 1, sip_participant_identity: `sip-${OUTBOUND_ID}-1` }),
    e('call.error', 'dialing', {
      category: 'carrier_error',
      retryable: true,
      attempt: 1,
      sip_status_code: 503,
      message: 'SIP 503 Service Unavailable',
    }),
    e('call.retry_scheduled', 'dialing', { next_attempt: 2, retry_at: '2025-01-01T12:00:06.000Z', delay_ms: 1000 }),
    e('call.dialing', 'dialing', { attempt: 2, sip_participant_identity: `sip-${OUTBOUND_ID}-2` }),
    e('call.started', 'connected', { answered_at: '2025-01-01T12:00:08.000Z' }),
  ];
}

const LIVE_STATES = ['queued', 'dialing', 'ringing', 'connected', 'transferring', 'ending'];

// ---- A hand-written LiveKitPort (our own interface, not the SDK) ------------------------------

const DIAL_REQUEST: DialRequest = {
  trunkId: 'ST_trunk',
  to: '+31687654321',
  roomName: 'room-x',
  fromNumber: '+31201234567',
  participantIdentity: 'sip-x-1',
  participantAttributes: {},
  ringingTimeoutS: 30,
  maxCallDurationS: 600,
};

/** LiveKit's Twirp answer to a dial nobody picked up (ServerError shape, no SIP code). */
function ringTimeout(): Error {
  return Object.assign(new Error('sip call canceled'), { status: 408, code: 'canceled', metadata: {} });
}

/** undici's wrapper when LiveKit cannot be reached. */
function connectionRefused(): Error {
  return new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) });
}

function fakePort(overrides: Partial<LiveKitPort> = {}): LiveKitPort {
  return {
    dial: async () => ({ participantIdentity: 'sip-x-1', sipCallId: 'SCL_1' }),
    dispatchAgent: async () => undefined,
    deleteRoom: async () => undefined,
    transfer: async () => undefined,
    listParticipants: async () => [],
    listRooms: async () => [{ name: 'room-x', sid: 'RM_x' }],
    startRecording: async () => ({ egressId: 'EG_x', status: 'starting', startedAt: null, endedAt: null, durationS: null, sizeBytes: null, location: null, error: null }),
    stopRecording: async () => ({ egressId: 'EG_x', status: 'ending', startedAt: null, endedAt: null, durationS: null, sizeBytes: null, location: null, error: null }),
    listRecordings: async () => [],
    ...overrides,
  };
}

const LIVEKIT_COUNT = 'control_plane_livekit_request_duration_seconds_count';

/** One process alone: each envelope it commits is also the whole deployment's stream. */
function feed(metrics: Metrics, envelope: ObsEnvelope): void {
  metrics.observe(envelope);
  metrics.trackLive(envelope);
}

// ---- Tests ------------------------------------------------------------------------------------

describe('createMetrics', () => {
  it('exposes all six live call states at zero before any call exists', async () => {
    const samples = await scrape(createMetrics({ collectDefault: false }));
    for (const state of LIVE_STATES) {
      expect(sample(samples, 'control_plane_calls', { state })).toBe(0);
    }
    expect(sample(samples, 'control_plane_calls', { state: 'ended' })).toBeUndefined();
    expect(sample(samples, 'control_plane_calls', { state: 'failed' })).toBeUndefined();
  });

  it('counts an inbound call that rang, connected and ended by remote hang-up, and no longer shows it as live', async () => {
    const metrics = createMetrics({ collectDefault: false });
    const envelopes = inboundCall();

    for (const envelope of envelopes.slice(0, 2)) feed(metrics, envelope);
    let samples = await scrape(metrics);
    expect(sample(samples, 'control_plane_calls', { state: 'ringing' })).toBe(1);

    for (const envelope of envelopes.slice(2, 4)) feed(metrics, envelope);
    samples = await scrape(metrics);
    expect(sample(samples, 'control_plane_calls', { state: 'ringing' })).toBe(0);
    expect(sample(samples, 'control_plane_calls', { state: 'connected' })).toBe(1);

    feed(metrics, envelopes[4]!);
    samples = await scrape(metrics);
    for (const state of LIVE_STATES) expect(sample(samples, 'control_plane_calls', { state })).toBe(0);
    expect(sample(samples, 'control_plane_calls_created_total', { direction: 'inbound' })).toBe(1);
    expect(sample(samples, 'control_plane_calls_ended_total', { state: 'ended', end_reason: 'remote_hangup' })).toBe(1);
    // An inbound answer is not a dial outcome.
    expect(samples.filter((s) => s.name === 'control_plane_dial_outcomes_total')).toEqual([]);
  });

  it('counts every dial attempt of an outbound call that failed once with a carrier error and then connected', async () => {
    const metrics = createMetrics({ collectDefault: false });
    const envelopes = outboundCall();

    feed(metrics, envelopes[0]!);
    expect(sample(await scrape(metrics), 'control_plane_calls', { state: 'queued' })).toBe(1);
    for (const envelope of envelopes.slice(1, 4)) feed(metrics, envelope);
    let samples = await scrape(metrics);
    expect(sample(samples, 'control_plane_calls', { state: 'queued' })).toBe(0);
    expect(sample(samples, 'control_plane_calls', { state: 'dialing' })).toBe(1);

    for (const envelope of envelopes.slice(4)) feed(metrics, envelope);
    samples = await scrape(metrics);
    expect(sample(samples, 'control_plane_calls', { state: 'dialing' })).toBe(0);
    expect(sample(samples, 'control_plane_calls', { state: 'connected' })).toBe(1);
    expect(sample(samples, 'control_plane_calls_created_total', { direction: 'outbound' })).toBe(1);
    expect(sample(samples, 'control_plane_dial_outcomes_total', { outcome: 'carrier_error' })).toBe(1);
    expect(sample(samples, 'control_plane_dial_outcomes_total', { outcome: 'answered' })).toBe(1);
    expect(samples.filter((s) => s.name === 'control_plane_calls_ended_total')).toEqual([]);
  });

  it('shows the exact expected samples when an inbound and an outbound call run side by side', async () => {
    const metrics = createMetrics({ collectDefault: false });
    const inbound = inboundCall();
    const outbound = outboundCall();
    // Interleaved, as the bus delivers them from concurrent calls.
    for (let i = 0; i < Math.max(inbound.length, outbound.length); i += 1) {
      if (outbound[i]) feed(metrics, outbound[i]!);
      if (inbound[i]) feed(metrics, inbound[i]!);
    }
    const text = await metrics.registry.metrics();
    const lines = text.split('\n');
    expect(lines).toContain('control_plane_calls{state="connected"} 1');
    expect(lines).toContain('control_plane_calls{state="ringing"} 0');
    expect(lines).toContain('control_plane_calls{state="dialing"} 0');
    expect(lines).toContain('control_plane_calls_created_total{direction="inbound"} 1');
    expect(lines).toContain('control_plane_calls_created_total{direction="outbound"} 1');
    expect(lines).toContain('control_plane_calls_ended_total{state="ended",end_reason="remote_hangup"} 1');
    expect(lines).toContain('control_plane_dial_outcomes_total{outcome="carrier_error"} 1');
    expect(lines).toContain('control_plane_dial_outcomes_total{outcome="answered"} 1');
    // Session ids, rooms and numbers never become labels.
    expect(text).not.toContain(INBOUND_ID);
    expect(text).not.toContain(OUTBOUND_ID);
    expect(text).not.toContain('room-');
    expect(text).not.toContain('+316');
  });

  it('counts a failed call by its end reason and caps an overlong reason at 64 characters', async () => {
    const metrics = createMetrics({ collectDefault: false });
    const e = session('cs_failed_0003', 'outbound');
    feed(metrics, e('call.created', 'queued'));
    feed(metrics, e('call.dialing', 'dialing', { attempt: 1 }));
    feed(metrics, e('call.error', 'failed', { category: 'trunk_auth_error', retryable: false, attempt: 1, sip_status_code: 403 }));
    feed(metrics, e('call.failed', 'failed', { end_reason: 'trunk_auth_error', category: 'trunk_auth_error' }));
    const long = session('cs_failed_0004', 'inbound');
    feed(metrics, long('call.created', 'ringing'));
    feed(metrics, long('call.failed', 'failed', { end_reason: 'x'.repeat(100) }));

    const samples = await scrape(metrics);
    expect(sample(samples, 'control_plane_calls_ended_total', { state: 'failed', end_reason: 'trunk_auth_error' })).toBe(1);
    expect(sample(samples, 'control_plane_calls_ended_total', { state: 'failed', end_reason: 'x'.repeat(64) })).toBe(1);
    expect(sample(samples, 'control_plane_dial_outcomes_total', { outcome: 'trunk_auth_error' })).toBe(1);
    for (const state of LIVE_STATES) expect(sample(samples, 'control_plane_calls', { state })).toBe(0);
  });

  it('skips a malformed envelope without throwing', async () => {
    const metrics = createMetrics({ collectDefault: false });
    const broken = { ...inboundCall()[4]!, data: null } as unknown as ObsEnvelope;
    expect(() => feed(metrics, broken)).not.toThrow();
    const samples = await scrape(metrics);
    expect(sample(samples, 'control_plane_calls_ended_total', { state: 'ended', end_reason: 'unknown' })).toBe(1);
  });

  it('counts webhooks by outcome and exposes every outcome from the start', async () => {
    const metrics = createMetrics({ collectDefault: false });
    metrics.webhook('applied');
    metrics.webhook('applied');
    metrics.webhook('unauthorized');
    const samples = await scrape(metrics);
    expect(sample(samples, 'control_plane_webhooks_total', { outcome: 'applied' })).toBe(2);
    expect(sample(samples, 'control_plane_webhooks_total', { outcome: 'unauthorized' })).toBe(1);
    expect(sample(samples, 'control_plane_webhooks_total', { outcome: 'malformed' })).toBe(0);
    expect(sample(samples, 'control_plane_webhooks_total', { outcome: 'not_applied' })).toBe(0);
  });

  it('counts Control API requests by method, route template and status and times them by method and route', async () => {
    const metrics = createMetrics({ collectDefault: false });
    metrics.httpRequest('GET', '/v1/calls/:id', 200, 0.012);
    metrics.httpRequest('get', '/v1/calls/:id', 404, 0.003);
    metrics.httpRequest('POST', '/v1/calls', 201, 0.2);
    const samples = await scrape(metrics);
    expect(sample(samples, 'control_plane_http_requests_total', { method: 'GET', route: '/v1/calls/:id', status: '200' })).toBe(1);
    expect(sample(samples, 'control_plane_http_requests_total', { method: 'GET', route: '/v1/calls/:id', status: '404' })).toBe(1);
    expect(sample(samples, 'control_plane_http_requests_total', { method: 'POST', route: '/v1/calls', status: '201' })).toBe(1);
    expect(sample(samples, 'control_plane_http_request_duration_seconds_count', { method: 'GET', route: '/v1/calls/:id' })).toBe(2);
    expect(sample(samples, 'control_plane_http_request_duration_seconds_sum', { method: 'POST', route: '/v1/calls' })).toBeCloseTo(0.2);
  });

  it('keeps two instances in one process apart, each in its own registry and none in the global one', async () => {
    const first = createMetrics();
    const second = createMetrics();
    expect(first.registry).not.toBe(second.registry);
    expect(first.registry).not.toBe(globalRegistry);
    feed(first, inboundCall()[0]!);
    first.webhook('duplicate');

    const a = await scrape(first);
    const b = await scrape(second);
    expect(sample(a, 'control_plane_calls', { state: 'ringing' })).toBe(1);
    expect(sample(b, 'control_plane_calls', { state: 'ringing' })).toBe(0);
    expect(sample(a, 'control_plane_webhooks_total', { outcome: 'duplicate' })).toBe(1);
    expect(sample(b, 'control_plane_webhooks_total', { outcome: 'duplicate' })).toBe(0);
    // Process metrics are collected by default, under the same prefix, in both.
    expect(a.some((s) => s.name === 'control_plane_process_cpu_user_seconds_total')).toBe(true);
    expect(b.some((s) => s.name === 'control_plane_process_cpu_user_seconds_total')).toBe(true);
    expect(globalRegistry.getSingleMetric('control_plane_calls')).toBeUndefined();
  });

  it('uses the given prefix and leaves out process metrics when asked to', async () => {
    const metrics = createMetrics({ prefix: 'cp_', collectDefault: false });
    const samples = await scrape(metrics);
    expect(sample(samples, 'cp_calls', { state: 'queued' })).toBe(0);
    expect(samples.some((s) => s.name.startsWith('control_plane_'))).toBe(false);
    expect(samples.some((s) => s.name.includes('process_'))).toBe(false);
  });
});

describe('operationFor', () => {
  it('maps every port method to the CP-04 operation its errors are classified under', () => {
    expect(operationFor('dial')).toBe('dial');
    expect(operationFor('dispatchAgent')).toBe('dispatch');
    expect(operationFor('deleteRoom')).toBe('hangup');
    expect(operationFor('transfer')).toBe('transfer');
    expect(operationFor('listParticipants')).toBe('lookup');
    expect(operationFor('listRooms')).toBe('lookup');
  });
});

describe('instrumentLiveKit', () => {
  it('times successful calls per method with outcome ok and returns the very same results', async () => {
    const metrics = createMetrics({ collectDefault: false });
    const dialResult = { participantIdentity: 'sip-x-1', sipCallId: 'SCL_1' };
    const rooms = [{ name: 'room-x', sid: 'RM_x' }];
    const port = instrumentLiveKit(fakePort({ dial: async () => dialResult, listRooms: async () => rooms }), metrics);

    expect(await port.dial(DIAL_REQUEST)).toBe(dialResult);
    expect(await port.dial(DIAL_REQUEST)).toBe(dialResult);
    expect(await port.listRooms()).toBe(rooms);
    await port.dispatchAgent('room-x', 'support', '{}');
    await port.deleteRoom('room-x');
    await port.transfer('room-x', 'sip-x-1', 'tel:+31201234567');
    await port.listParticipants('room-x');

    const samples = await scrape(metrics);
    expect(sample(samples, LIVEKIT_COUNT, { method: 'dial', outcome: 'ok' })).toBe(2);
    for (const method of ['listRooms', 'dispatchAgent', 'deleteRoom', 'transfer', 'listParticipants']) {
      expect(sample(samples, LIVEKIT_COUNT, { method, outcome: 'ok' })).toBe(1);
    }
  });

  it('passes the arguments through to the wrapped port unchanged', async () => {
    const metrics = createMetrics({ collectDefault: false });
    const seen: unknown[][] = [];
    const port = instrumentLiveKit(
      fakePort({
        dial: async (req) => {
          seen.push([req]);
          return { participantIdentity: req.participantIdentity, sipCallId: null };
        },
        transfer: async (...args) => {
          seen.push(args);
        },
      }),
      metrics,
    );
    const transferOptions = { headers: { 'X-Reason': 'billing' }, ringingTimeoutS: 20, playDialtone: true };
    await port.dial(DIAL_REQUEST);
    await port.transfer('room-x', 'sip-x-1', 'tel:+31201234567', transferOptions);
    expect(seen[0]![0]).toBe(DIAL_REQUEST);
    expect(seen[1]).toEqual(['room-x', 'sip-x-1', 'tel:+31201234567', transferOptions]);
    expect(seen[1]![3]).toBe(transferOptions);
  });

  it('times failed calls under the CP-04 category of the error and rethrows the very same error', async () => {
    const metrics = createMetrics({ collectDefault: false });
    const timeout = ringTimeout();
    const refused = connectionRefused();
    const dispatchFailure = new Error('agent not registered');
    const port = instrumentLiveKit(
      fakePort({
        dial: () => Promise.reject(timeout),
        deleteRoom: () => Promise.reject(refused),
        dispatchAgent: () => Promise.reject(dispatchFailure),
      }),
      metrics,
    );

    await expect(port.dial(DIAL_REQUEST)).rejects.toBe(timeout);
    await expect(port.deleteRoom('room-x')).rejects.toBe(refused);
    await expect(port.dispatchAgent('room-x', 'support', '{}')).rejects.toBe(dispatchFailure);

    const samples = await scrape(metrics);
    // `canceled` on a dial is LiveKit's ring timeout (operation matters).
    expect(sample(samples, LIVEKIT_COUNT, { method: 'dial', outcome: 'no_answer' })).toBe(1);
    expect(sample(samples, LIVEKIT_COUNT, { method: 'deleteRoom', outcome: 'provider_unavailable' })).toBe(1);
    expect(sample(samples, LIVEKIT_COUNT, { method: 'dispatchAgent', outcome: 'agent_error' })).toBe(1);
    expect(sample(samples, LIVEKIT_COUNT, { method: 'dial', outcome: 'ok' })).toBeUndefined();
  });

  it('records the duration of a call in a bucket that reaches up to a minute', async () => {
    const metrics = createMetrics({ collectDefault: false });
    let now = 1_000;
    const port = instrumentLiveKit(
      fakePort({
        listRooms: async () => {
          now += 30; // LiveKit takes 30 ms to answer
          return [];
        },
      }),
      metrics,
      () => now,
    );
    await port.listRooms();
    const samples = await scrape(metrics);
    const bucket = (le: string) =>
      sample(samples, 'control_plane_livekit_request_duration_seconds_bucket', { method: 'listRooms', outcome: 'ok', le });
    expect(bucket('0.01')).toBe(0);
    expect(bucket('60')).toBe(1);
    expect(bucket('+Inf')).toBe(1);
    expect(sample(samples, 'control_plane_livekit_request_duration_seconds_sum', { method: 'listRooms', outcome: 'ok' })).toBeCloseTo(0.03, 6);
  });
});

describe('metricsRoutes', () => {
  it('answers GET /metrics with 200 and the Prometheus text exposition', async () => {
    const metrics = createMetrics({ collectDefault: false });
    metrics.webhook('applied');
    const app = new Koa();
    app.use(metricsRoutes(metrics).routes());

    const res = await request(app.callback()).get('/metrics');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(res.text).toContain('control_plane_webhooks_total{outcome="applied"} 1');
    expect(res.text).toContain('# TYPE control_plane_calls gauge');
  });
});
