// CP-04: one classifier turns any LiveKit/SIP/network error into a category (docs/errors.md).
// The input is whatever a livekit-server-sdk call rejected with (ServerError, SipCallError,
// undici's `TypeError: fetch failed`, an AbortSignal.timeout DOMException) or our own errors.
import type { CallError, ErrorCategory } from '../../machines/call.types.js';
import { maskPhoneNumbers } from '../obs/mask.js';
import { policyFor } from './policy.js';

export type Operation = 'dial' | 'transfer' | 'hangup' | 'dispatch' | 'lookup' | 'record';

export interface ClassifiedError extends CallError {
  /** Twirp error code of LiveKit's answer (`resource_exhausted`, ...), null when there was none. */
  twirpCode: string | null;
  /** HTTP status of LiveKit's answer, null when no answer arrived (transport error, timeout). */
  httpStatus: number | null;
}

/** Our own code found the outbound setup incomplete (no outbound trunk, no CALLER_ID). */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

// ---------------------------------------------------------------------------------------------
// Masking. `message` goes to logs and the API; it is built from codes and reason phrases, and
// every piece of text that came from elsewhere passes through here first.

const MAX_DETAIL_LENGTH = 160;
// Credentials look like long mixed letter/digit tokens (API secrets, JWTs, bearer tokens).
const TOKEN = /\b(?=[A-Za-z0-9_\-.+/=]*\d)(?=[A-Za-z0-9_\-.+/=]*[A-Za-z])[A-Za-z0-9_\-.+/=]{24,}/g;
const BEARER = /\b(bearer|authorization|secret|token|password|api[_-]?key)\b(\s*[:=]?\s*)\S+/gi;

/** Removes phone numbers and anything secret-looking from text bound for logs. */
export function maskSensitive(text: string): string {
  // Bound the regex work; the tail is cut to MAX_DETAIL_LENGTH below anyway.
  const secretless = text.slice(0, 1024).replace(BEARER, '$1$2***').replace(TOKEN, '***');
  const masked = maskPhoneNumbers(secretless, 'none')
    .replace(/[\r\n\t]+/g, ' ')
    .trim();
  return masked.length > MAX_DETAIL_LENGTH ? `${masked.slice(0, MAX_DETAIL_LENGTH)}…` : masked;
}

// ---------------------------------------------------------------------------------------------
// Reading unknown values without ever throwing (getters and proxies can throw).

type Bag = Record<string, unknown>;

function isObject(value: unknown): value is Bag {
  return (typeof value === 'object' || typeof value === 'function') && value !== null;
}

function prop(value: unknown, key: string): unknown {
  if (!isObject(value)) return undefined;
  try {
    return value[key];
  } catch {
    return undefined;
  }
}

function stringProp(value: unknown, key: string): string | undefined {
  const v = prop(value, key);
  return typeof v === 'string' ? v : undefined;
}

// ---------------------------------------------------------------------------------------------
// SIP status codes (the carrier's or the callee's answer to the INVITE / REFER).

const LIMIT_PHRASE = /limit|cps|too many|capacity|rate/i;

function sipCategory(code: number, reason: string | undefined): ErrorCategory {
  switch (code) {
    case 486:
    case 600:
      return 'busy';
    case 408:
    case 480:
    case 487:
      return 'no_answer';
    case 404:
    case 484:
      return 'invalid_number';
    case 401:
    case 403:
    case 407:
      return 'trunk_auth_error';
    case 503:
      // Carriers answer 503 both when they are down and when we exceed our CPS / channel limit;
      // only the reason phrase tells them apart. Both are retryable, but the back-off differs in
      // spirit and rate limits deserve their own alerting.
      return reason !== undefined && LIMIT_PHRASE.test(reason) ? 'rate_limited' : 'carrier_error';
  }
  if (code >= 600 && code <= 699) return 'declined';
  if (code >= 500 && code <= 599) return 'carrier_error';
  return 'unknown';
}

function parseSipCode(raw: unknown): number | null {
  const n = typeof raw === 'number' ? raw : typeof raw === 'string' ? Number(raw.trim()) : NaN;
  return Number.isInteger(n) && n >= 100 && n <= 699 ? n : null;
}

// ---------------------------------------------------------------------------------------------
// LiveKit answers without a SIP code (Twirp code and HTTP status).

interface ServerErrorView {
  status: number;
  code: string | null;
  metadata: Bag | null;
  /** statusText of the response (the SDK stores it as the error's name) */
  statusText: string | null;
  message: string;
}

/**
 * Duck-typed rather than `instanceof ServerError`: a second copy of livekit-server-sdk (CJS next
 * to ESM, or a nested install) has its own class, and its errors must classify the same.
 */
function asServerError(err: unknown): ServerErrorView | null {
  const status = prop(err, 'status');
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 100 || status > 599) {
    return null;
  }
  if (!(err instanceof Error) || !('code' in err || 'metadata' in err)) return null;
  const code = stringProp(err, 'code');
  const metadata = prop(err, 'metadata');
  const name = stringProp(err, 'name');
  return {
    status,
    code: code && code.length > 0 ? code : null,
    metadata: isObject(metadata) ? metadata : null,
    statusText: name && name !== 'Error' && name !== 'SipCallError' ? name : null,
    message: stringProp(err, 'message') ?? '',
  };
}

/**
 * LiveKit answered that what was asked about (a room, a participant) does not exist: Twirp's
 * `not_found`, which LiveKit sends with HTTP 404. A 404 without a Twirp code is no such answer
 * but a wrong LIVEKIT_URL path or a proxy in the way (config_error). Never throws.
 */
export function isNotFound(err: unknown): boolean {
  try {
    return asServerError(err)?.code === 'not_found';
  } catch {
    return false;
  }
}

// LiveKit's server says "number" / "phone" / "callee" in its invalid_argument messages about the
// dialed party; anything else invalid in a dial request is our bug, not the user's number.
const MENTIONS_NUMBER = /number|phone|callee|call[_\s-]?to|e\.?164/i;

function twirpCategory(view: ServerErrorView, operation: Operation | undefined): ErrorCategory {
  // Rate limits, auth and provider outages mean the same whatever we were doing.
  switch (view.code) {
    case 'resource_exhausted':
      return 'rate_limited';
    case 'unauthenticated':
    case 'permission_denied':
      return 'auth_error';
    case 'deadline_exceeded':
      return 'timeout';
    case 'unavailable':
    case 'internal':
      return 'provider_unavailable';
  }
  if (view.code === null) {
    if (view.status === 429) return 'rate_limited';
    if (view.status === 401 || view.status === 403) return 'auth_error';
    if (view.status === 408 || view.status === 504) return 'timeout';
  }
  // `unimplemented` (501) will not get better by retrying: the server lacks the method.
  if (view.code !== 'unimplemented' && view.status >= 500) return 'provider_unavailable';

  if (operation === 'dispatch') return 'agent_error';

  switch (view.code) {
    case 'canceled':
      // LiveKit's own ring timeout ends a dial (and a transfer, which dials too) with `canceled`
      // and no SIP code: nobody answered. Elsewhere it is not a call outcome.
      return operation === 'dial' || operation === 'transfer' ? 'no_answer' : 'unknown';
    case 'not_found':
      // On a dial this is the outbound trunk; on hangup/lookup the room or participant is gone,
      // which the caller interprets with isNotFound (an already-ended call is often fine there).
      // A recording of a room that is gone already is no configuration fault.
      return operation === 'record' ? 'unknown' : 'config_error';
    case 'invalid_argument':
      return operation === 'dial' && MENTIONS_NUMBER.test(view.message) ? 'invalid_number' : 'unknown';
  }
  // A non-Twirp 404 (no code) is a wrong LIVEKIT_URL path or a proxy in the way.
  if (view.code === null && view.status === 404) return 'config_error';
  return 'unknown';
}

// ---------------------------------------------------------------------------------------------
// Transport: undici wraps the socket error in `TypeError: fetch failed` (`cause`, sometimes an
// AggregateError when several addresses were tried); AbortSignal.timeout rejects with a
// DOMException named TimeoutError.

const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'EPIPE',
  'EADDRNOTAVAIL',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
]);
const TIMEOUT_CODES = new Set([
  'ETIMEDOUT',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);
const CLOSED_PHRASE = /other side closed|socket hang up/i;

interface TransportFinding {
  category: 'provider_unavailable' | 'timeout';
  detail: string;
}

/** Every error in the cause chain (and inside AggregateErrors), breadth-first, cycle-safe. */
function errorChain(err: unknown): unknown[] {
  const seen = new Set<unknown>();
  const queue: unknown[] = [err];
  const out: unknown[] = [];
  while (queue.length > 0 && out.length < 32) {
    const current = queue.shift();
    if (!isObject(current) || seen.has(current)) continue;
    seen.add(current);
    out.push(current);
    queue.push(prop(current, 'cause'));
    const nested = prop(current, 'errors');
    if (Array.isArray(nested)) queue.push(...nested.slice(0, 16));
  }
  return out;
}

function transportFinding(chain: unknown[]): TransportFinding | null {
  // Timeouts first: a connect timeout can sit next to a refusal from another address, and the
  // deadline is what actually ended the request.
  for (const e of chain) {
    const name = stringProp(e, 'name');
    const code = stringProp(e, 'code');
    if (name === 'TimeoutError') return { category: 'timeout', detail: 'TimeoutError' };
    if (code && TIMEOUT_CODES.has(code)) return { category: 'timeout', detail: code };
  }
  for (const e of chain) {
    const code = stringProp(e, 'code');
    if (code && UNREACHABLE_CODES.has(code)) return { category: 'provider_unavailable', detail: code };
    const message = stringProp(e, 'message');
    if (message && CLOSED_PHRASE.test(message)) {
      return { category: 'provider_unavailable', detail: CLOSED_PHRASE.exec(message)![0].toLowerCase() };
    }
  }
  return null;
}

// ---------------------------------------------------------------------------------------------

function result(
  category: ErrorCategory,
  message: string,
  extra: { sipStatusCode?: number | null; twirpCode?: string | null; httpStatus?: number | null } = {},
): ClassifiedError {
  return {
    category,
    retryable: policyFor(category).retryable,
    message,
    sipStatusCode: extra.sipStatusCode ?? null,
    twirpCode: extra.twirpCode ?? null,
    httpStatus: extra.httpStatus ?? null,
  };
}

function describeServerError(view: ServerErrorView): string {
  const head = view.code
    ? `LiveKit ${maskSensitive(view.code)} (HTTP ${view.status})`
    : `LiveKit HTTP ${view.status}${view.statusText ? ` ${maskSensitive(view.statusText)}` : ''}`;
  // A non-JSON body (proxy page) is noise; Twirp's `msg` is worth keeping, masked.
  const detail = view.code ? maskSensitive(view.message) : '';
  return detail ? `${head}: ${detail}` : head;
}

function classifyUnsafe(err: unknown, operation: Operation | undefined): ClassifiedError {
  if (err instanceof ConfigError) {
    return result('config_error', `configuration: ${maskSensitive(err.message)}`);
  }

  const server = asServerError(err);
  if (server) {
    const sipCode = parseSipCode(server.metadata?.['sip_status_code']);
    const extra = { twirpCode: server.code, httpStatus: server.status };
    if (sipCode !== null && operation !== 'dispatch') {
      const rawReason = server.metadata?.['sip_status'];
      const reason = typeof rawReason === 'string' && rawReason.trim() ? rawReason.trim() : undefined;
      const reasonText = reason ? ` ${maskSensitive(reason)}` : '';
      const codeText = server.code ? ` (${maskSensitive(server.code)})` : '';
      return result(sipCategory(sipCode, reason), `SIP ${sipCode}${reasonText}${codeText}`, {
        ...extra,
        sipStatusCode: sipCode,
      });
    }
    return result(twirpCategory(server, operation), describeServerError(server), extra);
  }

  const chain = errorChain(err);
  const finding = transportFinding(chain);
  if (finding) {
    const message =
      finding.category === 'timeout'
        ? `LiveKit request timed out: ${finding.detail}`
        : `LiveKit unreachable: ${finding.detail}`;
    return result(finding.category, message);
  }

  // Our own AbortController (call hung up while dialing, shutdown): not a provider failure, and
  // retrying would undo the abort.
  if (stringProp(err, 'name') === 'AbortError') return result('unknown', 'request aborted');

  // undici's wrapper around a cause we do not recognise (TLS certificate, bad header, ...):
  // not known to be transient, so no retry; the cause's code tells the operator where to look.
  if (err instanceof TypeError && stringProp(err, 'message') === 'fetch failed') {
    const cause = chain[1];
    const hint = stringProp(cause, 'code') ?? stringProp(cause, 'name') ?? 'no cause';
    return result('unknown', `LiveKit request failed: ${maskSensitive(hint)}`);
  }

  // The dispatch request itself went through (or failed in a way that is not LiveKit's
  // availability): the agent could not be put in the room.
  const category: ErrorCategory = operation === 'dispatch' ? 'agent_error' : 'unknown';
  if (err instanceof Error) {
    const name = maskSensitive(stringProp(err, 'name') ?? 'Error');
    const text = maskSensitive(stringProp(err, 'message') ?? '');
    return result(category, text ? `${name}: ${text}` : name);
  }
  return result(category, `non-error value thrown (${err === null ? 'null' : typeof err})`);
}

/**
 * Classifies anything a LiveKit call (or our own pre-checks) rejected with. Never throws.
 * `operation` matters for ambiguous answers: `canceled` is a ring timeout only on a dial,
 * `not_found` is the outbound trunk on a dial, and on `dispatch` non-transient failures are the
 * agent's (agent_error).
 */
export function classifyError(err: unknown, operation?: Operation): ClassifiedError {
  try {
    return classifyUnsafe(err, operation);
  } catch {
    return result('unknown', 'unclassifiable error');
  }
}
