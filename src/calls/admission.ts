// Admission control for outbound dials (CP-02): at most MAX_CONCURRENT_CALLS outbound calls in
// progress and at most CALLS_PER_SECOND new dials a second (a token bucket holding one second's
// worth). Calls beyond that wait in `queued`, first in, first out, and dial as slots free; the
// queue itself is bounded.
import type { ObsEnvelope } from '../obs/envelope.js';
import type { Logger } from '../obs/logger.js';
import type { Clock, Scheduler } from './timers.js';

const WAKE_KEY = 'admission';

export interface AdmissionOptions {
  maxConcurrent: number;
  callsPerSecond: number;
  maxQueued: number;
  clock: Clock;
  scheduler: Scheduler;
  logger: Logger;
  /** hands a slot to a call; resolves true when the call took it (it may have been hung up meanwhile) */
  grant: (sessionId: string) => Promise<boolean>;
}

export class Admission {
  private readonly queue: string[] = [];
  private head = 0;
  /** calls holding a slot: from the grant until they are final */
  private readonly active = new Set<string>();
  private readonly burst: number;
  private tokens: number;
  private refilledAt: number;
  private pumping = false;

  constructor(private readonly options: AdmissionOptions) {
    this.burst = Math.max(1, options.callsPerSecond);
    this.tokens = this.burst;
    this.refilledAt = options.clock.now();
  }

  get queued(): number {
    return this.queue.length - this.head;
  }

  get inProgress(): number {
    return this.active.size;
  }

  /** Whether one more call may wait for a slot. */
  hasRoom(): boolean {
    return this.queued < this.options.maxQueued || this.canGrantNow();
  }

  enqueue(sessionId: string): void {
    this.queue.push(sessionId);
    this.pump();
  }

  /** Follows the event stream: a final outbound call frees its slot or leaves the queue. */
  observe(envelope: ObsEnvelope): void {
    if (envelope.direction !== 'outbound' || (envelope.state !== 'ended' && envelope.state !== 'failed')) return;
    if (this.active.delete(envelope.session_id)) {
      this.pump();
      return;
    }
    const index = this.queue.indexOf(envelope.session_id, this.head);
    if (index >= 0) this.queue.splice(index, 1);
  }

  stop(): void {
    this.options.scheduler.cancel(WAKE_KEY);
  }

  private refill(): void {
    const now = this.options.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.refilledAt) / 1000) * this.options.callsPerSecond);
    this.refilledAt = now;
  }

  private canGrantNow(): boolean {
    this.refill();
    return this.active.size < this.options.maxConcurrent && this.tokens >= 1;
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    void this.drain().finally(() => {
      this.pumping = false;
    });
  }

  private async drain(): Promise<void> {
    while (this.queued > 0 && this.active.size < this.options.maxConcurrent) {
      this.refill();
      if (this.tokens < 1) {
        const waitMs = ((1 - this.tokens) / this.options.callsPerSecond) * 1000;
        this.options.scheduler.schedule(WAKE_KEY, this.options.clock.now() + Math.ceil(waitMs), () => this.pump());
        return;
      }
      const sessionId = this.queue[this.head++] as string;
      this.compact();
      this.active.add(sessionId);
      this.tokens -= 1;
      let taken = false;
      try {
        taken = await this.options.grant(sessionId);
      } catch (err) {
        this.options.logger.error({ err, session_id: sessionId }, 'dial slot could not be granted');
      }
      // A call hung up while it waited does not keep the slot.
      if (!taken) this.active.delete(sessionId);
    }
  }

  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
  }
}
