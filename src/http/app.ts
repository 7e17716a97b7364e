// The Koa application: building it is separate from listening, so tests drive
// `app.callback()` with supertest and no socket.
import Koa from 'koa';
import Router from '@koa/router';
import type { CallRuntime } from '../calls/call-runtime.js';
import type { OutboundCalls } from '../calls/outbound.js';
import type { CallStore } from '../calls/store.port.js';
import type { WebhookIngest } from '../calls/webhook-ingest.js';
import type { Logger } from '../obs/logger.js';
import type { EventStream } from '../obs/event-stream.js';
import { metricsRoutes, type Metrics } from '../obs/metrics.js';
import { bearerAuth } from './auth.js';
import { callCommandRoutes } from './call-commands.routes.js';
import { callReadRoutes } from './calls.routes.js';
import { eventRoutes } from './events.routes.js';
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
  open.get('/readyz', async (ctx) => {
    try {
      await options.store.ping();
    } catch {
      throw new Problem(503, 'store_unavailable', 'Not ready', 'the call store cannot be reached');
    }
    ctx.body = { status: 'ready' };
  });
  app.use(open.routes());
  // Counts only, no call data: scraped without a Control API key, like /healthz.
  app.use(metricsRoutes(options.metrics).routes());
  app.use(
    webhookRoutes({
      apiKey: options.livekit.apiKey,
      apiSecret: options.livekit.apiSecret,
      maxBodyBytes: options.webhookMaxBodyBytes,
      ingest: options.ingest,
      metrics: options.metrics,
      logger: options.logger,
    }).routes(),
  );

  // Every /v1 request needs a key, also one for a path that does not exist.
  const auth = bearerAuth(options.controlApiKeys);
  app.use((ctx, next) => (ctx.path === '/v1' || ctx.path.startsWith('/v1/') ? auth(ctx, next) : next()));
  const api = new Router();
  api.use(callReadRoutes(options.store).routes());
  api.use(
    callCommandRoutes({
      runtime: options.runtime,
      store: options.store,
      outbound: options.outbound,
      callerId: options.callerId,
      allowedFromNumbers: options.allowedFromNumbers,
    }).routes(),
  );
  api.use(eventRoutes({ stream: options.stream, heartbeatMs: options.heartbeatMs, logger: options.logger }).routes());
  app.use(api.routes());
  app.use(api.allowedMethods({ throw: true }));
  return app;
}
