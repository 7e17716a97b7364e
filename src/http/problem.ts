// RFC 9457 problem details: every error of the service, with a stable `code` clients branch on.
import type { Context, Next } from 'koa';
import { StoreUnavailableError } from '../store/errors.js';
import type { Logger } from '../obs/logger.js';

export class Problem extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly title: string,
    readonly detail?: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(detail ?? title);
    this.name = 'Problem';
  }
}

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export function renderProblem(ctx: Context, problem: Problem): void {
  ctx.status = problem.status;
  ctx.type = PROBLEM_CONTENT_TYPE;
  ctx.body = {
    type: `urn:control-plane:problem:${problem.code}`,
    title: problem.title,
    status: problem.status,
    code: problem.code,
    ...(problem.detail ? { detail: problem.detail } : {}),
    ...(ctx.path ? { instance: ctx.path } : {}),
    ...problem.extra,
  };
}

/** Koa's own errors (ctx.throw, body limits) mapped to stable codes. */
function fromHttpError(err: { status: number; message: string; expose?: boolean }): Problem {
  const codes: Record<number, [string, string]> = {
    400: ['bad_request', 'Bad request'],
    404: ['not_found', 'Not found'],
    405: ['method_not_allowed', 'Method not allowed'],
    413: ['payload_too_large', 'Payload too large'],
    415: ['unsupported_media_type', 'Unsupported media type'],
  };
  const [code, title] = codes[err.status] ?? ['http_error', 'Request failed'];
  return new Problem(err.status, code, title, err.expose ? err.message : undefined);
}

/** The single error path: problems render as they are, anything else is a logged 500. */
export function problemMiddleware(logger: Logger) {
  return async (ctx: Context, next: Next): Promise<void> => {
    try {
      await next();
      if (ctx.status === 404 && ctx.body === undefined) {
        throw new Problem(404, 'not_found', 'Not found', `no route for ${ctx.method} ${ctx.path}`);
      }
    } catch (err) {
      if (err instanceof Problem) return renderProblem(ctx, err);
      if (err instanceof StoreUnavailableError) {
        logger.error({ err, method: ctx.method, path: ctx.path }, 'call store unavailable');
        ctx.set('Retry-After', '1');
        return renderProblem(ctx, new Problem(503, 'store_unavailable', 'Service unavailable', 'the call store cannot be reached; retry'));
      }
      const status = (err as { status?: unknown }).status;
      if (typeof status === 'number' && status >= 400 && status < 500) {
        return renderProblem(ctx, fromHttpError(err as { status: number; message: string; expose?: boolean }));
      }
      logger.error({ err, method: ctx.method, path: ctx.path }, 'request failed');
      renderProblem(ctx, new Problem(500, 'internal_error', 'Internal error', 'the request could not be completed'));
    }
  };
}
