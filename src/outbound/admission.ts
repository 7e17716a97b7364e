// Admission control for outbound dials (CP-02): at most MAX_CONCURRENT_CALLS outbound calls in
// progress and at most CALLS_PER_SECOND new dials a second (a token bucket holding one second's
// worth). Calls beyond that wait in `queued`, first in, first out, and dial as slots free; the
// queue itself is bounded. The queue, the slots and the bucket live in a DialQueue: in memory for
// one process, in Redis when replicas share the work.
import type { ObsEnvelope } from '../obs/envelope.js';
import { callLogger, type Logger } from '../obs/logger.js';
import type { Clock, Scheduler } from '../calls/timers.js';
import type { AdmissionLimits, DialQueue } from '../store/dial-queue.port.js';

export interface AdmissionOptions extends AdmissionLimits {
  queue: DialQueue;
  maxQueued: number;
  clock: Clock;
  scheduler: Scheduler;
  logger: Logger;
  /** hands a slot to a call; resolves true when the call took it (it may have been hung up meanwhile) */
  grant: (sessionId: string) => Promise<boolean>;
  /** with a shared queue, look for free slots this often (another replica may have freed one) */
  pollMs?: number;
}

const WAKE_KEY = 'admission';
const RETRY_MS = 1000;

export class Admission {
  private pumping: Promise<void> | null = null;
  private again = false;
  private poller: NodeJS.Timeout | null = null;

  constructor(private readonly options: AdmissionOptions) {
    if (options.pollMs) {
      this.poller = setInterval(() => this.pump(), options.pollMs);
      this.poller.unref();
    }
  }

  /** Whether one more call may wait for a slot. */
  async hasRoom(): Promise<boolean> {
    return (await this.options.queue.size()) < this.options.maxQueued;
  }

  async enqueue(sessionId: string): Promise<void> {
    await this.options.queue.push(sessionId);
    this.pump();
  }

  /**
   * Reconciliation: a call still `queued` after a while whose replica died between creating it
   * and putting it in line, or between giving it a slot and telling it, is put in line again.
   * (A grant racing with this may let one call more than the limit dial: rare, and bounded.)
   */
  async ensureWaiting(sessionId: string): Promise<boolean> {
    const added = await this.options.queue.ensure(sessionId);
    if (added) this.pump();
    return added;
  }

  /** Follows the event stream: a final outbound call frees its slot or leaves the queue. */
  observe(envelope: ObsEnvelope): void {
    if (envelope.direction !== 'outbound' || (envelope.state !== 'ended' && envelope.state !== 'failed')) return;
    const id = envelope.session_id;
    this.options.queue
      .release(id)
      .then((released) => (released ? this.pump() : this.options.queue.remove(id)))
      .catch((err: unknown) => callLogger(this.options.logger, id).error({ err }, 'dial slot could not be released'));
  }

  stop(): void {
    this.options.scheduler.cancel(WAKE_KEY);
    if (this.poller) clearInterval(this.poller);
    this.poller = null;
  }

  /** Resolves once admission has handed out every slot it can right now. */
  async idle(): Promise<void> {
    while (this.pumping) await this.pumping;
  }

  private pump(): void {
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = this.drain()
      .catch((err: unknown) => this.options.logger.error({ err }, 'admission could not take the next call'))
      .finally(() => {
        this.pumping = null;
        if (this.again) {
          this.again = false;
          this.pump();
        }
      });
  }

  private async drain(): Promise<void> {
    for (;;) {
      const next = await this.options.queue.take(this.options);
      if (next === null) return;
      if ('waitMs' in next) {
        this.options.scheduler.schedule(WAKE_KEY, this.options.clock.now() + next.waitMs, () => this.pump());
        return;
      }
      let taken: boolean;
      try {
        taken = await this.options.grant(next.id);
      } catch (err) {
        // The call could not be told (store down): it waits again, and admission tries later.
        callLogger(this.options.logger, next.id).error({ err }, 'dial slot could not be granted; the call waits again');
        await this.options.queue.release(next.id);
        await this.options.queue.push(next.id);
        this.options.scheduler.schedule(WAKE_KEY, this.options.clock.now() + RETRY_MS, () => this.pump());
        return;
      }
      // A call hung up while it waited does not keep the slot.
      if (!taken) await this.options.queue.release(next.id);
    }
  }
}
