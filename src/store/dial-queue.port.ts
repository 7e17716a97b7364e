// The shared state of outbound admission (see src/outbound/admission.ts): the waiting line, the
// calls holding a dial slot and the calls-per-second bucket. Every operation is atomic.

export interface AdmissionLimits {
  maxConcurrent: number;
  callsPerSecond: number;
}

export type TakeResult = { id: string } | { waitMs: number } | null;

export interface DialQueue {
  push(id: string): Promise<void>;
  /** calls waiting */
  size(): Promise<number>;
  /** The next waiting call, if a slot and a token are free (it then holds the slot); how long to wait for a token; or null. */
  take(limits: AdmissionLimits): Promise<TakeResult>;
  /** Frees the slot of `id`; false when it held none. */
  release(id: string): Promise<boolean>;
  /** Drops `id` from the waiting line. */
  remove(id: string): Promise<void>;
  /**
   * For a call still `queued`: puts it in line unless it is waiting. A slot it holds is freed
   * first (its grant was lost with a replica). True when it was added.
   */
  ensure(id: string): Promise<boolean>;
}
