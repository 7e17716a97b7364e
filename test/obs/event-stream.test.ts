// The EventStream (docs/events.md): stream ids, the bounded replay buffer behind Last-Event-ID, and its
// subscribers; GET /v1/events over it is tested in test/http/events.routes.test.ts.
import { describe, expect, it, vi } from 'vitest';
import { createEventBus, type EventBus } from '../../src/obs/event-bus.js';
import { EventStream, type StreamedEvent } from '../../src/obs/event-stream.js';
import { envelope } from '../support/envelopes.js';

describe('EventStream', () => {
  function streamOver(bufferSize: number): { bus: EventBus; stream: EventStream; busErrors: unknown[] } {
    const busErrors: unknown[] = [];
    const bus = createEventBus((err) => busErrors.push(err));
    return { bus, stream: new EventStream(bus, { bufferSize }), busErrors };
  }
  const ids = (events: StreamedEvent[]) => events.map((e) => e.id);

  it('numbers the published envelopes 1, 2, 3... in publish order', () => {
    const { bus, stream } = streamOver(10);
    expect(stream.lastId).toBe(0);
    expect(stream.oldestId).toBeNull();
    const sent = [envelope(), envelope(), envelope()];
    sent.forEach((e) => bus.publish(e));
    expect(stream.lastId).toBe(3);
    expect(stream.since(null)).toEqual({
      events: sent.map((e, i) => ({ id: i + 1, envelope: e })),
      truncated: false,
    });
  });

  it('keeps only the last bufferSize events, also after the ring wrapped around many times', () => {
    const { bus, stream } = streamOver(3);
    const sent = Array.from({ length: 11 }, () => envelope());
    sent.forEach((e) => bus.publish(e));
    expect(stream.oldestId).toBe(9);
    const { events } = stream.since(null);
    expect(ids(events)).toEqual([9, 10, 11]);
    expect(events.map((e) => e.envelope)).toEqual(sent.slice(8));
  });

  it('filters what since returns', () => {
    const { bus, stream } = streamOver(10);
    ['a', 'b', 'a', 'c', 'a'].forEach((s) => bus.publish(envelope(`sess_${s}`)));
    expect(ids(stream.since(null, (e) => e.session_id === 'sess_a').events)).toEqual([1, 3, 5]);
    expect(ids(stream.since(3, (e) => e.session_id === 'sess_a').events)).toEqual([5]);
    expect(stream.since(null, () => false)).toEqual({ events: [], truncated: false });
  });

  it('reports truncated exactly when events after afterId have left the buffer', () => {
    const { bus, stream } = streamOver(3);
    Array.from({ length: 5 }, () => envelope()).forEach((e) => bus.publish(e)); // buffered: 3, 4, 5
    expect(stream.since(2)).toMatchObject({ truncated: false });
    expect(ids(stream.since(2).events)).toEqual([3, 4, 5]);
    expect(stream.since(1)).toMatchObject({ truncated: true });
    expect(ids(stream.since(1).events)).toEqual([3, 4, 5]);
    expect(stream.since(0)).toMatchObject({ truncated: true });
    expect(ids(stream.since(4).events)).toEqual([5]);
    expect(stream.since(5)).toEqual({ events: [], truncated: false });
    expect(stream.since(9)).toEqual({ events: [], truncated: false });
    expect(stream.since(null)).toMatchObject({ truncated: false });
    // truncation is about what left the buffer, whatever the filter
    expect(stream.since(1, () => false)).toEqual({ events: [], truncated: true });
  });

  it('reports nothing truncated before the first event', () => {
    const { stream } = streamOver(3);
    expect(stream.since(0)).toEqual({ events: [], truncated: false });
    expect(stream.since(null)).toEqual({ events: [], truncated: false });
  });

  it('delivers each new event to subscribers until they unsubscribe, and counts them', () => {
    const { bus, stream } = streamOver(3);
    const got: number[] = [];
    const unsubscribe = stream.subscribe((e) => got.push(e.id));
    const other = stream.subscribe(() => undefined);
    expect(stream.listenerCount).toBe(2);
    bus.publish(envelope());
    bus.publish(envelope());
    unsubscribe();
    bus.publish(envelope());
    expect(got).toEqual([1, 2]);
    expect(stream.listenerCount).toBe(1);
    other();
    expect(stream.listenerCount).toBe(0);
  });

  it('keeps delivering to the other subscribers when one throws, and reports the error to the bus', () => {
    const { bus, stream, busErrors } = streamOver(3);
    const got: number[] = [];
    const boom = new Error('broken subscriber');
    stream.subscribe(() => {
      throw boom;
    });
    stream.subscribe((e) => got.push(e.id));
    bus.publish(envelope());
    expect(got).toEqual([1]);
    expect(busErrors).toEqual([boom]);
    expect(stream.lastId).toBe(1);
  });

  it('unsubscribes from the bus and tells its subscribers when it closes', () => {
    const { bus, stream } = streamOver(3);
    const onClose = vi.fn();
    stream.subscribe(() => undefined, onClose);
    bus.publish(envelope());
    stream.close();
    stream.close();
    expect(onClose).toHaveBeenCalledTimes(1);
    expect(stream.listenerCount).toBe(0);
    bus.publish(envelope());
    expect(stream.lastId).toBe(1);
    const late = vi.fn();
    stream.subscribe(() => undefined, late);
    expect(late).toHaveBeenCalledTimes(1);
    expect(stream.listenerCount).toBe(0);
  });

  it('refuses a buffer size below one or not whole', () => {
    const bus = createEventBus();
    expect(() => new EventStream(bus, { bufferSize: 0 })).toThrow(RangeError);
    expect(() => new EventStream(bus, { bufferSize: 2.5 })).toThrow(RangeError);
  });
});
