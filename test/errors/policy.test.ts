import { describe, expect, it } from 'vitest';
import { ERROR_CATEGORIES, type ErrorCategory } from '../../machines/call.types.js';
import { CATEGORY_POLICIES, policyFor, retryDelayMs } from '../../src/errors/policy.js';

/** Deterministic PRNG (mulberry32) so the bounds test is reproducible. */
function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('CATEGORY_POLICIES', () => {
  const expected: Record<ErrorCategory, [retryable: boolean, outcome: 'ended' | 'failed']> = {
    busy: [false, 'ended'],
    no_answer: [false, 'ended'],
    declined: [false, 'ended'],
    invalid_number: [false, 'failed'],
    trunk_auth_error: [false, 'failed'],
    carrier_error: [true, 'failed'],
    rate_limited: [true, 'failed'],
    provider_unavailable: [true, 'failed'],
    timeout: [true, 'failed'],
    auth_error: [false, 'failed'],
    config_error: [false, 'failed'],
    media_failure: [false, 'failed'],
    agent_error: [false, 'failed'],
    unknown: [false, 'failed'],
  };

  for (const [category, [retryable, outcome]] of Object.entries(expected)) {
    it(`gives ${category} retryable=${retryable} and outcome ${outcome}, as the docs/errors.md table says`, () => {
      expect(CATEGORY_POLICIES[category as ErrorCategory]).toEqual({ retryable, outcome });
    });
  }

  it('lists exactly the fourteen categories of docs/errors.md', () => {
    expect([...ERROR_CATEGORIES].sort()).toEqual(Object.keys(expected).sort());
  });

  it('cannot be changed at runtime', () => {
    expect(Object.isFrozen(CATEGORY_POLICIES)).toBe(true);
    expect(Object.isFrozen(CATEGORY_POLICIES.busy)).toBe(true);
  });

  it('falls back to the unknown policy for a category it does not know', () => {
    expect(policyFor('no_such_category' as ErrorCategory)).toEqual(CATEGORY_POLICIES.unknown);
  });
});

describe('retryDelayMs', () => {
  it('stays within [cap/2, cap] with cap = min(max, base*2^(attempt-1)) over many random draws', () => {
    const random = seededRandom(42);
    const baseMs = 1000;
    const maxMs = 30_000;
    for (let attempt = 1; attempt <= 12; attempt += 1) {
      const cap = Math.min(maxMs, baseMs * 2 ** (attempt - 1));
      let min = Infinity;
      let max = -Infinity;
      for (let i = 0; i < 2000; i += 1) {
        const delay = retryDelayMs(attempt, { baseMs, maxMs, random });
        expect(Number.isInteger(delay)).toBe(true);
        min = Math.min(min, delay);
        max = Math.max(max, delay);
      }
      expect(min).toBeGreaterThanOrEqual(cap / 2);
      expect(max).toBeLessThanOrEqual(cap);
      // The jitter is real: draws spread over most of the window, not one value.
      expect(max - min).toBeGreaterThan(cap / 2 * 0.9);
    }
  });

  it('never yields 0 and never exceeds maxMs, even with the smallest settings', () => {
    const random = seededRandom(7);
    for (let i = 0; i < 1000; i += 1) {
      const delay = retryDelayMs(1 + (i % 5), { baseMs: 1, maxMs: 3, random });
      expect(delay).toBeGreaterThanOrEqual(1);
      expect(delay).toBeLessThanOrEqual(3);
    }
  });

  it('grows exponentially: the windows of attempts 1, 2 and 3 are [b/2, b], [b, 2b] and [2b, 4b]', () => {
    const opts = (r: number) => ({ baseMs: 500, maxMs: 60_000, random: () => r });
    expect([1, 2, 3].map((a) => retryDelayMs(a, opts(0)))).toEqual([250, 500, 1000]);
    expect([1, 2, 3].map((a) => retryDelayMs(a, opts(0.999999)))).toEqual([500, 1000, 2000]);
  });

  it('keeps the window [max/2, max] once the exponential step passes maxMs, even for huge attempts', () => {
    const opts = (r: number) => ({ baseMs: 1000, maxMs: 10_000, random: () => r });
    expect(retryDelayMs(2000, opts(0))).toBe(5000);
    expect(retryDelayMs(2000, opts(0.999999))).toBe(10_000);
  });

  it('keeps a misbehaving random source (1, negative, NaN) inside the window', () => {
    for (const r of [1, 2, -0.5, Number.NaN]) {
      const delay = retryDelayMs(3, { baseMs: 100, maxMs: 1000, random: () => r });
      expect(delay).toBeGreaterThanOrEqual(200);
      expect(delay).toBeLessThanOrEqual(400);
    }
  });

  it('uses Math.random when no random source is given', () => {
    const delay = retryDelayMs(1, { baseMs: 100, maxMs: 1000 });
    expect(delay).toBeGreaterThanOrEqual(50);
    expect(delay).toBeLessThanOrEqual(100);
  });

  it('rejects settings that would give a zero or unbounded delay with a RangeError', () => {
    expect(() => retryDelayMs(0, { baseMs: 100, maxMs: 1000 })).toThrow(RangeError);
    expect(() => retryDelayMs(1.5, { baseMs: 100, maxMs: 1000 })).toThrow(RangeError);
    expect(() => retryDelayMs(1, { baseMs: 0, maxMs: 1000 })).toThrow(RangeError);
    expect(() => retryDelayMs(1, { baseMs: 100, maxMs: 50 })).toThrow(RangeError);
    expect(() => retryDelayMs(1, { baseMs: 100, maxMs: Infinity })).toThrow(RangeError);
  });
});
