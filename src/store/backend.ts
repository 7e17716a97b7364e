// What the service runs on: every piece of state it keeps, behind ports. `createMemoryBackend`
// (store/memory/) serves one process; `createRedisBackend` (store/redis/) lets any number of
// replicas share the work (docs/replicas.md). The service is wired the same way on either.
import type { CallStore } from './call-store.port.js';
import type { DialLeases } from './dial-leases.port.js';
import type { DialQueue } from './dial-queue.port.js';
import type { EventLog } from './event-log.port.js';
import type { Outbox } from './outbox.port.js';

/** What a backend shared by several replicas asks of each of them. */
export interface ReplicaDuties {
  /** look in the store this often for due timers (a replica that armed one may have died) */
  timerPollMs: number;
  /** look for free dial slots this often (another replica may have freed one) */
  admissionPollMs: number;
}

export interface Backend {
  readonly store: CallStore;
  readonly dialQueue: DialQueue;
  readonly dialLeases: DialLeases;
  readonly eventLog: EventLog;
  /** status-callback deliveries, recorded by `store.commit` */
  readonly outbox: Outbox;
  /**
   * null when this process is the only one: its own timers are all there is, and on shutdown it
   * waits for its dials. Otherwise it polls for others' timers and slots, and on shutdown hands
   * its dials over to the other replicas.
   */
  readonly replicas: ReplicaDuties | null;
  /** Stops following the event log and releases connections. */
  close(): Promise<void>;
}
