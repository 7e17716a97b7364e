// The in-process fan-out of OBS-00 events (the Control API's event stream subscribes here).
import type { ObsEnvelope } from './envelope.js';

export type EventListener = (envelope: ObsEnvelope) => void;

export interface EventBus {
  publish(envelope: ObsEnvelope): void;
  /** returns the unsubscribe function */
  subscribe(listener: EventListener): () => void;
}

export function createEventBus(onListenerError: (err: unknown) => void = () => undefined): EventBus {
  const listeners = new Set<EventListener>();
  return {
    publish(envelope) {
      for (const listener of listeners) {
        // One broken subscriber never stops delivery to the others, nor the call.
        try {
          listener(envelope);
        } catch (err) {
          onListenerError(err);
        }
      }
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
