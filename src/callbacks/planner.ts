// Which status-callback deliveries a commit causes: one per committed OBS-00 event that the call's
// event filter lets through, to the call's endpoint (its own URL, else STATUS_CALLBACK_URL). The
// body is fixed here, so every attempt sends the same bytes: the event and the session object as
// `GET /v1/calls/{id}` returns it once the commit that emitted the event is stored.
import type { ObsEnvelope } from '../obs/envelope.js';
import { toSession } from '../http/session.js';
import type { CallRecord } from '../store/call-store.port.js';
import type { Delivery } from '../store/outbox.port.js';
import type { StatusCallbackConfig } from '../config.js';

export type DeliveryPlanner = (record: CallRecord, envelopes: readonly ObsEnvelope[]) => Delivery[];

export function createDeliveryPlanner(config: Pick<StatusCallbackConfig, 'url' | 'events'>): DeliveryPlanner {
  return (record, envelopes) => {
    const url = record.statusCallback?.url ?? config.url;
    if (url === null || envelopes.length === 0) return [];
    const filter = record.statusCallback?.events ?? config.events;
    const wanted = filter === null ? envelopes : envelopes.filter((envelope) => filter.includes(envelope.event));
    if (wanted.length === 0) return [];
    const call = toSession(record);
    return wanted.map((envelope) => ({
      eventId: envelope.event_id,
      sessionId: envelope.session_id,
      seq: envelope.seq,
      event: envelope.event,
      url,
      status: 'pending',
      attempts: 0,
      series: 0,
      lastStatusCode: null,
      lastError: null,
      nextAttemptAt: Date.parse(envelope.ts),
      deliveredAt: null,
      body: JSON.stringify({ type: envelope.event, timestamp: envelope.ts, data: { event: envelope, call } }),
    }));
  };
}
