import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { ObsEnvelope } from '../../src/obs/envelope.js';
import { createLogger, logObsEvent, type Logger } from '../../src/obs/logger.js';

const PHONE = '+31612345678';
const MASKED = '+31*******78';

interface Capture {
  logger: Logger;
  /** Every line written so far, as raw text. */
  raw: () => string[];
  /** Every line written so far, parsed. */
  lines: () => Array<Record<string, unknown>>;
}

function capture(level: 'info' | 'debug' | 'warn' = 'info'): Capture {
  let buffer = '';
  const destination = new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      buffer += chunk.toString();
      callback();
    },
  });
  const logger = createLogger({ level, destination });
  const raw = (): string[] => buffer.split('\n').filter((line) => line !== '');
  return { logger, raw, lines: () => raw().map((line) => JSON.parse(line) as Record<string, unknown>) };
}

function only(c: Capture): Record<string, unknown> {
  const lines = c.lines();
  expect(lines).toHaveLength(1);
  return lines[0] as Record<string, unknown>;
}

describe('createLogger', () => {
  it('writes every line as one JSON object with level label, ISO time and service', () => {
    const c = capture();
    c.logger.info('first');
    c.logger.warn({ a: 1 }, 'second');
    c.logger.error({ nested: { b: [1, 2] } });
    const raw = c.raw();
    expect(raw).toHaveLength(3);
    for (const line of raw) expect(() => JSON.parse(line) as unknown).not.toThrow();
    const [first, second, third] = c.lines();
    expect(first).toMatchObject({ level: 'info', service: 'control-plane', msg: 'first' });
    expect(second).toMatchObject({ level: 'warn', a: 1, msg: 'second' });
    expect(third).toMatchObject({ level: 'error', nested: { b: [1, 2] } });
    expect(String(first?.time)).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  it('drops lines below the configured level', () => {
    const c = capture('info');
    c.logger.debug('hidden');
    c.logger.info('shown');
    expect(c.lines().map((line) => line.msg)).toEqual(['shown']);
  });

  it('masks phone numbers in object fields at any depth', () => {
    const c = capture();
    c.logger.info(
      {
        to: PHONE,
        room: `call-_${PHONE}_x7Yz`,
        call: { from: '0612345678', participants: [{ identity: `sip_${PHONE}` }], deeper: { still: { to: PHONE } } },
      },
      'dialing',
    );
    const line = only(c);
    expect(line).toMatchObject({
      to: MASKED,
      room: `call-_${MASKED}_x7Yz`,
      call: { from: '06******78', participants: [{ identity: `sip_${MASKED}` }], deeper: { still: { to: MASKED } } },
    });
    expect(c.raw().join('\n')).not.toContain('12345678');
  });

  it('masks phone numbers in the message string', () => {
    const c = capture();
    c.logger.info(`calling ${PHONE}`);
    expect(only(c).msg).toBe(`calling ${MASKED}`);
    expect(c.raw()[0]).not.toContain(PHONE);
  });

  it('masks phone numbers passed as format arguments', () => {
    const c = capture();
    c.logger.info({ session_id: 's1' }, 'calling %s for room %s', PHONE, `call-_${PHONE}_x7Yz`);
    expect(only(c).msg).toBe(`calling ${MASKED} for room call-_${MASKED}_x7Yz`);
  });

  it('leaves timestamps, UUIDs, LiveKit ids and SIP codes in a line unchanged', () => {
    const c = capture();
    const fields = {
      ts: '2026-11-24T12:00:00.000Z',
      session_id: '550e8400-e29b-41d4-a716-446655440000',
      room_sid: 'RM_a12345678b',
      sip_call_id: 'SCL_1234567890abc',
      sip_status: '486',
      port: 8000,
    };
    c.logger.info(fields, 'ids');
    expect(only(c)).toMatchObject(fields);
  });

  it('does not change the object it is given', () => {
    const c = capture();
    const fields = { to: PHONE, token: 'tok-123', headers: { authorization: 'Bearer abc' } };
    const snapshot = structuredClone(fields);
    c.logger.info(fields, 'x');
    expect(fields).toEqual(snapshot);
  });

  describe('secrets', () => {
    for (const key of ['authorization', 'apiSecret', 'secret', 'token']) {
      it(`replaces a top-level ${key} with [redacted]`, () => {
        const c = capture();
        c.logger.info({ [key]: `value-of-${key}`, other: 'kept' }, 'secret at top level');
        const line = only(c);
        expect(line[key]).toBe('[redacted]');
        expect(line.other).toBe('kept');
        expect(c.raw()[0]).not.toContain(`value-of-${key}`);
      });

      it(`replaces a ${key} nested one level deep with [redacted]`, () => {
        const c = capture();
        c.logger.info({ holder: { [key]: `value-of-${key}`, other: 'kept' } }, 'secret one level down');
        expect(only(c).holder).toEqual({ [key]: '[redacted]', other: 'kept' });
        expect(c.raw()[0]).not.toContain(`value-of-${key}`);
      });
    }

    it('redacts the authorization header of a request object', () => {
      const c = capture();
      c.logger.info({ req: { method: 'POST', headers: { authorization: 'Bearer control-key-aaaaaaaaaaaaaaaa' } } }, 'request');
      expect(only(c).req).toEqual({ method: 'POST', headers: { authorization: '[redacted]' } });
      expect(c.raw()[0]).not.toContain('control-key-aaaa');
    });

    it('redacts a secret at any depth, also inside an error', () => {
      const c = capture();
      const err = Object.assign(new Error('refused'), { token: 'tok-in-error' });
      c.logger.info({ a: { b: { c: { secret: 'deep-secret-value' } } }, err }, 'deep');
      expect(only(c).a).toEqual({ b: { c: { secret: '[redacted]' } } });
      expect(c.raw()[0]).not.toContain('deep-secret-value');
      expect(c.raw()[0]).not.toContain('tok-in-error');
    });

    it("redacts the secrets of a child logger's bindings", () => {
      const c = capture();
      c.logger.child({ session_id: 's1', headers: { authorization: 'Bearer child-binding-key' } }).info('from a child');
      expect(c.raw()[0]).not.toContain('child-binding-key');
      expect(only(c).headers).toEqual({ authorization: '[redacted]' });
    });

    it('redacts the LiveKit API secret inside a livekit options object', () => {
      const c = capture();
      c.logger.info({ livekit: { url: 'wss://x.livekit.cloud', apiKey: 'APIabc', apiSecret: 'sUp3r-s3cret' } }, 'livekit');
      expect(only(c).livekit).toEqual({ url: 'wss://x.livekit.cloud', apiKey: 'APIabc', apiSecret: '[redacted]' });
    });
  });

  describe('errors', () => {
    it('keeps the type, message and stack of an err field, with the phone number masked', () => {
      const c = capture();
      c.logger.error({ err: new TypeError(`dial ${PHONE} failed`), session_id: 's1' }, 'command failed');
      const line = only(c);
      const err = line.err as Record<string, unknown>;
      expect(err.type).toBe('TypeError');
      expect(err.message).toBe(`dial ${MASKED} failed`);
      expect(String(err.stack)).toContain(`TypeError: dial ${MASKED} failed`);
      expect(line.msg).toBe('command failed');
      expect(c.raw()[0]).not.toContain(PHONE);
    });

    it('masks the phone number when an Error is logged on its own and its message becomes msg', () => {
      const c = capture();
      c.logger.error(new Error(`dial ${PHONE} failed`));
      const line = only(c);
      expect((line.err as Record<string, unknown>).message).toBe(`dial ${MASKED} failed`);
      expect(line.msg).toBe(`dial ${MASKED} failed`);
      expect(c.raw()[0]).not.toContain(PHONE);
    });
  });

  it('masks phone numbers in the bindings of a child logger', () => {
    const c = capture();
    c.logger.child({ to: PHONE, livekit_room: `call-_${PHONE}_x7Yz` }).info('child line');
    const line = only(c);
    expect(line.to).toBe(MASKED);
    expect(line.livekit_room).toBe(`call-_${MASKED}_x7Yz`);
    expect(c.raw()[0]).not.toContain(PHONE);
  });
});

describe('logObsEvent', () => {
  const envelope: ObsEnvelope = {
    event: 'call.error',
    event_id: '0b7c3f7e-1d2a-4c55-9a57-3d1f0e6b8a21',
    ts: '2026-11-24T12:00:00.000Z',
    session_id: '550e8400-e29b-41d4-a716-446655440000',
    seq: 3,
    direction: 'outbound',
    state: 'dialing',
    livekit_room: `call-_${PHONE}_x7Yz`,
    data: { category: 'busy', retryable: true, attempt: 1, sip_status_code: 486, to: PHONE, detail: { identity: `sip_${PHONE}` } },
  };

  it('writes exactly one line with the envelope fields at the top level and msg set to the event name', () => {
    const c = capture();
    logObsEvent(c.logger, envelope);
    const line = only(c);
    expect(line).toMatchObject({
      level: 'info',
      msg: 'call.error',
      event: 'call.error',
      event_id: envelope.event_id,
      ts: envelope.ts,
      session_id: envelope.session_id,
      seq: 3,
      direction: 'outbound',
      state: 'dialing',
    });
    for (const field of ['event', 'event_id', 'ts', 'session_id', 'seq', 'direction', 'state', 'livekit_room', 'data']) {
      expect(line).toHaveProperty(field);
    }
  });

  it('masks the phone number in the room name and inside data', () => {
    const c = capture();
    logObsEvent(c.logger, envelope);
    const line = only(c);
    expect(line.livekit_room).toBe(`call-_${MASKED}_x7Yz`);
    expect(line.data).toEqual({
      category: 'busy',
      retryable: true,
      attempt: 1,
      sip_status_code: 486,
      to: MASKED,
      detail: { identity: `sip_${MASKED}` },
    });
    expect(c.raw()[0]).not.toContain('12345678');
  });

  it('does not change the envelope it logs', () => {
    const c = capture();
    const copy = structuredClone(envelope);
    logObsEvent(c.logger, envelope);
    expect(envelope).toEqual(copy);
  });
});
