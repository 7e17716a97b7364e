// The status-callback outbox of one process. Deliveries are added by MemoryCallStore.commit in the
// same synchronous step as the call they belong to. Pending deliveries are capped: past the cap a
// new delivery is recorded `failed` at once (it can be redelivered) and `onDropped` tells, so a
// customer server that is down for hours cannot grow this process's memory without bound.
import { headOf, unchangedSince, type Delivery, type DeliveryChange, type Outbox, type OutboxLease } from '../outbox.port.js';

export interface MemoryOutboxOptions {
  /** at most this many deliveries wait to be sent */
  maxPending: number;
}

interface CallDeliveries {
  byEvent: Map<string, Delivery>;
  pending: number;
  /** the call itself is no longer retained: forget its deliveries once none is pending */
  orphan: boolean;
}

/** When a call is next due; a lease holds it for one sender until `leaseUntil`. */
interface Due {
  at: number;
  lease: { token: string; until: number } | null;
  /** work arrived while leased: due again as soon as the lease is given back */
  dirty: boolean;
}

export class MemoryOutbox implements Outbox {
  private readonly calls = new Map<string, CallDeliveries>();
  private readonly due = new Map<string, Due>();
  private pendingTotal = 0;
  private leases = 0;
  private dropListener: ((count: number) => void) | null = null;

  constructor(private readonly options: MemoryOutboxOptions) {}

  /** Records a commit's deliveries (called by the store inside its commit). */
  add(deliveries: readonly Delivery[], now: number): void {
    if (deliveries.length === 0) return;
    let dropped = 0;
    for (const delivery of deliveries) {
      const call = this.callOf(delivery.sessionId);
      // A commit's event ids are new; one seen before would be counted twice.
      if (call.byEvent.has(delivery.eventId)) continue;
      if (delivery.status === 'pending' && this.pendingTotal >= this.options.maxPending) {
        call.byEvent.set(delivery.eventId, {
          ...delivery,
          status: 'failed',
          nextAttemptAt: null,
          lastError: `not sent: ${this.options.maxPending} deliveries were already waiting (STATUS_CALLBACK_MAX_PENDING)`,
        });
        dropped++;
        continue;
      }
      call.byEvent.set(delivery.eventId, delivery);
      if (delivery.status === 'pending') this.countPending(call, 1);
      this.markDue(delivery.sessionId, now, false);
    }
    if (dropped > 0) this.dropListener?.(dropped);
  }

  /** The call is no longer retained: its deliveries go once none of them is pending. */
  forget(sessionId: string): void {
    const call = this.calls.get(sessionId);
    if (!call) return;
    if (call.pending === 0) this.calls.delete(sessionId);
    else call.orphan = true;
  }

  async claim(now: number, limit: number, leaseMs: number): Promise<OutboxLease[]> {
    const leases: OutboxLease[] = [];
    for (const [sessionId, due] of this.due) {
      if (leases.length >= limit) break;
      const free = due.lease === null ? due.at <= now : due.lease.until <= now;
      if (!free) continue;
      const token = String(++this.leases);
      due.lease = { token, until: now + leaseMs };
      due.dirty = false;
      leases.push({ sessionId, token });
    }
    return leases;
  }

  async deliveries(sessionId: string): Promise<Delivery[]> {
    const call = this.calls.get(sessionId);
    return call ? [...call.byEvent.values()].sort((a, b) => a.seq - b.seq) : [];
  }

  async release(lease: OutboxLease, changes: readonly DeliveryChange[], now: number): Promise<void> {
    const call = this.calls.get(lease.sessionId);
    if (call) {
      for (const { before, after } of changes) {
        const stored = call.byEvent.get(after.eventId);
        if (stored && unchangedSince(stored, before)) this.replace(call, after);
      }
      if (call.orphan && call.pending === 0) this.calls.delete(lease.sessionId);
    }
    const due = this.due.get(lease.sessionId);
    // Another sender took the call after this lease ran out: the call is its business now.
    if (!due || due.lease?.token !== lease.token) return;
    const head = call ? headOf([...call.byEvent.values()]) : undefined;
    if (due.dirty) {
      this.due.set(lease.sessionId, { at: now, lease: null, dirty: false });
    } else if (head) {
      this.due.set(lease.sessionId, { at: head.nextAttemptAt ?? now, lease: null, dirty: false });
    } else {
      this.due.delete(lease.sessionId);
    }
  }

  async redeliver(sessionId: string, eventId: string, now: number): Promise<Delivery | undefined> {
    const call = this.calls.get(sessionId);
    const delivery = call?.byEvent.get(eventId);
    if (!call || !delivery) return undefined;
    const renewed: Delivery = { ...delivery, status: 'pending', attempts: 0, series: delivery.series + 1, nextAttemptAt: now, deliveredAt: null };
    this.replace(call, renewed);
    this.markDue(sessionId, now, true);
    return renewed;
  }

  async pendingCount(): Promise<number> {
    return this.pendingTotal;
  }

  onDropped(listener: (count: number) => void): void {
    this.dropListener = listener;
  }

  private callOf(sessionId: string): CallDeliveries {
    let call = this.calls.get(sessionId);
    if (!call) {
      call = { byEvent: new Map(), pending: 0, orphan: false };
      this.calls.set(sessionId, call);
    }
    return call;
  }

  private replace(call: CallDeliveries, delivery: Delivery): void {
    const before = call.byEvent.get(delivery.eventId);
    if (!before) return;
    call.byEvent.set(delivery.eventId, delivery);
    this.countPending(call, (delivery.status === 'pending' ? 1 : 0) - (before.status === 'pending' ? 1 : 0));
  }

  private countPending(call: CallDeliveries, delta: number): void {
    call.pending += delta;
    this.pendingTotal += delta;
  }

  /**
   * New work for a call: due now unless it is waiting for a retry of an earlier delivery (which
   * must go first), or, with `now` forced, in any case. A leased call is marked to come due
   * again when its lease is given back.
   */
  private markDue(sessionId: string, now: number, force: boolean): void {
    const due = this.due.get(sessionId);
    if (!due) this.due.set(sessionId, { at: now, lease: null, dirty: false });
    else if (due.lease !== null) due.dirty = true;
    else if (force) due.at = Math.min(due.at, now);
  }
}
