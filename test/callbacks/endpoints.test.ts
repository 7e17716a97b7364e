import { describe, expect, it } from 'vitest';
import { callbackUrlProblem, hostAllowed } from '../../src/callbacks/endpoints.js';
import { retryAfterSeconds } from '../../src/callbacks/sender.js';

describe('the status callback host allow-list', () => {
  it.each([
    ['api.example.com', ['api.example.com'], true],
    ['API.example.com', ['api.example.com'], false], // callers lower-case; URL does
    ['hooks.example.com', ['*.example.com'], true],
    ['a.b.example.com', ['*.example.com'], true],
    ['example.com', ['*.example.com'], false],
    ['evilexample.com', ['*.example.com'], false],
    ['example.com.evil.net', ['*.example.com', 'example.com'], false],
    ['other.net', [], false],
  ])('%s against %j: %s', (host, allowed, expected) => {
    expect(hostAllowed(host, allowed)).toBe(expected);
  });

  it('accepts an http or https URL on an allowed host, with a port, path and query', () => {
    expect(callbackUrlProblem('https://Hooks.Example.com:8443/calls?tenant=7', ['*.example.com'])).toBeNull();
    expect(callbackUrlProblem('http://api.example.com./x', ['api.example.com'])).toBeNull();
  });

  it.each([
    ['ftp://api.example.com/x', /http or https/],
    ['javascript:alert(1)', /http or https/],
    ['//api.example.com/x', /not a URL/],
    ['https://api.example.com@evil.net/x', /evil\.net is not/],
  ])('refuses %s', (url, problem) => {
    expect(callbackUrlProblem(url, ['api.example.com'])).toMatch(problem);
  });
});

describe('Retry-After', () => {
  const now = Date.UTC(2026, 11, 2, 12, 0, 0);
  it('reads delay-seconds and HTTP dates, and ignores what it cannot read', () => {
    expect(retryAfterSeconds('120', now)).toBe(120);
    expect(retryAfterSeconds(' 7 ', now)).toBe(7);
    expect(retryAfterSeconds(new Date(now + 90_000).toUTCString(), now)).toBe(90);
    expect(retryAfterSeconds(new Date(now - 90_000).toUTCString(), now)).toBe(0);
    expect(retryAfterSeconds('soon', now)).toBeNull();
    expect(retryAfterSeconds(null, now)).toBeNull();
  });
});
