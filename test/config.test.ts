import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigurationError, describeConfig, loadConfig, readEnvironment, type Env } from '../src/config.js';

const SECRET = 'sUp3r-s3cret-livekit-value-9f8e7d';
const CONTROL_KEY_A = 'control-key-aaaaaaaaaaaaaaaa';
const CONTROL_KEY_B = 'control-key-bbbbbbbbbbbbbbbb';

const BASE: Env = {
  LIVEKIT_URL: 'wss://example.livekit.cloud',
  LIVEKIT_API_KEY: 'APIabc123',
  LIVEKIT_API_SECRET: SECRET,
};

function env(overrides: Env = {}): Env {
  return { ...BASE, ...overrides };
}

/** The ConfigurationError loadConfig throws for this environment (fails the test if it does not throw one). */
function configError(overrides: Env): ConfigurationError {
  try {
    loadConfig(env(overrides));
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigurationError);
    return err as ConfigurationError;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(overrides)}`);
}

function expectOneLineNaming(err: ConfigurationError, variable: string): void {
  expect(err.variable).toBe(variable);
  expect(err.message).toContain(variable);
  expect(err.message.split(/\r?\n/)).toHaveLength(1);
  expect(err.message).not.toContain(SECRET);
}

describe('loadConfig', () => {
  describe('required LiveKit variables', () => {
    for (const variable of ['LIVEKIT_URL', 'LIVEKIT_API_KEY', 'LIVEKIT_API_SECRET']) {
      it(`throws a one-line ConfigurationError naming ${variable} when it is missing`, () => {
        expectOneLineNaming(configError({ [variable]: undefined }), variable);
      });

      it(`treats a blank ${variable} as missing`, () => {
        expectOneLineNaming(configError({ [variable]: '   ' }), variable);
      });
    }

    it('accepts a minimal environment with only the three LiveKit variables', () => {
      const config = loadConfig(env());
      expect(config.livekit).toMatchObject({
        url: 'wss://example.livekit.cloud',
        apiKey: 'APIabc123',
        apiSecret: SECRET,
      });
    });

    for (const scheme of ['http', 'https', 'ws', 'wss']) {
      it(`accepts a LIVEKIT_URL with the ${scheme} scheme`, () => {
        expect(loadConfig(env({ LIVEKIT_URL: `${scheme}://lk.example.com:7880` })).livekit.url).toBe(`${scheme}://lk.example.com:7880`);
      });
    }
  });

  describe('defaults', () => {
    it('defaults CALLER_ID to +3197010206472', () => {
      expect(loadConfig(env()).callerId).toBe('+3197010206472');
    });

    it('defaults PORT to 8000 and HOST to 0.0.0.0', () => {
      expect(loadConfig(env()).http).toEqual({ port: 8000, host: '0.0.0.0' });
    });

    it('defaults LOG_LEVEL to info', () => {
      expect(loadConfig(env()).logLevel).toBe('info');
    });

    it('uses the in-memory store (redisUrl null) when REDIS_URL is unset', () => {
      expect(loadConfig(env()).redisUrl).toBeNull();
    });

    it('has no Control API keys, no outbound trunk and the inspector off when those variables are unset', () => {
      const config = loadConfig(env());
      expect(config.controlApiKeys).toEqual([]);
      expect(config.sipOutboundTrunkId).toBeNull();
      expect(config.inspect).toEqual({ enabled: false, port: 5678 });
    });

    it('fills in the call limits and timeouts with their documented defaults', () => {
      expect(loadConfig(env()).calls).toEqual({
        ringTimeoutS: 30,
        maxDurationS: 3600,
        endingGraceS: 10,
        agentGraceS: 5,
        agentJoinTimeoutS: 20,
        maxDialAttempts: 3,
        retryBaseMs: 1000,
        retryMaxMs: 30_000,
      });
    });
  });

  describe('valid overrides', () => {
    it('reads PORT, HOST, CALLER_ID, SIP_OUTBOUND_TRUNK_ID, REDIS_URL and LOG_LEVEL', () => {
      const config = loadConfig(
        env({
          PORT: ' 9090 ',
          HOST: '127.0.0.1',
          CALLER_ID: '+31201234567',
          SIP_OUTBOUND_TRUNK_ID: 'ST_abc123',
          REDIS_URL: 'rediss://cache.example.com:6380',
          LOG_LEVEL: 'DEBUG',
        }),
      );
      expect(config.http).toEqual({ port: 9090, host: '127.0.0.1' });
      expect(config.callerId).toBe('+31201234567');
      expect(config.sipOutboundTrunkId).toBe('ST_abc123');
      expect(config.redisUrl).toBe('rediss://cache.example.com:6380');
      expect(config.logLevel).toBe('debug');
    });

    for (const [raw, expected] of [
      ['1', true],
      ['true', true],
      ['YES', true],
      ['on', true],
      ['0', false],
      ['false', false],
      ['No', false],
      ['off', false],
      ['', false],
    ] as const) {
      it(`reads INSPECT=${JSON.stringify(raw)} as ${expected}`, () => {
        expect(loadConfig(env({ INSPECT: raw })).inspect.enabled).toBe(expected);
      });
    }

    it('reads numeric limits such as RING_TIMEOUT_S and DIAL_MAX_ATTEMPTS', () => {
      const config = loadConfig(env({ RING_TIMEOUT_S: '45', DIAL_MAX_ATTEMPTS: '5', MAX_CALL_DURATION_S: '600' }));
      expect(config.calls.ringTimeoutS).toBe(45);
      expect(config.calls.maxDialAttempts).toBe(5);
      expect(config.calls.maxDurationS).toBe(600);
    });

    it('splits CONTROL_API_KEYS on commas, trims spaces and drops empty entries', () => {
      const config = loadConfig(env({ CONTROL_API_KEYS: ` ${CONTROL_KEY_A} , ,${CONTROL_KEY_B},  ,` }));
      expect(config.controlApiKeys).toEqual([CONTROL_KEY_A, CONTROL_KEY_B]);
    });
  });

  describe('invalid values', () => {
    const cases: Array<[variable: string, value: string]> = [
      ['PORT', 'eighty'],
      ['PORT', '80.5'],
      ['PORT', '1e3'],
      ['PORT', '-1'],
      ['PORT', '65536'],
      ['PORT', '99999999999999999999'],
      ['CALLER_ID', '0612345678'],
      ['CALLER_ID', '31612345678'],
      ['CALLER_ID', '+0612345678'],
      ['CALLER_ID', '+31 6 12345678'],
      ['CALLER_ID', '+3161234567890123'],
      ['LOG_LEVEL', 'verbose'],
      ['LIVEKIT_URL', 'not a url'],
      ['LIVEKIT_URL', 'example.livekit.cloud'],
      ['LIVEKIT_URL', 'ftp://example.livekit.cloud'],
      ['REDIS_URL', 'http://cache.example.com:6379'],
      ['REDIS_URL', 'localhost:6379'],
      ['INSPECT', 'maybe'],
      ['INSPECT_PORT', '0'],
      ['CONTROL_API_KEYS', `${CONTROL_KEY_A},short-key`],
      ['RING_TIMEOUT_S', '4'],
      ['RING_TIMEOUT_S', '601'],
      ['RING_TIMEOUT_S', 'thirty'],
      ['MAX_CALL_DURATION_S', '86401'],
      ['DIAL_MAX_ATTEMPTS', '0'],
      ['DIAL_MAX_ATTEMPTS', '11'],
      ['LIVEKIT_REQUEST_TIMEOUT_S', '0'],
      ['AGENT_GRACE_S', '-1'],
      ['MAX_EVENTS_PER_CALL', '15'],
      ['WEBHOOK_DEDUP_SIZE', '999'],
    ];

    for (const [variable, value] of cases) {
      it(`rejects ${variable}=${JSON.stringify(value)} with a one-line error naming ${variable}`, () => {
        expectOneLineNaming(configError({ [variable]: value }), variable);
      });
    }

    it('rejects DIAL_RETRY_MAX_MS below DIAL_RETRY_BASE_MS', () => {
      expectOneLineNaming(configError({ DIAL_RETRY_BASE_MS: '5000', DIAL_RETRY_MAX_MS: '4999' }), 'DIAL_RETRY_MAX_MS');
    });

    it('accepts the boundaries of a numeric range', () => {
      const config = loadConfig(env({ PORT: '65535', RING_TIMEOUT_S: '5', DIAL_MAX_ATTEMPTS: '10' }));
      expect(config.http.port).toBe(65535);
      expect(config.calls.ringTimeoutS).toBe(5);
      expect(config.calls.maxDialAttempts).toBe(10);
    });

    it('does not echo the short Control API key in the error message', () => {
      const err = configError({ CONTROL_API_KEYS: `${CONTROL_KEY_A},tiny-secret` });
      expect(err.message).not.toContain('tiny-secret');
      expect(err.message).not.toContain(CONTROL_KEY_A);
    });

    // A double-quoted value in .env_local may contain "\n", which parseEnv turns into a line break.
    for (const [variable, value] of [
      ['PORT', '80\n80'],
      ['LOG_LEVEL', 'info\ndebug'],
      ['INSPECT', 'yes\nno'],
    ] as const) {
      it(`keeps the message on one line when ${variable} contains a line break`, () => {
        expectOneLineNaming(configError({ [variable]: value }), variable);
      });
    }

    it('never puts the API secret in the message when another variable is wrong', () => {
      for (const overrides of [{ PORT: 'abc' }, { LIVEKIT_URL: 'ftp://x.example' }, { LIVEKIT_API_KEY: undefined }, { LOG_LEVEL: 'loud' }]) {
        const err = configError(overrides);
        expect(err.message).not.toContain(SECRET);
        expect(String(err)).not.toContain(SECRET);
        expect(err.stack ?? '').not.toContain(SECRET);
      }
    });

    it('names the error ConfigurationError and starts its message with "configuration error"', () => {
      const err = configError({ PORT: 'x' });
      expect(err.name).toBe('ConfigurationError');
      expect(err.message).toMatch(/^configuration error: PORT /);
    });
  });

  describe('the returned object', () => {
    it('is deeply frozen', () => {
      const config = loadConfig(env({ CONTROL_API_KEYS: CONTROL_KEY_A }));
      expect(Object.isFrozen(config)).toBe(true);
      for (const nested of [config.livekit, config.http, config.controlApiKeys, config.inspect, config.calls, config.retention, config.webhook]) {
        expect(Object.isFrozen(nested)).toBe(true);
      }
    });

    it('throws when code tries to change a nested value', () => {
      const config = loadConfig(env({ CONTROL_API_KEYS: CONTROL_KEY_A }));
      expect(() => {
        (config.http as { port: number }).port = 1;
      }).toThrow(TypeError);
      expect(() => {
        (config.controlApiKeys as string[]).push(CONTROL_KEY_B);
      }).toThrow(TypeError);
      expect(config.http.port).toBe(8000);
      expect(config.controlApiKeys).toEqual([CONTROL_KEY_A]);
    });

    it('does not freeze or change the environment it was given', () => {
      const input = env({ PORT: '8080' });
      const copy = { ...input };
      loadConfig(input);
      expect(Object.isFrozen(input)).toBe(false);
      expect(input).toEqual(copy);
    });
  });
});

describe('describeConfig', () => {
  it('contains neither the LiveKit API secret nor the Control API keys', () => {
    const config = loadConfig(env({ CONTROL_API_KEYS: `${CONTROL_KEY_A},${CONTROL_KEY_B}` }));
    const text = JSON.stringify(describeConfig(config));
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain(CONTROL_KEY_A);
    expect(text).not.toContain(CONTROL_KEY_B);
  });

  it('reports how many Control API keys there are and which store is used', () => {
    const described = describeConfig(loadConfig(env({ CONTROL_API_KEYS: `${CONTROL_KEY_A},${CONTROL_KEY_B}` })));
    expect(described).toMatchObject({ control_api_keys: 2, store: 'memory', port: 8000, host: '0.0.0.0', caller_id: '+3197010206472' });
    expect(describeConfig(loadConfig(env({ REDIS_URL: 'redis://127.0.0.1:6379' }))).store).toBe('redis');
  });
});

describe('readEnvironment', () => {
  let dir: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'cp-config-'));
  });

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  function writeEnvFile(contents: string): string {
    const file = join(dir, '.env_local');
    writeFileSync(file, contents, 'utf8');
    return file;
  }

  it('uses the values from the .env_local file', () => {
    const file = writeEnvFile(
      ['# LiveKit', 'LIVEKIT_URL=wss://from-file.livekit.cloud', 'LIVEKIT_API_KEY=file-key', `LIVEKIT_API_SECRET="${SECRET}"`, 'PORT=9001', ''].join('\n'),
    );
    const merged = readEnvironment({}, file);
    expect(merged).toMatchObject({
      LIVEKIT_URL: 'wss://from-file.livekit.cloud',
      LIVEKIT_API_KEY: 'file-key',
      LIVEKIT_API_SECRET: SECRET,
      PORT: '9001',
    });
    const config = loadConfig(merged);
    expect(config.livekit.url).toBe('wss://from-file.livekit.cloud');
    expect(config.http.port).toBe(9001);
  });

  it('lets the process environment win over the file', () => {
    const file = writeEnvFile('LIVEKIT_URL=wss://from-file.livekit.cloud\nPORT=9001\nHOST=10.0.0.1\n');
    const merged = readEnvironment({ PORT: '9002', LIVEKIT_API_KEY: 'env-key' }, file);
    expect(merged.PORT).toBe('9002');
    expect(merged.HOST).toBe('10.0.0.1');
    expect(merged.LIVEKIT_URL).toBe('wss://from-file.livekit.cloud');
    expect(merged.LIVEKIT_API_KEY).toBe('env-key');
  });

  it('returns the environment unchanged when the file does not exist', () => {
    const given: Env = { PORT: '1234' };
    const merged = readEnvironment(given, join(dir, 'no-such-file'));
    expect(merged).toEqual({ PORT: '1234' });
  });

  it('does not modify the environment object it was given', () => {
    const file = writeEnvFile('HOST=10.0.0.1\n');
    const given: Env = { PORT: '1234' };
    readEnvironment(given, file);
    expect(given).toEqual({ PORT: '1234' });
  });
});

describe('status callback configuration', () => {
  const WHSEC = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;

  it('is off by default: no URL, every event, the documented schedule', () => {
    expect(loadConfig(env()).statusCallbacks).toMatchObject({
      url: null,
      secrets: [],
      events: null,
      allowedHosts: [],
      timeoutS: 10,
      retryScheduleS: [5, 30, 120, 600, 1800, 3600, 10800, 21600, 43200, 86400],
    });
  });

  it('reads every variable', () => {
    const config = loadConfig(
      env({
        STATUS_CALLBACK_URL: 'https://api.example.com/calls/events',
        STATUS_CALLBACK_SECRET: `${WHSEC}, whsec_${Buffer.alloc(24, 1).toString('base64')}`,
        STATUS_CALLBACK_EVENTS: 'call.ended, call.failed',
        STATUS_CALLBACK_ALLOWED_HOSTS: 'Hooks.Example.com,*.example.org',
        STATUS_CALLBACK_TIMEOUT_S: '2.5',
        STATUS_CALLBACK_RETRY_SCHEDULE_S: '0, 1.5,60',
      }),
    ).statusCallbacks;
    expect(config).toMatchObject({
      url: 'https://api.example.com/calls/events',
      events: ['call.ended', 'call.failed'],
      allowedHosts: ['hooks.example.com', '*.example.org'],
      timeoutS: 2.5,
      retryScheduleS: [0, 1.5, 60],
    });
    expect(config.secrets).toHaveLength(2);
  });

  it.each([
    ['STATUS_CALLBACK_SECRET', { STATUS_CALLBACK_URL: 'https://a.example.com/', STATUS_CALLBACK_SECRET: 'whsec_c2hvcnQ=' }, /secret 1 of 1/],
    ['STATUS_CALLBACK_SECRET', { STATUS_CALLBACK_URL: 'https://a.example.com/', STATUS_CALLBACK_SECRET: Buffer.alloc(32).toString('base64') }, /whsec_/],
    ['STATUS_CALLBACK_SECRET', { STATUS_CALLBACK_URL: 'https://a.example.com/' }, /required once STATUS_CALLBACK_URL/],
    ['STATUS_CALLBACK_SECRET', { STATUS_CALLBACK_ALLOWED_HOSTS: 'a.example.com' }, /required once STATUS_CALLBACK_ALLOWED_HOSTS/],
    ['STATUS_CALLBACK_URL', { STATUS_CALLBACK_URL: 'ftp://a.example.com/', STATUS_CALLBACK_SECRET: WHSEC }, /http, https/],
    ['STATUS_CALLBACK_URL', { STATUS_CALLBACK_URL: 'not a url', STATUS_CALLBACK_SECRET: WHSEC }, /not a URL/],
    ['STATUS_CALLBACK_EVENTS', { STATUS_CALLBACK_EVENTS: 'call.ended,call.exploded' }, /"call\.exploded"/],
    ['STATUS_CALLBACK_EVENTS', { STATUS_CALLBACK_EVENTS: ' , ' }, /names no event/],
    ['STATUS_CALLBACK_RETRY_SCHEDULE_S', { STATUS_CALLBACK_RETRY_SCHEDULE_S: '5,-1' }, /non-negative/],
    ['STATUS_CALLBACK_RETRY_SCHEDULE_S', { STATUS_CALLBACK_RETRY_SCHEDULE_S: '5,,30' }, /comma-separated/],
    ['STATUS_CALLBACK_ALLOWED_HOSTS', { STATUS_CALLBACK_ALLOWED_HOSTS: 'https://a.example.com', STATUS_CALLBACK_SECRET: WHSEC }, /host names/],
    ['STATUS_CALLBACK_TIMEOUT_S', { STATUS_CALLBACK_TIMEOUT_S: 'ten' }, /number/],
  ])('refuses a bad %s with one line naming it', (variable, overrides, problem) => {
    const err = configError(overrides);
    expectOneLineNaming(err, variable);
    expect(err.message).toMatch(problem);
  });

  it('names every bad value at once, one line each, and never prints a secret', () => {
    const badSecret = `whsec_${Buffer.alloc(8, 9).toString('base64')}`;
    const err = configError({
      STATUS_CALLBACK_URL: 'gopher://a.example.com/',
      STATUS_CALLBACK_SECRET: `${WHSEC},${badSecret}`,
      STATUS_CALLBACK_EVENTS: 'call.nope',
      STATUS_CALLBACK_RETRY_SCHEDULE_S: 'soon',
    });
    const lines = err.message.split('\n');
    expect(lines).toHaveLength(4);
    expect(lines.map((line) => line.split(' ')[2])).toEqual([
      'STATUS_CALLBACK_URL',
      'STATUS_CALLBACK_SECRET',
      'STATUS_CALLBACK_EVENTS',
      'STATUS_CALLBACK_RETRY_SCHEDULE_S',
    ]);
    expect(lines.every((line) => line.startsWith('configuration error: '))).toBe(true);
    expect(err.message).not.toContain(WHSEC.slice(6));
    expect(err.message).not.toContain(badSecret.slice(6));
  });

  it('describeConfig shows the URL without credentials or query and counts the secrets', () => {
    const described = describeConfig(
      loadConfig(env({ STATUS_CALLBACK_URL: 'https://user:pw@api.example.com/events?token=abc', STATUS_CALLBACK_SECRET: WHSEC })),
    );
    expect(described.status_callbacks).toMatchObject({ url: 'https://api.example.com/events', secrets: 1 });
    expect(JSON.stringify(described)).not.toMatch(/pw|token=abc|whsec_/);
  });
});

describe('recording configuration (RECORDING_*)', () => {
  it('records nothing by default, to recordings/{session_id}.ogg, mixed, where the egress service writes', () => {
    expect(loadConfig(env()).recording).toEqual({ mode: 'off', filepath: 'recordings/{session_id}.ogg', audioMixing: 'mixed', s3: null });
  });

  it('reads every setting, the bucket with or without credentials of its own', () => {
    const config = loadConfig(
      env({
        RECORDING: 'INBOUND',
        RECORDING_FILEPATH: 'calls/{time}/{room}-{session_id}.ogg',
        RECORDING_AUDIO_MIXING: 'dual_channel',
        RECORDING_S3_BUCKET: 'call-recordings',
        RECORDING_S3_REGION: 'eu-west-1',
        RECORDING_S3_ENDPOINT: 'https://minio.example.com',
        RECORDING_S3_ACCESS_KEY: 'AKIAEXAMPLE',
        RECORDING_S3_SECRET: 'secret-value-0123',
      }),
    );
    expect(config.recording).toEqual({
      mode: 'inbound',
      filepath: 'calls/{time}/{room}-{session_id}.ogg',
      audioMixing: 'dual_channel',
      s3: { bucket: 'call-recordings', region: 'eu-west-1', endpoint: 'https://minio.example.com', accessKey: 'AKIAEXAMPLE', secret: 'secret-value-0123' },
    });
    const described = JSON.stringify(describeConfig(config));
    expect(described).toContain('call-recordings');
    expect(described).not.toMatch(/AKIAEXAMPLE|secret-value-0123/);
    expect(loadConfig(env({ RECORDING_S3_BUCKET: 'b' })).recording.s3).toEqual({ bucket: 'b', region: null, endpoint: null, accessKey: null, secret: null });
  });

  it.each([
    ['RECORDING', { RECORDING: 'yes' }, /one of off, inbound, outbound, all/],
    ['RECORDING_AUDIO_MIXING', { RECORDING_AUDIO_MIXING: 'stereo' }, /one of mixed, dual_channel/],
    ['RECORDING_FILEPATH', { RECORDING_FILEPATH: 'calls/{caller}.ogg' }, /unknown placeholder \{caller\}/],
    ['RECORDING_FILEPATH', { RECORDING_FILEPATH: 'calls/../etc/{session_id}.ogg' }, /must name a file/],
    ['RECORDING_FILEPATH', { RECORDING_FILEPATH: 'calls/' }, /must name a file/],
    ['RECORDING_S3_ENDPOINT', { RECORDING_S3_BUCKET: 'b', RECORDING_S3_ENDPOINT: 'minio:9000' }, /http, https|not a URL/],
    ['RECORDING_S3_REGION', { RECORDING_S3_REGION: 'eu-west-1' }, /without RECORDING_S3_BUCKET/],
    ['RECORDING_S3_SECRET', { RECORDING_S3_BUCKET: 'b', RECORDING_S3_ACCESS_KEY: 'AKIA' }, /give both/],
  ])('refuses a bad %s with one line naming it', (variable, overrides, problem) => {
    const err = configError(overrides);
    expectOneLineNaming(err, variable);
    expect(err.message).toMatch(problem);
  });

  it('names every bad recording value at once and never prints the storage secret', () => {
    const err = configError({ RECORDING: 'sometimes', RECORDING_AUDIO_MIXING: 'loud', RECORDING_S3_BUCKET: 'b', RECORDING_S3_SECRET: 'do-not-print-me' });
    expect(err.message.split('\n').map((line) => line.split(' ')[2])).toEqual(['RECORDING', 'RECORDING_AUDIO_MIXING', 'RECORDING_S3_ACCESS_KEY']);
    expect(err.message).not.toContain('do-not-print-me');
  });
});
