// GET /openapi.json: an OpenAPI 3.1 document of every route, generated from the same zod
// schemas the routes validate with.
import { z } from 'zod';
import { RECONNECT_DELAY_MS } from './events.routes.js';
import {
  CreateCallBody,
  DeliveryListSchema,
  DeliverySchema,
  EmptyBody,
  EnvelopeSchema,
  EventListSchema,
  ProblemSchema,
  SessionListSchema,
  SessionSchema,
  StatusCallbackSchema,
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

const componentUri = (name: string) => `#/components/schemas/${name}`;
const ref = (name: string) => ({ $ref: componentUri(name) });

/**
 * `components.schemas`: each named zod schema once, and one inside another as a `$ref` to its
 * name (EventList's items are the Envelope, SessionList's calls are Sessions), so a client sees
 * that the envelope of `GET /v1/calls/{id}/events` is the one the event stream sends.
 */
function componentSchemas(named: Record<string, { type: z.ZodType; io: 'input' | 'output' }>): Record<string, Json> {
  const converted: Record<string, Json> = {};
  for (const io of ['output', 'input'] as const) {
    const registry = z.registry<{ id: string }>();
    for (const [name, entry] of Object.entries(named)) if (entry.io === io) registry.add(entry.type, { id: name });
    const { schemas } = z.toJSONSchema(registry, { io, unrepresentable: 'any', uri: componentUri });
    // `$id` would be the `#/components/...` pointer itself, which is not an id: a `$ref` finds the
    // schema by its place in the document.
    for (const [name, json] of Object.entries(schemas)) {
      const { $schema: _dialect, $id: _id, ...rest } = json as Json;
      converted[name] = rest;
    }
  }
  return Object.fromEntries(Object.keys(named).map((name) => [name, converted[name] as Json]));
}

const json = (s: Json) => ({ 'application/json': { schema: s } });

function problems(...statuses: number[]): Record<string, Json> {
  const descriptions: Record<number, string> = {
    400: 'Malformed request',
    401: 'Missing or invalid key',
    404: 'No such call (or, for a redelivery, no status callback of that event)',
    409: 'The call cannot take this command in its state, or the first request with this Idempotency-Key is in flight',
    413: 'Body too large',
    415: 'Wrong content type',
    422: 'Valid JSON that breaks the schema, an invalid number, a status_callback_url that is not allowed, or an Idempotency-Key reused with another body',
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
    // The service does not know the address its clients reach it by (a proxy, a load balancer or a
    // port mapping may stand in between), so it names no host: `/` is relative, resolved against
    // where this document was fetched from, i.e. the service itself. Leaving `servers` out would
    // mean the same, but a list with one relative entry says it explicitly (and lint tools ask for one).
    servers: [{ url: '/', description: 'The service that serves this document' }],
    security: [{ bearer: [] }],
    paths: {
      '/v1/calls': {
        get: {
          operationId: 'listCalls',
          summary: 'List calls, newest first',
          parameters: [
            { name: 'state', in: 'query', schema: schema(SessionSchema.shape.state) },
            { name: 'direction', in: 'query', schema: schema(SessionSchema.shape.direction) },
            {
              name: 'room',
              in: 'query',
              schema: { type: 'string', minLength: 1, maxLength: 256 },
              description: "only the calls in this LiveKit room (an agent finds its call's session by its room)",
            },
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
      '/v1/calls/{id}/deliveries': {
        get: {
          operationId: 'listCallDeliveries',
          summary: "A call's status callbacks in seq order",
          parameters: [idParameter],
          responses: { '200': { description: 'The delivery log', content: json(ref('DeliveryList')) }, ...problems(401, 404) },
        },
      },
      '/v1/calls/{id}/deliveries/{event_id}/redeliver': {
        post: {
          operationId: 'redeliverStatusCallback',
          summary: 'Send one status callback again (a new series of attempts, the same `webhook-id`)',
          parameters: [idParameter, { name: 'event_id', in: 'path', required: true, schema: { type: 'string' }, description: "the event's `event_id`" }],
          requestBody: { required: false, content: json(ref('Empty')) },
          responses: { '202': { description: 'Redelivery scheduled', content: json(ref('Delivery')) }, ...problems(400, 401, 404, 413, 415, 422) },
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
            '200': {
              description: 'The stream',
              content: {
                // OpenAPI 3.1 has no schema for the single events of a stream (3.2's `itemSchema`):
                // the body is a string, and its description says what each event carries.
                'text/event-stream': {
                  schema: {
                    type: 'string',
                    description:
                      'Server-Sent Events (UTF-8), written until the client disconnects or the service ends the stream (on shutdown, or when the client does not keep up). ' +
                      `It opens with \`retry: ${RECONNECT_DELAY_MS}\` (the reconnect delay in ms). ` +
                      'Each OBS-00 event is `id:` (the resume position), `event:` (the event name) and one `data:` line, the event as JSON: an `Envelope` (see `#/components/schemas/Envelope`). ' +
                      'A `stream.truncated` event (no `id:`) has `data:` `{"oldest_id": <position>}`: events before that position were missed; re-read `GET /v1/calls/{id}/events`. ' +
                      '`: ping` comment lines keep an idle connection open.',
                  },
                },
              },
            },
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
    // What the service sends: one POST per event to the call's status callback endpoint.
    webhooks: {
      statusCallback: {
        post: {
          operationId: 'statusCallback',
          summary: "An OBS-00 event of a call, posted to the call's status callback endpoint",
          description:
            'Signed as Standard Webhooks v1: `webhook-id` (the event_id, the same on every attempt: de-duplicate on it), `webhook-timestamp` (Unix seconds of the attempt), ' +
            '`webhook-signature` (`v1,<base64 HMAC-SHA256>` per secret, space-separated). Per call, events arrive in seq order, one at a time. ' +
            'Answer 2xx once stored; 410 stops the call\'s later deliveries to this endpoint; anything else is retried on the schedule.',
          security: [],
          parameters: [
            { name: 'webhook-id', in: 'header', required: true, schema: { type: 'string' } },
            { name: 'webhook-timestamp', in: 'header', required: true, schema: { type: 'string', pattern: '^\\d+$' } },
            { name: 'webhook-signature', in: 'header', required: true, schema: { type: 'string' } },
          ],
          requestBody: { required: true, content: json(ref('StatusCallback')) },
          responses: {
            '200': { description: 'Delivered (any 2xx)' },
            '410': { description: "Gone: cancel this call's later deliveries to this endpoint" },
          },
        },
      },
    },
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'a key from CONTROL_API_KEYS' },
        livekitWebhook: { type: 'apiKey', in: 'header', name: 'Authorization', description: 'LiveKit webhook signature' },
      },
      schemas: componentSchemas({
        Session: { type: SessionSchema, io: 'output' },
        SessionList: { type: SessionListSchema, io: 'output' },
        Envelope: { type: EnvelopeSchema, io: 'output' },
        EventList: { type: EventListSchema, io: 'output' },
        CreateCall: { type: CreateCallBody, io: 'input' },
        Transfer: { type: TransferBody, io: 'input' },
        Empty: { type: EmptyBody, io: 'input' },
        Problem: { type: ProblemSchema, io: 'output' },
        WebhookResult: { type: WebhookResultSchema, io: 'output' },
        Status: { type: StatusSchema, io: 'output' },
        Delivery: { type: DeliverySchema, io: 'output' },
        DeliveryList: { type: DeliveryListSchema, io: 'output' },
        StatusCallback: { type: StatusCallbackSchema, io: 'output' },
      }),
    },
  };
}
