// Fuzzing the HTTP surface with malformed input: random bodies, content types, keys, ids, query
// strings and methods against POST /webhook and every /v1 route. Whatever comes in, the answer is
// never a 5xx (503 is declared only for a store that is down, and this one is healthy), every 4xx
// is an RFC 9457 problem, the process stays healthy, and the one real call is left exactly as it was.
//
// Bounded so it runs inside `npm test`. FUZZ_RUNS sets the number of runs per property (long
// variant: `FUZZ_RUNS=5000 npm test`); FUZZ_SEED replays a failure (fast-check prints seed and path).
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServiceHarness, TEST_API_KEY, type ServiceHarness } from '../support/service-harness.js';
import { roomJson, sipParticipant, webhookEvents } from '../../dev/webhook-events.js';
import { signWebhook } from '../../dev/webhook-sender.js';
import { fuzzParameters, fuzzRuns, timeoutFor } from './fuzz-budget.js';

const FUZZ_RUNS = fuzzRuns(300);

// ---- requests --------------------------------------------------------------------------------

interface FuzzRequest {
  method: string;
  /** path and query, as sent */
  path: string;
  headers: Record<string, string>;
  body: Uint8Array | null;
}

/** the answer, with what the properties need; `text` is empty for a stream that was cut off */
interface Answer {
  status: number;
  contentType: string;
  text: string;
}

let h: ServiceHarness;
let realCall: { id: string; list: unknown; session: unknown; events: unknown };

function describeRequest(request: FuzzRequest): string {
  const body = request.body === null ? 'no body' : `${request.body.length} bytes: ${JSON.stringify(Buffer.from(request.body.subarray(0, 200)).toString('latin1'))}`;
  return `${request.method} ${request.path.slice(0, 300)} ${JSON.stringify(request.headers).slice(0, 600)} (${body})`;
}

async function send(request: FuzzRequest): Promise<Answer> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error('no answer within 10 s')), 10_000);
  try {
    const response = await fetch(`${h.url}${request.path}`, {
      method: request.method,
      headers: request.headers,
      body: request.body,
      redirect: 'manual',
      signal: controller.signal,
    });
    const contentType = response.headers.get('content-type') ?? '';
    if (response.status === 200 && contentType.startsWith('text/event-stream')) {
      // An event stream never ends by itself: the status and type are all there is to check.
      controller.abort();
      return { status: response.status, contentType, text: '' };
    }
    return { status: response.status, contentType, text: await response.text() };
  } finally {
    clearTimeout(timer);
  }
}

/** status < 500; every 4xx a problem+json whose `status` is the HTTP status and whose `code` is a string */
function expectWellFormed(request: FuzzRequest, answer: Answer): void {
  const what = `${describeRequest(request)} → ${answer.status} ${answer.contentType} ${answer.text.slice(0, 300)}`;
  expect(answer.status, `no 5xx: ${what}`).toBeLessThan(500);
  if (answer.status < 400) return;
  expect(answer.contentType, `4xx is problem+json: ${what}`).toMatch(/^application\/problem\+json/);
  if (request.method === 'HEAD') return; // no body, by definition
  let problem: { status?: unknown; code?: unknown };
  try {
    problem = JSON.parse(answer.text) as typeof problem;
  } catch {
    throw new Error(`4xx body is not JSON: ${what}`);
  }
  expect(problem.status, `problem.status equals the HTTP status: ${what}`).toBe(answer.status);
  expect(typeof problem.code, `problem.code is a string: ${what}`).toBe('string');
}

// ---- arbitraries -----------------------------------------------------------------------------

const chars = (from: number, to: number) => fc.integer({ min: from, max: to }).map((code) => String.fromCharCode(code));
/** what a header value may hold on the wire: visible ASCII, space, tab, and now and then Latin-1 */
const headerValueArb = fc.string({
  unit: fc.oneof({ arbitrary: chars(0x20, 0x7e), weight: 20 }, { arbitrary: fc.constant('\t'), weight: 1 }, { arbitrary: chars(0xa0, 0xff), weight: 1 }),
  maxLength: 120,
});
const visibleAsciiArb = (maxLength: number) => fc.string({ unit: chars(0x21, 0x7e), minLength: 1, maxLength });

/** Characters that stay in a path segment or query as they are (`%` included, so broken escapes too). */
const RAW_SEGMENT = "ABCXYZabcxyz0123456789-._~!$'()*+,;=:@%";
const rawSegmentArb = (maxLength: number) => fc.string({ unit: fc.constantFrom(...RAW_SEGMENT.split('')), maxLength });

/** percent-encodes the UTF-8 bytes of any string (lone surrogates become U+FFFD) */
function pctEncode(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    const ch = String.fromCharCode(byte);
    out += /[A-Za-z0-9\-._~]/.test(ch) ? ch : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

const anyTextArb = (maxLength: number) => fc.string({ unit: 'binary', maxLength });

const pathIdArb: fc.Arbitrary<string> = fc.oneof(
  anyTextArb(60).map(pctEncode),
  rawSegmentArb(60).filter((id) => id.length > 0),
  fc.uuid(),
  fc.constantFrom('%', '%zz', '%E0%A4%A', '%00', '%FF%FE', '..', '.', '%2F', '%2e%2e', 'null', 'undefined', '__proto__', 'constructor', '0', '-1', ' '.repeat(3).replace(/ /g, '%20')),
  fc.integer({ min: 200, max: 1_500 }).map((length) => 'a'.repeat(length)),
);

const queryTextArb: fc.Arbitrary<string> = fc.oneof(anyTextArb(40).map(pctEncode), rawSegmentArb(40));

function queryArb(known: Record<string, fc.Arbitrary<string>>): fc.Arbitrary<string> {
  const pair = fc.oneof(
    { arbitrary: fc.constantFrom(...Object.keys(known)).chain((key) => fc.tuple(fc.constant(key), fc.oneof(known[key] ?? queryTextArb, queryTextArb))), weight: 3 },
    { arbitrary: fc.tuple(queryTextArb, queryTextArb), weight: 1 },
  );
  return fc.oneof(
    fc.array(fc.tuple(pair, fc.boolean()), { maxLength: 6 }).map((pairs) =>
      // `key=value`, or only `key` now and then
      pairs.map(([[key, value], bare]) => (bare && value === '' ? key : `${key}=${value}`)).join('&'),
    ),
    rawSegmentArb(80).map((text) => text.replace(/:/g, '&')),
    fc.constantFrom('', '&', '&&=&', '=', '==', '?', 'limit', 'limit=', 'limit=0', 'limit=201', 'limit=1e2', 'limit=%31', 'state=ringing&state=ended', 'cursor=', 'cursor=%FF', 'session_id=', 'last_event_id=-1', 'last_event_id=99999999999999999999'),
  );
}

const listQueryArb = queryArb({
  state: fc.constantFrom('queued', 'dialing', 'ringing', 'connected', 'transferring', 'ending', 'ended', 'failed', 'RINGING', 'created', ''),
  direction: fc.constantFrom('inbound', 'outbound', 'both', ''),
  limit: fc.oneof(fc.integer({ min: -5, max: 300 }).map(String), fc.constantFrom('1.5', '0x10', ' 5', '00050', '9999', '')),
  cursor: fc.oneof(fc.base64String({ maxLength: 24 }), fc.constantFrom(Buffer.from('o:1').toString('base64url'), Buffer.from('o:99999999999999999').toString('base64url'), 'bzox')),
});

const streamQueryArb = queryArb({
  session_id: fc.oneof(fc.uuid(), queryTextArb),
  last_event_id: fc.oneof(fc.integer({ min: -3, max: 100 }).map(String), fc.constantFrom('1.0', '1e3', '9007199254740993', '')),
});

/** JSON text with a few bytes replaced by ones that are never valid UTF-8 */
const invalidUtf8Arb: fc.Arbitrary<Uint8Array> = fc
  .tuple(
    fc.oneof(fc.jsonValue({ maxDepth: 2 }).map((value) => JSON.stringify(value) ?? 'null'), fc.constant('{"to":"+31612345678"}'), fc.constant('{"a":"b"}')),
    fc.array(fc.tuple(fc.nat(), fc.constantFrom(0x80, 0xbf, 0xc0, 0xc1, 0xc3, 0xe0, 0xed, 0xf4, 0xf5, 0xfe, 0xff)), { minLength: 1, maxLength: 4 }),
  )
  .map(([text, bytes]) => {
    const out = Array.from(Buffer.from(text, 'utf8'));
    for (const [position, byte] of bytes) out.splice(out.length === 0 ? 0 : position % (out.length + 1), 0, byte);
    return Uint8Array.from(out);
  });

const utf8 = (text: string) => new Uint8Array(Buffer.from(text, 'utf8'));

/** huge bodies around the limits (64 KiB for the Control API, 1 MiB for webhooks) and up to 2 MiB */
const hugeBodyArb: fc.Arbitrary<Uint8Array> = fc
  .tuple(
    fc.oneof(
      fc.constantFrom(64 * 1024 - 1, 64 * 1024 + 1, 1024 * 1024 - 1, 1024 * 1024 + 1, 2 * 1024 * 1024),
      fc.integer({ min: 64 * 1024, max: 2 * 1024 * 1024 }),
    ),
    fc.boolean(),
  )
  .map(([size, json]) => {
    const body = Buffer.alloc(size, 'x'.charCodeAt(0));
    if (json && size > 10) {
      body.write('{"metadata":"', 0, 'latin1');
      body.write('"}', size - 2, 'latin1');
    }
    return new Uint8Array(body);
  });

const bodyArb: fc.Arbitrary<Uint8Array | null> = fc.oneof(
  { arbitrary: fc.constant(null), weight: 3 },
  { arbitrary: fc.constant(new Uint8Array(0)), weight: 1 },
  { arbitrary: anyTextArb(300).map(utf8), weight: 4 },
  { arbitrary: fc.jsonValue({ maxDepth: 4 }).map((value) => utf8(JSON.stringify(value) ?? 'null')), weight: 4 },
  { arbitrary: fc.object({ maxDepth: 2, values: [fc.jsonValue({ maxDepth: 1 })] }).map((value) => utf8(JSON.stringify(value))), weight: 4 },
  {
    arbitrary: fc
      .record({
        to: fc.oneof(
          anyTextArb(30),
          fc.integer(),
          fc.constant(null),
          fc.constantFrom('+', '+0', 'tel:', 'sip:', 'sip:@', 'sips:a@b:99999', '+999999999999999999999', '+31201234567', 'tel:+31201234567', 'sip:desk@example.com'),
        ),
        extra: fc.option(fc.tuple(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 1 }))),
      })
      .map(({ to, extra }) => utf8(JSON.stringify({ to, ...(extra ? { [extra[0]]: extra[1] } : {}) }))),
    weight: 3,
  },
  // a well-formed transfer, so POST /v1/calls/{random id}/transfer gets as far as the call lookup
  { arbitrary: fc.constantFrom('+31201234567', 'tel:+31201234567', 'sip:desk@example.com').map((to) => utf8(JSON.stringify({ to }))), weight: 2 },
  { arbitrary: fc.uint8Array({ maxLength: 300 }), weight: 2 },
  { arbitrary: invalidUtf8Arb, weight: 2 },
  { arbitrary: fc.constantFrom('{', '}', '[]', '"{}"', 'null', '{"a":1,}', '\uFEFF{}', '{"__proto__":{"to":1}}').map(utf8), weight: 1 },
  { arbitrary: hugeBodyArb, weight: 1 },
);

/**
 * A body that would place a real outbound call (a valid `to`) would change the system: the Control
 * API's own tests cover that. Every other body is fair game, so such bodies are skipped when the
 * request goes to POST /v1/calls, also by way of dot segments (`/v1/calls/x/..`).
 */
function couldPlaceACall(method: string, path: string, body: Uint8Array | null): boolean {
  if (method !== 'POST' || body === null) return false;
  if (!/^\/v1\/calls\/?$/.test(new URL(path, 'http://localhost').pathname)) return false;
  try {
    const value: unknown = JSON.parse(Buffer.from(body).toString('utf8'));
    return value !== null && typeof value === 'object' && !Array.isArray(value) && Object.hasOwn(value, 'to');
  } catch {
    return false;
  }
}

const contentTypeArb: fc.Arbitrary<string | null> = fc.oneof(
  { arbitrary: fc.constant(null), weight: 3 },
  {
    arbitrary: fc.constantFrom(
      'application/json',
      'application/json; charset=utf-8',
      'application/json;charset=latin1',
      'application/webhook+json',
      'Application/JSON',
      'application/problem+json',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=xyz',
      'text/plain',
      'text/event-stream',
      '*/*',
      'application/*',
      'json',
      'application/json; charset',
      'application/json;;;',
      ';',
      '',
    ),
    weight: 4,
  },
  { arbitrary: headerValueArb, weight: 2 },
);

const CONTROL_KEY = `Bearer ${TEST_API_KEY}`;

const apiAuthorizationArb: fc.Arbitrary<string | null> = fc.oneof(
  { arbitrary: fc.constant(CONTROL_KEY), weight: 6 },
  { arbitrary: fc.constant(null), weight: 2 },
  {
    arbitrary: fc.constantFrom(
      `bearer ${TEST_API_KEY}`,
      `Bearer  ${TEST_API_KEY}  `,
      `Bearer\t${TEST_API_KEY}`,
      `Bearer ${TEST_API_KEY}x`,
      `Bearer ${TEST_API_KEY} extra`,
      `Basic ${Buffer.from(`user:${TEST_API_KEY}`).toString('base64')}`,
      TEST_API_KEY,
      'Bearer',
      'Bearer ',
      '',
    ),
    weight: 2,
  },
  { arbitrary: headerValueArb, weight: 1 },
  { arbitrary: headerValueArb.map((value) => `Bearer ${value}`), weight: 1 },
);

const idempotencyKeyArb: fc.Arbitrary<string | null> = fc.oneof(
  { arbitrary: fc.constant(null), weight: 3 },
  { arbitrary: visibleAsciiArb(40), weight: 2 },
  { arbitrary: headerValueArb, weight: 1 },
  { arbitrary: fc.integer({ min: 250, max: 400 }).map((length) => 'k'.repeat(length)), weight: 1 },
);

function headersOf(parts: { authorization: string | null; contentType: string | null; idempotencyKey?: string | null; lastEventId?: string | null }): Record<string, string> {
  const headers: Record<string, string> = {};
  if (parts.authorization !== null) headers.Authorization = parts.authorization;
  if (parts.contentType !== null) headers['Content-Type'] = parts.contentType;
  if (parts.idempotencyKey !== undefined && parts.idempotencyKey !== null) headers['Idempotency-Key'] = parts.idempotencyKey;
  if (parts.lastEventId !== undefined && parts.lastEventId !== null) headers['Last-Event-ID'] = parts.lastEventId;
  return headers;
}

/** `Authorization` for POST /webhook: missing, garbage, or a JWT that is wrong in one way or another */
function webhookAuthorizationArb(): fc.Arbitrary<(body: Uint8Array | null) => Promise<string | null>> {
  const sign = (body: Uint8Array | null, options: { secret?: string; apiKey?: string; nowS?: number; sha256?: string }) =>
    signWebhook('', {
      apiKey: options.apiKey ?? h.standIn.apiKey,
      apiSecret: options.secret ?? h.standIn.apiSecret,
      nowS: options.nowS,
      sha256: options.sha256 ?? createHash('sha256').update(body ?? new Uint8Array(0)).digest('base64'),
    });
  return fc.oneof(
    fc.constant(async () => null),
    headerValueArb.map((value) => async () => value),
    fc.constantFrom('Bearer x', 'a.b.c', 'eyJhbGciOiJub25lIn0.e30.', 'eyJhbGciOiJIUzI1NiJ9.e30.AAAA').map((value) => async () => value),
    fc.constant(async (body: Uint8Array | null) => sign(body, { secret: 'not-the-livekit-api-secret-at-all' })),
    fc.constant(async (body: Uint8Array | null) => sign(body, { apiKey: 'another-api-key' })),
    fc.constant(async (body: Uint8Array | null) => sign(body, { nowS: Math.floor(Date.now() / 1000) - 3600 })),
    fc.constant(async (body: Uint8Array | null) => sign(body, { sha256: createHash('sha256').update('something else').digest('base64') })),
    fc.constant(async (body: Uint8Array | null) => `Bearer ${await sign(body, {})}`),
  );
}

interface RequestPlan {
  method: string;
  path: string;
  contentType: string | null;
  authorization: string | null;
  idempotencyKey: string | null;
  lastEventId: string | null;
  body: Uint8Array | null;
}

const toRequest = (plan: RequestPlan): FuzzRequest => ({
  method: plan.method,
  path: plan.path,
  headers: headersOf(plan),
  // fetch sends no body with GET or HEAD
  body: plan.method === 'GET' || plan.method === 'HEAD' ? null : plan.body,
});

/** Every /v1 route, with the method it serves, random ids, queries, bodies and headers. */
const controlApiPlanArb: fc.Arbitrary<RequestPlan> = fc
  .record({
    route: fc.oneof(
      pathIdArb.map((id) => ({ method: 'GET', path: `/v1/calls/${id}` })),
      pathIdArb.map((id) => ({ method: 'POST', path: `/v1/calls/${id}/hangup` })),
      pathIdArb.map((id) => ({ method: 'POST', path: `/v1/calls/${id}/transfer` })),
      pathIdArb.map((id) => ({ method: 'GET', path: `/v1/calls/${id}/events` })),
      fc.constant({ method: 'POST', path: '/v1/calls' }),
      fc.constant({ method: 'POST', path: '/v1/calls' }),
      fc.tuple(fc.boolean(), listQueryArb).map(([bare, query]) => ({ method: 'GET', path: `/v1/calls${bare && query === '' ? '' : `?${query}`}` })),
      streamQueryArb.map((query) => ({ method: 'GET', path: `/v1/events?${query}` })),
      fc.tuple(pathIdArb, fc.constantFrom('GET', 'POST')).map(([id, method]) => ({ method, path: `/v1/${id}` })),
      fc.tuple(pathIdArb, pathIdArb).map(([a, b]) => ({ method: 'POST', path: `/v1/calls/${a}/${b}` })),
    ),
    // application/json often, so bodies get as far as validation
    contentType: fc.oneof({ arbitrary: fc.constant('application/json'), weight: 2 }, { arbitrary: contentTypeArb, weight: 3 }),
    authorization: apiAuthorizationArb,
    idempotencyKey: idempotencyKeyArb,
    lastEventId: fc.option(fc.oneof(visibleAsciiArb(25), fc.integer({ min: 0, max: 50 }).map(String)), { nil: null, freq: 4 }),
    body: bodyArb,
  })
  .filter(({ route, body }) => !couldPlaceACall(route.method, route.path, body))
  .map(({ route, ...rest }) => ({ ...route, ...rest }));

/** POST /webhook with every kind of body, content type and Authorization. */
const webhookPlanArb = fc.record({
  contentType: fc.oneof(contentTypeArb, fc.constantFrom('application/webhook+json', 'application/json')),
  authorize: webhookAuthorizationArb(),
  body: bodyArb,
});

async function snapshotRealCall(id: string): Promise<{ list: unknown; session: unknown; events: unknown }> {
  const get = async (path: string) => {
    const response = await h.api(path);
    expect(response.status, path).toBe(200);
    return (await response.json()) as unknown;
  };
  return {
    list: await get('/v1/calls?limit=200'),
    session: await get(`/v1/calls/${id}`),
    events: await get(`/v1/calls/${id}/events`),
  };
}

beforeAll(async () => {
  h = await startServiceHarness();
  const room = roomJson('call-_+31612345678_fuzzed');
  const caller = sipParticipant({ phoneNumber: '+31612345678', trunkPhoneNumber: '+3197010206472', callStatus: 'ringing' });
  const joined = await h.postSigned(JSON.stringify(webhookEvents.participantJoined(room, caller)));
  expect(joined.status).toBe(200);
  const id = (JSON.parse(joined.body) as { session_id: string }).session_id;
  realCall = { id, ...(await snapshotRealCall(id)) };
  expect((realCall.list as { calls: unknown[] }).calls).toHaveLength(1);
});

afterAll(async () => {
  await h?.close();
});

describe('HTTP input fuzzing', () => {
  it(
    'answers every malformed POST /webhook with a 4xx problem or a 200, never a 5xx',
    async () => {
      await fc.assert(
        fc.asyncProperty(webhookPlanArb, async ({ contentType, authorize, body }) => {
          const request: FuzzRequest = {
            method: 'POST',
            path: '/webhook',
            headers: headersOf({ authorization: await authorize(body), contentType }),
            body,
          };
          expectWellFormed(request, await send(request));
        }),
        fuzzParameters(FUZZ_RUNS),
      );
    },
    timeoutFor(FUZZ_RUNS, 100),
  );

  it(
    'answers a correctly signed body that is not a webhook event with 400 problem+json, never a 5xx',
    async () => {
      const notAWebhook = (body: Uint8Array): boolean => {
        let value: unknown;
        try {
          value = JSON.parse(Buffer.from(body).toString('utf8'));
        } catch {
          return true;
        }
        if (value === null || typeof value !== 'object' || Array.isArray(value)) return true;
        const event = (value as { event?: unknown }).event;
        return typeof event !== 'string' || event === '';
      };
      const signedBodyArb = fc
        .oneof(
          anyTextArb(300).map(utf8),
          fc.jsonValue({ maxDepth: 4 }).map((value) => utf8(JSON.stringify(value) ?? 'null')),
          fc.object({ maxDepth: 3 }).map((value) => utf8(JSON.stringify(value))),
          fc
            .record({ event: fc.oneof(fc.constant(''), fc.integer(), fc.constant(null), fc.boolean(), fc.array(fc.string())), room: fc.option(fc.record({ name: fc.oneof(fc.string(), fc.integer()) })) })
            .map((value) => utf8(JSON.stringify(value))),
          fc.uint8Array({ maxLength: 300 }),
          invalidUtf8Arb,
          fc.constantFrom('', ' ', '{', '\uFEFF{"event":"room_started"}', '{"event":"room_started"', '[{"event":"room_started"}]', '"room_started"').map(utf8),
        )
        .filter(notAWebhook);
      await fc.assert(
        fc.asyncProperty(signedBodyArb, fc.constantFrom('application/webhook+json', 'application/json', 'application/json; charset=utf-8'), async (body, contentType) => {
          const authorization = await signWebhook('', {
            apiKey: h.standIn.apiKey,
            apiSecret: h.standIn.apiSecret,
            sha256: createHash('sha256').update(body).digest('base64'),
          });
          const request: FuzzRequest = { method: 'POST', path: '/webhook', headers: headersOf({ authorization, contentType }), body };
          const answer = await send(request);
          expectWellFormed(request, answer);
          expect(answer.status, `${describeRequest(request)} → ${answer.text}`).toBe(400);
          expect(JSON.parse(answer.text)).toMatchObject({ status: 400, code: 'webhook_malformed' });
        }),
        fuzzParameters(FUZZ_RUNS),
      );
    },
    timeoutFor(FUZZ_RUNS, 100),
  );

  it(
    'answers every malformed Control API request (random ids, queries, bodies, content types, keys) with a 4xx problem or a success, never a 5xx',
    async () => {
      await fc.assert(
        fc.asyncProperty(controlApiPlanArb, async (plan) => {
          const request = toRequest(plan);
          expectWellFormed(request, await send(request));
        }),
        fuzzParameters(FUZZ_RUNS * 2),
      );
    },
    timeoutFor(FUZZ_RUNS * 2, 100),
  );

  it(
    'answers any method on any route with a 4xx problem or a success, never a 5xx',
    async () => {
      const methodArb = fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'PROPFIND', 'PURGE', 'COPY', 'LOCK', 'REPORT', 'SEARCH');
      const pathArb = fc.oneof(
        fc.constantFrom('/webhook', '/v1/calls', '/v1/events?session_id=x', '/healthz', '/readyz', '/openapi.json', '/metrics', '/v1', '/'),
        pathIdArb.map((id) => `/v1/calls/${id}`),
        pathIdArb.map((id) => `/v1/calls/${id}/hangup`),
        pathIdArb.map((id) => `/v1/calls/${id}/transfer`),
        pathIdArb.map((id) => `/v1/calls/${id}/events`),
      );
      await fc.assert(
        fc.asyncProperty(methodArb, pathArb, apiAuthorizationArb, bodyArb, async (method, path, authorization, body) => {
          const request = toRequest({ method, path, authorization, contentType: 'application/json', idempotencyKey: null, lastEventId: null, body });
          if (couldPlaceACall(request.method, request.path, request.body)) return;
          expectWellFormed(request, await send(request));
        }),
        fuzzParameters(FUZZ_RUNS),
      );
    },
    timeoutFor(FUZZ_RUNS, 100),
  );

  it('is still healthy afterwards, and the one real call is listed exactly as before with the same events', async () => {
    expect((await h.api('/healthz', { key: null })).status).toBe(200);
    expect((await h.api('/readyz', { key: null })).status).toBe(200);
    const after = await snapshotRealCall(realCall.id);
    expect(after.list).toEqual(realCall.list);
    expect(after.session).toEqual(realCall.session);
    expect(after.events).toEqual(realCall.events);
    expect((after.list as { calls: { id: string }[] }).calls.map((call) => call.id)).toEqual([realCall.id]);
  });
});
