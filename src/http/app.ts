// The Koa application: building it is separate from listening, so tests drive
// `app.callback()` with supertest and no socket.
import Koa from 'koa';
import Router from '@koa/router';
import type { CallRuntime } from '../calls/call-runtime.js';
import type { Clock } from '../calls/timers.js';
import type { OutboundCalls } from '../outbound/outbound-calls.js';
import type { CallStore } from '../store/call-store.port.js';
import type { Outbox } from '../store/outbox.port.js';
import type { WebhookIngest } from '../inbound/webhook-ingest.js';
import type { Logger } from '../obs/logger.js';
import type { EventStream } from '../obs/event-stream.js';
import type { Metrics } from '../obs/metrics.js';
import { metricsRoutes } from './metrics.routes.js';
import { bearerAuth } from './auth.js';
import { callCommandRoutes } from './call-commands.routes.js';
import { callReadRoutes } from './calls.routes.js';
import { deliveryRoutes } from './deliveries.routes.js';
import { eventRoutes } from './events.routes.js';
import { openApiDocument } from './openapi.js';
import { Problem, problemMiddleware } from './problem.js';
import { webhookRoutes } from './webhook.routes.js';

export interface AppOptions {
  store: CallStore;
  ingest: WebhookIngest;
  runtime: CallRuntime;
  outbound: OutboundCalls;
  metrics: Metrics;
  stream: EventStream;
  heartbeatMs: number;
  callerId: string;
  allowedFromNumbers: readonly string[];
  logger: Logger;
  livekit: { apiKey: string; apiSecret: string };
  controlApiKeys: readonly string[];
  webhookMaxBodyBytes: number;
  statusCallbacks: { outbox: Outbox; allowedHosts: readonly string[]; clock: Clock; redelivered: () => void };
}

const routeTables = new WeakMap<Koa, { method: string; path: string }[]>();

/** Every method and path the app serves (for the OpenAPI coverage test). */
export function routesOf(app: Koa): { method: string; path: string }[] {
  return routeTables.get(app) ?? [];
}

export function createApp(options: AppOptions): Koa {
  const app = new Koa({ proxy: false });
  // Errors are rendered by problemMiddleware and logged there; Koa's default logger stays quiet.
  app.silent = true;
  app.use(async (ctx, next) => {
    const started = performance.now();
    try {
      await next();
    } finally {
      const route = (ctx as { _matchedRoute?: unknown })._matchedRoute;
      options.metrics.httpRequest(ctx.method, typeof route === 'string' ? route : 'unmatched', ctx.status, (performance.now() - started) / 1000);
    }
  });
  app.use(problemMiddleware(options.logger));

  const open = new Router();
  open.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  const openapi = openApiDocument();
  open.get('/openapi.json', (ctx) => {
    ctx.body = openapi;
  });
  open.get('/readyz', async (ctx) => {
    try {
      await options.store.ping();
    } catch {
      throw new Problem(503, 'store_unavailable', 'Not ready', 'the call store cannot be reached');
    }
    ctx.body = { status: 'ready' };
  });
  const openRouters = [
    // First: LiveKit's webhooks are by far the most frequent requests.
    webhookRoutes({
      apiKey: options.livekit.apiKey,
      apiSecret: options.livekit.apiSecret,
      maxBodyBytes: options.webhookMaxBodyBytes,
      ingest: options.ingest,
      metrics: options.metrics,
      logger: options.logger,
    }),
    open,
    // Counts only, no call data: scraped without a Control API key, like /healthz.
    metricsRoutes(options.metrics),
  ];
  const apiRouters = [
    callReadRoutes(options.store),
    callCommandRoutes({
      runtime: options.runtime,
      store: options.store,
      outbound: options.outbound,
      callerId: options.callerId,
      allowedFromNumbers: options.allowedFromNumbers,
      statusCallbackHosts: options.statusCallbacks.allowedHosts,
    }),
    deliveryRoutes({ store: options.store, ...options.statusCallbacks }),
    eventRoutes({ stream: options.stream, heartbeatMs: options.heartbeatMs, logger: options.logger }),
  ];
  // A method no route knows (PROPFIND, ...) is refused like a known one on the wrong route: 405.
  const methods = {
    throw: true,
    notImplemented: () => new Problem(405, 'method_not_allowed', 'Method not allowed'),
    methodNotAllowed: () => new Problem(405, 'method_not_allowed', 'Method not allowed'),
  };
  for (const router of openRouters) app.use(router.routes()).use(router.allowedMethods(methods));
  // Every /v1 request needs a key, also one for a path that does not exist.
  const auth = bearerAuth(options.controlApiKeys);
  app.use((ctx, next) => (ctx.path === '/v1' || ctx.path.startsWith('/v1/') ? auth(ctx, next) : next()));
  for (const router of apiRouters) app.use(router.routes()).use(router.allowedMethods(methods));

  routeTables.set(
    app,
    [...openRouters, ...apiRouters].flatMap((router) =>
      router.stack.flatMap((layer) => layer.methods.filter((method) => method !== 'HEAD').map((method) => ({ method, path: String(layer.path) }))),
    ),
  );
  return app;
}
