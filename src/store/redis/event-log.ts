// The event stream shared by every replica (docs/replicas.md): each committed OBS-00 envelope is added to
// one Redis stream under a global, gap-free number, and every replica follows that stream into
// its local EventStream, so an SSE client sees every call's events whichever replica it is
// connected to, and resumes with Last-Event-ID on any of them.
import type { Redis } from 'ioredis';
import type { ObsEnvelope } from '../../obs/envelope.js';
import type { EventStream } from '../../obs/event-stream.js';
import type { Logger } from '../../obs/logger.js';
import type { EventLog } from '../event-log.port.js';
import { LuaScript, type RedisConnection } from './connection.js';

// INCR and XADD in one script, so numbers are gap-free and the stream stays in number order
// whichever replica appends. Both keys carry the `{events}` hash tag: one slot in a cluster.
const APPEND = new LuaScript(`
local ids = {}
for i = 1, #ARGV - 1 do
  local n = redis.call('INCR', KEYS[1])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[#ARGV], n .. '-0', 'e', ARGV[i])
  ids[i] = n
end
return ids`);

export interface RedisEventLogOptions {
  connection: RedisConnection;
  /** entries kept in the Redis stream (approximately) */
  maxLength: number;
  logger: Logger;
}

const numberOf = (streamId: string): number => Number(streamId.split('-')[0]);

export class RedisEventLog implements EventLog {
  private readonly seqKey: string;
  private readonly streamKey: string;
  private reader: Redis | null = null;
  private following = false;

  constructor(private readonly options: RedisEventLogOptions) {
    this.seqKey = options.connection.key('{events}:seq');
    this.streamKey = options.connection.key('{events}:stream');
  }

  /** Adds envelopes in order, each under the next number. */
  async append(envelopes: readonly ObsEnvelope[]): Promise<void> {
    if (envelopes.length === 0) return;
    const args = [...envelopes.map((envelope) => JSON.stringify(envelope)), String(this.options.maxLength)];
    await this.options.connection.guard('event log', () => this.options.connection.run(APPEND, [this.seqKey, this.streamKey], args));
  }

  /**
   * Fills `stream` with the newest entries the stream still holds, then follows it until stop().
   * Reads on a connection of its own (XREAD BLOCK holds it), and resumes after Redis outages
   * from the last entry it saw.
   */
  async follow(stream: EventStream, backfill: number): Promise<void> {
    this.reader = this.options.connection.duplicate();
    this.following = true;
    let lastId = '0-0';
    try {
      const newest = (await this.reader.xrevrange(this.streamKey, '+', '-', 'COUNT', backfill)) as [string, string[]][];
      for (const [id, fields] of newest.reverse()) {
        this.feed(stream, id, fields);
        lastId = id;
      }
    } catch (err) {
      // Redis is down: start from the beginning of what the stream holds once it is back.
      this.options.logger.warn({ err }, 'event log: could not read its history yet');
    }
    void this.loop(stream, lastId);
  }

  async stop(): Promise<void> {
    this.following = false;
    const reader = this.reader;
    this.reader = null;
    reader?.disconnect();
  }

  private async loop(stream: EventStream, from: string): Promise<void> {
    let lastId = from;
    while (this.following && this.reader) {
      try {
        const result = (await this.reader.xread('COUNT', 500, 'BLOCK', 2000, 'STREAMS', this.streamKey, lastId)) as
          | [string, [string, string[]][]][]
          | null;
        for (const [, entries] of result ?? []) {
          for (const [id, fields] of entries) {
            this.feed(stream, id, fields);
            lastId = id;
          }
        }
      } catch (err) {
        if (!this.following) return;
        this.options.logger.warn({ err }, 'event log: following failed; retrying');
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
  }

  private feed(stream: EventStream, id: string, fields: string[]): void {
    const json = fields[1];
    if (fields[0] !== 'e' || json === undefined) return;
    try {
      stream.push(JSON.parse(json) as ObsEnvelope, numberOf(id));
    } catch (err) {
      this.options.logger.error({ err, stream_id: id }, 'event log: an entry could not be delivered');
    }
  }
}
