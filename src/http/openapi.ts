// GET /openapi.json: an OpenAPI 3.1 document of every route, generated from the same zod
// schemas the routes validate with.
import { z } from 'zod';
import {
  CreateCallBody,
  EmptyBody,
  EnvelopeSchema,
  EventListSchema,
  ProblemSchema,
  SessionListSchema,
  SessionSchema,
  StatusSchema,
  TransferBody,
  WebhookResultSchema,
} from './schemas.js';

type Json = Record<string, unknown>;

/** JSON Schema 2020-12 (OpenAPI 3.1's dialect) of a zod schema, without the `$schema` key. */
function schema(type: z.ZodType, io: 'input' | 'output' = 'output'): Json {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(type, { io, unrepresentable: 'any' }) as Json;
  return rest;
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (s: Json) => ({ 'application/json': { schema: s } });

function problems(...statuses: number[]): Record<string, Json> {
  const descriptions: Record<number, string> = {
    400: 'Malformed request',
    401: 'Missing or invalid key',
    404: 'No such call',
    409: 'The call cannot take this command in its state, or the first request with this Idempotency-Key is in flight',
    413: 'Body too large',
    415: 'Wrong content type',
    422: 'Valid JSON that breaks the schema, an invalid number, or an Idempotency-Key reused with another body',
    429: 'Too many queued calls',
    503: 'Not available now (store unreachable, outbound not configured)',
  };
  return Object.fromEntries(
    statuses.map((status) => [String(status), { description: descriptions[status] ?? 'Error', content: { 'application/problem+json': { schema: ref('Problem') } } }]),
  );
}

const idParameter = { name: 'id', in: 'path', required: true, schema: { type: 'string' }, description: 'the session id' };

export function openApiDocument(): Json {
  return {
    openapi: '3.1.0',
    info: {
      title: 'Control Plane',
      version: '1.0.0',
      description:
        'Runs phone calls for voice-AI agents on LiveKit SIP. Every call is a state machine; every outcome is classified; every transition emits an OBS-00 event.',
    },
    security: [{ bearer: [] }],
    paths: {
      '/v1/calls': {
        get: {
          operationId: 'listCalls',
          summary: 'List calls, newest first',
          parameters: [
            { name: 'state', in: 'query', schema: schema(SessionSchema.shape.state) },
            { name: 'direction', in: 'query', schema: schema(SessionSchema.shape.direction) },
            { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 200, default: 50 } },
            { name: 'cursor', in: 'query', schema: { type: 'string' }, description: '`next_cursor` of the previous page' },
          ],
          responses: { '200': { description: 'A page of calls', content: json(ref('SessionList')) }, ...problems(400, 401) },
        },
        post: {
          operationId: 'placeCall',
          summary: 'Place an outbound call',
          parameters: [
            {
              name: 'Idempotency-Key',
              in: 'header',
              schema: { type: 'string', minLength: 1, maxLength: 255 },
              description: 'the same key and body within 24 h replay the first response and never dial twice',
            },
          ],
          requestBody: { required: true, content: json(ref('CreateCall')) },
          responses: {
            '201': {
              description: 'The call was created and waits for a dial slot (`queued`)',
              headers: {
                Location: { schema: { type: 'string' } },
                'Idempotent-Replayed': { schema: { type: 'string', enum: ['true'] }, description: 'present on a replayed response' },
              },
              content: json(ref('Session')),
            },
            ...problems(400, 401, 409, 413, 415, 422, 429, 503),
          },
        },
      },
      '/v1/calls/{id}': {
        get: {
          operationId: 'getCall',
          summary: 'One call',
          parameters: [idParameter],
          responses: { '200': { description: 'The call', content: json(ref('Session')) }, ...problems(401, 404) },
        },
      },
      '/v1/calls/{id}/hangup': {
        post: {
          operationId: 'hangUpCall',
          summary: 'Hang up a call in progress',
          parameters: [idParameter],
          requestBody: { required: false, content: json(ref('Empty')) },
          responses: { '202': { description: 'Hang-up requested', content: json(ref('Session')) }, ...problems(400, 401, 404, 409, 413, 415, 422) },
        },
      },
      '/v1/calls/{id}/transfer': {
        post: {
          operationId: 'transferCall',
          summary: 'Transfer a connected call (SIP REFER)',
          parameters: [idParameter],
          requestBody: { required: true, content: json(ref('Transfer')) },
          responses: { '202': { description: 'Transfer requested', content: json(ref('Session')) }, ...problems(400, 401, 404, 409, 413, 415, 422) },
        },
      },
      '/v1/calls/{id}/events': {
        get: {
          operationId: 'listCallEvents',
          summary: "A call's OBS-00 events in seq order",
          parameters: [idParameter],
          responses: { '200': { description: 'The events', content: json(ref('EventList')) }, ...problems(401, 404) },
        },
      },
      '/v1/events': {
        get: {
          operationId: 'streamEvents',
          summary: 'OBS-00 events as Server-Sent Events',
          description:
            'Each event has `id:` (resume position), `event:` (the event name) and `data:` (the envelope). Reconnect with `Last-Event-ID` to resume; `event: stream.truncated` says events were missed.',
          parameters: [
            { name: 'session_id', in: 'query', schema: { type: 'string' }, description: 'only the events of this call' },
            { name: 'Last-Event-ID', in: 'header', schema: { type: 'string', pattern: '^\\d+$' } },
            { name: 'last_event_id', in: 'query', schema: { type: 'string', pattern: '^\\d+$' }, description: 'for clients that cannot set headers' },
          ],
          responses: {
            '200': { description: 'The stream', content: { 'text/event-stream': { schema: { type: 'string' }, itemSchema: ref('Envelope') } } },
            ...problems(400, 401),
          },
        },
      },
      '/webhook': {
        post: {
          operationId: 'receiveLiveKitWebhook',
          summary: 'LiveKit webhooks',
          description: 'Signed by LiveKit: `Authorization` is an HS256 JWT (no `Bearer`) whose `sha256` claim is the base64 SHA-256 of the body.',
          security: [{ livekitWebhook: [] }],
          requestBody: {
            required: true,
            content: {
              'application/webhook+json': { schema: { type: 'object', description: 'LiveKit WebhookEvent (protobuf JSON)' } },
              'application/json': { schema: { type: 'object' } },
            },
          },
          responses: {
            '200': {
              description: 'Applied, a duplicate, or not about a call',
              content: json(ref('WebhookResult')),
            },
            ...problems(400, 401, 413, 415, 503),
          },
        },
      },
      '/healthz': {
        get: { operationId: 'health', security: [], summary: 'Liveness', responses: { '200': { description: 'Alive', content: json(ref('Status')) } } },
      },
      '/readyz': {
        get: {
          operationId: 'ready',
          security: [],
          summary: 'Readiness: the store is reachable',
          responses: { '200': { description: 'Ready', content: json(ref('Status')) }, ...problems(503) },
        },
      },
      '/metrics': {
        get: {
          operationId: 'metrics',
          security: [],
          summary: 'Prometheus metrics (counts only, no call data)',
          responses: { '200': { description: 'Prometheus text exposition', content: { 'text/plain': { schema: { type: 'string' } } } } },
        },
      },
      '/openapi.json': {
        get: {
          operationId: 'openapi',
          security: [],
          summary: 'This document',
          responses: { '200': { description: 'OpenAPI 3.1', content: json({ type: 'object' }) } },
        },
      },
    },
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'a key from CONTROL_API_KEYS' },
        livekitWebhook: { type: 'apiKey', in: 'header', name: 'Authorization', description: 'LiveKit webhook signature' },
      },
      schemas: {
        Session: schema(SessionSchema),
        SessionList: schema(SessionListSchema),
        Envelope: schema(EnvelopeSchema),
        EventList: schema(EventListSchema),
        CreateCall: schema(CreateCallBody, 'input'),
        Transfer: schema(TransferBody, 'input'),
        Empty: schema(EmptyBody, 'input'),
        Problem: schema(ProblemSchema),
        WebhookResult: schema(WebhookResultSchema),
        Status: schema(StatusSchema),
      },
    },
  };
}
