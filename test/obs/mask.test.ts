import { describe, expect, it } from 'vitest';
import { maskDeep, maskPhoneNumber, maskPhoneNumbers } from '../../src/obs/mask.js';

describe('maskPhoneNumber', () => {
  it('keeps the plus, the first two and the last two digits of an E.164 number', () => {
    expect(maskPhoneNumber('+31612345678')).toBe('+31*******78');
  });

  it('drops spaces and dashes and masks the digits the same way', () => {
    expect(maskPhoneNumber('+31 6 1234 5678')).toBe('+31*******78');
    expect(maskPhoneNumber('+31-6-12345678')).toBe('+31*******78');
  });

  it('masks a national number without a plus', () => {
    expect(maskPhoneNumber('0612345678')).toBe('06******78');
  });

  it('masks every digit of a number of four digits or fewer', () => {
    expect(maskPhoneNumber('1234')).toBe('****');
    expect(maskPhoneNumber('+12')).toBe('+**');
  });

  it('never returns the original digits in the middle of the number', () => {
    expect(maskPhoneNumber('+3197010206472')).not.toContain('970102064');
  });
});

describe('maskPhoneNumbers', () => {
  const masked: Array<[input: string, expected: string]> = [
    ['+31612345678', '+31*******78'],
    ['+31 6 12345678', '+31*******78'],
    ['+31 6 1234 5678', '+31*******78'],
    ['+31-6-1234-5678', '+31*******78'],
    ['+14155550123', '+14*******23'],
    ['0612345678', '06******78'],
    ['sip_+31612345678', 'sip_+31*******78'],
    ['call-_+31612345678_x7Yz', 'call-_+31*******78_x7Yz'],
    ['sip:+31612345678@sip.example.com', 'sip:+31*******78@sip.example.com'],
    ['calling +31612345678 from +3197010206472', 'calling +31*******78 from +31*********72'],
    ['"to":"+31612345678"', '"to":"+31*******78"'],
    ['dial 0612345678 failed', 'dial 06******78 failed'],
  ];

  for (const [input, expected] of masked) {
    it(`turns ${JSON.stringify(input)} into ${JSON.stringify(expected)}`, () => {
      expect(maskPhoneNumbers(input)).toBe(expected);
    });
  }

  it('leaves no run of the original subscriber digits in a masked LiveKit identity or room name', () => {
    for (const text of ['sip_+31612345678', 'call-_+31612345678_x7Yz', 'participant sip_0612345678 joined']) {
      expect(maskPhoneNumbers(text)).not.toMatch(/12345/);
    }
  });

  const untouched = [
    '2026-11-24T12:00:00.000Z',
    '2026-11-24T12:00:00+01:00',
    '2026-11-24',
    '123e4567-e89b-12d3-a456-426614174000',
    '550e8400-e29b-41d4-a716-446655440000',
    'f47ac10b-58cc-4372-a567-0e02b2c3d479',
    'RM_a12345678b',
    'SCL_1234567890abc',
    'PA_x1234567890',
    'AJ_12345678abcd',
    'SIP status 486',
    'SIP 603 Decline',
    'listening on http://0.0.0.0:8000',
    'redis://127.0.0.1:6379',
    'attempt 3 of 10, retry in 30000 ms',
    'session 42',
    '+1 (415)',
    '',
  ];

  for (const text of untouched) {
    it(`leaves ${JSON.stringify(text)} unchanged`, () => {
      expect(maskPhoneNumbers(text)).toBe(text);
    });
  }

  it('masks a phone number next to a UUID but leaves the UUID whole', () => {
    expect(maskPhoneNumbers('session 550e8400-e29b-41d4-a716-446655440000 dialing +31612345678')).toBe(
      'session 550e8400-e29b-41d4-a716-446655440000 dialing +31*******78',
    );
  });

  it('can be applied repeatedly with the same result', () => {
    const once = maskPhoneNumbers('call-_+31612345678_x7Yz');
    expect(maskPhoneNumbers(once)).toBe(once);
  });
});

describe('maskPhoneNumbers: numbers as people write them', () => {
  it('masks a number written with brackets, spaces or dashes as one number', () => {
    expect(maskPhoneNumbers('+1 (415) 555-0123')).toBe('+14*******23');
    expect(maskPhoneNumbers('call (020) 123 4567')).toBe('call (02******67');
    expect(maskPhoneNumbers('06 1234 5678')).toBe('06******78');
    expect(maskPhoneNumbers('020-1234567')).toBe('02******67');
  });

  it('masks runs from six digits up, however long', () => {
    expect(maskPhoneNumbers('code 123456')).toBe('code 12**56');
    expect(maskPhoneNumbers('id 12345678901234567890')).toBe('id 12****************90');
  });

  it('leaves nothing of the number when asked to keep no digits, and the same things alone', () => {
    expect(maskPhoneNumbers('calling +31612345678 from 020 123 4567', 'none')).toBe('calling *** from ***');
    expect(maskPhoneNumbers('session 550e8400-e29b-41d4-a716-446655440000 on 2026-11-24', 'none')).toBe(
      'session 550e8400-e29b-41d4-a716-446655440000 on 2026-11-24',
    );
  });
});

describe('maskDeep', () => {
  it('masks strings in nested objects and arrays', () => {
    const input = {
      to: '+31612345678',
      room: 'call-_+31612345678_x7Yz',
      participants: [{ identity: 'sip_+31612345678' }, { identity: 'agent-1' }],
      nested: { deeper: { numbers: ['0612345678', '+3197010206472'] } },
    };
    expect(maskDeep(input)).toEqual({
      to: '+31*******78',
      room: 'call-_+31*******78_x7Yz',
      participants: [{ identity: 'sip_+31*******78' }, { identity: 'agent-1' }],
      nested: { deeper: { numbers: ['06******78', '+31*********72'] } },
    });
  });

  it('leaves numbers, booleans, null and undefined alone', () => {
    const input = { seq: 31612345678, retryable: true, sip_status_code: 486, error: null, missing: undefined, list: [1, false, null] };
    expect(maskDeep(input)).toEqual(input);
    expect(maskDeep(31612345678)).toBe(31612345678);
    expect(maskDeep(true)).toBe(true);
    expect(maskDeep(null)).toBeNull();
    expect(maskDeep(undefined)).toBeUndefined();
  });

  it('masks a bare string', () => {
    expect(maskDeep('+31612345678')).toBe('+31*******78');
  });

  it('does not mutate its input', () => {
    const input = { to: '+31612345678', list: ['+31612345678'], nested: { from: '0612345678' } };
    const snapshot = structuredClone(input);
    const output = maskDeep(input);
    expect(input).toEqual(snapshot);
    expect(output).not.toBe(input);
    expect(output.list).not.toBe(input.list);
    expect(output.nested).not.toBe(input.nested);
  });

  it('copies frozen input instead of failing on it', () => {
    const input = Object.freeze({ to: '+31612345678', nested: Object.freeze({ list: Object.freeze(['0612345678']) }) });
    expect(maskDeep(input)).toEqual({ to: '+31*******78', nested: { list: ['06******78'] } });
  });

  it('keeps the message and stack of an Error, masked, instead of dropping them', () => {
    const err = Object.assign(new Error('dial +31612345678 failed'), { code: 'sip_486', to: '+31612345678' });
    const out = maskDeep({ err }).err as unknown as Record<string, unknown>;
    expect(out.message).toBe('dial +31*******78 failed');
    expect(out.type).toBe('Error');
    expect(out.code).toBe('sip_486');
    expect(out.to).toBe('+31*******78');
    expect(String(out.stack)).toContain('dial +31*******78 failed');
    expect(JSON.stringify(out)).not.toContain('31612345678');
    expect(err.message).toBe('dial +31612345678 failed');
  });

  it('masks the cause of an Error', () => {
    const err = new Error('outer', { cause: new Error('inner +31612345678') });
    const out = maskDeep(err) as unknown as { cause: { message: string } };
    expect(out.cause.message).toBe('inner +31*******78');
  });

  it('writes a Date as its ISO string', () => {
    expect(maskDeep({ at: new Date('2026-11-24T12:00:00.000Z') })).toEqual({ at: '2026-11-24T12:00:00.000Z' });
  });

  it('survives a circular reference', () => {
    const input: Record<string, unknown> = { to: '+31612345678' };
    input.self = input;
    expect(maskDeep(input)).toEqual({ to: '+31*******78', self: '[Circular]' });
  });

  it('does not mistake an object referenced twice for a cycle', () => {
    const shared = { to: '+31612345678' };
    expect(maskDeep({ a: shared, b: shared })).toEqual({ a: { to: '+31*******78' }, b: { to: '+31*******78' } });
  });
});
