// The only reader of process.env and `.env_local` (docs/configuration.md). Returns a frozen, typed config, or
// throws ConfigurationError whose message is one line naming the variable.
import { existsSync, readFileSync } from 'node:fs';
import { parseEnv } from 'node:util';
import type { LevelWithSilent } from 'pino';
import { OBS_EVENT_NAMES, type ObsEventName } from '../machines/call.types.js';

export interface Config {
  livekit: { url: string; apiKey: string; apiSecret: string; requestTimeoutS: number };
  callerId: string;
  sipOutboundTrunkId: string | null;
  outbound: {
    /** agent dispatched to outbound calls that name none */
    defaultAgent: string | null;
    /** from-numbers a request may choose besides CALLER_ID */
    allowedFromNumbers: readonly string[];
    maxConcurrentCalls: number;
    callsPerSecond: number;
    maxQueuedCalls: number;
  };
  events: { bufferSize: number; heartbeatS: number };
  /** 0: only at start-up */
  reconcileIntervalS: number;
  http: { port: number; host: string };
  controlApiKeys: readonly string[];
  redisUrl: string | null;
  /** every Redis key starts with this (several deployments may share one Redis) */
  redisKeyPrefix: string;
  logLevel: LevelWithSilent;
  inspect: { enabled: boolean; port: number };
  calls: {
    ringTimeoutS: number;
    maxDurationS: number;
    endingGraceS: number;
    agentGraceS: number;
    agentJoinTimeoutS: number;
    maxDialAttempts: number;
    retryBaseMs: number;
    retryMaxMs: number;
  };
  retention: { finalCallsS: number; maxFinalCalls: number; maxEventsPerCall: number };
  webhook: { maxBodyBytes: number; dedupSize: number };
  statusCallbacks: StatusCallbackConfig;
  recording: RecordingConfig;
}

/** Which calls are recorded unless their request says otherwise. */
const RECORDING_MODES = Object.freeze(['off', 'inbound', 'outbound', 'all'] as const);
export type RecordingMode = (typeof RECORDING_MODES)[number];
const AUDIO_MIXINGS = Object.freeze(['mixed', 'dual_channel'] as const);
export type AudioMixing = (typeof AUDIO_MIXINGS)[number];

/** Call recording through LiveKit Egress (docs/recording.md). */
export interface RecordingConfig {
  /** RECORDING */
  mode: RecordingMode;
  /** RECORDING_FILEPATH: placeholders {session_id}, {room}, {time} */
  filepath: string;
  /** RECORDING_AUDIO_MIXING: `dual_channel` puts caller and agent on their own channels */
  audioMixing: AudioMixing;
  /** RECORDING_S3_*: null, the egress writes where LiveKit's egress service is configured to */
  s3: { bucket: string; region: string | null; endpoint: string | null; accessKey: string | null; secret: string | null } | null;
}

/** Status callbacks (docs/status-callbacks.md). */
export interface StatusCallbackConfig {
  /** STATUS_CALLBACK_URL: every call's endpoint unless its request names one; null: none */
  url: string | null;
  /** STATUS_CALLBACK_SECRET: `whsec_...` secrets, each signs every delivery (rotation) */
  secrets: readonly string[];
  /** STATUS_CALLBACK_EVENTS: null: every event */
  events: readonly ObsEventName[] | null;
  /** STATUS_CALLBACK_ALLOWED_HOSTS: host names (`*.example.com` too) a per-call URL may name */
  allowedHosts: readonly string[];
  timeoutS: number;
  /** the delays before each retry after the immediate first attempt */
  retryScheduleS: readonly number[];
  /** STATUS_CALLBACK_CONCURRENCY: calls whose deliveries are in flight at once, per process */
  concurrency: number;
  /** STATUS_CALLBACK_MAX_PENDING: the in-memory outbox's cap on deliveries waiting to be sent */
  maxPending: number;
}

export interface ConfigurationProblem {
  variable: string;
  problem: string;
}

/** One line per bad value: `configuration error: <VARIABLE> <problem>`. */
export class ConfigurationError extends Error {
  readonly problems: readonly ConfigurationProblem[];
  constructor(
    readonly variable: string,
    problem: string,
    /** further bad values found in the same pass */
    more: readonly ConfigurationProblem[] = [],
  ) {
    const problems = [{ variable, problem }, ...more];
    super(problems.map((p) => `configuration error: ${p.variable} ${p.problem}`).join('\n'));
    this.name = 'ConfigurationError';
    this.problems = problems;
  }
}

export type Env = Record<string, string | undefined>;

const LOG_LEVELS: readonly LevelWithSilent[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const E164 = /^\+[1-9]\d{6,14}$/;

/** process.env over `.env_local` (the environment wins, so a deployment can override the file). */
export function readEnvironment(env: Env = process.env, envFile = '.env_local'): Env {
  if (!existsSync(envFile)) return env;
  let fromFile: Env;
  try {
    fromFile = parseEnv(readFileSync(envFile, 'utf8'));
  } catch (err) {
    throw new ConfigurationError(envFile, `cannot be read: ${(err as Error).message}`);
  }
  return { ...fromFile, ...env };
}

function text(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === '' ? undefined : value;
}

function required(env: Env, name: string, what: string): string {
  const value = text(env, name);
  if (value === undefined) throw new ConfigurationError(name, `is required: ${what}`);
  return value;
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = text(env, name);
  if (raw === undefined) return fallback;
  if (!/^-?\d+$/.test(raw)) throw new ConfigurationError(name, `must be a whole number, got ${JSON.stringify(raw)}`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigurationError(name, `must be between ${min} and ${max}, got ${value}`);
  return value;
}

function decimal(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = text(env, name);
  if (raw === undefined) return fallback;
  if (!/^\d+(\.\d+)?$/.test(raw)) throw new ConfigurationError(name, `must be a number, got ${JSON.stringify(raw)}`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigurationError(name, `must be between ${min} and ${max}, got ${value}`);
  return value;
}

function redisKeyPrefix(env: Env): string {
  const prefix = text(env, 'REDIS_KEY_PREFIX') ?? 'cp:';
  // The call id is the hash tag of a call's keys: a brace in the prefix would take its place.
  if (!/^[A-Za-z0-9:_.-]{1,64}$/.test(prefix)) throw new ConfigurationError('REDIS_KEY_PREFIX', 'may use letters, digits and : _ . - (at most 64)');
  return prefix;
}

function flag(env: Env, name: string): boolean {
  const raw = text(env, name)?.toLowerCase();
  if (raw === undefined || ['0', 'false', 'no', 'off'].includes(raw)) return false;
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
  throw new ConfigurationError(name, `must be 1/true/yes/on or 0/false/no/off, got ${JSON.stringify(raw)}`);
}

function url(env: Env, name: string, schemes: readonly string[], what: string, isRequired: true): string;
function url(env: Env, name: string, schemes: readonly string[], what: string, isRequired: false): string | null;
function url(env: Env, name: string, schemes: readonly string[], what: string, isRequired: boolean): string | null {
  const raw = isRequired ? required(env, name, what) : text(env, name);
  if (raw === undefined) return null;
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigurationError(name, `is not a URL (${what})`);
  }
  if (!schemes.includes(parsed.protocol.replace(/:$/, ''))) {
    throw new ConfigurationError(name, `must use ${schemes.join(', ')}, got ${JSON.stringify(parsed.protocol.replace(/:$/, ''))}`);
  }
  return raw;
}

export function loadConfig(env: Env): Config {
  const livekitUrl = url(env, 'LIVEKIT_URL', ['http', 'https', 'ws', 'wss'], 'the LiveKit server URL, e.g. wss://example.livekit.cloud', true);
  const apiKey = required(env, 'LIVEKIT_API_KEY', 'the LiveKit API key');
  const apiSecret = required(env, 'LIVEKIT_API_SECRET', 'the LiveKit API secret');

  const callerId = text(env, 'CALLER_ID') ?? '+3197010206472';
  if (!E164.test(callerId)) throw new ConfigurationError('CALLER_ID', 'must be an E.164 number such as +3197010206472');

  const logLevel = (text(env, 'LOG_LEVEL') ?? 'info').toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new ConfigurationError('LOG_LEVEL', `must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(logLevel)}`);
  }

  const keys = (text(env, 'CONTROL_API_KEYS') ?? '')
    .split(',')
    .map((key) => key.trim())
    .filter((key) => key !== '');
  const shortKey = keys.find((key) => key.length < 16);
  if (shortKey !== undefined) throw new ConfigurationError('CONTROL_API_KEYS', 'has a key shorter than 16 characters');

  const retryBaseMs = integer(env, 'DIAL_RETRY_BASE_MS', 1000, 10, 600_000);

  const allowedFromNumbers = (text(env, 'OUTBOUND_FROM_NUMBERS') ?? '')
    .split(',')
    .map((number) => number.trim())
    .filter((number) => number !== '');
  const badFrom = allowedFromNumbers.find((number) => !E164.test(number));
  if (badFrom !== undefined) throw new ConfigurationError('OUTBOUND_FROM_NUMBERS', 'must list E.164 numbers such as +3197010206472, separated by commas');

  const config: Config = {
    livekit: {
      url: livekitUrl,
      apiKey,
      apiSecret,
      requestTimeoutS: integer(env, 'LIVEKIT_REQUEST_TIMEOUT_S', 10, 1, 120),
    },
    callerId,
    sipOutboundTrunkId: text(env, 'SIP_OUTBOUND_TRUNK_ID') ?? null,
    outbound: {
      defaultAgent: text(env, 'AGENT_NAME') ?? null,
      allowedFromNumbers: Object.freeze(allowedFromNumbers),
      maxConcurrentCalls: integer(env, 'MAX_CONCURRENT_CALLS', 10, 1, 100_000),
      callsPerSecond: decimal(env, 'CALLS_PER_SECOND', 5, 0.01, 10_000),
      maxQueuedCalls: integer(env, 'MAX_QUEUED_CALLS', 1000, 0, 1_000_000),
    },
    reconcileIntervalS: integer(env, 'RECONCILE_INTERVAL_S', 30, 0, 86_400),
    events: {
      bufferSize: integer(env, 'EVENT_STREAM_BUFFER', 10_000, 100, 1_000_000),
      heartbeatS: integer(env, 'SSE_HEARTBEAT_S', 15, 1, 300),
    },
    http: {
      port: integer(env, 'PORT', 8000, 0, 65535),
      host: text(env, 'HOST') ?? '0.0.0.0',
    },
    controlApiKeys: Object.freeze(keys),
    redisUrl: url(env, 'REDIS_URL', ['redis', 'rediss'], 'a Redis URL such as redis://127.0.0.1:6379', false),
    redisKeyPrefix: redisKeyPrefix(env),
    logLevel: logLevel as LevelWithSilent,
    inspect: { enabled: flag(env, 'INSPECT'), port: integer(env, 'INSPECT_PORT', 5678, 1, 65535) },
    calls: {
      ringTimeoutS: integer(env, 'RING_TIMEOUT_S', 30, 5, 600),
      maxDurationS: integer(env, 'MAX_CALL_DURATION_S', 3600, 10, 86_400),
      endingGraceS: integer(env, 'ENDING_GRACE_S', 10, 1, 300),
      agentGraceS: integer(env, 'AGENT_GRACE_S', 5, 0, 300),
      agentJoinTimeoutS: integer(env, 'AGENT_JOIN_TIMEOUT_S', 20, 0, 600),
      maxDialAttempts: integer(env, 'DIAL_MAX_ATTEMPTS', 3, 1, 10),
      retryBaseMs,
      retryMaxMs: integer(env, 'DIAL_RETRY_MAX_MS', 30_000, retryBaseMs, 3_600_000),
    },
    retention: {
      finalCallsS: integer(env, 'CALL_RETENTION_S', 86_400, 60, 30 * 86_400),
      maxFinalCalls: integer(env, 'MAX_RETAINED_CALLS', 10_000, 1, 10_000_000),
      maxEventsPerCall: integer(env, 'MAX_EVENTS_PER_CALL', 1000, 16, 100_000),
    },
    webhook: {
      maxBodyBytes: 1024 * 1024,
      dedupSize: integer(env, 'WEBHOOK_DEDUP_SIZE', 100_000, 1000, 10_000_000),
    },
    statusCallbacks: statusCallbackConfig(env),
    recording: recordingConfig(env),
  };
  return deepFreeze(config);
}

/** The default STATUS_CALLBACK_RETRY_SCHEDULE_S: about two days of retries in all. */
const DEFAULT_RETRY_SCHEDULE_S = Object.freeze([5, 30, 120, 600, 1800, 3600, 10800, 21600, 43200, 86400]);
const WHSEC = /^whsec_([A-Za-z0-9+/]+={0,2})$/;

function list(env: Env, name: string): string[] | undefined {
  const raw = text(env, name);
  if (raw === undefined) return undefined;
  return raw
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

/** Whether a `whsec_` secret decodes to 24-64 bytes (Standard Webhooks' symmetric secrets). */
function isWebhookSecret(secret: string): boolean {
  const match = WHSEC.exec(secret);
  if (!match?.[1] || match[1].length % 4 !== 0) return false;
  const bytes = Buffer.from(match[1], 'base64').length;
  return bytes >= 24 && bytes <= 64;
}

const HOST_PATTERN = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** Every STATUS_CALLBACK_* variable is checked; every bad one is a line of the error. */
function statusCallbackConfig(env: Env): StatusCallbackConfig {
  const problems: ConfigurationProblem[] = [];
  const check = <T>(read: () => T, fallback: T): T => {
    try {
      return read();
    } catch (err) {
      if (!(err instanceof ConfigurationError)) throw err;
      problems.push(...err.problems);
      return fallback;
    }
  };
  const url_ = check(() => url(env, 'STATUS_CALLBACK_URL', ['http', 'https'], 'where status callbacks go, e.g. https://api.example.com/calls/events', false), null);

  const secrets = list(env, 'STATUS_CALLBACK_SECRET') ?? [];
  secrets.forEach((secret, index) => {
    if (!isWebhookSecret(secret)) {
      problems.push({
        variable: 'STATUS_CALLBACK_SECRET',
        problem: `secret ${index + 1} of ${secrets.length} is not "whsec_" followed by the base64 of 24 to 64 random bytes`,
      });
    }
  });

  const eventNames = list(env, 'STATUS_CALLBACK_EVENTS');
  if (eventNames?.length === 0) {
    problems.push({ variable: 'STATUS_CALLBACK_EVENTS', problem: 'names no event; leave it unset to send every event' });
  }
  const unknownEvents = eventNames?.filter((name) => !(OBS_EVENT_NAMES as readonly string[]).includes(name)) ?? [];
  if (unknownEvents.length > 0) {
    problems.push({
      variable: 'STATUS_CALLBACK_EVENTS',
      problem: `names events that do not exist: ${unknownEvents.map((name) => JSON.stringify(name)).join(', ')} (the events are ${OBS_EVENT_NAMES.join(', ')})`,
    });
  }

  const allowedHosts = (list(env, 'STATUS_CALLBACK_ALLOWED_HOSTS') ?? []).map((host) => host.toLowerCase());
  const badHosts = allowedHosts.filter((host) => !HOST_PATTERN.test(host));
  if (badHosts.length > 0) {
    problems.push({
      variable: 'STATUS_CALLBACK_ALLOWED_HOSTS',
      problem: `must list host names such as api.example.com or *.example.com, got ${badHosts.map((host) => JSON.stringify(host)).join(', ')}`,
    });
  }

  const timeoutS = check(() => decimal(env, 'STATUS_CALLBACK_TIMEOUT_S', 10, 0.1, 120), 10);

  let retryScheduleS: readonly number[] = DEFAULT_RETRY_SCHEDULE_S;
  const schedule = text(env, 'STATUS_CALLBACK_RETRY_SCHEDULE_S');
  if (schedule !== undefined) {
    const items = schedule.split(',').map((item) => item.trim());
    if (items.some((item) => !/^\d+(\.\d+)?$/.test(item)) || items.map(Number).some((delay) => delay > 7 * 86_400)) {
      problems.push({
        variable: 'STATUS_CALLBACK_RETRY_SCHEDULE_S',
        problem: `must be a comma-separated list of delays in seconds (non-negative numbers up to 604800), got ${JSON.stringify(schedule)}`,
      });
    } else {
      retryScheduleS = items.map(Number);
    }
  }

  const concurrency = check(() => integer(env, 'STATUS_CALLBACK_CONCURRENCY', 32, 1, 10_000), 32);
  const maxPending = check(() => integer(env, 'STATUS_CALLBACK_MAX_PENDING', 100_000, 100, 100_000_000), 100_000);

  if (secrets.length === 0 && (url_ !== null || allowedHosts.length > 0)) {
    problems.push({
      variable: 'STATUS_CALLBACK_SECRET',
      problem: `is required once ${url_ !== null ? 'STATUS_CALLBACK_URL' : 'STATUS_CALLBACK_ALLOWED_HOSTS'} is set: every delivery is signed ("whsec_" followed by the base64 of 24 to 64 random bytes)`,
    });
  }
  const [first, ...more] = problems;
  if (first) throw new ConfigurationError(first.variable, first.problem, more);
  return {
    url: url_,
    secrets: Object.freeze(secrets),
    events: eventNames === undefined ? null : Object.freeze(eventNames as ObsEventName[]),
    allowedHosts: Object.freeze(allowedHosts),
    timeoutS,
    retryScheduleS,
    concurrency,
    maxPending,
  };
}

const DEFAULT_RECORDING_FILEPATH = 'recordings/{session_id}.ogg';
const FILEPATH_PLACEHOLDERS = ['{session_id}', '{room}', '{time}'];

/** Every RECORDING_* variable is checked; every bad one is a line of the error. */
function recordingConfig(env: Env): RecordingConfig {
  const problems: ConfigurationProblem[] = [];
  const choice = <T extends string>(name: string, choices: readonly T[], fallback: T): T => {
    const raw = text(env, name)?.toLowerCase() ?? fallback;
    if ((choices as readonly string[]).includes(raw)) return raw as T;
    problems.push({ variable: name, problem: `must be one of ${choices.join(', ')}, got ${JSON.stringify(raw)}` });
    return fallback;
  };
  const mode = choice('RECORDING', RECORDING_MODES, 'off');
  const audioMixing = choice('RECORDING_AUDIO_MIXING', AUDIO_MIXINGS, 'mixed');

  const filepath = text(env, 'RECORDING_FILEPATH') ?? DEFAULT_RECORDING_FILEPATH;
  const unknownPlaceholder = (filepath.match(/\{[^}]*\}/g) ?? []).find((p) => !FILEPATH_PLACEHOLDERS.includes(p));
  if (unknownPlaceholder !== undefined) {
    problems.push({ variable: 'RECORDING_FILEPATH', problem: `has an unknown placeholder ${unknownPlaceholder} (the placeholders are ${FILEPATH_PLACEHOLDERS.join(', ')})` });
  } else if (filepath.endsWith('/') || filepath.split('/').includes('..') || [...filepath].some((c) => c < ' ' || c === '\x7f')) {
    problems.push({ variable: 'RECORDING_FILEPATH', problem: 'must name a file (no trailing /, no .., no control characters)' });
  }

  const bucket = text(env, 'RECORDING_S3_BUCKET') ?? null;
  const region = text(env, 'RECORDING_S3_REGION') ?? null;
  let endpoint: string | null = null;
  try {
    endpoint = url(env, 'RECORDING_S3_ENDPOINT', ['http', 'https'], 'an S3-compatible endpoint such as https://s3.eu-west-1.amazonaws.com', false);
  } catch (err) {
    if (!(err instanceof ConfigurationError)) throw err;
    problems.push(...err.problems);
  }
  const accessKey = text(env, 'RECORDING_S3_ACCESS_KEY') ?? null;
  const secret = text(env, 'RECORDING_S3_SECRET') ?? null;
  if (bucket === null) {
    const stray = ['RECORDING_S3_REGION', 'RECORDING_S3_ENDPOINT', 'RECORDING_S3_ACCESS_KEY', 'RECORDING_S3_SECRET'].filter((name) => text(env, name) !== undefined);
    if (stray.length > 0) problems.push({ variable: stray[0] as string, problem: `is set without RECORDING_S3_BUCKET (${stray.join(', ')} only apply to a bucket)` });
  } else if ((accessKey === null) !== (secret === null)) {
    problems.push({ variable: accessKey === null ? 'RECORDING_S3_ACCESS_KEY' : 'RECORDING_S3_SECRET', problem: 'is required with the other: give both the access key and its secret, or neither (the egress service\'s own credentials)' });
  }
  const [first, ...more] = problems;
  if (first) throw new ConfigurationError(first.variable, first.problem, more);
  return { mode, filepath, audioMixing, s3: bucket === null ? null : { bucket, region, endpoint, accessKey, secret } };
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const item of Object.values(value)) deepFreeze(item);
    Object.freeze(value);
  }
  return value;
}

/** The config as it may be logged: secrets and keys never appear. */
export function describeConfig(config: Config): Record<string, unknown> {
  return {
    livekit_url: config.livekit.url,
    livekit_api_key: config.livekit.apiKey,
    caller_id: config.callerId,
    sip_outbound_trunk_id: config.sipOutboundTrunkId,
    outbound: config.outbound,
    port: config.http.port,
    host: config.http.host,
    control_api_keys: config.controlApiKeys.length,
    store: config.redisUrl ? 'redis' : 'memory',
    inspect: config.inspect.enabled,
    calls: config.calls,
    status_callbacks: {
      url: config.statusCallbacks.url === null ? null : safeUrl(config.statusCallbacks.url),
      secrets: config.statusCallbacks.secrets.length,
      events: config.statusCallbacks.events ?? 'all',
      allowed_hosts: config.statusCallbacks.allowedHosts,
      timeout_s: config.statusCallbacks.timeoutS,
      retry_schedule_s: config.statusCallbacks.retryScheduleS,
    },
    recording: {
      mode: config.recording.mode,
      filepath: config.recording.filepath,
      audio_mixing: config.recording.audioMixing,
      // Never the access key or its secret.
      s3: config.recording.s3 && {
        bucket: config.recording.s3.bucket,
        region: config.recording.s3.region,
        endpoint: config.recording.s3.endpoint === null ? null : safeUrl(config.recording.s3.endpoint),
        credentials: config.recording.s3.accessKey !== null,
      },
    },
  };
}

/** A URL as it may be logged: no credentials, no query string, no fragment. */
export function safeUrl(raw: string): string {
  try {
    const parsed = new URL(raw);
    return `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
  } catch {
    return '(invalid URL)';
  }
}
