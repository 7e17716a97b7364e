// Fault injection through the LiveKit stand-in: latency spikes, 5xx, connection resets and
// timeouts during dials, hang-ups and transfers. Afterwards no session is lost, no call was
// answered twice, and every call is final. (Runs on both stores.)
import { afterEach, describe, expect, it } from 'vitest';
import type { Session } from '../../src/http/session.js';
import type { ObsEnvelope } from '../../src/obs/envelope.js';
import type { Behaviour, Handler } from '../../dev/livekit-standin.js';
import { startServiceHarness, type ServiceHarness } from '../support/service-harness.js';

const CALLS = 40;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let h: ServiceHarness;
afterEach(async () => {
  await h?.close();
});

/** A seeded random source, so a failing run can be repeated (FAULT_SEED). */
function random(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
}

type Fault = Behaviour | 'ok' | { slowMs: number };

/** Wraps the stand-in's default behaviour with faults chosen by `pick`; `served` hears of every request LiveKit carried out. */
function faulty(pick: () => Fault, served: (body: Record<string, unknown>) => void = () => undefined): Handler {
  return async (req, standIn) => {
    const fault = pick();
    if (fault !== 'ok' && !('slowMs' in fault)) return fault;
    if (fault !== 'ok') await sleep(fault.slowMs);
    served(req.body);
    return standIn.simulate(req);
  };
}

describe('LiveKit faults during dials, hang-ups and transfers', () => {
  it('loses no session, answers no call twice, and ends every call', async () => {
    const seed = Number(process.env.FAULT_SEED ?? Date.now() % 100_000);
    const rnd = random(seed);
    h = await startServiceHarness({
      realTime: true,
      env: {
        RING_TIMEOUT_S: '5',
        ENDING_GRACE_S: '1',
        DIAL_MAX_ATTEMPTS: '4',
        DIAL_RETRY_BASE_MS: '50',
        DIAL_RETRY_MAX_MS: '200',
        LIVEKIT_REQUEST_TIMEOUT_S: '1',
        MAX_CONCURRENT_CALLS: '1000',
        CALLS_PER_SECOND: '1000',
      },
    });
    /** dials LiveKit carried out (the phone was answered), by session */
    const answered = new Map<string, number>();
    h.standIn.setHandler(
      'CreateSIPParticipant',
      faulty(() => {
        const r = rnd();
        if (r < 0.15) return { slowMs: 100 + Math.floor(rnd() * 700) };
        if (r < 0.27) return { error: { code: 'unavailable', msg: 'no SIP service available' } };
        if (r < 0.37) return { reset: true };
        if (r < 0.42) return { hang: true }; // the SDK's own timeout (ring + 2 s) ends it
        if (r < 0.5) return { error: { code: 'failed_precondition', msg: 'carrier', meta: { sip_status_code: '503', sip_status: 'Service Unavailable' } } };
        if (r < 0.55) return { raw: { status: 502, contentType: 'text/html', body: '<html>bad gateway</html>' } };
        return 'ok';
      }, (body) => {
        const session = /^sip-(.+)-\d+$/.exec(String(body.participantIdentity))?.[1] ?? '?';
        answered.set(session, (answered.get(session) ?? 0) + 1);
      }),
    );
    h.standIn.setHandler(
      'DeleteRoom',
      faulty(() => {
        const r = rnd();
        if (r < 0.2) return { reset: true };
        if (r < 0.35) return { error: { code: 'internal', msg: 'oops' } };
        if (r < 0.5) return { slowMs: 300 };
        return 'ok';
      }),
    );
    h.standIn.setHandler(
      'TransferSIPParticipant',
      faulty(() => {
        const r = rnd();
        if (r < 0.2) return { reset: true };
        if (r < 0.35) return { error: { code: 'unavailable', msg: 'sip unavailable' } };
        if (r < 0.5) return { error: { code: 'permission_denied', msg: 'refused', meta: { sip_status_code: '603', sip_status: 'Decline' } } };
        return 'ok';
      }),
    );

    const post = (path: string, body?: unknown) =>
      h.api(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    const session = async (id: string) => (await (await h.api(`/v1/calls/${id}`)).json()) as Session;

    const runCall = async (i: number): Promise<string> => {
      const placed = await post('/v1/calls', { to: `+316${String(40_000_000 + i)}` });
      expect(placed.status).toBe(201);
      const { id } = (await placed.json()) as Session;
      const deadline = Date.now() + 30_000;
      let call = await session(id);
      while (call.state === 'queued' || call.state === 'dialing') {
        if (Date.now() > deadline) throw new Error(`call ${id} still ${call.state} (seed ${seed})`);
        await sleep(50);
        call = await session(id);
      }
      if (call.state === 'connected') {
        await sleep(50 + Math.floor(rnd() * 200));
        if (rnd() < 0.5) {
          const transfer = await post(`/v1/calls/${id}/transfer`, { to: '+31201234567' });
          expect([202, 409]).toContain(transfer.status);
          await sleep(300);
        }
        const now = await session(id);
        if (now.state === 'connected') expect([202, 409]).toContain((await post(`/v1/calls/${id}/hangup`)).status);
      }
      return id;
    };

    const ids = await Promise.all(Array.from({ length: CALLS }, (_, i) => sleep(i * 30).then(() => runCall(i))));

    // Every call reaches a final state (the ending grace ends those whose hang-up failed).
    const deadline = Date.now() + 30_000;
    let calls: Session[];
    for (;;) {
      calls = await Promise.all(ids.map(session));
      if (calls.every((c) => c.state === 'ended' || c.state === 'failed')) break;
      if (Date.now() > deadline) throw new Error(`calls not final (seed ${seed}): ${calls.filter((c) => c.state !== 'ended' && c.state !== 'failed').map((c) => `${c.id} ${c.state}`).join(', ')}`);
      await sleep(100);
    }
    const listed = ((await (await h.api('/v1/calls?limit=200')).json()) as { calls: Session[] }).calls;
    expect(listed.map((c) => c.id).sort()).toEqual([...ids].sort());

    const dials = h.standIn.requestsFor('CreateSIPParticipant');
    const identities = dials.map((d) => String(d.body.participantIdentity));
    expect(new Set(identities).size, `seed ${seed}`).toBe(identities.length);
    for (const call of calls) {
      const mine = dials.filter((d) => String(d.body.participantIdentity).startsWith(`sip-${call.id}-`));
      expect(mine.length, `${call.id} (seed ${seed})`).toBeLessThanOrEqual(call.attempt);
      // Answered at most once: LiveKit carried out at most one of its dials.
      expect(answered.get(call.id) ?? 0, `${call.id} (seed ${seed})`).toBeLessThanOrEqual(1);
      const { events } = (await (await h.api(`/v1/calls/${call.id}/events`)).json()) as { events: ObsEnvelope[] };
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
      expect(events.filter((e) => e.event === 'call.started').length, `${call.id} (seed ${seed})`).toBe(answered.get(call.id) ?? 0);
    }
    const byOutcome = new Map<string, number>();
    for (const c of calls) byOutcome.set(`${c.state}/${c.end_reason}`, (byOutcome.get(`${c.state}/${c.end_reason}`) ?? 0) + 1);
    console.log(`faults (seed ${seed}): ${CALLS} calls, ${dials.length} dials, outcomes ${JSON.stringify(Object.fromEntries(byOutcome))}`);
  }, 120_000);
});
