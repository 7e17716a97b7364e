// The event stream shared by every replica (docs/replicas.md): each committed OBS-00 envelope is added to
// one Redis stream under a global, gap-free number (by the call store's COMMIT script, with the
// commit: `{events}:seq` numbers, `{events}:stream` holds), and every replica follows that stream into
// its local EventStream, so an SSE client sees every call's events whichever replica it is
// connected to, and resumes with Last-Event-ID on any of them.
import type { Redis } from 'ioredis';
import type { ObsEnvelope } from '../../obs/envelope.js';
import type { EventStream } from '../../obs/event-stream.js';
import type { Logger } from '../../obs/logger.js';
import type { EventLog } from '../event-log.port.js';
import type { RedisConnection } from './connection.js';

export interface RedisEventLogOptions {
  connection: RedisConnection;
  logger: Logger;
}

const numberOf = (streamId: string): number => Number(streamId.split('-')[0]);

export class RedisEventLog implements EventLog {
  private readonly streamKey: string;
  private reader: Redis | null = null;
  private following = false;

  constructor(private readonly options: RedisEventLogOptions) {
    this.streamKey = options.connection.key('{events}:stream');
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
