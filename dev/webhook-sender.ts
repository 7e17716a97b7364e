// Delivers webhooks the way LiveKit's URL notifier does (livekit/protocol webhook package):
// - body: the event's JSON text; `Authorization: <JWT>` (no `Bearer`), HS256 with the API secret,
//   iss = API key, valid 5 minutes, claim `sha256` = base64 SHA-256 of the body bytes;
// - one FIFO queue per resource, one event in flight per queue: the key is livekit/protocol's
//   webhook.EventKey, i.e. the egress id for egress events (which also carry their room), else the
//   room name, else the participant identity, else the track sid, else "default";
// - the token is minted once per event and a retry resends the identical request (LiveKit hands
//   one prepared request to go-retryablehttp), so receivers must de-duplicate on `id`;
// - up to 5 attempts with 1-2-4-8 s back-off on connection errors, 429 and 5xx except 501;
// - an event that waited over 30 s, or would make its queue longer than 200, is dropped.
import { createHash } from 'node:crypto';
import { SignJWT } from 'jose';
import type { WebhookEventJson } from './webhook-events.js';

export interface WebhookSenderOptions {
  url: string;
  apiKey: string;
  apiSecret: string;
  /** waits between attempts; its length + 1 is the attempt count. Default [1000, 2000, 4000, 8000] like LiveKit. */
  retryDelaysMs?: number[];
}

export interface DeliveryResult {
  /** last HTTP status, null when no response ever came */
  status: number | null;
  attempts: number;
  /** last response body */
  body: string;
  /** set when the event was not accepted: the last connection error, a final status, or a drop */
  error?: string;
}

export interface Delivery {
  event: WebhookEventJson;
  result: DeliveryResult;
}

export interface WebhookSender {
  /**
   * Queue the event on its resource's FIFO queue (see queueKey). Never rejects:
   * resolves with the outcome once delivered (2xx), refused with a final status, given up, or dropped.
   */
  send(event: WebhookEventJson): Promise<DeliveryResult>;
  /** resolves when every queue is empty */
  idle(): Promise<void>;
  /** every finished delivery, in completion order (for debugging tests and the demo) */
  readonly deliveries: Delivery[];
  /** abandon in-flight attempts and back-off waits, so nothing outlives a test; queued events resolve with an error */
  close(): void;
  /** deliver to another URL from now on (a service started after the stand-in) */
  setUrl(url: string): void;
}

export interface SignOptions {
  apiKey: string;
  apiSecret: string;
  nowS?: number;
  validForS?: number;
  /** override the body digest, for tamper tests */
  sha256?: string;
}

export const DEFAULT_RETRY_DELAYS_MS = [1000, 2000, 4000, 8000];
const WEBHOOK_VALID_FOR_S = 5 * 60;
const MAX_QUEUE_WAIT_MS = 30_000;
const MAX_QUEUE_LENGTH = 200;
// LiveKit's HTTP client gives up on a silent receiver; a hung attempt counts as a connection error.
const ATTEMPT_TIMEOUT_MS = 10_000;

export function bodyDigest(body: string): string {
  return createHash('sha256').update(body, 'utf8').digest('base64');
}

/** The `Authorization` header value LiveKit sends with `body`. */
export async function signWebhook(body: string, options: SignOptions): Promise<string> {
  const nowS = options.nowS ?? Math.floor(Date.now() / 1000);
  return new SignJWT({ sha256: options.sha256 ?? bodyDigest(body) })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuer(options.apiKey)
    .setNotBefore(nowS)
    .setExpirationTime(nowS + (options.validForS ?? WEBHOOK_VALID_FOR_S))
    .sign(new TextEncoder().encode(options.apiSecret));
}

export function webhookHeaders(authorization: string): Record<string, string> {
  return {
    'Content-Type': 'application/webhook+json',
    'User-Agent': 'LiveKit',
    Authorization: authorization,
  };
}

/** One raw POST, no retries: for bad-input tests. */
export async function postWebhook(
  url: string,
  body: string,
  headers: Record<string, string>,
  signal?: AbortSignal,
): Promise<{ status: number; body: string; headers: Headers }> {
  const timeout = AbortSignal.timeout(ATTEMPT_TIMEOUT_MS);
  const response = await fetch(url, {
    method: 'POST',
    headers,
    body,
    signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
  });
  return { status: response.status, body: await response.text(), headers: response.headers };
}

export function isRetryableStatus(status: number): boolean {
  return status === 429 || (status >= 500 && status !== 501);
}

function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = (error as { cause?: unknown }).cause;
  const causeText = cause instanceof Error ? `: ${(cause as NodeJS.ErrnoException).code ?? cause.message}` : '';
  return `${error.message}${causeText}`;
}

// Resolves early when `signal` aborts, so a closed sender leaves no timer behind.
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}

type Attempt = { status: number; body: string } | { error: string };

async function attempt(url: string, body: string, headers: Record<string, string>, signal: AbortSignal): Promise<Attempt> {
  try {
    const { status, body: text } = await postWebhook(url, body, headers, signal);
    return { status, body: text };
  } catch (error) {
    return { error: describeError(error) };
  }
}

async function deliver(
  options: WebhookSenderOptions,
  event: WebhookEventJson,
  signal: AbortSignal,
): Promise<DeliveryResult> {
  const body = JSON.stringify(event);
  const headers = webhookHeaders(await signWebhook(body, options));
  const delays = options.retryDelaysMs ?? DEFAULT_RETRY_DELAYS_MS;
  let last: Attempt = { error: 'not attempted' };
  for (let attempts = 1; attempts <= delays.length + 1; attempts += 1) {
    if (signal.aborted) return { status: null, attempts: attempts - 1, body: '', error: 'sender closed' };
    last = await attempt(options.url, body, headers, signal);
    if ('status' in last && !isRetryableStatus(last.status)) {
      const ok = last.status >= 200 && last.status < 300;
      return { status: last.status, attempts, body: last.body, ...(ok ? {} : { error: `HTTP ${last.status}` }) };
    }
    if (attempts <= delays.length) await sleep(delays[attempts - 1] ?? 0, signal);
  }
  const attempts = delays.length + 1;
  return 'status' in last
    ? { status: last.status, attempts, body: last.body, error: `gave up after HTTP ${last.status}` }
    : { status: null, attempts, body: '', error: `gave up: ${last.error}` };
}

/**
 * The queue an event waits in, as livekit/protocol's webhook.EventKey picks it: egress events go on
 * their egress's own queue, not their room's, so LiveKit keeps no order between the two.
 */
export function queueKey(event: WebhookEventJson): string {
  const egressId = (event.egressInfo as { egressId?: unknown } | undefined)?.egressId;
  if (typeof egressId === 'string') return egressId;
  return event.room?.name ?? event.participant?.identity ?? (event.track?.sid as string | undefined) ?? 'default';
}

function dropped(reason: string): DeliveryResult {
  return { status: null, attempts: 0, body: '', error: `dropped: ${reason}` };
}

export function createWebhookSender(options: WebhookSenderOptions): WebhookSender {
  // Each queue is a promise chain; `lengths` counts events queued or in flight per queue.
  const tails = new Map<string, Promise<unknown>>();
  const lengths = new Map<string, number>();
  const deliveries: Delivery[] = [];
  const stopper = new AbortController();
  const target: WebhookSenderOptions = { ...options };

  async function runQueued(event: WebhookEventJson, enqueuedAt: number): Promise<DeliveryResult> {
    if (stopper.signal.aborted) return { status: null, attempts: 0, body: '', error: 'sender closed' };
    if (Date.now() - enqueuedAt > MAX_QUEUE_WAIT_MS) return dropped('waited over 30 s in its queue');
    try {
      return await deliver(target, event, stopper.signal);
    } catch (error) {
      // e.g. signing with an unusable secret: report it rather than break the queue
      return { status: null, attempts: 0, body: '', error: describeError(error) };
    }
  }

  function send(event: WebhookEventJson): Promise<DeliveryResult> {
    const key = queueKey(event);
    const length = lengths.get(key) ?? 0;
    if (length >= MAX_QUEUE_LENGTH) {
      const result = dropped(`queue "${key}" is full`);
      deliveries.push({ event, result });
      return Promise.resolve(result);
    }
    lengths.set(key, length + 1);
    const enqueuedAt = Date.now();
    const previous = tails.get(key) ?? Promise.resolve();
    const delivery = previous.then(() => runQueued(event, enqueuedAt));
    const tail = delivery.then((result) => {
      deliveries.push({ event, result });
      const remaining = (lengths.get(key) ?? 1) - 1;
      if (remaining === 0) {
        lengths.delete(key);
        if (tails.get(key) === tail) tails.delete(key);
      } else {
        lengths.set(key, remaining);
      }
    });
    tails.set(key, tail);
    return delivery;
  }

  async function idle(): Promise<void> {
    // Loop: a delivery can finish while another event is queued behind it.
    while (tails.size > 0) await Promise.all([...tails.values()]);
  }

  function close(): void {
    stopper.abort();
  }

  return {
    send,
    idle,
    deliveries,
    close,
    setUrl: (url) => {
      target.url = url;
    },
  };
}
