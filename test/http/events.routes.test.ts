// GET /v1/events: OBS-00 envelopes as Server-Sent Events (docs/events.md), with Last-Event-ID resume
// from the EventStream's replay buffer (tested on its own in test/obs/event-stream.test.ts).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect as connectTcp, type Socket } from 'node:net';
import Koa from 'koa';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { eventRoutes } from '../../src/http/events.routes.js';
import { problemMiddleware } from '../../src/http/problem.js';
import type { ObsEnvelope } from '../../src/obs/envelope.js';
import { createEventBus, type EventBus } from '../../src/obs/event-bus.js';
import { EventStream } from '../../src/obs/event-stream.js';
import { createLogger } from '../../src/obs/logger.js';
import { envelope } from '../support/envelopes.js';

// ---------------------------------------------------------------------------------------------
// fixtures

/** One SSE block (the lines up to a blank line). */
interface SseBlock {
  id?: string;
  event?: string;
  data?: string;
  retry?: string;
  comments: string[];
}

function parseBlock(raw: string): SseBlock {
  const block: SseBlock = { comments: [] };
  for (const line of raw.split('\n')) {
    if (line.startsWith(':')) {
      block.comments.push(line.slice(1).trim());
      continue;
    }
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'id' || field === 'event' || field === 'retry') block[field] = value;
    else if (field === 'data') block.data = block.data === undefined ? value : `${block.data}\n${value}`;
  }
  return block;
}

/** Reads an SSE response body block by block. */
class SseClient {
  private readonly blocks: SseBlock[] = [];
  private waiters: (() => void)[] = [];
  private text = '';
  ended = false;

  constructor(
    readonly response: Response,
    private readonly controller: AbortController,
  ) {
    void this.pump();
  }

  private async pump(): Promise<void> {
    const reader = this.response.body!.getReader();
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        this.text += decoder.decode(value, { stream: true });
        let end: number;
        while ((end = this.text.indexOf('\n\n')) !== -1) {
          this.blocks.push(parseBlock(this.text.slice(0, end)));
          this.text = this.text.slice(end + 2);
        }
        this.wake();
      }
    } catch {
      // aborted by the test, or cut by the server
    }
    this.ended = true;
    this.wake();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  /** The next block, whatever it is (heartbeat comments and `retry:` included). */
  async next(timeoutMs = 3000): Promise<SseBlock> {
    const deadline = Date.now() + timeoutMs;
    while (this.blocks.length === 0) {
      if (this.ended) throw new Error('the stream ended');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no SSE block within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.blocks.shift()!;
  }

  /** The next block that is an event (skips comments and `retry:`). */
  async nextEvent(timeoutMs = 3000): Promise<SseBlock> {
    for (;;) {
      const block = await this.next(timeoutMs);
      if (block.event !== undefined || block.data !== undefined) return block;
    }
  }

  async events(count: number): Promise<SseBlock[]> {
    const events: SseBlock[] = [];
    while (events.length < count) events.push(await this.nextEvent());
    return events;
  }

  /** resolves once the server has ended the response */
  async closed(timeoutMs = 3000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended) {
      if (Date.now() > deadline) throw new Error('the stream did not end');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  abort(): void {
    this.controller.abort();
  }
}

interface Harness {
  url: string;
  bus: EventBus;
  stream: EventStream;
  logLines: Record<string, unknown>[];
  busErrors: unknown[];
  publish(...envelopes: ObsEnvelope[]): void;
  open(path?: string, headers?: Record<string, string>): Promise<SseClient>;
  close(): Promise<void>;
}

const clients: SseClient[] = [];
let harness: Harness | null = null;

interface HarnessOptions {
  bufferSize?: number;
  heartbeatMs?: number;
  makeStream?: (bus: EventBus, bufferSize: number) => EventStream;
}

async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const busErrors: unknown[] = [];
  const bus = createEventBus((err) => busErrors.push(err));
  const bufferSize = options.bufferSize ?? 100;
  const stream = options.makeStream ? options.makeStream(bus, bufferSize) : new EventStream(bus, { bufferSize });
  const logLines: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: 'debug',
    destination: { write: (line: string) => void logLines.push(JSON.parse(line) as Record<string, unknown>) },
  });
  const app = new Koa();
  app.silent = true;
  app.use(problemMiddleware(logger));
  app.use(eventRoutes({ stream, heartbeatMs: options.heartbeatMs ?? 60_000, logger }).routes());
  const server: Server = createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  harness = {
    url,
    bus,
    stream,
    logLines,
    busErrors,
    publish: (...envelopes) => envelopes.forEach((e) => bus.publish(e)),
    async open(path = '/v1/events', headers = {}) {
      const controller = new AbortController();
      const response = await fetch(`${url}${path}`, { headers, signal: controller.signal });
      const client = new SseClient(response, controller);
      clients.push(client);
      return client;
    },
    async close() {
      stream.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return harness;
}

afterEach(async () => {
  for (const client of clients.splice(0)) client.abort();
  await harness?.close();
  harness = null;
});

/** Opens a stream and waits for its `retry:` block, so the server is subscribed. */
async function openReady(h: Harness, path?: string, headers?: Record<string, string>): Promise<SseClient> {
  const client = await h.open(path, headers);
  expect(client.response.status).toBe(200);
  expect(await client.next()).toEqual({ retry: '2000', comments: [] });
  return client;
}

function asEvent(block: SseBlock): { id: number; event: string | undefined; envelope: ObsEnvelope } {
  return { id: Number(block.id), event: block.event, envelope: JSON.parse(block.data ?? 'null') as ObsEnvelope };
}

// ---------------------------------------------------------------------------------------------
// GET /v1/events

describe('GET /v1/events', () => {
  it('answers 200 with the event-stream headers and starts with a retry line', async () => {
    const h = await startHarness();
    const client = await h.open();
    expect(client.response.status).toBe(200);
    expect(client.response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(client.response.headers.get('cache-control')).toBe('no-cache, no-transform');
    expect(client.response.headers.get('connection')).toBe('keep-alive');
    expect(client.response.headers.get('x-accel-buffering')).toBe('no');
    expect(await client.next()).toEqual({ retry: '2000', comments: [] });
  });

  it('delivers a live event with its stream id, its name as the event type and the envelope as data', async () => {
    const h = await startHarness();
    const client = await openReady(h);
    const sent = envelope('sess_live', 'call.ringing', { attempt: 1 });
    h.publish(sent);
    const block = await client.nextEvent();
    expect(block.id).toBe('1');
    expect(block.event).toBe('call.ringing');
    expect(JSON.parse(block.data!)).toEqual(sent);
  });

  it('sends only new events to a client that gives no Last-Event-ID', async () => {
    const h = await startHarness();
    h.publish(envelope(), envelope());
    const client = await openReady(h);
    const fresh = envelope('sess_new');
    h.publish(fresh);
    expect(asEvent(await client.nextEvent())).toEqual({ id: 3, event: 'call.created', envelope: fresh });
  });

  it('sends only the events of one call when session_id is given', async () => {
    const h = await startHarness();
    const client = await openReady(h, '/v1/events?session_id=sess_b');
    const mine = [envelope('sess_b', 'call.created'), envelope('sess_b', 'call.ringing')];
    h.publish(envelope('sess_a'), mine[0]!, envelope('sess_c'), envelope('sess_a'), mine[1]!);
    const received = (await client.events(2)).map(asEvent);
    expect(received.map((e) => e.envelope)).toEqual(mine);
    expect(received.map((e) => e.id)).toEqual([2, 5]);
  });

  it('replays exactly the missed events on reconnect with Last-Event-ID, in order, then continues live', async () => {
    const h = await startHarness();
    const first = await openReady(h);
    const before = [envelope(), envelope(), envelope()];
    h.publish(...before);
    const seen = (await first.events(3)).map(asEvent);
    expect(seen.map((e) => e.id)).toEqual([1, 2, 3]);
    first.abort();
    await vi.waitFor(() => expect(h.stream.listenerCount).toBe(0));

    // published while the client was away
    const missed = [envelope('sess_a', 'call.started'), envelope('sess_b'), envelope('sess_a', 'call.ending')];
    h.publish(...missed);

    const second = await openReady(h, '/v1/events', { 'Last-Event-ID': String(seen.at(-1)!.id) });
    const replayed = (await second.events(3)).map(asEvent);
    expect(replayed.map((e) => e.id)).toEqual([4, 5, 6]);
    expect(replayed.map((e) => e.envelope)).toEqual(missed);

    // nothing else came with the replay: the next event is the next live one
    const live = envelope('sess_a', 'call.ended');
    h.publish(live);
    expect(asEvent(await second.nextEvent())).toEqual({ id: 7, event: 'call.ended', envelope: live });
  });

  it('loses and duplicates no event when events are published right around the reconnect', async () => {
    const h = await startHarness({ bufferSize: 1000 });
    const client = await openReady(h);
    const published: ObsEnvelope[] = [];
    const publish = (count: number) => {
      for (let i = 0; i < count; i++) {
        const e = envelope(`sess_${i % 3}`);
        published.push(e);
        h.publish(e);
      }
    };
    publish(20);
    const received = (await client.events(10)).map(asEvent);
    client.abort();
    // more events while the old connection is going away and the new one is coming up
    const reconnect = h.open('/v1/events', { 'Last-Event-ID': String(received.at(-1)!.id) });
    publish(15);
    const again = await reconnect;
    publish(15);
    const rest = (await again.events(40)).map(asEvent);
    const all = [...received, ...rest];
    expect(all.map((e) => e.id)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(all.map((e) => e.envelope)).toEqual(published);
  });

  it('writes an event once when it arrives between the subscription and the replay', async () => {
    /** publishes `arriving` on the bus just as the replay is taken: it is then both live and replayed */
    class RacyStream extends EventStream {
      arriving: ObsEnvelope[] = [];
      constructor(private readonly racyBus: EventBus, bufferSize: number) {
        super(racyBus, { bufferSize });
      }
      override since(afterId: number | null, filter?: (e: ObsEnvelope) => boolean) {
        for (const e of this.arriving.splice(0)) this.racyBus.publish(e);
        return super.since(afterId, filter);
      }
    }
    let racy: RacyStream | null = null;
    const h = await startHarness({ makeStream: (bus, size) => (racy = new RacyStream(bus, size)) });
    const before = [envelope(), envelope()];
    h.publish(...before);
    const arriving = [envelope('sess_a', 'call.started'), envelope('sess_a', 'call.ending')];
    racy!.arriving = [...arriving];
    const client = await openReady(h, '/v1/events', { 'Last-Event-ID': '1' });
    const received = (await client.events(3)).map(asEvent);
    expect(received.map((e) => e.id)).toEqual([2, 3, 4]);
    expect(received.map((e) => e.envelope)).toEqual([before[1], ...arriving]);
    const live = envelope('sess_a', 'call.ended');
    h.publish(live);
    expect(asEvent(await client.nextEvent())).toEqual({ id: 5, event: 'call.ended', envelope: live });
  });

  it('accepts the resume position as ?last_event_id= and lets the Last-Event-ID header win over it', async () => {
    const h = await startHarness();
    const sent = [envelope(), envelope(), envelope(), envelope()];
    h.publish(...sent);
    const byQuery = await openReady(h, '/v1/events?last_event_id=2');
    expect((await byQuery.events(2)).map((b) => b.id)).toEqual(['3', '4']);
    const both = await openReady(h, '/v1/events?last_event_id=1', { 'Last-Event-ID': '3' });
    expect(asEvent(await both.nextEvent())).toMatchObject({ id: 4, envelope: sent[3] });
  });

  it('replays the buffered events of one call when Last-Event-ID and session_id are both given', async () => {
    const h = await startHarness();
    const mine = envelope('sess_x');
    h.publish(envelope('sess_y'), envelope('sess_y'), mine, envelope('sess_y'));
    const client = await openReady(h, '/v1/events?session_id=sess_x', { 'Last-Event-ID': '0' });
    expect(asEvent(await client.nextEvent())).toEqual({ id: 3, event: 'call.created', envelope: mine });
    const live = envelope('sess_x', 'call.ended');
    h.publish(envelope('sess_y'), live);
    expect(asEvent(await client.nextEvent())).toEqual({ id: 6, event: 'call.ended', envelope: live });
  });

  it('sends stream.truncated first, then the oldest buffered events, when Last-Event-ID is older than the buffer', async () => {
    const h = await startHarness({ bufferSize: 3 });
    const sent = Array.from({ length: 6 }, () => envelope());
    h.publish(...sent);
    const client = await openReady(h, '/v1/events', { 'Last-Event-ID': '1' });
    const truncated = await client.nextEvent();
    expect(truncated).toEqual({ event: 'stream.truncated', data: '{"oldest_id":4}', comments: [] });
    const replayed = (await client.events(3)).map(asEvent);
    expect(replayed.map((e) => e.id)).toEqual([4, 5, 6]);
    expect(replayed.map((e) => e.envelope)).toEqual(sent.slice(3));
  });

  it('sends no stream.truncated when the first missed event is still the oldest buffered one', async () => {
    const h = await startHarness({ bufferSize: 3 });
    h.publish(...Array.from({ length: 6 }, () => envelope()));
    const client = await openReady(h, '/v1/events', { 'Last-Event-ID': '3' });
    expect((await client.events(3)).map((b) => b.id)).toEqual(['4', '5', '6']);
  });

  it('treats a Last-Event-ID beyond the latest id as from before a restart: stream.truncated, then all that is buffered', async () => {
    const h = await startHarness({ bufferSize: 3 });
    h.publish(envelope(), envelope());
    const client = await openReady(h, '/v1/events', { 'Last-Event-ID': '99' });
    expect(await client.nextEvent()).toMatchObject({ event: 'stream.truncated', data: '{"oldest_id":1}' });
    expect((await client.events(2)).map((b) => b.id)).toEqual(['1', '2']);
  });

  it('reports oldest_id null when the stream is truncated and nothing is buffered yet', async () => {
    const h = await startHarness();
    const client = await openReady(h, '/v1/events', { 'Last-Event-ID': '5' });
    expect(await client.nextEvent()).toMatchObject({ event: 'stream.truncated', data: '{"oldest_id":null}' });
    const live = envelope();
    h.publish(live);
    expect(asEvent(await client.nextEvent())).toEqual({ id: 1, event: 'call.created', envelope: live });
  });

  it.each([['abc'], ['-1'], ['1.5'], ['1e3'], [' 7x'], ['99999999999999999999']])(
    'answers 400 invalid_last_event_id problem+json to the Last-Event-ID %j',
    async (value) => {
      const h = await startHarness();
      const response = await fetch(`${h.url}/v1/events`, { headers: { 'Last-Event-ID': value } });
      expect(response.status).toBe(400);
      expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(await response.json()).toMatchObject({ status: 400, code: 'invalid_last_event_id' });
      expect(h.stream.listenerCount).toBe(0);
    },
  );

  it('answers 400 invalid_last_event_id to a garbage ?last_event_id=', async () => {
    const h = await startHarness();
    const response = await fetch(`${h.url}/v1/events?last_event_id=soon`);
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ code: 'invalid_last_event_id' });
  });

  it('answers 400 invalid_query problem+json to an unknown query parameter', async () => {
    const h = await startHarness();
    const response = await fetch(`${h.url}/v1/events?session_id=sess_a&since=5`);
    expect(response.status).toBe(400);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(await response.json()).toMatchObject({ status: 400, code: 'invalid_query', detail: 'unknown parameter since' });
  });

  it('answers 400 invalid_query to a session_id given twice or empty', async () => {
    const h = await startHarness();
    for (const query of ['session_id=a&session_id=b', 'session_id=']) {
      const response = await fetch(`${h.url}/v1/events?${query}`);
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ code: 'invalid_query' });
    }
  });

  it('sends heartbeat comments while nothing happens', async () => {
    const h = await startHarness({ heartbeatMs: 50 });
    const client = await openReady(h);
    expect(await client.next()).toEqual({ comments: ['ping'] });
    expect(await client.next()).toEqual({ comments: ['ping'] });
  });

  it('releases the subscription once the client goes away', async () => {
    const h = await startHarness({ heartbeatMs: 50 });
    const a = await openReady(h);
    const b = await openReady(h);
    expect(h.stream.listenerCount).toBe(2);
    a.abort();
    await vi.waitFor(() => expect(h.stream.listenerCount).toBe(1));
    b.abort();
    await vi.waitFor(() => expect(h.stream.listenerCount).toBe(0));
    // publishing to nobody is fine
    h.publish(envelope());
    expect(h.busErrors).toEqual([]);
  });

  it('ends every open stream when the EventStream closes', async () => {
    const h = await startHarness();
    const client = await openReady(h);
    h.stream.close();
    await client.closed();
    expect(h.stream.listenerCount).toBe(0);
  });

  it('cuts off a client that stops reading instead of buffering for it without bound', async () => {
    const h = await startHarness({ bufferSize: 4 });
    const { port } = new URL(h.url);
    const socket: Socket = connectTcp(Number(port), '127.0.0.1');
    const socketClosed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.on('error', () => undefined);
    socket.write('GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n');
    await vi.waitFor(() => expect(h.stream.listenerCount).toBe(1));
    socket.pause(); // reads nothing more: the kernel buffers fill, then the server's

    const payload = 'x'.repeat(256 * 1024);
    let published = 0;
    while (h.stream.listenerCount > 0 && published < 400) {
      h.publish(envelope('sess_big', 'call.started', { payload }));
      published += 1;
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(h.stream.listenerCount).toBe(0);
    expect(published).toBeLessThan(400); // cut after at most ~100 MiB, really after a few MiB
    expect(h.logLines.some((line) => line.msg === 'event stream client too slow, disconnected')).toBe(true);

    socket.resume(); // the client sees the connection end
    await socketClosed;
  });
});
