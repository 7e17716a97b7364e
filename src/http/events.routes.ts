// `GET /v1/events` (docs/events.md): the OBS-00 envelopes as Server-Sent Events, `id:` the stream
// position, `event:` the event name, `data:` the envelope. `Last-Event-ID` resumes from the replay
// buffer of the EventStream; `?session_id=` narrows the stream to one call.
import Router from '@koa/router';
import type { Context } from 'koa';
import type { ObsEnvelope } from '../obs/envelope.js';
import type { EventStream, StreamedEvent } from '../obs/event-stream.js';
import type { Logger } from '../obs/logger.js';
import { Problem } from './problem.js';

export interface EventRoutesOptions {
  stream: EventStream;
  /** how often a `: ping` comment keeps idle connections (and proxies) open */
  heartbeatMs: number;
  logger: Logger;
  /** a connection whose unsent output grows past this is ended (default 1 MiB) */
  maxBufferedBytes?: number;
}

export const DEFAULT_MAX_BUFFERED_BYTES = 1024 * 1024;
/** what EventSource clients wait before reconnecting, in ms (the `retry:` field) */
export const RECONNECT_DELAY_MS = 2000;

const KNOWN_PARAMETERS = new Set(['session_id', 'last_event_id']);

function single(value: string | string[] | undefined, name: string): string | undefined {
  if (Array.isArray(value)) throw new Problem(400, 'invalid_query', 'Invalid query', `${name} may be given once`);
  return value;
}

function invalidLastEventId(detail: string): Problem {
  return new Problem(400, 'invalid_last_event_id', 'Invalid Last-Event-ID', detail);
}

/**
 * The resume position: the `Last-Event-ID` header, else `?last_event_id=` (for clients that cannot
 * set headers). The header wins when both are there: an EventSource opened with the query parameter
 * sends the newer position in the header when it reconnects, to the same URL. An empty header counts
 * as absent, as EventSource means by it ("no last event id").
 */
function parseLastEventId(ctx: Context): number | null {
  const header = ctx.req.headers['last-event-id'];
  const fromQuery = single(ctx.query.last_event_id, 'last_event_id');
  const raw = header !== undefined && header !== '' ? header : fromQuery;
  if (raw === undefined) return null;
  if (typeof raw !== 'string') throw invalidLastEventId('Last-Event-ID may be given once');
  const id = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(id)) throw invalidLastEventId('Last-Event-ID must be a non-negative whole number');
  return id;
}

function parseQuery(ctx: Context): { sessionId: string | undefined; lastEventId: number | null } {
  const unknown = Object.keys(ctx.query).filter((key) => !KNOWN_PARAMETERS.has(key));
  if (unknown.length > 0) throw new Problem(400, 'invalid_query', 'Invalid query', `unknown parameter ${unknown.join(', ')}`);
  const sessionId = single(ctx.query.session_id, 'session_id');
  if (sessionId === '') throw new Problem(400, 'invalid_query', 'Invalid query', 'session_id must not be empty');
  return { sessionId, lastEventId: parseLastEventId(ctx) };
}

function formatEvent(event: StreamedEvent): string {
  // JSON.stringify escapes CR and LF, so the envelope is always one `data:` line.
  return `id: ${event.id}\nevent: ${event.envelope.event}\ndata: ${JSON.stringify(event.envelope)}\n\n`;
}

export function eventRoutes(options: EventRoutesOptions): Router {
  const { stream, heartbeatMs, logger } = options;
  const maxBufferedBytes = options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
  const router = new Router();

  router.get('/v1/events', (ctx) => {
    // Everything that can fail is checked before the stream starts, so errors stay problem+json.
    const { sessionId, lastEventId } = parseQuery(ctx);
    const filter = sessionId === undefined ? undefined : (e: ObsEnvelope) => e.session_id === sessionId;

    ctx.status = 200;
    ctx.set({
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    if (ctx.method === 'HEAD') return;

    // Koa steps aside: the response is written here, for as long as the client stays.
    ctx.respond = false;
    const { req, res } = ctx;
    req.socket.setTimeout(0);
    req.socket.setNoDelay(true);
    res.flushHeaders();

    let open = true;
    let checkPressure = false;
    /** live events that arrive while the replay is being written */
    let pending: StreamedEvent[] | null = [];
    /** the highest id written: nothing at or below it is written again */
    let lastSent = 0;

    let unsubscribe: () => void = () => undefined;
    // The heartbeat comment keeps idle connections (and the proxies on the way) open.
    const heartbeat = setInterval(() => write(': ping\n\n'), heartbeatMs);
    heartbeat.unref();

    const close = (how: 'end' | 'destroy'): void => {
      if (!open) return;
      open = false;
      unsubscribe();
      clearInterval(heartbeat);
      if (how === 'destroy') res.destroy();
      else if (!res.destroyed && !res.writableEnded) res.end();
      logger.debug({ session_id: sessionId, last_event_id: lastSent }, 'event stream closed');
    };
    const write = (chunk: string): void => {
      if (!open || res.destroyed || res.writableEnded) return;
      res.write(chunk);
      // A client that does not keep up is cut off rather than buffered for without bound; it
      // resumes with Last-Event-ID. The replay itself is bounded by the buffer and not counted.
      if (checkPressure && res.writableLength > maxBufferedBytes) {
        logger.warn({ buffered_bytes: res.writableLength, last_event_id: lastSent }, 'event stream client too slow, disconnected');
        close('destroy');
      }
    };
    const send = (event: StreamedEvent): void => {
      if (event.id <= lastSent) return;
      if (filter && !filter(event.envelope)) return;
      lastSent = event.id;
      write(formatEvent(event));
    };

    // Subscribe before the replay is read, so no event falls between the two; an event seen by
    // both is written once (`lastSent`).
    unsubscribe = stream.subscribe(
      (event) => {
        if (pending) pending.push(event);
        else send(event);
      },
      () => close('end'),
    );
    const subscribedAt = stream.lastId;
    req.on('close', () => close('end'));
    res.on('close', () => close('end'));
    res.on('error', (err) => logger.debug({ err }, 'event stream connection failed'));

    write(`retry: ${RECONNECT_DELAY_MS}\n\n`);
    if (lastEventId === null) {
      // No resume position: only what happens from now on.
      lastSent = subscribedAt;
    } else {
      // An id greater than the latest one cannot be from this process: it is from before a
      // restart (ids start again at 1). It is not taken as "from now on", which would silently
      // drop whatever happened since the restart; the client gets everything still buffered,
      // after a `stream.truncated` that tells it events may be missing and that it should
      // re-read `GET /v1/calls/{id}/events`.
      const stale = lastEventId > subscribedAt;
      const replay = stale ? stream.since(null, filter) : stream.since(lastEventId, filter);
      lastSent = stale ? 0 : lastEventId;
      if (stale || replay.truncated) {
        write(`event: stream.truncated\ndata: ${JSON.stringify({ oldest_id: stream.oldestId })}\n\n`);
      }
      for (const event of replay.events) send(event);
    }
    const arrived = pending;
    pending = null;
    for (const event of arrived) send(event);
    checkPressure = true;
    logger.debug({ session_id: sessionId, last_event_id: lastEventId }, 'event stream opened');
  });

  return router;
}
