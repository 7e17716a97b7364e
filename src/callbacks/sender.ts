// The status-callback sender (docs/status-callbacks.md). It takes calls with a delivery due from
// the outbox (leased: one sender per call across replicas), posts the call's earliest pending
// delivery, and writes the outcome back: 2xx delivered; 410 cancels it and the call's later
// deliveries to that endpoint; anything else, a timeout or a network error is retried on the
// schedule (with jitter, or later when `Retry-After` asks), then `failed`, and the call's next
// event goes on. Calls are sent concurrently, up to `concurrency` at a time; nothing here ever
// waits inside a call's own event handling, so a slow customer server cannot slow a call.
import { safeUrl, type StatusCallbackConfig } from '../config.js';
import type { Clock } from '../calls/timers.js';
import type { Logger } from '../obs/logger.js';
import type { Metrics } from '../obs/metrics.js';
import { headOf, type Delivery, type DeliveryChange, type Outbox, type OutboxLease } from '../store/outbox.port.js';
import { secretKey, signatureHeader } from './signature.js';

export const DELIVERY_OUTCOMES = Object.freeze(['delivered', 'retried', 'failed', 'canceled'] as const);
export type DeliveryOutcome = (typeof DELIVERY_OUTCOMES)[number];

/** the longest `Retry-After` honoured */
const MAX_RETRY_AFTER_S = 3600;
/** each scheduled delay is varied by up to this fraction either way */
const JITTER = 0.2;
/** a lease outlasts the attempt's timeout by this much */
const LEASE_MARGIN_MS = 15_000;
/** how much of an error message is kept on a delivery */
const MAX_ERROR_LENGTH = 200;

export interface SenderOptions {
  outbox: Outbox;
  config: StatusCallbackConfig;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  /** look for due deliveries this often (retries, and calls another replica left behind) */
  pollMs: number;
  /** `User-Agent` of every delivery */
  userAgent: string;
  random?: () => number;
}

export interface StatusCallbackSender {
  /** New deliveries were recorded (or redelivered): look for due calls now. */
  kick(): void;
  /** Resolves once no claim is under way and no delivery is in flight. */
  idle(): Promise<void>;
  /** Stops taking calls and abandons attempts in flight (their calls come due again at once). */
  stop(): Promise<void>;
}

/** `Retry-After` in seconds: delay-seconds or an HTTP date; null when absent or unreadable. */
export function retryAfterSeconds(header: string | null, now: number): number | null {
  if (header === null) return null;
  const value = header.trim();
  if (/^\d+$/.test(value)) return Number(value);
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, (at - now) / 1000);
}

/** The receiver's answer to one attempt, or why there was none. */
type Answer = { status: number; retryAfter: string | null } | { error: string } | { abandoned: true };

export function createStatusCallbackSender(options: SenderOptions): StatusCallbackSender {
  const { outbox, config, clock, logger, metrics } = options;
  const random = options.random ?? Math.random;
  const keys = config.secrets.map(secretKey);
  const timeoutMs = Math.round(config.timeoutS * 1000);
  const leaseMs = timeoutMs + LEASE_MARGIN_MS;
  const stopping = new AbortController();
  const inFlight = new Set<Promise<void>>();
  let claiming: Promise<void> | null = null;
  let again = false;
  let stopped = false;

  const poll = setInterval(() => kick(), options.pollMs);
  poll.unref();

  function kick(): void {
    if (stopped) return;
    if (claiming) {
      again = true;
      return;
    }
    claiming = claimLoop().finally(() => {
      claiming = null;
    });
  }

  async function claimLoop(): Promise<void> {
    do {
      again = false;
      const free = config.concurrency - inFlight.size;
      if (free <= 0 || stopped) return;
      let leases: OutboxLease[];
      try {
        leases = await outbox.claim(clock.now(), free, leaseMs);
      } catch (err) {
        logger.warn({ err }, 'status callbacks: due deliveries could not be taken from the store; retrying');
        return;
      }
      for (const lease of leases) {
        const work = serve(lease).finally(() => {
          inFlight.delete(work);
          kick();
        });
        inFlight.add(work);
      }
      // A full batch: there may be more due right now.
      if (leases.length === free) again = true;
    } while (again && !stopped);
  }

  /** One lease: send the call's earliest pending delivery if it is due, and give the call back. */
  async function serve(lease: OutboxLease): Promise<void> {
    try {
      const deliveries = await outbox.deliveries(lease.sessionId);
      const head = headOf(deliveries);
      const now = clock.now();
      if (!head || (head.nextAttemptAt ?? now) > now) {
        await outbox.release(lease, [], now);
        return;
      }
      const changes = goneBefore(deliveries, head) ? [cancel(head)] : await attempt(head, deliveries);
      await outbox.release(lease, changes, clock.now());
    } catch (err) {
      // The lease runs out and the call comes due again: nothing is lost.
      logger.warn({ err, session_id: lease.sessionId }, 'status callbacks: a delivery could not be settled; it is tried again');
    }
  }

  /** Whether an earlier delivery of the call to the same endpoint was answered 410 (a redelivery is sent regardless). */
  function goneBefore(deliveries: readonly Delivery[], head: Delivery): boolean {
    return head.series === 0 && deliveries.some((d) => d.seq < head.seq && d.url === head.url && d.status === 'canceled' && d.lastStatusCode === 410);
  }

  /** A delivery canceled unsent: the endpoint answered 410 to an earlier event of the call. */
  function cancel(delivery: Delivery): DeliveryChange {
    metrics.statusCallback('canceled');
    return {
      before: delivery,
      after: { ...delivery, status: 'canceled', nextAttemptAt: null, lastError: 'not sent: the endpoint answered 410 Gone to an earlier event of this call' },
    };
  }

  async function attempt(head: Delivery, deliveries: readonly Delivery[]): Promise<DeliveryChange[]> {
    const started = clock.now();
    const answer = await post(head, started);
    const seconds = (clock.now() - started) / 1000;
    if ('abandoned' in answer) return [];
    const now = clock.now();
    const log = { session_id: head.sessionId, event_id: head.eventId, seq: head.seq, event: head.event, url: safeUrl(head.url), attempt: head.attempts + 1 };
    const tried: Delivery = {
      ...head,
      attempts: head.attempts + 1,
      lastStatusCode: 'status' in answer ? answer.status : null,
      lastError: 'error' in answer ? answer.error : 'status' in answer && (answer.status < 200 || answer.status > 299) ? `HTTP ${answer.status}` : null,
    };
    if ('status' in answer && answer.status >= 200 && answer.status <= 299) {
      metrics.statusCallback('delivered', seconds);
      logger.debug({ ...log, status_code: answer.status }, 'status callback delivered');
      return [{ before: head, after: { ...tried, status: 'delivered', deliveredAt: now, nextAttemptAt: null } }];
    }
    if ('status' in answer && answer.status === 410) {
      metrics.statusCallback('canceled', seconds);
      logger.info(log, "status callback endpoint answered 410 Gone: this call's deliveries to it are canceled");
      const later = deliveries.filter((d) => d.status === 'pending' && d.seq > head.seq && d.url === head.url).map(cancel);
      return [{ before: head, after: { ...tried, status: 'canceled', nextAttemptAt: null } }, ...later];
    }
    const retryIndex = tried.attempts - 1;
    const scheduled = config.retryScheduleS[retryIndex];
    if (scheduled === undefined) {
      metrics.statusCallback('failed', seconds);
      logger.warn({ ...log, error: tried.lastError }, "status callback failed after its last retry; the call's next event goes on");
      return [{ before: head, after: { ...tried, status: 'failed', nextAttemptAt: null } }];
    }
    // The schedule's delay, or longer when the server asks (capped): never shorter.
    const scheduledS = scheduled * (1 + (random() * 2 - 1) * JITTER);
    const asked = 'status' in answer ? retryAfterSeconds(answer.retryAfter, now) : null;
    const delayS = asked === null ? scheduledS : Math.max(scheduledS, Math.min(asked, MAX_RETRY_AFTER_S));
    const nextAttemptAt = now + Math.round(delayS * 1000);
    metrics.statusCallback('retried', seconds);
    logger.warn({ ...log, error: tried.lastError, next_attempt_at: new Date(nextAttemptAt).toISOString() }, 'status callback not delivered; retrying');
    return [{ before: head, after: { ...tried, nextAttemptAt } }];
  }

  async function post(delivery: Delivery, now: number): Promise<Answer> {
    const timestampS = Math.floor(now / 1000);
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': options.userAgent,
      'webhook-id': delivery.eventId,
      'webhook-timestamp': String(timestampS),
      'webhook-signature': signatureHeader(keys, delivery.eventId, timestampS, delivery.body),
    };
    // Credentials in the URL (https://user:password@host/...) are sent as Basic authentication.
    const url = new URL(delivery.url);
    if (url.username !== '' || url.password !== '') {
      const credentials = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
      headers.authorization = `Basic ${Buffer.from(credentials).toString('base64')}`;
      url.username = '';
      url.password = '';
    }
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers,
        body: delivery.body,
        // A redirect is not an answer: the endpoint is what was configured.
        redirect: 'manual',
        signal: AbortSignal.any([AbortSignal.timeout(timeoutMs), stopping.signal]),
      });
      // Only the status counts; an unread body would hold the connection.
      await response.body?.cancel().catch(() => undefined);
      return { status: response.status, retryAfter: response.headers.get('retry-after') };
    } catch (err) {
      if (stopping.signal.aborted) return { abandoned: true };
      // An error may quote the URL: never its credentials or query string.
      return { error: describe(err).replaceAll(delivery.url, safeUrl(delivery.url)).replaceAll(url.href, safeUrl(delivery.url)) };
    }
  }

  function describe(err: unknown): string {
    const error = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
    let text: string;
    if (error.name === 'TimeoutError') text = `no answer within ${config.timeoutS} s`;
    else if (error.cause?.code) text = `${error.cause.code}${error.cause.message ? `: ${error.cause.message}` : ''}`;
    else text = error.message ?? String(err);
    return text.slice(0, MAX_ERROR_LENGTH);
  }

  return {
    kick,
    async idle() {
      while (claiming || inFlight.size > 0) {
        await claiming;
        await Promise.all([...inFlight]);
      }
    },
    async stop() {
      stopped = true;
      clearInterval(poll);
      stopping.abort();
      await claiming;
      await Promise.all([...inFlight]);
    },
  };
}
