// The whole service over HTTP on loopback, wired to a LiveKit stand-in that sends its webhooks
// to it, as a real deployment is wired. Time is the test's (ManualClock/ManualScheduler) unless
// `realTime` is set.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import type { InspectionEvent } from 'xstate';
import type { DialLeases } from '../../src/store/dial-leases.port.js';
import type { CallStore } from '../../src/store/call-store.port.js';
import { loadConfig, type Config, type Env } from '../../src/config.js';
import { randomUUID } from 'node:crypto';
import { systemClock } from '../../src/calls/timers.js';
import { createMemoryBackend } from '../../src/store/memory/backend.js';
import { createRedisBackend } from '../../src/store/redis/backend.js';
import { createLiveKitAdapter } from '../../src/livekit/livekit.adapter.js';
import type { ObsEnvelope } from '../../src/obs/envelope.js';
import { createLogger } from '../../src/obs/logger.js';
import { createService, type Service } from '../../src/service.js';
import { startLiveKitStandIn, type LiveKitStandIn } from '../../dev/livekit-standin.js';
import { ManualClock, ManualScheduler } from './manual-time.js';
import { postWebhook, signWebhook, webhookHeaders } from '../../dev/webhook-sender.js';
import type { WebhookEventJson } from '../../dev/webhook-events.js';

export const TEST_API_KEY = 'test-control-api-key-0001';

export interface ServiceHarness {
  url: string;
  config: Config;
  service: Service;
  standIn: LiveKitStandIn;
  clock: ManualClock | null;
  scheduler: ManualScheduler | null;
  /** every OBS-00 event published, in order */
  published: ObsEnvelope[];
  /** every log line the service wrote, parsed */
  logLines: Record<string, unknown>[];
  /** raw log text, for "never appears in logs" assertions */
  logText(): string;
  /** Delivers a webhook through the stand-in's sender (signed, per-room FIFO, LiveKit's retries). */
  deliver(event: WebhookEventJson): Promise<{ status: number | null; body: string }>;
  /** One signed POST /webhook with the exact bytes given. */
  postSigned(body: string, options?: { contentType?: string; secret?: string }): Promise<{ status: number; body: string; headers: Headers }>;
  /** One POST /webhook with exactly these headers. */
  postRaw(body: string, headers: Record<string, string>): Promise<{ status: number; body: string; headers: Headers }>;
  api(path: string, init?: RequestInit & { key?: string | null }): Promise<Response>;
  /** waits until every queued event (and, unless `commands` is false, every LiveKit command) has finished */
  settled(options?: { commands?: boolean }): Promise<void>;
  close(): Promise<void>;
}

export async function startServiceHarness(
  options: {
    env?: Env;
    realTime?: boolean;
    store?: CallStore;
    dialLeases?: DialLeases;
    redisUrl?: string;
    /** the stand-in's webhook retry back-off; short by default, LiveKit's own is 1, 2, 4, 8 s */
    webhookRetryDelaysMs?: number[];
    /** the Redis key prefix (default: one of this harness's own); two harnesses with the same one share every call */
    redisKeyPrefix?: string;
    /** the test's clock, when two harnesses share one */
    clock?: ManualClock;
    /** how often the status-callback sender looks for due deliveries (default 20 ms here) */
    statusCallbackPollMs?: number;
    /** the Stately inspector's receiver of every call actor's inspection events (INSPECT=1 in the service) */
    inspect?: (event: InspectionEvent) => void;
  } = {},
): Promise<ServiceHarness> {
  const standIn = await startLiveKitStandIn({
    webhookUrl: 'http://127.0.0.1:1/webhook', // replaced below once the service listens
    webhookRetryDelaysMs: options.webhookRetryDelaysMs ?? [20, 40, 80, 160],
  });
  // CP_TEST_STORE=redis (the `redis` vitest project): the same suites on a Redis store with a
  // key prefix of this harness's own, in shared (several-replica) mode.
  const redisMode = (process.env.CP_TEST_STORE === 'redis' || options.redisUrl !== undefined) && !options.store;
  const config = loadConfig({
    LIVEKIT_URL: standIn.url,
    LIVEKIT_API_KEY: standIn.apiKey,
    LIVEKIT_API_SECRET: standIn.apiSecret,
    SIP_OUTBOUND_TRUNK_ID: 'ST_outbound',
    CONTROL_API_KEYS: TEST_API_KEY,
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'debug',
    RECONCILE_INTERVAL_S: '0',
    ...(redisMode ? { REDIS_URL: options.redisUrl ?? process.env.REDIS_URL } : {}),
    ...options.env,
  });
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  const clock = options.realTime ? null : (options.clock ?? new ManualClock(Date.now()));
  const scheduler = clock ? new ManualScheduler(clock) : null;
  const logger = createLogger({ level: config.logLevel, destination });
  const backend = redisMode
    ? createRedisBackend(config, logger, { keyPrefix: options.redisKeyPrefix ?? `t${randomUUID().slice(0, 8)}:` })
    : createMemoryBackend(config, clock ?? systemClock, { store: options.store, dialLeases: options.dialLeases });
  const service = createService({
    config,
    logger,
    livekit: createLiveKitAdapter(config.livekit),
    backend,
    statusCallbackPollMs: options.statusCallbackPollMs ?? 20,
    ...(options.inspect ? { inspect: options.inspect } : {}),
    ...(clock && scheduler ? { clock, scheduler } : {}),
  });
  const published: ObsEnvelope[] = [];
  service.bus.subscribe((envelope) => published.push(envelope));
  const server: Server = createServer(service.app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const target = `${url}/webhook`;
  const sender = standIn.webhooks;
  if (!sender) throw new Error('the stand-in has no webhook sender');
  sender.setUrl(target);

  return {
    url,
    config,
    service,
    standIn,
    clock,
    scheduler,
    published,
    get logLines() {
      return lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    },
    logText: () => lines.join('\n'),
    async deliver(event) {
      const result = await sender.send(event);
      return { status: result.status, body: result.body };
    },
    async postSigned(body, opts = {}) {
      const authorization = await signWebhook(body, { apiKey: standIn.apiKey, apiSecret: opts.secret ?? standIn.apiSecret });
      const headers = { ...webhookHeaders(authorization), ...(opts.contentType ? { 'Content-Type': opts.contentType } : {}) };
      return postWebhook(target, body, headers);
    },
    postRaw: (body, headers) => postWebhook(target, body, headers),
    api(path, init = {}) {
      const { key = TEST_API_KEY, ...rest } = init;
      const headers = new Headers(rest.headers);
      if (key !== null) headers.set('Authorization', `Bearer ${key}`);
      return fetch(`${url}${path}`, { ...rest, headers });
    },
    settled: (opts) => service.settled(opts),
    async close() {
      await standIn.close();
      await service.close();
      await backend.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
