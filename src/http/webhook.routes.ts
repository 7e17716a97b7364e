// POST /webhook (docs/api.md): LiveKit's events, verified exactly as livekit-server-sdk's
// WebhookReceiver verifies them (the token as TokenVerifier checks it, then the body's sha256), then
// applied to calls.
import { createHash } from 'node:crypto';
import Router from '@koa/router';
import type { Middleware } from 'koa';
import { WebhookEvent } from 'livekit-server-sdk';
import type { WebhookIngest } from '../inbound/webhook-ingest.js';
import { toIncomingWebhook } from '../livekit/webhook-event.js';
import { createWebhookTokenVerifier } from '../livekit/webhook-token.js';
import type { Logger } from '../obs/logger.js';
import type { Metrics, WebhookOutcome } from '../obs/metrics.js';
import { Problem } from './problem.js';
import { readRawBody } from './raw-body.js';

export interface WebhookRouteOptions {
  apiKey: string;
  apiSecret: string;
  maxBodyBytes: number;
  ingest: WebhookIngest;
  metrics: Metrics;
  logger: Logger;
}

const REFUSALS: Record<number, WebhookOutcome> = {
  400: 'malformed',
  401: 'unauthorized',
  413: 'too_large',
  415: 'unsupported_media_type',
  503: 'not_applied',
};

const ACCEPTED_TYPES = ['application/webhook+json', 'application/json'];

/** The media type of a Content-Type header, parameters and case aside (what `ctx.is` decides, without its parser). */
function acceptedType(header: string | undefined): boolean {
  if (!header) return false;
  const end = header.indexOf(';');
  const type = (end === -1 ? header : header.slice(0, end)).trim().toLowerCase();
  return ACCEPTED_TYPES.includes(type);
}

/** Standard base64 of SHA-256 over the raw bytes: the `sha256` claim LiveKit signs. */
function bodyHash(body: Buffer): string {
  return createHash('sha256').update(body).digest('base64');
}

export function webhookRoutes(options: WebhookRouteOptions): Router {
  const verify = createWebhookTokenVerifier(options.apiKey, options.apiSecret);
  const router = new Router();

  /** Counts every answer by outcome for /metrics. */
  const countOutcome: Middleware = async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      options.metrics.webhook(REFUSALS[(err as { status?: number }).status ?? 0] ?? 'not_applied');
      throw err;
    }
  };

  const receive: Middleware = async (ctx) => {
    if (!acceptedType(ctx.req.headers['content-type'])) {
      throw new Problem(415, 'unsupported_media_type', 'Unsupported media type', `send ${ACCEPTED_TYPES.join(' or ')}`);
    }
    const token = ctx.get('authorization').trim();
    if (!token) throw new Problem(401, 'webhook_unauthorized', 'Unauthorized', 'the Authorization header is missing');
    const body = await readRawBody(ctx.req, options.maxBodyBytes);

    let claims: Record<string, unknown>;
    try {
      claims = await verify(token);
    } catch {
      throw new Problem(401, 'webhook_unauthorized', 'Unauthorized', 'the webhook signature is not valid');
    }
    if (claims.sha256 !== bodyHash(body)) {
      throw new Problem(401, 'webhook_body_mismatch', 'Unauthorized', 'the body does not match its signed sha256');
    }

    let event: WebhookEvent;
    try {
      event = WebhookEvent.fromJson(JSON.parse(body.toString('utf8')), { ignoreUnknownFields: true });
    } catch {
      throw new Problem(400, 'webhook_malformed', 'Malformed webhook', 'the body is not a LiveKit webhook event');
    }
    if (!event.event) throw new Problem(400, 'webhook_malformed', 'Malformed webhook', 'the event has no name');

    const webhook = toIncomingWebhook(event);
    try {
      const result = await options.ingest.ingest(webhook);
      options.logger.debug({ webhook_id: webhook.id, webhook_event: webhook.event, outcome: result.outcome, session_id: result.sessionId }, 'webhook');
      options.metrics.webhook(result.outcome);
      ctx.status = 200;
      ctx.body = { status: result.outcome, session_id: result.sessionId };
    } catch (err) {
      // LiveKit retries 5xx: the event was not applied, so it must come again.
      options.logger.error({ err, webhook_id: webhook.id, webhook_event: webhook.event }, 'webhook could not be applied');
      ctx.set('Retry-After', '1');
      throw new Problem(503, 'webhook_not_applied', 'Service unavailable', 'the event could not be applied durably; retry');
    }
  };

  router.post('/webhook', countOutcome, receive);

  return router;
}
