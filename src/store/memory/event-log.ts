// The event log of one process: a commit's envelopes go straight to the streams that follow it,
// numbered by each stream (1, 2, 3... per process). Nothing is kept here: the stream's own replay
// buffer is the history.
import type { ObsEnvelope } from '../../obs/envelope.js';
import type { EventStream } from '../../obs/event-stream.js';
import type { EventLog } from '../event-log.port.js';

export class MemoryEventLog implements EventLog {
  private readonly followers = new Set<EventStream>();

  async append(envelopes: readonly ObsEnvelope[]): Promise<void> {
    for (const envelope of envelopes) for (const stream of this.followers) stream.push(envelope);
  }

  async follow(stream: EventStream): Promise<void> {
    this.followers.add(stream);
  }

  async stop(): Promise<void> {
    this.followers.clear();
  }
}
