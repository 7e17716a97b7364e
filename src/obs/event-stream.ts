// The Control API's event stream (docs/events.md, `GET /v1/events`): every OBS-00 envelope published on
// the bus gets the next stream id (1, 2, 3... per process) and is kept in a bounded replay buffer,
// so a client that reconnects with `Last-Event-ID` receives exactly the events it missed, or is told
// that some have already left the buffer.
import type { ObsEnvelope } from './envelope.js';
import type { EventBus } from './event-bus.js';

export interface StreamedEvent {
  /** position in this service's stream, 1, 2, 3... (the SSE `id:`); restarts at 1 with the process */
  id: number;
  envelope: ObsEnvelope;
}

export interface EventStreamOptions {
  /** how many of the latest events are kept for replay (a whole number, at least 1) */
  bufferSize: number;
}

export type StreamListener = (event: StreamedEvent) => void;

export class EventStream {
  /** A ring buffer: the event with id `n` lives in slot `(n - 1) % bufferSize`. */
  private readonly ring: (StreamedEvent | undefined)[];
  private readonly bufferSize: number;
  private readonly listeners = new Map<StreamListener, (() => void) | undefined>();
  private unsubscribeBus: (() => void) | null;
  private last = 0;
  /** the first id this stream has seen (a replica joins a shared stream part-way) */
  private first = 0;
  private closed = false;

  /**
   * With a bus, every envelope published on it gets the next id. Without one, the owner feeds
   * events with their ids through `push` (a replica following the shared Redis event log).
   */
  constructor(bus: EventBus | null, options: EventStreamOptions) {
    if (!Number.isSafeInteger(options.bufferSize) || options.bufferSize < 1) {
      throw new RangeError(`bufferSize must be a whole number of at least 1, got ${options.bufferSize}`);
    }
    this.bufferSize = options.bufferSize;
    this.ring = new Array<StreamedEvent | undefined>(options.bufferSize);
    this.unsubscribeBus = bus ? bus.subscribe((envelope) => this.push(envelope)) : null;
  }

  /** the id of the latest event (0 before the first) */
  get lastId(): number {
    return this.last;
  }

  /** the id of the oldest event still in the buffer, null before the first event */
  get oldestId(): number | null {
    return this.last === 0 ? null : Math.max(this.first, this.last - this.bufferSize + 1);
  }

  /** how many subscribers are attached (the open `GET /v1/events` connections) */
  get listenerCount(): number {
    return this.listeners.size;
  }

  /**
   * Events after `afterId` still in the buffer (all of them when `afterId` is null), in id order,
   * optionally filtered. `truncated` is true when events after `afterId` have already left the
   * buffer: those may or may not have matched the filter, nobody can tell any more, so the
   * filter plays no part in it. `afterId` is taken as given: an id from before a restart (greater
   * than `lastId`) simply yields nothing here; callers decide what a stale id means.
   */
  since(afterId: number | null, filter?: (e: ObsEnvelope) => boolean): { events: StreamedEvent[]; truncated: boolean } {
    const oldest = this.oldestId;
    if (oldest === null) return { events: [], truncated: false };
    const from = afterId === null ? oldest : Math.max(afterId + 1, oldest);
    const truncated = afterId !== null && afterId + 1 < oldest;
    const events: StreamedEvent[] = [];
    for (let id = from; id <= this.last; id++) {
      const event = this.ring[(id - 1) % this.bufferSize];
      if (event && event.id === id && (!filter || filter(event.envelope))) events.push(event);
    }
    return { events, truncated };
  }

  /**
   * Calls `listener` with every event appended from now on; `onClose` runs once when the stream
   * closes (so an open connection can end). Returns the unsubscribe function.
   */
  subscribe(listener: StreamListener, onClose?: () => void): () => void {
    if (this.closed) {
      onClose?.();
      return () => undefined;
    }
    // A wrapper, so the same function subscribed twice is two subscriptions.
    const entry: StreamListener = (event) => listener(event);
    this.listeners.set(entry, onClose);
    return () => {
      this.listeners.delete(entry);
    };
  }

  /** Unsubscribes from the bus and tells every subscriber the stream is over. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribeBus?.();
    this.unsubscribeBus = null;
    const closers = [...this.listeners.values()];
    this.listeners.clear();
    for (const onClose of closers) onClose?.();
  }

  /** Appends an event; `id` defaults to the next one and must be greater than `lastId`. */
  push(envelope: ObsEnvelope, id: number = this.last + 1): void {
    if (this.closed || id <= this.last) return;
    const event: StreamedEvent = { id, envelope };
    this.ring[(event.id - 1) % this.bufferSize] = event;
    if (this.first === 0) this.first = id;
    this.last = event.id;
    // Every subscriber gets the event even when one throws; the first failure then goes to the
    // bus, which reports it through its onListenerError.
    let failure: { err: unknown } | null = null;
    for (const listener of [...this.listeners.keys()]) {
      // One that left while this event was being delivered does not get it.
      if (!this.listeners.has(listener)) continue;
      try {
        listener(event);
      } catch (err) {
        failure ??= { err };
      }
    }
    if (failure) throw failure.err;
  }
}
