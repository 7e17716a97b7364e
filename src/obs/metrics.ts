// Prometheus metrics (`GET /metrics`, docs/observability.md), fed by OBS-00 envelopes (docs/events.md), webhook and
// Control API outcomes, and the latency of every LiveKit API call (CP-02) with its CP-04 category.
// Each createMetrics() has its own Registry, never prom-client's global one: tests build many
// services in one process.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { FINAL_STATES, LIVE_STATES, type LiveState } from '../../machines/call.types.js';
import { INGEST_OUTCOMES } from '../inbound/webhook-ingest.js';
import type { ObsEnvelope } from './envelope.js';
import { DELIVERY_OUTCOMES, type DeliveryOutcome } from '../callbacks/sender.js';

/** What the webhook route answered: what ingest made of the event, or why it refused the request. */
export const WEBHOOK_OUTCOMES = Object.freeze([
  ...INGEST_OUTCOMES,
  'unauthorized',
  'malformed',
  'too_large',
  'unsupported_media_type',
  'not_applied',
] as const);
export type WebhookOutcome = (typeof WEBHOOK_OUTCOMES)[number];

/** longer than any call may last (MAX_CALL_DURATION_S is at most a day) plus its ending */
const SILENT_CALL_LIMIT_MS = 25 * 60 * 60 * 1000;
const FINAL_STATE_SET: ReadonlySet<string> = new Set<string>(FINAL_STATES);
const LIVE_STATE_SET: ReadonlySet<string> = new Set<string>(LIVE_STATES);

/** Seconds; a dial waits for the phone to ring and be answered, so the top buckets are long. */
export const LIVEKIT_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 45, 60];
const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

const HTTP_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
const MAX_LABEL_LENGTH = 64;

export interface Metrics {
  /** Its own prom-client Registry, never the global default. */
  readonly registry: Registry;
  /** Feed every OBS-00 envelope this process commits (subscribe this to the event bus): the counters. Never throws. */
  observe(envelope: ObsEnvelope): void;
  /**
   * Feed every OBS-00 envelope of the deployment (the shared event stream): the live-calls gauge,
   * which counts every replica's calls, so a call another replica ends leaves it too. Never throws.
   */
  trackLive(envelope: ObsEnvelope): void;
  webhook(outcome: WebhookOutcome): void;
  /** Control API requests: method, route template (e.g. '/v1/calls/:id'), status, duration. */
  httpRequest(method: string, route: string, status: number, seconds: number): void;
  /** A LiveKit API call: port method, 'ok' or the CP-04 category of its error, duration. */
  livekitRequest(method: string, outcome: string, seconds: number): void;
  /** A status-callback attempt's outcome (and its duration, when a request was made). */
  statusCallback(outcome: DeliveryOutcome, seconds?: number): void;
  /** Deliveries recorded `failed` unsent because the in-memory outbox was full. */
  statusCallbacksDropped(count: number): void;
  /** Where the pending-deliveries gauge reads the outbox's count. */
  watchOutbox(pending: () => Promise<number>): void;
  /** Where the live-actor and armed-timer gauges read this process's counts. */
  watchRuntime(stats: () => { liveActors: number; armedTimers: number }): void;
}

export interface MetricsOptions {
  /** Prefix of every metric name; default 'control_plane_'. */
  prefix?: string;
  /** Node process metrics (CPU, memory, event loop, GC); default true. */
  collectDefault?: boolean;
}

/**
 * A label value from a closed set that arrives as unknown data: strings pass through as given
 * (capped), anything else becomes `fallback`. Session ids, numbers and rooms never get here.
 */
function label(value: unknown, fallback = 'unknown'): string {
  if (typeof value !== 'string' || value.length === 0) return fallback;
  return value.length > MAX_LABEL_LENGTH ? value.slice(0, MAX_LABEL_LENGTH) : value;
}

function methodLabel(method: string): string {
  const upper = typeof method === 'string' ? method.toUpperCase() : '';
  return HTTP_METHODS.has(upper) ? upper : 'OTHER';
}

function statusLabel(status: number): string {
  return Number.isInteger(status) && status >= 100 && status <= 599 ? String(status) : 'unknown';
}

function seconds(value: number): number {
  return Number.isFinite(value) && value >= 0 ? value : 0;
}

function dataField(envelope: ObsEnvelope, key: string): unknown {
  const data: unknown = envelope.data;
  if (typeof data !== 'object' || data === null) return undefined;
  return (data as Record<string, unknown>)[key];
}

export function createMetrics(options: MetricsOptions = {}): Metrics {
  const prefix = options.prefix ?? 'control_plane_';
  const registry = new Registry();
  const registers = [registry];
  if (options.collectDefault ?? true) collectDefaultMetrics({ register: registry, prefix });

  /**
   * session_id → last public state and when it was seen, live sessions only. A call whose final
   * event never reached this process (trimmed from a shared log it read too late) is dropped once
   * it has been silent longer than any call may last.
   */
  const live = new Map<string, { state: LiveState; seenAt: number }>();

  let runtimeStats: () => { liveActors: number; armedTimers: number } = () => ({ liveActors: 0, armedTimers: 0 });
  new Gauge({
    name: `${prefix}live_actors`,
    help: 'Call actors held in this process (a leak shows here first).',
    registers,
    collect() {
      this.set(runtimeStats().liveActors);
    },
  });
  new Gauge({
    name: `${prefix}armed_timers`,
    help: 'Call deadline timers armed in this process.',
    registers,
    collect() {
      this.set(runtimeStats().armedTimers);
    },
  });

  new Gauge({
    name: `${prefix}calls`,
    help: 'Live calls by public state.',
    labelNames: ['state'] as const,
    registers,
    collect() {
      const counts = new Map<LiveState, number>(LIVE_STATES.map((state) => [state, 0]));
      const forgetBefore = Date.now() - SILENT_CALL_LIMIT_MS;
      for (const [sessionId, { state, seenAt }] of live) {
        if (seenAt < forgetBefore) live.delete(sessionId);
        else counts.set(state, (counts.get(state) ?? 0) + 1);
      }
      for (const [state, count] of counts) this.set({ state }, count);
    },
  });
  const callsEnded = new Counter({
    name: `${prefix}calls_ended_total`,
    help: 'Calls that reached a final state, by state (ended|failed) and end reason.',
    labelNames: ['state', 'end_reason'] as const,
    registers,
  });
  const callsCreated = new Counter({
    name: `${prefix}calls_created_total`,
    help: 'Calls created, by direction.',
    labelNames: ['direction'] as const,
    registers,
  });
  const dialOutcomes = new Counter({
    name: `${prefix}dial_outcomes_total`,
    help: 'Outbound dial attempts by outcome: answered, or the CP-04 category of the dial error.',
    labelNames: ['outcome'] as const,
    registers,
  });
  const webhooks = new Counter({
    name: `${prefix}webhooks_total`,
    help: 'LiveKit webhook requests by outcome.',
    labelNames: ['outcome'] as const,
    registers,
  });
  const httpRequests = new Counter({
    name: `${prefix}http_requests_total`,
    help: 'Control API requests by method, route template and status.',
    labelNames: ['method', 'route', 'status'] as const,
    registers,
  });
  const httpDuration = new Histogram({
    name: `${prefix}http_request_duration_seconds`,
    help: 'Control API request duration in seconds, by method and route template.',
    labelNames: ['method', 'route'] as const,
    buckets: HTTP_BUCKETS,
    registers,
  });
  const livekitDuration = new Histogram({
    name: `${prefix}livekit_request_duration_seconds`,
    help: 'LiveKit API call duration in seconds, by port method and outcome (ok or CP-04 category).',
    labelNames: ['method', 'outcome'] as const,
    buckets: LIVEKIT_BUCKETS,
    registers,
  });

  const callbacks = new Counter({
    name: `${prefix}status_callbacks_total`,
    help: 'Status-callback outcomes: delivered; retried (an attempt failed, another follows); failed (after the last retry); canceled (answered 410 Gone, or not sent because an earlier event of the call was).',
    labelNames: ['outcome'] as const,
    registers,
  });
  const callbackDuration = new Histogram({
    name: `${prefix}status_callback_duration_seconds`,
    help: "Status-callback attempt duration in seconds, until the customer's server answered or the attempt timed out.",
    buckets: HTTP_BUCKETS,
    registers,
  });
  const callbacksDropped = new Counter({
    name: `${prefix}status_callbacks_dropped_total`,
    help: 'Status-callback deliveries recorded failed without an attempt because the in-memory outbox was full (STATUS_CALLBACK_MAX_PENDING).',
    registers,
  });
  let outboxPending: () => Promise<number> = async () => 0;
  new Gauge({
    name: `${prefix}status_callbacks_pending`,
    help: 'Status-callback deliveries waiting to be sent (every call, every replica).',
    registers,
    async collect() {
      try {
        this.set(await outboxPending());
      } catch {
        // the store cannot answer: keep the last reading
      }
    },
  });

  // Expose every outcome from the start, so rate() works before the first failure.
  for (const outcome of WEBHOOK_OUTCOMES) webhooks.inc({ outcome }, 0);
  for (const outcome of DELIVERY_OUTCOMES) callbacks.inc({ outcome }, 0);

  function trackLiveUnsafe(envelope: ObsEnvelope): void {
    const state: unknown = envelope.state;
    const sessionId: unknown = envelope.session_id;
    if (typeof sessionId === 'string' && typeof state === 'string') {
      if (FINAL_STATE_SET.has(state)) live.delete(sessionId);
      else if (LIVE_STATE_SET.has(state)) live.set(sessionId, { state: state as LiveState, seenAt: Date.now() });
    }
  }

  function observeUnsafe(envelope: ObsEnvelope): void {
    switch (envelope.event) {
      case 'call.created':
        callsCreated.inc({ direction: label(envelope.direction) });
        break;
      case 'call.started':
        if (envelope.direction === 'outbound') dialOutcomes.inc({ outcome: 'answered' });
        break;
      case 'call.error':
        dialOutcomes.inc({ outcome: label(dataField(envelope, 'category')) });
        break;
      case 'call.ended':
      case 'call.failed':
        callsEnded.inc({
          state: envelope.event === 'call.ended' ? 'ended' : 'failed',
          end_reason: label(dataField(envelope, 'end_reason')),
        });
        break;
    }
  }

  const metrics: Metrics = {
    registry,
    observe(envelope) {
      // Metrics never disturb a call: a malformed envelope is skipped.
      try {
        observeUnsafe(envelope);
      } catch {
        // nothing to do
      }
    },
    trackLive(envelope) {
      try {
        trackLiveUnsafe(envelope);
      } catch {
        // nothing to do
      }
    },
    webhook(outcome) {
      webhooks.inc({ outcome: label(outcome) });
    },
    httpRequest(method, route, status, duration) {
      const m = methodLabel(method);
      const r = label(route, 'unmatched');
      httpRequests.inc({ method: m, route: r, status: statusLabel(status) });
      httpDuration.observe({ method: m, route: r }, seconds(duration));
    },
    livekitRequest(method, outcome, duration) {
      livekitDuration.observe({ method: label(method), outcome: label(outcome) }, seconds(duration));
    },
    statusCallback(outcome, duration) {
      callbacks.inc({ outcome });
      if (duration !== undefined) callbackDuration.observe(seconds(duration));
    },
    statusCallbacksDropped(count) {
      callbacksDropped.inc(count);
    },
    watchOutbox(pending) {
      outboxPending = pending;
    },
    watchRuntime(stats) {
      runtimeStats = stats;
    },
  };
  return metrics;
}
