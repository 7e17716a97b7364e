// The Control API's read side (docs/api.md): list calls, get one, read its event history.
import Router from '@koa/router';
import { CALL_STATES, DIRECTIONS, type CallState, type Direction } from '../../machines/call.types.js';
import { InvalidCursorError } from '../store/errors.js';
import { toSession } from './session.js';
import type { CallStore } from '../store/call-store.port.js';
import { pickLanguage } from '../errors/messages.js';
import { Problem } from './problem.js';

const DEFAULT_LIMIT = 50;
const MAX_LIMIT = 200;

function single(value: string | string[] | undefined, name: string): string | undefined {
  if (Array.isArray(value)) throw new Problem(400, 'invalid_query', 'Invalid query', `${name} may be given once`);
  return value;
}

function oneOf<T extends string>(value: string | undefined, allowed: readonly T[], name: string): T | undefined {
  if (value === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(value)) {
    throw new Problem(400, 'invalid_query', 'Invalid query', `${name} must be one of ${allowed.join(', ')}`);
  }
  return value as T;
}

function parseLimit(value: string | undefined): number {
  if (value === undefined) return DEFAULT_LIMIT;
  const limit = /^\d{1,4}$/.test(value) ? Number(value) : NaN;
  if (!(limit >= 1 && limit <= MAX_LIMIT)) {
    throw new Problem(400, 'invalid_query', 'Invalid query', `limit must be a whole number from 1 to ${MAX_LIMIT}`);
  }
  return limit;
}

export const callNotFound = (id: string) => new Problem(404, 'call_not_found', 'Call not found', `no call with id ${id}`);

export function callReadRoutes(store: CallStore): Router {
  const router = new Router();

  router.get('/v1/calls', async (ctx) => {
    const query = ctx.query;
    const known = new Set(['state', 'direction', 'room', 'limit', 'cursor']);
    const unknown = Object.keys(query).filter((key) => !known.has(key));
    if (unknown.length > 0) throw new Problem(400, 'invalid_query', 'Invalid query', `unknown parameter ${unknown.join(', ')}`);
    const state = oneOf<CallState>(single(query.state, 'state'), CALL_STATES, 'state');
    const direction = oneOf<Direction>(single(query.direction, 'direction'), DIRECTIONS, 'direction');
    const room = single(query.room, 'room');
    if (room !== undefined && (room.length === 0 || room.length > 256)) {
      throw new Problem(400, 'invalid_query', 'Invalid query', 'room must be a LiveKit room name of 1 to 256 characters');
    }
    const limit = parseLimit(single(query.limit, 'limit'));
    const cursor = single(query.cursor, 'cursor');
    const language = pickLanguage(ctx.get('accept-language'));
    try {
      const page = await store.list({ state, direction, room, limit, cursor });
      ctx.body = { calls: page.records.map((record) => toSession(record, language)), next_cursor: page.nextCursor };
    } catch (err) {
      if (err instanceof InvalidCursorError) throw new Problem(400, 'invalid_cursor', 'Invalid cursor', err.message);
      throw err;
    }
  });

  router.get('/v1/calls/:id', async (ctx) => {
    const record = await store.get(ctx.params.id as string);
    if (!record) throw callNotFound(ctx.params.id as string);
    ctx.body = toSession(record, pickLanguage(ctx.get('accept-language')));
  });

  router.get('/v1/calls/:id/events', async (ctx) => {
    const events = await store.events(ctx.params.id as string);
    if (!events) throw callNotFound(ctx.params.id as string);
    ctx.body = { events };
  });

  return router;
}
