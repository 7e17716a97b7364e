// Every error here is produced the way production produces it: the real livekit-server-sdk
// talking HTTP to a LiveKit stand-in (or to nothing at all), never a hand-made ServerError.
import net from 'node:net';
import { AgentDispatchClient, RoomServiceClient, SipCallError, SipClient } from 'livekit-server-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ErrorCategory } from '../../machines/call.types.js';
import {
  ConfigError,
  classifyError,
  isNotFound,
  maskSensitive,
  type ClassifiedError,
} from '../../src/errors/classify.js';
import { startLiveKitStandIn, type LiveKitStandIn } from '../../dev/livekit-standin.js';

const DIALED = '+31612345678';
const TRUNK = 'ST_outbound';
const ROOM = 'call-room';

let standIn: LiveKitStandIn;

beforeAll(async () => {
  standIn = await startLiveKitStandIn();
});

afterAll(async () => {
  await standIn?.close();
});

function sip(options?: { requestTimeout?: number }, url = standIn.url): SipClient {
  return new SipClient(url, standIn?.apiKey ?? 'key', standIn?.apiSecret ?? 'secret', options);
}

function rooms(options?: { requestTimeout?: number }, url = standIn.url): RoomServiceClient {
  return new RoomServiceClient(url, standIn.apiKey, standIn.apiSecret, options);
}

function dispatcher(options?: { requestTimeout?: number }, url = standIn.url): AgentDispatchClient {
  return new AgentDispatchClient(url, standIn.apiKey, standIn.apiSecret, options);
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected the LiveKit call to fail, but it succeeded');
}

/** Dials through the real SDK after scripting LiveKit's answer; returns what the SDK threw. */
async function dialError(error: { code: string; msg: string; meta?: Record<string, string>; status?: number }) {
  standIn.script('CreateSIPParticipant', { error });
  return rejection(
    sip().createSipParticipant(TRUNK, DIALED, ROOM, {
      participantIdentity: 'sip-test',
      fromNumber: '+3197010206472',
      waitUntilAnswered: true,
      ringingTimeout: 20,
    }),
  );
}

async function classifyDial(error: Parameters<typeof dialError>[0]): Promise<ClassifiedError> {
  return classifyError(await dialError(error), 'dial');
}

/** A TCP port with nobody listening: bind on port 0, note it, close it. */
async function deadPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve())));
  return port;
}

function expectNoNumber(result: ClassifiedError): void {
  expect(result.message).not.toContain('612345678');
  expect(result.message).not.toMatch(/\d{6,}/);
}

describe('classifyError: SIP status codes from createSipParticipant', () => {
  // LiveKit's server maps the SIP status onto a Twirp code (LIVEKIT.md); the SIP code decides.
  const rows: Array<[sip: number, reason: string, twirp: string, category: ErrorCategory, retryable: boolean]> = [
    [486, 'Busy Here', 'resource_exhausted', 'busy', false],
    [600, 'Busy Everywhere', 'resource_exhausted', 'busy', false],
    [408, 'Request Timeout', 'deadline_exceeded', 'no_answer', false],
    [480, 'Temporarily Unavailable', 'resource_exhausted', 'no_answer', false],
    [487, 'Request Terminated', 'aborted', 'no_answer', false],
    [603, 'Decline', 'permission_denied', 'declined', false],
    [604, 'Does Not Exist Anywhere', 'failed_precondition', 'declined', false],
    [606, 'Not Acceptable', 'failed_precondition', 'declined', false],
    [404, 'Not Found', 'not_found', 'invalid_number', false],
    [484, 'Address Incomplete', 'invalid_argument', 'invalid_number', false],
    [401, 'Unauthorized', 'permission_denied', 'trunk_auth_error', false],
    [403, 'Forbidden', 'permission_denied', 'trunk_auth_error', false],
    [407, 'Proxy Authentication Required', 'permission_denied', 'trunk_auth_error', false],
    [500, 'Server Internal Error', 'failed_precondition', 'carrier_error', true],
    [502, 'Bad Gateway', 'failed_precondition', 'carrier_error', true],
    [503, 'Service Unavailable', 'failed_precondition', 'carrier_error', true],
    [504, 'Server Time-out', 'failed_precondition', 'carrier_error', true],
    [503, 'CPS Limit Exceeded', 'failed_precondition', 'rate_limited', true],
    [503, 'Too Many Calls', 'failed_precondition', 'rate_limited', true],
    [503, 'Channel capacity reached', 'failed_precondition', 'rate_limited', true],
    [488, 'Not Acceptable Here', 'invalid_argument', 'unknown', false],
    [410, 'Gone', 'not_found', 'unknown', false],
  ];

  for (const [code, reason, twirp, category, retryable] of rows) {
    it(`classifies SIP ${code} ${reason} as ${category}, ${retryable ? 'retryable' : 'not retryable'}`, async () => {
      const err = await dialError({
        code: twirp,
        msg: 'sip call failed',
        meta: { sip_status_code: String(code), sip_status: reason },
      });
      expect(err).toBeInstanceOf(SipCallError);
      const result = classifyError(err, 'dial');
      expect(result).toMatchObject({ category, retryable, sipStatusCode: code, twirpCode: twirp });
      expect(result.httpStatus).toBeGreaterThanOrEqual(400);
      expect(result.message).toBe(`SIP ${code} ${reason} (${twirp})`);
    });
  }

  it('classifies SIP 486 Busy Here as busy, not retryable, with the HTTP status LiveKit answered', async () => {
    const result = await classifyDial({
      code: 'resource_exhausted',
      msg: 'busy',
      meta: { sip_status_code: '486', sip_status: 'Busy Here' },
    });
    expect(result).toEqual({
      category: 'busy',
      retryable: false,
      message: 'SIP 486 Busy Here (resource_exhausted)',
      sipStatusCode: 486,
      twirpCode: 'resource_exhausted',
      httpStatus: 429,
    });
  });

  it('classifies a SIP code without a reason phrase by the code alone', async () => {
    const result = await classifyDial({ code: 'resource_exhausted', msg: 'x', meta: { sip_status_code: '486' } });
    expect(result).toMatchObject({ category: 'busy', message: 'SIP 486 (resource_exhausted)' });
  });

  it('classifies a SIP 503 without a reason phrase as carrier_error, since nothing says it is a limit', async () => {
    const result = await classifyDial({ code: 'failed_precondition', msg: 'x', meta: { sip_status_code: '503' } });
    expect(result).toMatchObject({ category: 'carrier_error', retryable: true, sipStatusCode: 503 });
  });

  it('lets the SIP code win over the Twirp code: SIP 403 under permission_denied is the trunk, not our API key', async () => {
    const result = await classifyDial({
      code: 'permission_denied',
      msg: 'forbidden',
      meta: { sip_status_code: '403', sip_status: 'Forbidden' },
    });
    expect(result.category).toBe('trunk_auth_error');
  });

  it('classifies a refused transfer (SIP 603 on transferSipParticipant) as declined', async () => {
    standIn.script('TransferSIPParticipant', {
      error: { code: 'permission_denied', msg: 'refer failed', meta: { sip_status_code: '603', sip_status: 'Decline' } },
    });
    const err = await rejection(sip().transferSipParticipant(ROOM, 'sip-test', 'tel:+31201234567'));
    expect(err).toBeInstanceOf(SipCallError);
    expect(classifyError(err, 'transfer')).toMatchObject({ category: 'declined', sipStatusCode: 603 });
  });

  it('classifies a busy transfer target (SIP 486 on transferSipParticipant) as busy', async () => {
    standIn.script('TransferSIPParticipant', {
      error: { code: 'resource_exhausted', msg: 'busy', meta: { sip_status_code: '486', sip_status: 'Busy Here' } },
    });
    const err = await rejection(sip().transferSipParticipant(ROOM, 'sip-test', 'tel:+31201234567'));
    expect(classifyError(err, 'transfer')).toMatchObject({ category: 'busy', retryable: false });
  });
});

describe('classifyError: LiveKit answers without a SIP code', () => {
  it("classifies Twirp canceled (HTTP 408) on a dial as no_answer: LiveKit's own ring timeout", async () => {
    const result = await classifyDial({ code: 'canceled', msg: 'call was not answered in time' });
    expect(result).toMatchObject({
      category: 'no_answer',
      retryable: false,
      sipStatusCode: null,
      twirpCode: 'canceled',
      httpStatus: 408,
    });
  });

  it('classifies Twirp canceled on a transfer as no_answer: the transfer target did not pick up', async () => {
    standIn.script('TransferSIPParticipant', { error: { code: 'canceled', msg: 'not answered' } });
    const err = await rejection(sip().transferSipParticipant(ROOM, 'sip-test', 'tel:+31201234567'));
    expect(classifyError(err, 'transfer').category).toBe('no_answer');
  });

  it('classifies Twirp deadline_exceeded without a SIP code as timeout, retryable', async () => {
    const result = await classifyDial({ code: 'deadline_exceeded', msg: 'deadline exceeded' });
    expect(result).toMatchObject({ category: 'timeout', retryable: true, httpStatus: 408, sipStatusCode: null });
  });

  it('classifies Twirp resource_exhausted (HTTP 429) without a SIP code as rate_limited, retryable', async () => {
    const result = await classifyDial({ code: 'resource_exhausted', msg: 'too many requests' });
    expect(result).toMatchObject({ category: 'rate_limited', retryable: true, httpStatus: 429 });
  });

  it('classifies a bare HTTP 429 with a non-JSON body as rate_limited', async () => {
    standIn.script('CreateSIPParticipant', { raw: { status: 429, contentType: 'text/plain', body: 'slow down' } });
    const err = await rejection(sip().createSipParticipant(TRUNK, DIALED, ROOM));
    expect(classifyError(err, 'dial')).toMatchObject({ category: 'rate_limited', twirpCode: null, httpStatus: 429 });
  });

  it('classifies Twirp unauthenticated (HTTP 401, bad API key) as auth_error, not retryable', async () => {
    const result = await classifyDial({ code: 'unauthenticated', msg: 'invalid token' });
    expect(result).toMatchObject({ category: 'auth_error', retryable: false, httpStatus: 401 });
  });

  it('classifies Twirp permission_denied (HTTP 403, missing grant) without a SIP code as auth_error', async () => {
    const result = await classifyDial({ code: 'permission_denied', msg: 'no sip call grant' });
    expect(result).toMatchObject({ category: 'auth_error', retryable: false, httpStatus: 403 });
  });

  it("classifies LiveKit's plain-text 401 for a wrong API secret as auth_error without echoing the token", async () => {
    const client = new SipClient(standIn.url, standIn.apiKey, 'not-the-secret-of-this-livekit-0123456789');
    const err = await rejection(client.createSipParticipant(TRUNK, DIALED, ROOM));
    const result = classifyError(err, 'dial');
    expect(result).toMatchObject({ category: 'auth_error', retryable: false, twirpCode: null, httpStatus: 401 });
    expect(result.message).toBe('LiveKit HTTP 401 Unauthorized');
    expect((err as Error).message).toMatch(/eyJ/); // the server's text carries the JWT; ours must not
  });

  it('classifies permission_denied on a room call (deleteRoom without roomCreate) as auth_error', async () => {
    standIn.script('DeleteRoom', { error: { code: 'permission_denied', msg: 'permissions denied' } });
    const err = await rejection(rooms().deleteRoom(ROOM));
    expect(classifyError(err, 'hangup')).toMatchObject({ category: 'auth_error', retryable: false });
  });

  it('classifies Twirp not_found on a dial as config_error: the outbound trunk does not exist', async () => {
    const result = await classifyDial({ code: 'not_found', msg: 'requested sip trunk does not exist' });
    expect(result).toMatchObject({ category: 'config_error', retryable: false, httpStatus: 404 });
    expect(result.message).toBe('LiveKit not_found (HTTP 404): requested sip trunk does not exist');
  });

  it('classifies Twirp not_found on a hangup (deleteRoom) as config_error and leaves the meaning to the caller', async () => {
    standIn.script('DeleteRoom', { error: { code: 'not_found', msg: 'room not found' } });
    const err = await rejection(rooms().deleteRoom(ROOM));
    expect(classifyError(err, 'hangup')).toMatchObject({ category: 'config_error', twirpCode: 'not_found' });
  });

  it('classifies Twirp not_found on a lookup (getParticipant) as config_error', async () => {
    standIn.script('GetParticipant', { error: { code: 'not_found', msg: 'participant not found' } });
    const err = await rejection(rooms().getParticipant(ROOM, 'sip-test'));
    expect(classifyError(err, 'lookup')).toMatchObject({ category: 'config_error', twirpCode: 'not_found' });
  });

  it('classifies Twirp unavailable (HTTP 503) as provider_unavailable, retryable', async () => {
    const result = await classifyDial({ code: 'unavailable', msg: 'no sip servers available' });
    expect(result).toMatchObject({ category: 'provider_unavailable', retryable: true, httpStatus: 503 });
  });

  it('classifies Twirp internal (HTTP 500) as provider_unavailable, retryable', async () => {
    const result = await classifyDial({ code: 'internal', msg: 'internal error' });
    expect(result).toMatchObject({ category: 'provider_unavailable', retryable: true, httpStatus: 500 });
  });

  it('classifies a non-JSON 502 from a proxy (no Twirp code) as provider_unavailable', async () => {
    standIn.script('CreateSIPParticipant', {
      raw: { status: 502, contentType: 'text/html', body: '<html><body>502 Bad Gateway</body></html>' },
    });
    const err = await rejection(sip().createSipParticipant(TRUNK, DIALED, ROOM));
    const result = classifyError(err, 'dial');
    expect(result).toMatchObject({ category: 'provider_unavailable', retryable: true, twirpCode: null, httpStatus: 502 });
    expect(result.message).not.toContain('<html>');
  });

  it('classifies Twirp unimplemented (HTTP 501) as unknown, because retrying cannot help', async () => {
    const result = await classifyDial({ code: 'unimplemented', msg: 'not implemented' });
    expect(result).toMatchObject({ category: 'unknown', retryable: false, httpStatus: 501 });
  });

  it('classifies invalid_argument on a dial that mentions the phone number as invalid_number', async () => {
    const result = await classifyDial({ code: 'invalid_argument', msg: `invalid phone number ${DIALED}` });
    expect(result).toMatchObject({ category: 'invalid_number', retryable: false, httpStatus: 400 });
    expectNoNumber(result);
  });

  it('classifies invalid_argument on a dial about something else than the number as unknown', async () => {
    const result = await classifyDial({ code: 'invalid_argument', msg: 'room name is too long' });
    expect(result).toMatchObject({ category: 'unknown', retryable: false });
  });

  it('classifies failed_precondition without a SIP code as unknown, not retryable', async () => {
    const result = await classifyDial({ code: 'failed_precondition', msg: 'trunk has no address' });
    expect(result).toMatchObject({ category: 'unknown', retryable: false, twirpCode: 'failed_precondition' });
  });
});

describe('classifyError: agent dispatch', () => {
  async function dispatchError(error: { code: string; msg: string }) {
    standIn.script('CreateDispatch', { error });
    return classifyError(await rejection(dispatcher().createDispatch(ROOM, 'support-agent')), 'dispatch');
  }

  it('classifies a failed createDispatch (not_found) as agent_error, not retryable', async () => {
    expect(await dispatchError({ code: 'not_found', msg: 'agent not found' })).toMatchObject({
      category: 'agent_error',
      retryable: false,
    });
  });

  it('classifies a rejected createDispatch (invalid_argument) as agent_error', async () => {
    expect((await dispatchError({ code: 'invalid_argument', msg: 'bad agent name' })).category).toBe('agent_error');
  });

  it('keeps rate limits on createDispatch as rate_limited', async () => {
    expect((await dispatchError({ code: 'resource_exhausted', msg: 'slow down' })).category).toBe('rate_limited');
  });

  it('keeps auth failures on createDispatch as auth_error', async () => {
    expect((await dispatchError({ code: 'unauthenticated', msg: 'bad key' })).category).toBe('auth_error');
  });

  it('keeps a LiveKit outage on createDispatch as provider_unavailable', async () => {
    expect((await dispatchError({ code: 'unavailable', msg: 'down' })).category).toBe('provider_unavailable');
  });

  it('keeps a refused connection on createDispatch as provider_unavailable', async () => {
    const port = await deadPort();
    const err = await rejection(dispatcher({}, `http://127.0.0.1:${port}`).createDispatch(ROOM, 'support-agent'));
    expect(classifyError(err, 'dispatch').category).toBe('provider_unavailable');
  });

  it('keeps a request timeout on createDispatch as timeout', async () => {
    standIn.script('CreateDispatch', { hang: true });
    const err = await rejection(dispatcher({ requestTimeout: 0.3 }).createDispatch(ROOM, 'support-agent'));
    expect(classifyError(err, 'dispatch').category).toBe('timeout');
  });
});

describe('classifyError: transport failures', () => {
  it('classifies a refused connection (ECONNREFUSED) as provider_unavailable, retryable', async () => {
    const port = await deadPort();
    const err = await rejection(sip({}, `http://127.0.0.1:${port}`).createSipParticipant(TRUNK, DIALED, ROOM));
    const result = classifyError(err, 'dial');
    expect(result).toEqual({
      category: 'provider_unavailable',
      retryable: true,
      message: 'LiveKit unreachable: ECONNREFUSED',
      sipStatusCode: null,
      twirpCode: null,
      httpStatus: null,
    });
  });

  it('classifies a refused connection to localhost (possibly several addresses) as provider_unavailable', async () => {
    const port = await deadPort();
    const err = await rejection(rooms({}, `http://localhost:${port}`).deleteRoom(ROOM));
    expect(classifyError(err, 'hangup')).toMatchObject({ category: 'provider_unavailable', retryable: true });
  });

  it('classifies a connection reset mid-request as provider_unavailable, retryable', async () => {
    standIn.script('CreateSIPParticipant', { reset: true });
    const err = await rejection(sip().createSipParticipant(TRUNK, DIALED, ROOM));
    const result = classifyError(err, 'dial');
    expect(result).toMatchObject({ category: 'provider_unavailable', retryable: true, httpStatus: null });
    expect(result.message).toMatch(/^LiveKit unreachable: (ECONNRESET|UND_ERR_SOCKET|EPIPE|other side closed)$/);
  });

  it('classifies an unresolvable host (ENOTFOUND or EAI_AGAIN) as provider_unavailable, retryable', async () => {
    const err = await rejection(sip({}, 'http://no-such-host.invalid').createSipParticipant(TRUNK, DIALED, ROOM));
    const result = classifyError(err, 'dial');
    expect(result).toMatchObject({ category: 'provider_unavailable', retryable: true });
    expect(result.message).toMatch(/^LiveKit unreachable: (ENOTFOUND|EAI_AGAIN)$/);
  });

  it("classifies the SDK's request timeout (client requestTimeout) on a hanging LiveKit as timeout, retryable", async () => {
    standIn.script('CreateSIPParticipant', { hang: true });
    const err = await rejection(sip({ requestTimeout: 0.3 }).createSipParticipant(TRUNK, DIALED, ROOM));
    expect(classifyError(err, 'dial')).toEqual({
      category: 'timeout',
      retryable: true,
      message: 'LiveKit request timed out: TimeoutError',
      sipStatusCode: null,
      twirpCode: null,
      httpStatus: null,
    });
  });

  it("classifies the createSipParticipant `timeout` option expiring on a hanging LiveKit as timeout", async () => {
    standIn.script('CreateSIPParticipant', { hang: true });
    const err = await rejection(sip().createSipParticipant(TRUNK, DIALED, ROOM, { timeout: 0.3 }));
    expect(classifyError(err, 'dial').category).toBe('timeout');
  });

  it('classifies a hanging deleteRoom as timeout', async () => {
    standIn.script('DeleteRoom', { hang: true });
    const err = await rejection(rooms({ requestTimeout: 0.3 }).deleteRoom(ROOM));
    expect(classifyError(err, 'hangup').category).toBe('timeout');
  });

  it('classifies our own abort (AbortError) as unknown, not retryable', async () => {
    // Aborted before it is sent, so no scripted reply of the stand-in is used up.
    const controller = new AbortController();
    controller.abort();
    const pending = fetch(new URL('/twirp/livekit.SIP/CreateSIPParticipant', standIn.url), {
      method: 'POST',
      body: '{}',
      signal: controller.signal,
    });
    const result = classifyError(await rejection(pending), 'dial');
    expect(result).toMatchObject({ category: 'unknown', retryable: false, message: 'request aborted' });
  });
});

describe('classifyError: our own errors and odd input', () => {
  it('classifies ConfigError (no outbound trunk, no CALLER_ID) as config_error, not retryable', () => {
    expect(classifyError(new ConfigError('SIP_OUTBOUND_TRUNK_ID is not set'), 'dial')).toMatchObject({
      category: 'config_error',
      retryable: false,
      sipStatusCode: null,
      twirpCode: null,
      httpStatus: null,
    });
  });

  it('classifies a plain Error as unknown, not retryable', () => {
    expect(classifyError(new Error('boom'))).toMatchObject({ category: 'unknown', retryable: false, message: 'Error: boom' });
  });

  it('classifies a plain Error thrown around createDispatch as agent_error', () => {
    expect(classifyError(new Error('bad response'), 'dispatch').category).toBe('agent_error');
  });

  it('never throws, whatever it is given', () => {
    const cyclic = new Error('loop') as Error & { cause?: unknown };
    cyclic.cause = cyclic;
    const hostile = new Proxy(
      {},
      {
        get() {
          throw new Error('trap');
        },
        has() {
          throw new Error('trap');
        },
        getPrototypeOf() {
          throw new Error('trap');
        },
      },
    );
    const throwingGetter = Object.defineProperty(new Error('x'), 'status', {
      get() {
        throw new Error('getter');
      },
    });
    const odd: unknown[] = [
      undefined,
      null,
      0,
      42n,
      'string error',
      Symbol('s'),
      {},
      [],
      () => undefined,
      Object.create(null),
      cyclic,
      hostile,
      throwingGetter,
      { status: 'x', code: 42, metadata: 'nope' },
      Object.assign(new Error('weird'), { status: 486, code: null, metadata: { sip_status_code: 'abc' } }),
      Object.assign(new Error('weird'), { status: 1e9, code: 'internal' }),
      new AggregateError([null, 1, 'x'], 'many'),
    ];
    for (const value of odd) {
      const result = classifyError(value, 'dial');
      expect(typeof result.category).toBe('string');
      expect(typeof result.message).toBe('string');
      expect(typeof result.retryable).toBe('boolean');
    }
    expect(classifyError('string error').category).toBe('unknown');
    expect(classifyError(null).category).toBe('unknown');
    expect(classifyError(hostile).category).toBe('unknown');
  });
});

describe('classifyError: the message is safe to log', () => {
  it('never contains the dialed number, even when the server message and metadata include it', async () => {
    const err = await dialError({
      code: 'resource_exhausted',
      msg: `could not call ${DIALED}: busy`,
      meta: { sip_status_code: '486', sip_status: `Busy Here ${DIALED}`, sip_call_to: DIALED },
    });
    // The SDK itself puts the metadata (with the number) into err.message: we must not echo it.
    expect((err as Error).message).toContain(DIALED);
    const result = classifyError(err, 'dial');
    expect(result.category).toBe('busy');
    expectNoNumber(result);
  });

  it('never contains the dialed number from a Twirp error without a SIP code', async () => {
    const result = await classifyDial({ code: 'unavailable', msg: `no route to +31 6 1234 5678 or ${DIALED}` });
    expect(result.category).toBe('provider_unavailable');
    expectNoNumber(result);
    expect(result.message).not.toMatch(/1234 5678/);
  });

  it('masks phone numbers and secrets in free text but keeps SIP codes', () => {
    expect(maskSensitive(`SIP 486 for ${DIALED}`)).toBe('SIP 486 for ***');
    expect(maskSensitive('call 0612345678 now')).toBe('call *** now');
    expect(maskSensitive('Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJrZXkifQ.abc')).not.toMatch(/eyJ/);
    expect(maskSensitive('secret=Zk3xq9Lm2Pw8Rt5Vb7Nc1Hd4Jf6Gs0Ae')).not.toContain('Zk3xq9');
    expect(maskSensitive('x'.repeat(1000)).length).toBeLessThanOrEqual(161);
  });
});

describe('isNotFound', () => {
  it('is true when LiveKit answers that the room asked about does not exist (Twirp not_found, HTTP 404)', async () => {
    standIn.script('ListParticipants', { error: { code: 'not_found', msg: 'requested room does not exist' } });
    expect(isNotFound(await rejection(rooms().listParticipants(ROOM)))).toBe(true);
  });

  it('is false for a 404 without a Twirp code, which is a wrong LIVEKIT_URL path and not an answer about the room', async () => {
    standIn.script('ListParticipants', { raw: { status: 404, contentType: 'text/plain', body: '404 page not found' } });
    const err = await rejection(rooms().listParticipants(ROOM));
    expect(classifyError(err, 'lookup').category).toBe('config_error');
    expect(isNotFound(err)).toBe(false);
  });

  it('is false for every other failure, and for anything that is not a LiveKit answer', async () => {
    standIn.script('ListParticipants', { error: { code: 'unavailable', msg: 'no rtc nodes available' } });
    expect(isNotFound(await rejection(rooms().listParticipants(ROOM)))).toBe(false);
    expect(isNotFound(new ConfigError('SIP_OUTBOUND_TRUNK_ID is not set'))).toBe(false);
    expect(isNotFound(new Error('not_found'))).toBe(false);
    expect(isNotFound(null)).toBe(false);
    const trap = () => {
      throw new Error('trap');
    };
    expect(isNotFound(new Proxy({}, { get: trap, has: trap, getPrototypeOf: trap }))).toBe(false);
  });
});
