// Wires the service from its parts on a backend (memory or Redis: where state lives): runtime →
// LiveKit commands → webhook ingest → admission → reconciliation → HTTP app. No part here knows
// which backend it runs on; what replicas need more is the backend's `replicas` duties. main.ts,
// the demo, the benchmarks and the tests all build the service here.
import { randomUUID } from 'node:crypto';
import type Koa from 'koa';
import type { InspectionEvent } from 'xstate';
import type { CallSettings, Direction } from '../machines/call.types.js';
import { Admission } from './outbound/admission.js';
import { createCommandRunner } from './outbound/call-commands.js';
import { createReconciler, type Reconciler } from './inbound/reconciler.js';
import { CallRuntime } from './calls/call-runtime.js';
import { createOutboundCalls } from './outbound/outbound-calls.js';
import type { Backend } from './store/backend.js';
import type { CallStore } from './store/call-store.port.js';
import { createMemoryBackend } from './store/memory/backend.js';
import { createTimerScheduler, systemClock, type Clock, type Scheduler } from './calls/timers.js';
import { createWebhookIngest } from './inbound/webhook-ingest.js';
import type { Config } from './config.js';
import { createApp } from './http/app.js';
import type { LiveKitPort } from './livekit/livekit.port.js';
import { createEventBus, type EventBus } from './obs/event-bus.js';
import { EventStream } from './obs/event-stream.js';
import { instrumentLiveKit } from './livekit/instrumented.js';
import { createMetrics, type Metrics } from './obs/metrics.js';
import { createDeliveryPlanner } from './callbacks/planner.js';
import { createStatusCallbackSender, type StatusCallbackSender } from './callbacks/sender.js';
import type { Logger } from './obs/logger.js';

export interface ServiceDeps {
  config: Config;
  logger: Logger;
  livekit: LiveKitPort;
  /** where state lives: the embedded memory backend unless given (main.ts passes Redis with REDIS_URL) */
  backend?: Backend;
  clock?: Clock;
  scheduler?: Scheduler;
  newId?: () => string;
  random?: () => number;
  inspect?: (event: InspectionEvent) => void;
  /** defaults to metrics without process collectors (main.ts passes one with them) */
  metrics?: Metrics;
  /** how often the status-callback sender looks for due deliveries (default 250 ms) */
  statusCallbackPollMs?: number;
}

export interface Service {
  app: Koa;
  runtime: CallRuntime;
  store: CallStore;
  bus: EventBus;
  metrics: Metrics;
  reconciler: Reconciler;
  statusCallbacks: StatusCallbackSender;
  /** Live actors and armed timers of this process (a leak shows here first). */
  stats(): { liveActors: number; armedTimers: number };
  /**
   * Resolves once every queued event has been applied and, unless `commands` is false, every
   * LiveKit command has finished and its result has been applied too.
   */
  settled(options?: { commands?: boolean }): Promise<void>;
  /** Finishes in-flight events and stops every actor and timer. */
  close(): Promise<void>;
}

const SHUTDOWN_COMMAND_WAIT_MS = 5000;
const TIMER_CLAIM_LIMIT = 200;
/** a claimed timer comes back to any replica after this if its call was not moved on */
const TIMER_LEASE_MS = 10_000;
const STATUS_CALLBACK_POLL_MS = 250;
const USER_AGENT = 'control-plane-status-callbacks/1';

/** Whether RECORDING records a call of this direction when its request says nothing. */
export function recordsByDefault(mode: Config['recording']['mode'], direction: Direction): boolean {
  return mode === 'all' || mode === direction;
}

export function callSettings(config: Config, direction: Direction): CallSettings {
  return {
    ringTimeoutS: config.calls.ringTimeoutS,
    maxDurationS: config.calls.maxDurationS,
    endingGraceS: config.calls.endingGraceS,
    agentGraceS: config.calls.agentGraceS,
    agentJoinTimeoutS: config.calls.agentJoinTimeoutS,
    maxDialAttempts: config.calls.maxDialAttempts,
    record: recordsByDefault(config.recording.mode, direction),
  };
}

export function createService(deps: ServiceDeps): Service {
  const { config, logger } = deps;
  const clock = deps.clock ?? systemClock;
  const backend = deps.backend ?? createMemoryBackend(config, clock);
  const { store, replicas } = backend;
  const bus = createEventBus((err) => logger.error({ err }, 'event stream subscriber failed'));
  const metrics = deps.metrics ?? createMetrics({ collectDefault: false });
  bus.subscribe((envelope) => metrics.observe(envelope));
  const livekit = instrumentLiveKit(deps.livekit, metrics);
  const stream = new EventStream(null, { bufferSize: config.events.bufferSize });
  void backend.eventLog.follow(stream, config.events.bufferSize);
  // The live-calls gauge counts the deployment's calls: it follows the shared stream, not this process's bus.
  stream.subscribe((event) => metrics.trackLive(event.envelope));
  const scheduler = deps.scheduler ?? createTimerScheduler(clock);
  const newId = deps.newId ?? randomUUID;
  const sender = createStatusCallbackSender({
    outbox: backend.outbox,
    config: config.statusCallbacks,
    clock,
    logger,
    metrics,
    pollMs: deps.statusCallbackPollMs ?? STATUS_CALLBACK_POLL_MS,
    userAgent: USER_AGENT,
    random: deps.random,
  });
  metrics.watchOutbox(() => backend.outbox.pendingCount());
  let dropsLogged = 0;
  backend.outbox.onDropped((count) => {
    metrics.statusCallbacksDropped(count);
    // One line per thousand, not one per event, while the customer's server stays down.
    if (dropsLogged++ % 1000 === 0) {
      logger.error(
        { max_pending: config.statusCallbacks.maxPending },
        'status callbacks: the outbox is full; new deliveries are recorded failed without an attempt (redeliver them later)',
      );
    }
  });
  const runtime = new CallRuntime({
    store,
    bus,
    logger,
    clock,
    scheduler,
    newId,
    // The command runner sends its results back to the runtime: it is made below, with the runtime.
    commands: (command, record) => commands(command, record),
    inspect: deps.inspect,
    afterCommit: backend.eventLog.append?.bind(backend.eventLog),
    statusCallbacks: { plan: createDeliveryPlanner(config.statusCallbacks), recorded: () => sender.kick() },
  });
  const leases = backend.dialLeases;
  const commands = createCommandRunner({
    calls: runtime,
    clock,
    livekit,
    leases,
    logger,
    random: deps.random,
    outbound: {
      trunkId: config.sipOutboundTrunkId,
      callerId: config.callerId,
      retryBaseMs: config.calls.retryBaseMs,
      retryMaxMs: config.calls.retryMaxMs,
    },
    recording: config.recording,
  });
  const ingest = createWebhookIngest({ runtime, store, settings: callSettings(config, 'inbound') });
  const admission = new Admission({
    queue: backend.dialQueue,
    pollMs: replicas?.admissionPollMs,
    maxConcurrent: config.outbound.maxConcurrentCalls,
    callsPerSecond: config.outbound.callsPerSecond,
    maxQueued: config.outbound.maxQueuedCalls,
    clock,
    scheduler,
    logger,
    grant: async (sessionId) => (await runtime.send(sessionId, { type: 'dial.slot_granted' })).outcome === 'applied',
  });
  bus.subscribe((envelope) => admission.observe(envelope));
  const reconciler = createReconciler({
    runtime,
    clock,
    admission,
    store,
    livekit,
    leases,
    logger,
    intervalMs: config.reconcileIntervalS * 1000,
  });
  const outbound = createOutboundCalls({
    runtime,
    newId,
    store,
    admission,
    settings: callSettings(config, 'outbound'),
    trunkId: config.sipOutboundTrunkId,
    callerId: config.callerId,
    defaultAgent: config.outbound.defaultAgent,
  });
  const app = createApp({
    store,
    ingest,
    runtime,
    outbound,
    metrics,
    stream,
    heartbeatMs: config.events.heartbeatS * 1000,
    callerId: config.callerId,
    allowedFromNumbers: config.outbound.allowedFromNumbers,
    logger,
    livekit: { apiKey: config.livekit.apiKey, apiSecret: config.livekit.apiSecret },
    controlApiKeys: config.controlApiKeys,
    webhookMaxBodyBytes: config.webhook.maxBodyBytes,
    statusCallbacks: { outbox: backend.outbox, allowedHosts: config.statusCallbacks.allowedHosts, clock, redelivered: () => sender.kick() },
  });

  // A replica that died leaves its armed timers behind: every replica takes due ones from the store.
  const timerPoll = replicas ? pollDueTimers(store, runtime, clock, logger, replicas.timerPollMs) : null;

  metrics.watchRuntime(() => ({ liveActors: runtime.liveCount, armedTimers: scheduler.size }));

  const settled = async ({ commands: withCommands = true } = {}): Promise<void> => {
    await ingest.idle();
    await runtime.idle();
    await admission.idle();
    await runtime.idle();
    if (!withCommands) return;
    await commands.inFlight();
    await runtime.idle();
  };
  return {
    app,
    runtime,
    store,
    bus,
    metrics,
    reconciler,
    statusCallbacks: sender,
    stats: () => ({ liveActors: runtime.liveCount, armedTimers: scheduler.size }),
    settled,
    async close() {
      // Open event streams never go idle: end them so the HTTP server can close.
      stream.close();
      if (timerPoll) clearInterval(timerPoll);
      await backend.eventLog.stop();
      reconciler.stop();
      admission.stop();
      // Events already taken are applied; a dial may ring for a minute, so it is handed over
      // (with a shared store) rather than waited for.
      await ingest.idle();
      await runtime.idle();
      if (replicas) await commands.handOver(SHUTDOWN_COMMAND_WAIT_MS);
      else await commands.inFlight();
      await runtime.stop();
      // Deliveries in flight are abandoned, not lost: they stay pending in the outbox.
      await sender.stop();
    },
  };
}

function pollDueTimers(store: CallStore, runtime: CallRuntime, clock: Clock, logger: Logger, everyMs: number): NodeJS.Timeout {
  let polling = false;
  const poll = setInterval(() => {
    if (polling) return;
    polling = true;
    store
      .claimDueTimers(clock.now(), TIMER_CLAIM_LIMIT, TIMER_LEASE_MS)
      .then((ids) => Promise.all(ids.map((id) => runtime.fireDue(id))))
      .catch((err: unknown) => logger.warn({ err }, 'due timers could not be taken from the store; retrying'))
      .finally(() => {
        polling = false;
      });
  }, everyMs);
  poll.unref();
  return poll;
}
