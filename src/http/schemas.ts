// Request and response schemas of the Control API (docs/api.md). The routes validate with them and
// /openapi.json is generated from them, so the documentation cannot drift from the code.
import { z } from 'zod';
import { CALL_STATES, DIRECTIONS, END_REASONS, ERROR_CATEGORIES, OBS_EVENT_NAMES, RECORDING_STATUSES } from '../../machines/call.types.js';
import { INGEST_OUTCOMES } from '../inbound/webhook-ingest.js';
import { DELIVERY_STATUSES } from '../store/outbox.port.js';

const MAX_METADATA_BYTES = 4096;
const MAX_SIP_HEADERS = 16;

/** X-headers for LiveKit to add to a SIP request: names `X-…`, values printable ASCII. */
const SipHeadersBody = z
  .record(
    z.string().regex(/^X-[A-Za-z0-9-]{1,64}$/, 'a header name is X- and 1 to 64 letters, digits or dashes'),
    z.string().max(256).regex(/^[\x20-\x7e]*$/, 'a header value is printable ASCII'),
  )
  .refine((headers) => Object.keys(headers).length <= MAX_SIP_HEADERS, `at most ${MAX_SIP_HEADERS} headers`)
  .refine(
    (headers) => new Set(Object.keys(headers).map((name) => name.toLowerCase())).size === Object.keys(headers).length,
    'header names are case-insensitive: each may be given once',
  )
  .meta({ maxProperties: MAX_SIP_HEADERS });

export const CreateCallBody = z
  .strictObject({
    to: z.string().min(1).max(64).describe('the number to call, international format (E.164), e.g. +31612345678'),
    from: z.string().min(1).max(64).optional().describe('from-number; CALLER_ID unless given, and only numbers in OUTBOUND_FROM_NUMBERS'),
    agent: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/)
      .optional()
      .describe('the LiveKit agent to dispatch into the call (AGENT_NAME unless given)'),
    metadata: z
      .record(z.string(), z.unknown())
      .refine((value) => Buffer.byteLength(JSON.stringify(value)) <= MAX_METADATA_BYTES, `metadata may be at most ${MAX_METADATA_BYTES} bytes of JSON`)
      .optional()
      .describe('your own data, kept with the session'),
    ring_timeout_s: z.int().min(5).max(600).optional().describe("how long the phone may ring (LiveKit's ringingTimeout)"),
    max_duration_s: z.int().min(10).max(86_400).optional().describe("longest call once answered (LiveKit's maxCallDuration)"),
    status_callback_url: z
      .string()
      .min(1)
      .max(2048)
      .optional()
      .describe("where this call's status callbacks go instead of STATUS_CALLBACK_URL: http or https, a host in STATUS_CALLBACK_ALLOWED_HOSTS"),
    status_callback_events: z
      .array(z.enum(OBS_EVENT_NAMES))
      .max(OBS_EVENT_NAMES.length)
      .optional()
      .describe('the events sent to it instead of STATUS_CALLBACK_EVENTS ([]: none)'),
    sip_headers: SipHeadersBody.optional().describe("X-headers added to the INVITE (LiveKit's headers), at most 16"),
    dtmf: z
      .string()
      .regex(/^[0-9*#w]{1,32}$/, 'dtmf is 1 to 32 of 0-9, *, # and w (a 0.5 s pause)')
      .optional()
      .describe('digits sent once the call is answered, `w` a 0.5 s pause (LiveKit\'s dtmf); never shown or logged'),
    display_name: z
      .string()
      .max(64)
      // A line break would end the From header: refused here, not by the carrier mid-dial.
      .refine((name) => ![...name].some((c) => c < ' ' || c === '\x7f'), 'display_name may not contain control characters')
      .optional()
      .describe("the caller name in the From header (LiveKit's displayName); '' sends none"),
    record: z.boolean().optional().describe('record the call once it is connected (RECORDING decides unless given)'),
  })
  .describe('Place an outbound call');

export const TransferBody = z
  .strictObject({
    to: z.string().min(1).max(256).describe('an E.164 number (+31201234567, tel:+31201234567) or a sip:/sips: URI'),
    sip_headers: SipHeadersBody.optional().describe('X-headers added to the REFER, at most 16'),
    ring_timeout_s: z.int().min(5).max(600).optional().describe("how long the target may ring (LiveKit's ringingTimeout; 30 unless given)"),
    play_dialtone: z.boolean().optional().describe('play a dial tone to the caller while the target rings (default false)'),
  })
  .describe('Transfer a connected call (SIP REFER)');

export const EmptyBody = z.strictObject({}).describe('No fields');

const isoTime = z.iso.datetime();

const ErrorSchema = z.strictObject({
  category: z.enum(ERROR_CATEGORIES),
  retryable: z.boolean(),
  message: z.string(),
  user_message: z.string(),
  sip_status_code: z.int().nullable(),
});

const RecordingSchema = z
  .strictObject({
    egress_id: z.string().nullable().describe("LiveKit's egress id; null until LiveKit accepted the start"),
    status: z.enum(RECORDING_STATUSES),
    started_at: isoTime.nullable().describe('when the file started recording'),
    ended_at: isoTime.nullable(),
    duration_s: z.number().min(0).nullable().describe('length of the file'),
    size_bytes: z.int().min(0).nullable(),
    location: z.string().nullable().describe('where the file went (its storage URL or path)'),
    error: ErrorSchema.nullable().describe('why the recording failed'),
  })
  .describe('The recording of a call (LiveKit Egress, audio only)');

export const SessionSchema = z
  .strictObject({
    id: z.string(),
    direction: z.enum(DIRECTIONS),
    state: z.enum(CALL_STATES),
    end_reason: z.enum(END_REASONS).nullable(),
    caller_number: z.string().nullable(),
    callee_number: z.string().nullable(),
    livekit_room: z.string(),
    sip_participant_identity: z.string().nullable(),
    sip_call_id: z.string().nullable(),
    agent: z.string().nullable(),
    attempt: z.int().min(0),
    created_at: isoTime,
    ringing_at: isoTime.nullable(),
    answered_at: isoTime.nullable(),
    ended_at: isoTime.nullable(),
    duration_s: z.int().min(0).nullable(),
    error: ErrorSchema.nullable(),
    metadata: z.record(z.string(), z.unknown()).nullable(),
    sip_headers: z
      .record(z.string(), z.string())
      .nullable()
      .describe("outbound: the headers sent with the INVITE; inbound: the caller's SIP headers LiveKit reports (`sip.h.*`), by lower-case name"),
    display_name: z.string().nullable().describe('outbound: the display name sent; inbound: null'),
    recording: RecordingSchema.nullable().describe('null: the call is not recorded (or not connected yet)'),
  })
  .describe('A call session');

export const SessionListSchema = z.strictObject({ calls: z.array(SessionSchema), next_cursor: z.string().nullable() });

export const EnvelopeSchema = z
  .strictObject({
    event: z.enum(OBS_EVENT_NAMES),
    event_id: z.string(),
    ts: isoTime,
    session_id: z.string(),
    seq: z.int().min(1),
    direction: z.enum(DIRECTIONS),
    state: z.enum(CALL_STATES),
    livekit_room: z.string(),
    data: z.record(z.string(), z.unknown()),
  })
  .describe('An OBS-00 event');

export const EventListSchema = z.strictObject({ events: z.array(EnvelopeSchema) });

export const ProblemSchema = z
  .looseObject({
    type: z.string(),
    title: z.string(),
    status: z.int(),
    code: z.string(),
    detail: z.string().optional(),
    instance: z.string().optional(),
  })
  .describe('RFC 9457 problem details');

export const WebhookResultSchema = z.strictObject({
  status: z.enum(INGEST_OUTCOMES),
  session_id: z.string().nullable(),
});

export const DeliverySchema = z
  .strictObject({
    event_id: z.string().describe('the `webhook-id` of every attempt'),
    event: z.enum(OBS_EVENT_NAMES),
    seq: z.int().min(1),
    url: z.string().describe('the endpoint, without credentials or query string'),
    status: z.enum(DELIVERY_STATUSES),
    attempts: z.int().min(0).describe('attempts of the current series (a redelivery starts a new one)'),
    last_status_code: z.int().nullable(),
    last_error: z.string().nullable(),
    next_attempt_at: isoTime.nullable(),
    delivered_at: isoTime.nullable(),
  })
  .describe("A status callback: one event of a call, to the call's endpoint");

export const DeliveryListSchema = z.strictObject({ deliveries: z.array(DeliverySchema) });

export const StatusCallbackSchema = z
  .strictObject({
    type: z.enum(OBS_EVENT_NAMES).describe('the event name'),
    timestamp: isoTime.describe("the event's `ts`"),
    data: z.strictObject({
      event: EnvelopeSchema,
      call: SessionSchema.describe('the session as `GET /v1/calls/{id}` returned it once the event was stored'),
    }),
  })
  .describe('The body of a status callback (Standard Webhooks)');

export const StatusSchema = z.strictObject({ status: z.enum(['ok', 'ready']) });
