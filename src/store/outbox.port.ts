// The status-callback outbox (docs/status-callbacks.md): the deliveries a commit causes are
// recorded by `CallStore.commit` together with the call (all or nothing); the sender takes calls
// with a delivery due from here, one replica per call at a time (a lease), sends the call's
// earliest pending delivery and writes its outcome back.
import type { ObsEventName } from '../../machines/call.types.js';

export const DELIVERY_STATUSES = Object.freeze(['pending', 'delivered', 'failed', 'canceled'] as const);
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

export interface Delivery {
  /** the OBS-00 event's `event_id`: the `webhook-id` of every attempt */
  eventId: string;
  sessionId: string;
  seq: number;
  event: ObsEventName;
  url: string;
  status: DeliveryStatus;
  /** attempts of the current series (a redelivery starts a new series) */
  attempts: number;
  /** 0 for the series the commit started; each redelivery adds one */
  series: number;
  lastStatusCode: number | null;
  lastError: string | null;
  /** epoch ms; null unless pending */
  nextAttemptAt: number | null;
  deliveredAt: number | null;
  /** the JSON body of every attempt, fixed when the event was committed */
  body: string;
}

/**
 * The outcome of an attempt (or a cancellation) to store: `after` replaces the stored delivery
 * only while that is still as `before` was (pending, the same series, the same number of
 * attempts). So a sender whose lease ran out, or whose attempt a redelivery overtook, writes
 * nothing over newer news.
 */
export interface DeliveryChange {
  before: Delivery;
  after: Delivery;
}

/** Whether `stored` is still the delivery a change was made from. */
export function unchangedSince(stored: Delivery, before: Delivery): boolean {
  return stored.status === 'pending' && stored.series === before.series && stored.attempts === before.attempts;
}

/** A call held by one sender until it gives it back; `token` names this hold. */
export interface OutboxLease {
  sessionId: string;
  token: string;
}

export interface Outbox {
  /**
   * Up to `limit` calls whose earliest pending delivery is due at or before `now` (or that have
   * new deliveries), each leased to the caller for `leaseMs`: no other sender gets the call until
   * the lease is given back or runs out.
   */
  claim(now: number, limit: number, leaseMs: number): Promise<OutboxLease[]>;
  /** Every delivery of a call, in seq order (empty for a call with none). */
  deliveries(sessionId: string): Promise<Delivery[]>;
  /**
   * Stores the outcome of an attempt (each change whose delivery is unchanged since) and gives
   * the lease back: the call comes due again at its earliest pending delivery's `nextAttemptAt`,
   * or leaves the outbox.
   */
  release(lease: OutboxLease, changes: readonly DeliveryChange[], now: number): Promise<void>;
  /**
   * Starts a new series of attempts of a delivery, due at once; undefined when the call has no
   * delivery of that event.
   */
  redeliver(sessionId: string, eventId: string, now: number): Promise<Delivery | undefined>;
  /** deliveries waiting to be sent, over every call */
  pendingCount(): Promise<number>;
  /**
   * Tells `listener` of deliveries recorded `failed` without an attempt because the outbox was
   * full (only an outbox with a cap, the in-memory one, ever does).
   */
  onDropped(listener: (count: number) => void): void;
}

/** The call's earliest pending delivery: the only one that may be sent. */
export function headOf(deliveries: readonly Delivery[]): Delivery | undefined {
  let head: Delivery | undefined;
  for (const delivery of deliveries) if (delivery.status === 'pending' && (!head || delivery.seq < head.seq)) head = delivery;
  return head;
}
