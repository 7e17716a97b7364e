// Which dials are in flight. The replica placing a dial holds a short, renewed lease on it; a
// call in `dialing` with no lease lost its dial with a replica, and reconciliation asks LiveKit
// what became of it instead of dialing again blindly (docs/replicas.md).

export interface DialLeases {
  hold(sessionId: string, ttlMs: number): Promise<void>;
  release(sessionId: string): Promise<void>;
  held(sessionId: string): Promise<boolean>;
}
