// How the phone party leaving ends a call (docs/call-lifecycle.md, CP-02): every DisconnectReason LiveKit's
// protocol defines, by the name its webhooks carry, to the call's final state and end reason.
import { DisconnectReason } from '@livekit/protocol';
import { describe, expect, it } from 'vitest';
import type { EndedReason, ErrorCategory } from '../../machines/call.types.js';
import { disconnectOutcome, type DisconnectOutcome } from '../../src/calls/disconnect.js';
import { CATEGORY_POLICIES } from '../../src/errors/policy.js';

type ReasonName = keyof typeof DisconnectReason;

/** [name, number] of every reason in @livekit/protocol (the enum also maps numbers back to names). */
const LIVEKIT_REASONS = Object.entries(DisconnectReason).filter((entry): entry is [ReasonName, number] => typeof entry[1] === 'number');

const ended = (reason: EndedReason, category: ErrorCategory | null = null): DisconnectOutcome => ({ state: 'ended', reason, category });
const failed = (category: ErrorCategory): DisconnectOutcome => ({ state: 'failed', category });

/** What the phone party leaving an answered call means, by LiveKit's reason. */
const ANSWERED: [DisconnectOutcome, ReasonName[]][] = [
  // the caller's BYE; older servers leave the reason out for it
  [ended('remote_hangup'), ['CLIENT_INITIATED', 'UNKNOWN_REASON']],
  [ended('declined', 'declined'), ['USER_REJECTED']],
  [ended('no_answer', 'no_answer'), ['USER_UNAVAILABLE']],
  // not asked for by the plane (when it asked, the chart ends the call in `ending`)
  [ended('agent_hangup'), ['PARTICIPANT_REMOVED']],
  [ended('room_closed'), ['ROOM_DELETED', 'ROOM_CLOSED']],
  [failed('carrier_error'), ['SIP_TRUNK_FAILURE']],
  // the RTP of a SIP participant stopped
  [failed('media_failure'), ['MEDIA_FAILURE', 'CONNECTION_TIMEOUT']],
  [failed('agent_error'), ['AGENT_ERROR']],
  [failed('provider_unavailable'), ['SERVER_SHUTDOWN', 'JOIN_FAILURE']],
  [failed('unknown'), ['DUPLICATE_IDENTITY', 'STATE_MISMATCH', 'MIGRATION', 'SIGNAL_CLOSE']],
];
const ON_ANSWERED_CALL = new Map(ANSWERED.flatMap(([outcome, reasons]) => reasons.map((reason) => [reason, outcome] as const)));

/** The reasons that end a call not yet answered otherwise: the caller gave up while it rang. */
const BEFORE_THE_ANSWER = new Map<ReasonName, DisconnectOutcome>([
  ['CLIENT_INITIATED', ended('canceled')],
  ['UNKNOWN_REASON', ended('canceled')],
]);

describe('disconnectOutcome', () => {
  it('has an expected outcome in this table for exactly the reasons LiveKit defines, each once', () => {
    const listed = ANSWERED.flatMap(([, reasons]) => reasons);
    expect(LIVEKIT_REASONS.length).toBeGreaterThan(0);
    expect([...listed].sort()).toEqual(LIVEKIT_REASONS.map(([name]) => name).sort());
  });

  it.each(LIVEKIT_REASONS)('ends or fails a call whose phone party left with %s (%i) as the table says', (name) => {
    const answered = ON_ANSWERED_CALL.get(name);
    expect(answered).toBeDefined();
    expect(disconnectOutcome(name, true)).toEqual(answered);
    expect(disconnectOutcome(name, false)).toEqual(BEFORE_THE_ANSWER.get(name) ?? answered);
  });

  it('gives every outcome that carries a category the end the CP-04 policy gives that category', () => {
    for (const [name] of LIVEKIT_REASONS) {
      for (const answered of [true, false]) {
        const outcome = disconnectOutcome(name, answered);
        if (outcome.category === null) continue;
        // busy, no_answer and declined end a call, with that end reason; every other category fails it
        expect(CATEGORY_POLICIES[outcome.category].outcome, name).toBe(outcome.state);
        if (outcome.state === 'ended') expect(outcome.reason, name).toBe(outcome.category);
      }
    }
  });
});
