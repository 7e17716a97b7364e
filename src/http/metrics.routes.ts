// `GET /metrics` for Prometheus (no key: scrapers run inside the deployment's network).
import Router from '@koa/router';
import type { Metrics } from '../obs/metrics.js';

/** `GET /metrics`: the Prometheus text exposition of this Metrics' registry. */
export function metricsRoutes(metrics: Metrics): Router {
  const router = new Router();
  router.get('/metrics', async (ctx) => {
    const body = await metrics.registry.metrics();
    ctx.set('Cache-Control', 'no-store');
    // Set before the body, so Koa keeps it instead of guessing text/plain; charset=utf-8.
    ctx.set('Content-Type', metrics.registry.contentType);
    ctx.body = body;
  });
  return router;
}
