// How committed OBS-00 events reach the event stream (`GET /v1/events`) of every process that
// serves the API: in one process straight from the commit, with replicas through a shared log
// that numbers them once for all.
import type { ObsEnvelope } from '../obs/envelope.js';
import type { EventStream } from '../obs/event-stream.js';

export interface EventLog {
  /**
   * Adds a commit's envelopes, in order, once the commit is stored. Absent when the store's
   * commit adds them itself (Redis: in the commit's own script, so the log's order is the
   * commits' order).
   */
  append?(envelopes: readonly ObsEnvelope[]): Promise<void>;
  /**
   * Feeds `stream` every envelope appended from now on (by any process sharing the log), after
   * up to `backfill` of the newest ones the log still holds.
   */
  follow(stream: EventStream, backfill: number): Promise<void>;
  /** Stops following; appending still works. */
  stop(): Promise<void>;
}
