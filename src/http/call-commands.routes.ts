// The Control API's write side (docs/api.md): place a call, hang up, transfer. Each route parses and
// validates, turns the request into one event for the call, and renders what the chart decided:
// an event the call's state does not accept is a 409.
import { createHash } from 'node:crypto';
import Router from '@koa/router';
import type { Context } from 'koa';
import type { CallRuntime, IncomingEvent } from '../calls/call-runtime.js';
import { OutboundNotConfiguredError, QueueFullError, type OutboundCalls } from '../outbound/outbound-calls.js';
import { callbackUrlProblem } from '../callbacks/endpoints.js';
import { toE164, toTransferTarget } from './phone-numbers.js';
import { toSession } from './session.js';
import type { CallStore, StoredResponse } from '../store/call-store.port.js';
import { pickLanguage } from '../errors/messages.js';
import { callNotFound } from './calls.routes.js';
import { readJsonBody } from './json-body.js';
import { Problem } from './problem.js';
import { CreateCallBody, EmptyBody, TransferBody } from './schemas.js';

export interface CallCommandRouteOptions {
  runtime: CallRuntime;
  store: CallStore;
  outbound: OutboundCalls;
  callerId: string;
  allowedFromNumbers: readonly string[];
  /** STATUS_CALLBACK_ALLOWED_HOSTS: the hosts a per-call status_callback_url may name */
  statusCallbackHosts: readonly string[];
}

/** An answered key is replayed this long (docs/api.md, Stripe's convention). */
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
/**
 * A key whose first request is in flight is held this long: if that request dies with its
 * replica, a retry may take the key over after this, with the session id the first one chose,
 * so it finds the call the first one created instead of placing a second.
 */
export const IN_FLIGHT_LEASE_MS = 15 * 1000;
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

const sha256 = (text: string): string => createHash('sha256').update(text).digest('base64url');


/** Headers in name order: the same headers in another order are the same request. */
function sortedHeaders(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function respond(ctx: Context, response: StoredResponse): void {
  ctx.status = response.status;
  for (const [name, value] of Object.entries(response.headers)) ctx.set(name, value);
  ctx.body = response.body;
}

export function callCommandRoutes(options: CallCommandRouteOptions): Router {
  const { runtime, store, outbound } = options;
  const allowedFrom = new Set([options.callerId, ...options.allowedFromNumbers]);
  const router = new Router();

  router.post('/v1/calls', async (ctx) => {
    const body = await readJsonBody(ctx, CreateCallBody);
    const to = toE164(body.to);
    if (!to) throw new Problem(422, 'invalid_number', 'Invalid number', '`to` must be a valid international number such as +31612345678');
    let from: string | null = null;
    if (body.from !== undefined) {
      from = toE164(body.from);
      if (!from || !allowedFrom.has(from)) {
        throw new Problem(422, 'from_not_allowed', 'From-number not allowed', '`from` must be CALLER_ID or one of OUTBOUND_FROM_NUMBERS');
      }
    }
    if (body.status_callback_url !== undefined) {
      const problem = callbackUrlProblem(body.status_callback_url, options.statusCallbackHosts);
      if (problem) throw new Problem(422, 'status_callback_not_allowed', 'Status callback URL not allowed', problem);
    }
    const statusCallback =
      body.status_callback_url === undefined && body.status_callback_events === undefined
        ? null
        : { url: body.status_callback_url ?? null, events: body.status_callback_events ? [...new Set(body.status_callback_events)] : null };
    const request = {
      to,
      from,
      agent: body.agent ?? null,
      metadata: body.metadata ?? null,
      ringTimeoutS: body.ring_timeout_s ?? null,
      maxDurationS: body.max_duration_s ?? null,
      statusCallback,
      // Only when given, so the fingerprint of a request without them is what it always was. The
      // dtmf is in the fingerprint (a hash) and on the call's record, nowhere else.
      ...(body.sip_headers !== undefined ? { sipHeaders: sortedHeaders(body.sip_headers) } : {}),
      ...(body.display_name !== undefined ? { displayName: body.display_name } : {}),
      ...(body.dtmf !== undefined ? { dtmf: body.dtmf } : {}),
      ...(body.record !== undefined ? { record: body.record } : {}),
    };

    const rawKey = ctx.get('idempotency-key');
    let key: string | null = null;
    let sessionId: string | undefined;
    if (rawKey !== '') {
      if (!IDEMPOTENCY_KEY.test(rawKey)) {
        throw new Problem(400, 'invalid_idempotency_key', 'Invalid Idempotency-Key', 'use 1 to 255 visible ASCII characters');
      }
      // Keys are per API key: two clients choosing the same key never see each other's calls.
      key = `${sha256(ctx.get('authorization'))}:${rawKey}`;
      const fingerprint = sha256(JSON.stringify(request));
      const claim = await store.claimIdempotencyKey(key, {
        fingerprint,
        sessionId: outbound.newSessionId(),
        leaseMs: IN_FLIGHT_LEASE_MS,
        ttlMs: IDEMPOTENCY_TTL_MS,
      });
      if (claim.status === 'claimed') {
        sessionId = claim.sessionId;
      } else {
        if (claim.fingerprint !== fingerprint) {
          throw new Problem(422, 'idempotency_key_reused', 'Idempotency-Key reused', 'this key was used with a different request body');
        }
        if (claim.status === 'in_flight') {
          throw new Problem(409, 'idempotency_in_flight', 'Request in progress', 'the first request with this key is still being processed');
        }
        ctx.set('Idempotent-Replayed', 'true');
        return respond(ctx, claim.response);
      }
    }

    let response: StoredResponse;
    try {
      const placed = await outbound.place(request, sessionId);
      if (placed.existing) ctx.set('Idempotent-Replayed', 'true');
      const record = placed.record;
      response = {
        status: 201,
        headers: { Location: `/v1/calls/${record.id}` },
        body: toSession(record, pickLanguage(ctx.get('accept-language'))),
      };
    } catch (err) {
      if (key) await store.releaseIdempotencyKey(key);
      if (err instanceof OutboundNotConfiguredError) {
        throw new Problem(503, 'outbound_not_configured', 'Outbound calls not configured', 'the service has no SIP_OUTBOUND_TRUNK_ID');
      }
      if (err instanceof QueueFullError) {
        ctx.set('Retry-After', '5');
        throw new Problem(429, 'queue_full', 'Too many queued calls', 'the outbound call queue is full; retry later');
      }
      throw err;
    }
    if (key) await store.completeIdempotencyKey(key, response);
    respond(ctx, response);
  });

  async function command(ctx: Context, event: IncomingEvent, conflict: Problem): Promise<void> {
    const id = ctx.params.id as string;
    const result = await runtime.send(id, event);
    if (result.outcome === 'not_found') throw callNotFound(id);
    if (result.outcome !== 'applied') {
      throw new Problem(conflict.status, conflict.code, conflict.title, `${conflict.detail} (the call is ${result.record.state})`, {
        state: result.record.state,
      });
    }
    ctx.status = 202;
    ctx.body = toSession(result.record, pickLanguage(ctx.get('accept-language')));
  }

  router.post('/v1/calls/:id/hangup', async (ctx) => {
    await readJsonBody(ctx, EmptyBody, { optional: true });
    await command(ctx, { type: 'api.hangup' }, new Problem(409, 'call_not_active', 'Call not active', 'only a call in progress can be hung up'));
  });

  router.post('/v1/calls/:id/transfer', async (ctx) => {
    const body = await readJsonBody(ctx, TransferBody);
    const to = toTransferTarget(body.to);
    if (!to) {
      throw new Problem(422, 'invalid_transfer_target', 'Invalid transfer target', '`to` must be an international number or a sip: URI');
    }
    const options =
      body.sip_headers === undefined && body.ring_timeout_s === undefined && body.play_dialtone === undefined
        ? {}
        : {
            options: {
              sipHeaders: body.sip_headers === undefined ? null : sortedHeaders(body.sip_headers),
              ringTimeoutS: body.ring_timeout_s ?? null,
              playDialtone: body.play_dialtone ?? null,
            },
          };
    await command(ctx, { type: 'api.transfer', to, ...options }, new Problem(409, 'call_not_connected', 'Call not connected', 'only a connected call can be transferred'));
  });

  return router;
}
