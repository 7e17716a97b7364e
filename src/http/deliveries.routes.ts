// A call's status callbacks (docs/api.md): the delivery log, and redelivery of one event (a new
// series of attempts with the same `webhook-id`, for a receiver that lost or refused it).
import Router from '@koa/router';
import type { Clock } from '../calls/timers.js';
import { safeUrl } from '../config.js';
import type { CallStore } from '../store/call-store.port.js';
import type { Delivery, Outbox } from '../store/outbox.port.js';
import { callNotFound } from './calls.routes.js';
import { readJsonBody } from './json-body.js';
import { Problem } from './problem.js';
import { iso } from './session.js';
import { EmptyBody } from './schemas.js';

export interface DeliveryRouteOptions {
  store: CallStore;
  outbox: Outbox;
  clock: Clock;
  /** a redelivery was recorded: send it */
  redelivered: () => void;
}

function toDeliveryView(delivery: Delivery) {
  return {
    event_id: delivery.eventId,
    event: delivery.event,
    seq: delivery.seq,
    url: safeUrl(delivery.url),
    status: delivery.status,
    attempts: delivery.attempts,
    last_status_code: delivery.lastStatusCode,
    last_error: delivery.lastError,
    next_attempt_at: iso(delivery.nextAttemptAt),
    delivered_at: iso(delivery.deliveredAt),
  };
}

export function deliveryRoutes(options: DeliveryRouteOptions): Router {
  const { store, outbox } = options;
  const router = new Router();

  router.get('/v1/calls/:id/deliveries', async (ctx) => {
    const id = ctx.params.id as string;
    if (!(await store.get(id))) throw callNotFound(id);
    ctx.body = { deliveries: (await outbox.deliveries(id)).map(toDeliveryView) };
  });

  router.post('/v1/calls/:id/deliveries/:event_id/redeliver', async (ctx) => {
    await readJsonBody(ctx, EmptyBody, { optional: true });
    const id = ctx.params.id as string;
    const eventId = ctx.params.event_id as string;
    if (!(await store.get(id))) throw callNotFound(id);
    const delivery = await outbox.redeliver(id, eventId, options.clock.now());
    if (!delivery) throw new Problem(404, 'delivery_not_found', 'Delivery not found', `call ${id} has no status callback for event ${eventId}`);
    options.redelivered();
    ctx.status = 202;
    ctx.body = toDeliveryView(delivery);
  });

  return router;
}
