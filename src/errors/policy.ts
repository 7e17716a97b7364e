// CP-04 policy: what each error category means for a call (docs/errors.md).
import type { ErrorCategory, FinalState } from '../../machines/call.types.js';

export interface CategoryPolicy {
  /** Whether a failed dial may be attempted again (bounded by the configured attempts). */
  retryable: boolean;
  /**
   * `ended`: the far end answered the question "will you talk?" with no (busy, no answer,
   * declined), so the call ends normally with the category as its end_reason;
   * `failed`: the call could not be placed or broke because of an error.
   */
  outcome: FinalState;
}

const endedNoRetry: CategoryPolicy = Object.freeze({ retryable: false, outcome: 'ended' });
const failedNoRetry: CategoryPolicy = Object.freeze({ retryable: false, outcome: 'failed' });
// Transient trouble: a later attempt may well succeed; `failed` only once attempts run out.
const failedRetry: CategoryPolicy = Object.freeze({ retryable: true, outcome: 'failed' });

export const CATEGORY_POLICIES: Readonly<Record<ErrorCategory, CategoryPolicy>> = Object.freeze({
  // Redialling someone who is busy, did not pick up or declined would be a nuisance call.
  busy: endedNoRetry,
  no_answer: endedNoRetry,
  declined: endedNoRetry,
  invalid_number: failedNoRetry,
  trunk_auth_error: failedNoRetry,
  carrier_error: failedRetry,
  rate_limited: failedRetry,
  provider_unavailable: failedRetry,
  timeout: failedRetry,
  auth_error: failedNoRetry,
  config_error: failedNoRetry,
  media_failure: failedNoRetry,
  agent_error: failedNoRetry,
  unknown: failedNoRetry,
});

export function policyFor(category: ErrorCategory): CategoryPolicy {
  // Categories can arrive from stored sessions; an unexpected one must not crash the caller.
  return CATEGORY_POLICIES[category] ?? CATEGORY_POLICIES.unknown;
}

export interface RetryOptions {
  baseMs: number;
  maxMs: number;
  /** [0, 1) like Math.random; injectable so tests and simulations are deterministic. */
  random?: () => number;
}

/**
 * Delay before the retry that follows failed attempt `attempt` (1-based), in whole milliseconds.
 *
 * Scheme: "equal jitter". cap = min(maxMs, baseMs * 2^(attempt-1)); the delay is uniform over the
 * integers in [ceil(cap/2), floor(cap)]. Half the window is fixed so a retry never fires at once
 * (never 0, and never sooner than half the exponential step, which keeps pressure off a carrier
 * or LiveKit that just said "too many"), half is random so many calls failing together do not
 * redial in lockstep. Once the exponential step passes maxMs the window is [maxMs/2, maxMs].
 *
 * Invalid options are a configuration bug, so they throw a RangeError instead of silently
 * producing a zero or unbounded delay: baseMs >= 1, maxMs >= baseMs, attempt an integer >= 1.
 */
export function retryDelayMs(attempt: number, options: RetryOptions): number {
  const { baseMs, maxMs } = options;
  if (!Number.isInteger(attempt) || attempt < 1) {
    throw new RangeError(`retryDelayMs: attempt must be an integer >= 1, got ${attempt}`);
  }
  if (!Number.isFinite(baseMs) || baseMs < 1) {
    throw new RangeError(`retryDelayMs: baseMs must be a finite number >= 1, got ${baseMs}`);
  }
  if (!Number.isFinite(maxMs) || maxMs < baseMs) {
    throw new RangeError(`retryDelayMs: maxMs must be finite and >= baseMs, got ${maxMs}`);
  }
  // 2 ** large overflows to Infinity, which min() then caps: no special case needed.
  const cap = Math.min(maxMs, baseMs * 2 ** (attempt - 1));
  const lo = Math.ceil(cap / 2);
  const hi = Math.floor(cap);
  const r = unitInterval((options.random ?? Math.random)());
  return lo + Math.floor(r * (hi - lo + 1));
}

// A fake or broken random source (1, -0.5, NaN) must not push the delay out of its window.
function unitInterval(value: number): number {
  if (!Number.isFinite(value) || value < 0) return 0;
  return value >= 1 ? 1 - Number.EPSILON : value;
}
