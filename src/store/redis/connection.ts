// The one Redis connection of a backend: it owns the ioredis client, maps every failure to
// StoreUnavailableError (the availability guard), and runs every Lua script the same way
// (EVALSHA, then EVAL when Redis does not know the script yet). Nothing outside src/store/redis/
// imports ioredis or knows a key.
import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { InvalidCursorError, StoreUnavailableError, VersionConflictError } from '../errors.js';

/** how long an operation waits for a connection attempt that is under way before failing */
const CONNECT_WAIT_MS = 1000;

export class LuaScript {
  readonly sha: string;
  constructor(readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }
}

/**
 * KEYS: a ZSET of due times. ARGV: now, limit, lease score. The members due at or before `now`
 * (at most `limit`), each held until the lease score: returns them.
 */
export const CLAIM_DUE = new LuaScript(`
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[3], id) end
return ids`);

export interface RedisConnectionOptions {
  /** REDIS_URL */
  url: string;
  /** every key starts with this (default 'cp:'); no `{`, since call ids are the hash tags */
  keyPrefix?: string;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * ioredis puts a failed command's arguments on its error (`command.args`): for a commit, the
 * call's whole record with its SIP options, which no log line may carry. Only the name stays.
 */
function withoutArguments(err: unknown): unknown {
  if (err !== null && typeof err === 'object' && 'command' in err) {
    const command = (err as { command: unknown }).command;
    const name = command !== null && typeof command === 'object' && 'name' in command ? command.name : undefined;
    (err as { command: unknown }).command = { name };
  }
  return err;
}

export class RedisConnection {
  readonly client: Redis;
  readonly keyPrefix: string;
  private lastError: unknown = null;
  private connecting: Promise<void> | null = null;

  constructor(options: RedisConnectionOptions) {
    this.keyPrefix = options.keyPrefix ?? 'cp:';
    if (this.keyPrefix.includes('{')) throw new Error('Redis key prefix must not contain "{"');
    this.client = new Redis(options.url, {
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      // Commands issued in the same tick go out in one write (a commit issues several).
      enableAutoPipelining: true,
      lazyConnect: false,
      retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
    });
    // ioredis reports connection errors as events; operations report them as StoreUnavailableError.
    this.client.on('error', (err: unknown) => {
      this.lastError = err;
    });
  }

  /** `keyPrefix` + name */
  key(name: string): string {
    return `${this.keyPrefix}${name}`;
  }

  /**
   * Runs a Redis operation: after any connection attempt under way, with every failure but the
   * stores' own errors mapped to StoreUnavailableError naming `operation`.
   */
  async guard<T>(operation: string, body: (client: Redis) => Promise<T>): Promise<T> {
    try {
      await this.awaitConnectionAttempt();
      return await body(this.client);
    } catch (err) {
      if (err instanceof VersionConflictError || err instanceof InvalidCursorError || err instanceof StoreUnavailableError) throw err;
      const cause = withoutArguments(err ?? this.lastError);
      throw new StoreUnavailableError(`redis store: ${operation} failed: ${errorMessage(cause)}`, { cause });
    }
  }

  /** Runs a script (inside `guard`, like any other command). */
  async run(script: LuaScript, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    try {
      return await this.client.evalsha(script.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!errorMessage(err).startsWith('NOSCRIPT')) throw err;
      return this.client.eval(script.source, keys.length, ...keys, ...args);
    }
  }

  /** A second connection to the same server, for a blocking read that would hold this one. */
  duplicate(): Redis {
    const reader = this.client.duplicate();
    reader.on('error', () => undefined); // its user reports failures of its own commands
    return reader;
  }

  async close(): Promise<void> {
    try {
      await this.client.quit();
    } catch {
      this.client.disconnect();
    }
  }

  /**
   * Commands fail at once while disconnected (no offline queue). While a connection attempt is
   * under way (startup, or a reconnect), wait briefly for its outcome instead of failing a
   * command that would succeed a moment later.
   */
  private async awaitConnectionAttempt(): Promise<void> {
    const status = this.client.status;
    if (status !== 'connecting' && status !== 'connect') return;
    // One wait shared by every operation that arrives meanwhile (not a listener each).
    this.connecting ??= new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.client.off('ready', done);
        this.client.off('close', done);
        this.client.off('end', done);
        this.connecting = null;
        resolve();
      };
      const timer = setTimeout(done, CONNECT_WAIT_MS);
      this.client.once('ready', done);
      this.client.once('close', done);
      this.client.once('end', done);
    });
    await this.connecting;
  }
}
