// The command runner on its own: the chart's dial / hangUp / transfer carried out by the real
// LiveKit adapter against the LiveKit stand-in, each result handed to a recording fake of the
// runtime's CallEvents port. The records are made by a real runtime (the call harness), so they
// look exactly like the ones the service hands the runner.
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { CallInput, TransferOptions } from '../../machines/call.types.js';
import type { CallEvents, IncomingEvent, SendResult } from '../../src/calls/call-runtime.js';
import { createLiveKitAdapter } from '../../src/livekit/livekit.adapter.js';
import { createLogger } from '../../src/obs/logger.js';
import { createCommandRunner, type OutboundSettings } from '../../src/outbound/call-commands.js';
import { SESSION_ATTRIBUTE } from '../../src/livekit/naming.js';
import type { CallOptions, CallRecord, CallStore } from '../../src/store/call-store.port.js';
import { MemoryDialLeases } from '../../src/store/memory/dial-leases.js';
import { startLiveKitStandIn, type Behaviour, type LiveKitStandIn } from '../../dev/livekit-standin.js';
import { sipParticipant } from '../../dev/webhook-events.js';
import { createCallHarness, inboundInput, outboundInput } from '../support/call-harness.js';

const ROOM = 'outbound-call-out-1';
const TRANSFER_TO = 'tel:+31201234567';
/** retryBaseMs 1000 and random 0.5: the first retry waits 500 + floor(0.5 * 501) = 750 ms (equal jitter). */
const FIRST_RETRY_MS = 750;

let standIn: LiveKitStandIn | undefined;
afterEach(async () => {
  await standIn?.close();
  standIn = undefined;
});

type Outcome = 'applied' | 'rejected' | 'ignored';

/** The runtime's CallEvents port, recording every event and answering the outcome the test chose. */
function recordingCalls(store: CallStore) {
  const sent: { sessionId: string; event: IncomingEvent }[] = [];
  let outcome: Outcome = 'applied';
  const calls: CallEvents = {
    async send(sessionId, event): Promise<SendResult> {
      sent.push({ sessionId, event });
      const record = await store.get(sessionId);
      if (!record) return { outcome: 'not_found' };
      return outcome === 'applied' ? { outcome, record, events: [] } : { outcome, record };
    },
  };
  return { calls, sent, answer: (next: Outcome) => (outcome = next) };
}

async function setup(outbound: Partial<OutboundSettings> = {}) {
  standIn = await startLiveKitStandIn();
  const harness = createCallHarness();
  const { clock, store, runtime } = harness;
  const leases = new MemoryDialLeases(clock);
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger({ level: 'debug', destination: { write: (line: string) => void logs.push(JSON.parse(line)) } });
  const recorder = recordingCalls(store);
  const run = createCommandRunner({
    calls: recorder.calls,
    clock,
    livekit: createLiveKitAdapter({ url: standIn.url, apiKey: standIn.apiKey, apiSecret: standIn.apiSecret, requestTimeoutS: 5 }),
    leases,
    logger,
    outbound: { trunkId: 'ST_outbound', callerId: '+3197000000000', retryBaseMs: 1000, retryMaxMs: 8000, ...outbound },
    recording: { filepath: 'recordings/{session_id}.ogg', audioMixing: 'mixed', s3: null },
    random: () => 0.5,
  });
  const lk = standIn;

  /** An outbound call as the runtime hands it to `dial`: in `dialing`, at attempt `attempt`. */
  async function dialing(input: Partial<CallInput> = {}, attempt = 1, callOptions?: CallOptions): Promise<CallRecord> {
    const { id: sessionId } = await runtime.create(outboundInput(input), { callOptions });
    await runtime.send(sessionId, { type: 'dial.slot_granted' });
    for (let next = 2; next <= attempt; next++) {
      const error = { category: 'carrier_error' as const, retryable: true, message: 'SIP 503', sipStatusCode: 503 };
      await runtime.send(sessionId, { type: 'dial.failed', attempt: next - 1, error, retryAt: clock.now() + 1000 });
      clock.set(clock.now() + 1000);
      await runtime.send(sessionId, { type: 'timer.retry' });
    }
    const record = (await store.get(sessionId)) as CallRecord;
    expect(record).toMatchObject({ state: 'dialing', context: { attempt } });
    return record;
  }

  /** A connected inbound call asked to transfer its caller to TRANSFER_TO. */
  async function transferring(options?: TransferOptions): Promise<CallRecord> {
    await runtime.create(inboundInput({ sipCallStatus: 'active' }));
    await runtime.send('call-in-1', { type: 'api.transfer', to: TRANSFER_TO, ...(options ? { options } : {}) });
    const record = (await store.get('call-in-1')) as CallRecord;
    expect(record).toMatchObject({ state: 'transferring', context: { transferTarget: TRANSFER_TO } });
    return record;
  }

  /**
   * Holds every `method` request at the stand-in until `open` is called, then answers it with
   * `reply` or the simulated default.
   */
  function hold(method: string) {
    let open!: (reply?: Behaviour) => void;
    const gate = new Promise<Behaviour | undefined>((resolve) => (open = resolve));
    lk.setHandler(method, async (req, s) => (await gate) ?? s.simulate(req));
    const arrived = () => vi.waitFor(() => expect(lk.requestsFor(method)).not.toHaveLength(0));
    return { open, arrived };
  }

  /** Starts dialing call-out-1 and resolves once LiveKit holds the ringing dial; `open` answers it. */
  async function dialInFlight() {
    const dial = hold('CreateSIPParticipant');
    run('dial', await dialing());
    await dial.arrived();
    return dial;
  }

  return { ...harness, standIn: lk, leases, logger, logs, run, ...recorder, dialing, transferring, hold, dialInFlight };
}

describe('call commands', () => {
  describe('dial', () => {
    it('dispatches the agent first, with the session, the parties and the request metadata in its metadata, then places the SIP call as the chart and settings say', async () => {
      const t = await setup();
      const record = await t.dialing({ settings: { ...outboundInput().settings, ringTimeoutS: 25, maxDurationS: 900 } });
      t.run('dial', record);
      await t.run.inFlight();

      expect(t.standIn.requests.map((r) => r.method)).toEqual(['CreateDispatch', 'CreateSIPParticipant']);
      const [dispatch] = t.standIn.requestsFor('CreateDispatch');
      expect(dispatch?.body).toMatchObject({ agentName: 'receptionist', room: ROOM });
      expect(JSON.parse(String(dispatch?.body.metadata))).toEqual({
        session_id: 'call-out-1',
        direction: 'outbound',
        caller_number: '+3197010206472',
        callee_number: '+31687654321',
        metadata: { ticket: 'T-1' },
      });
      const [dial] = t.standIn.requestsFor('CreateSIPParticipant');
      expect(dial?.body).toMatchObject({
        sipTrunkId: 'ST_outbound',
        sipCallTo: '+31687654321',
        sipNumber: '+3197010206472',
        roomName: ROOM,
        participantIdentity: 'sip-call-out-1-1',
        participantAttributes: { [SESSION_ATTRIBUTE]: 'call-out-1' },
        ringingTimeout: '25s',
        maxCallDuration: '900s',
        waitUntilAnswered: true,
      });
    });

    it('sends the call\'s SIP options with the dial, and logs none of its digits when the dial fails', async () => {
      const t = await setup();
      const callOptions = { sipHeaders: { 'X-Customer-Id': 'cust-42' }, displayName: 'Acme Support', dtmf: '1234#w987' };
      t.standIn.script('CreateSIPParticipant', { error: { code: 'unavailable', msg: 'no SIP service available' } });
      t.run('dial', await t.dialing({}, 1, callOptions));
      await t.run.inFlight();

      expect(t.standIn.requestsFor('CreateSIPParticipant')[0]?.body).toMatchObject({
        headers: { 'X-Customer-Id': 'cust-42' },
        displayName: 'Acme Support',
        dtmf: '1234#w987',
      });
      expect(t.logs).toContainEqual(expect.objectContaining({ level: 'warn', msg: 'dial failed' }));
      expect(JSON.stringify(t.logs)).not.toContain('1234#w987');
    });

    it('dials a call stored before calls had SIP options without any', async () => {
      const t = await setup();
      const { callOptions: _none, ...record } = await t.dialing({}, 1, { sipHeaders: null, displayName: null, dtmf: null });
      t.run('dial', record);
      await t.run.inFlight();

      const [dial] = t.standIn.requestsFor('CreateSIPParticipant');
      for (const key of ['headers', 'displayName', 'dtmf']) expect(dial?.body).not.toHaveProperty(key);
    });

    it('reports the answer as dial.answered with the phone leg LiveKit created and its SIP call id', async () => {
      const t = await setup();
      t.run('dial', await t.dialing());
      await t.run.inFlight();

      const leg = t.standIn.rooms.get(ROOM)?.participants.get('sip-call-out-1-1');
      expect(leg?.attributes).toMatchObject({ [SESSION_ATTRIBUTE]: 'call-out-1', 'sip.callStatus': 'active' });
      expect(t.sent).toEqual([
        {
          sessionId: 'call-out-1',
          event: { type: 'dial.answered', attempt: 1, participantIdentity: 'sip-call-out-1-1', sipCallId: leg?.attributes?.['sip.callID'] },
        },
      ]);
      // an applied answer leaves the call's room alone
      expect(t.standIn.requestsFor('DeleteRoom')).toEqual([]);
    });

    it('dispatches no agent on a later attempt and dials with that attempt\'s identity', async () => {
      const t = await setup();
      t.run('dial', await t.dialing({}, 2));
      await t.run.inFlight();

      expect(t.standIn.requests.map((r) => r.method)).toEqual(['CreateSIPParticipant']);
      expect(t.standIn.requestsFor('CreateSIPParticipant')[0]?.body.participantIdentity).toBe('sip-call-out-1-2');
      expect(t.sent.map((s) => s.event)).toEqual([expect.objectContaining({ type: 'dial.answered', attempt: 2, participantIdentity: 'sip-call-out-1-2' })]);
    });

    it('dispatches no agent for a call without one and dials from CALLER_ID when the call names no number', async () => {
      const t = await setup();
      t.run('dial', await t.dialing({ agentName: null, callerNumber: null }));
      await t.run.inFlight();

      expect(t.standIn.requests.map((r) => r.method)).toEqual(['CreateSIPParticipant']);
      expect(t.standIn.requestsFor('CreateSIPParticipant')[0]?.body.sipNumber).toBe('+3197000000000');
    });

    const sipRefusal = (code: string, sip: number, phrase: string): Behaviour => ({
      error: { code, msg: `sip status: ${sip}`, meta: { sip_status_code: String(sip), sip_status: phrase } },
    });
    const refusals: [name: string, reply: Behaviour, category: string, retryable: boolean, sip: number | null][] = [
      ['a busy callee (SIP 486)', sipRefusal('resource_exhausted', 486, 'Busy Here'), 'busy', false, 486],
      ['a declining callee (SIP 603)', sipRefusal('permission_denied', 603, 'Decline'), 'declined', false, 603],
      ['an unknown number (SIP 404)', sipRefusal('not_found', 404, 'Not Found'), 'invalid_number', false, 404],
      ['a carrier outage (SIP 503)', sipRefusal('failed_precondition', 503, 'Service Unavailable'), 'carrier_error', true, 503],
      ['a carrier rate limit (SIP 503 Too Many Calls)', sipRefusal('failed_precondition', 503, 'Too Many Calls'), 'rate_limited', true, 503],
      ['LiveKit without SIP service (Twirp unavailable)', { error: { code: 'unavailable', msg: 'no SIP service available' } }, 'provider_unavailable', true, null],
      ['nobody answering (Twirp canceled)', { error: { code: 'canceled', msg: 'ringing timeout' } }, 'no_answer', false, null],
    ];
    for (const [name, reply, category, retryable, sip] of refusals) {
      it(`reports ${name} as dial.failed/${category}, ${retryable ? 'retryable at now + back-off' : 'not retryable'}`, async () => {
        const t = await setup();
        t.standIn.script('CreateSIPParticipant', reply);
        t.run('dial', await t.dialing());
        await t.run.inFlight();

        expect(t.sent).toEqual([
          {
            sessionId: 'call-out-1',
            event: {
              type: 'dial.failed',
              attempt: 1,
              error: { category, retryable, sipStatusCode: sip, message: expect.any(String) },
              retryAt: retryable ? t.clock.now() + FIRST_RETRY_MS : null,
            },
          },
        ]);
        expect(t.logs).toContainEqual(expect.objectContaining({ level: 'warn', msg: 'dial failed', session_id: 'call-out-1', category, attempt: 1 }));
      });
    }

    it('reports an agent that cannot be dispatched as dial.failed/agent_error and places no SIP call', async () => {
      const t = await setup();
      t.standIn.script('CreateDispatch', { error: { code: 'invalid_argument', msg: 'agent name is not registered' } });
      t.run('dial', await t.dialing());
      await t.run.inFlight();

      expect(t.standIn.requestsFor('CreateSIPParticipant')).toEqual([]);
      expect(t.sent.map((s) => s.event)).toEqual([
        expect.objectContaining({ type: 'dial.failed', attempt: 1, error: expect.objectContaining({ category: 'agent_error', retryable: false }), retryAt: null }),
      ]);
    });

    const misconfigured: [name: string, settings: Partial<OutboundSettings>, input: Partial<CallInput>][] = [
      ['no outbound trunk is configured', { trunkId: null }, {}],
      ['the call has no number to dial', {}, { calleeNumber: null }],
    ];
    for (const [name, settings, input] of misconfigured) {
      it(`fails as config_error without asking LiveKit when ${name}`, async () => {
        const t = await setup(settings);
        const record = await t.dialing(input);
        t.run('dial', record);
        await t.run.inFlight();

        expect(t.standIn.requests).toEqual([]);
        expect(t.sent).toEqual([
          {
            sessionId: 'call-out-1',
            event: {
              type: 'dial.failed',
              attempt: 1,
              error: { category: 'config_error', retryable: false, sipStatusCode: null, message: expect.stringMatching(/^configuration: /) },
              retryAt: null,
            },
          },
        ]);
        expect(await t.leases.held('call-out-1')).toBe(false);
      });
    }

    const dialOutcomes: [name: string, reply: Behaviour | undefined, result: string][] = [
      ['the answer', undefined, 'dial.answered'],
      ['a failure', { error: { code: 'unavailable', msg: 'no SIP service available' } }, 'dial.failed'],
    ];
    for (const [name, reply, result] of dialOutcomes) {
      it(`holds the dial lease while the dial rings and releases it once ${name} is delivered`, async () => {
        const t = await setup();
        const dial = await t.dialInFlight();
        expect(await t.leases.held('call-out-1')).toBe(true);
        expect(t.sent).toEqual([]);

        dial.open(reply);
        await t.run.inFlight();
        expect(t.sent.map((s) => s.event.type)).toEqual([result]);
        expect(await t.leases.held('call-out-1')).toBe(false);
      });
    }

    it('deletes the room again when the call ended while the dial rang (dial.answered is ignored)', async () => {
      const t = await setup();
      t.answer('ignored');
      t.run('dial', await t.dialing());
      await t.run.inFlight();

      expect(t.sent.map((s) => s.event.type)).toEqual(['dial.answered']);
      expect(t.standIn.requestsFor('DeleteRoom').map((r) => r.body)).toEqual([{ room: ROOM }]);
      // the answered phone leg is gone with the room
      expect(t.standIn.rooms.has(ROOM)).toBe(false);
      expect(t.logs).toContainEqual(expect.objectContaining({ level: 'warn', msg: 'dial answered after the call ended; deleting the room again' }));
    });

    it('logs, and does not throw, when the result cannot be delivered to the call', async () => {
      const t = await setup();
      const record = await t.dialing();
      const failing = createCommandRunner({
        calls: { send: () => Promise.reject(new Error('store offline')) },
        clock: t.clock,
        livekit: createLiveKitAdapter({ url: t.standIn.url, apiKey: t.standIn.apiKey, apiSecret: t.standIn.apiSecret, requestTimeoutS: 5 }),
        leases: t.leases,
        logger: t.logger,
        outbound: { trunkId: 'ST_outbound', callerId: '+3197000000000', retryBaseMs: 1000, retryMaxMs: 8000 },
        recording: { filepath: 'recordings/{session_id}.ogg', audioMixing: 'mixed', s3: null },
      });
      failing('dial', record);
      await expect(failing.inFlight()).resolves.toBeUndefined();
      expect(t.standIn.requestsFor('CreateSIPParticipant')).toHaveLength(1);
      expect(t.logs).toContainEqual(
        expect.objectContaining({ level: 'error', msg: 'command result could not be applied', session_id: 'call-out-1', event: 'dial.answered' }),
      );
      expect(await t.leases.held('call-out-1')).toBe(false);
    });
  });

  describe('hangUp', () => {
    it("deletes the call's room, which ends the call for everyone in it", async () => {
      const t = await setup();
      t.standIn.createRoom(ROOM);
      t.run('hangUp', await t.dialing());
      await t.run.inFlight();

      expect(t.standIn.requestsFor('DeleteRoom').map((r) => r.body)).toEqual([{ room: ROOM }]);
      expect(t.standIn.rooms.has(ROOM)).toBe(false);
      // hanging up sends the call nothing: LiveKit's webhooks (or the ending grace) confirm it
      expect(t.sent).toEqual([]);
      expect(t.logs.filter((l) => l.level === 'warn')).toEqual([]);
    });

    it('takes a room that is gone already as hung up, without a warning', async () => {
      const t = await setup();
      t.run('hangUp', await t.dialing());
      await t.run.inFlight();
      expect(t.standIn.requestsFor('DeleteRoom')).toHaveLength(1);
      expect(t.logs.filter((l) => l.level === 'warn')).toEqual([]);
    });

    it('logs a LiveKit failure with its category and does not throw', async () => {
      const t = await setup();
      t.standIn.script('DeleteRoom', { error: { code: 'unavailable', msg: 'try again later' } });
      const record = await t.dialing();
      expect(() => t.run('hangUp', record)).not.toThrow();
      await expect(t.run.inFlight()).resolves.toBeUndefined();

      expect(t.logs).toContainEqual(
        expect.objectContaining({ level: 'warn', msg: 'hang-up request failed', session_id: 'call-out-1', category: 'provider_unavailable' }),
      );
      expect(t.sent).toEqual([]);
    });
  });

  describe('transfer', () => {
    it('asks LiveKit to transfer the caller and reports transfer.succeeded', async () => {
      const t = await setup();
      const record = await t.transferring();
      t.standIn.joinParticipant(record.context.roomName, sipParticipant({ phoneNumber: '+31612345678' }));
      t.run('transfer', record);
      await t.run.inFlight();

      expect(t.standIn.requestsFor('TransferSIPParticipant').map((r) => r.body)).toEqual([
        expect.objectContaining({ roomName: record.context.roomName, participantIdentity: 'sip_+31612345678', transferTo: TRANSFER_TO }),
      ]);
      expect(t.sent).toEqual([{ sessionId: 'call-in-1', event: { type: 'transfer.succeeded' } }]);
    });

    it('sends the REFER options of the transfer', async () => {
      const t = await setup();
      const record = await t.transferring({ sipHeaders: { 'X-Reason': 'billing' }, ringTimeoutS: 20, playDialtone: true });
      t.standIn.joinParticipant(record.context.roomName, sipParticipant({ phoneNumber: '+31612345678' }));
      t.run('transfer', record);
      await t.run.inFlight();

      expect(t.standIn.requestsFor('TransferSIPParticipant')[0]?.body).toMatchObject({
        transferTo: TRANSFER_TO,
        headers: { 'X-Reason': 'billing' },
        ringingTimeout: '20s',
        playDialtone: true,
      });
    });

    it('transfers a call stored before transfers had options with LiveKit\'s defaults', async () => {
      const t = await setup();
      const record = await t.transferring();
      expect(record.context.transferOptions).toBeNull();
      const { transferOptions: _none, ...context } = record.context;
      t.standIn.joinParticipant(record.context.roomName, sipParticipant({ phoneNumber: '+31612345678' }));
      t.run('transfer', { ...record, context });
      await t.run.inFlight();

      const [refer] = t.standIn.requestsFor('TransferSIPParticipant');
      expect(refer?.body).toMatchObject({ transferTo: TRANSFER_TO, ringingTimeout: '30s' });
      for (const key of ['headers', 'playDialtone']) expect(refer?.body).not.toHaveProperty(key);
      expect(t.sent).toEqual([{ sessionId: 'call-in-1', event: { type: 'transfer.succeeded' } }]);
    });

    const failures: [name: string, reply: Behaviour | null, category: string, sip: number | null][] = [
      [
        'the target declining (SIP 603)',
        { error: { code: 'permission_denied', msg: 'refused', meta: { sip_status_code: '603', sip_status: 'Decline' } } },
        'declined',
        603,
      ],
      ['the target being busy (SIP 486)', { error: { code: 'resource_exhausted', msg: 'busy', meta: { sip_status_code: '486', sip_status: 'Busy Here' } } }, 'busy', 486],
      ['LiveKit being unavailable', { error: { code: 'unavailable', msg: 'no SIP service available' } }, 'provider_unavailable', null],
      // the stand-in's own answer: the caller is no longer in the room
      ['the caller having left the room (not_found)', null, 'config_error', null],
    ];
    for (const [name, reply, category, sip] of failures) {
      it(`reports ${name} as transfer.failed/${category}`, async () => {
        const t = await setup();
        if (reply) t.standIn.script('TransferSIPParticipant', reply);
        t.run('transfer', await t.transferring());
        await t.run.inFlight();

        expect(t.standIn.requestsFor('TransferSIPParticipant')).toHaveLength(1);
        expect(t.sent).toEqual([
          {
            sessionId: 'call-in-1',
            event: { type: 'transfer.failed', error: { category, retryable: expect.any(Boolean), sipStatusCode: sip, message: expect.any(String) } },
          },
        ]);
        expect(t.logs).toContainEqual(expect.objectContaining({ level: 'warn', msg: 'transfer failed', category }));
      });
    }

    it('fails as config_error without asking LiveKit when the call has no transfer target', async () => {
      const t = await setup();
      const record = await t.transferring();
      t.run('transfer', { ...record, context: { ...record.context, transferTarget: null } });
      await t.run.inFlight();

      expect(t.standIn.requests).toEqual([]);
      expect(t.sent.map((s) => s.event)).toEqual([
        { type: 'transfer.failed', error: expect.objectContaining({ category: 'config_error', retryable: false }) },
      ]);
    });
  });

  describe('inFlight() and handOver()', () => {
    it('inFlight() resolves only once every command has finished and its result was delivered', async () => {
      const t = await setup();
      const dial = await t.dialInFlight();
      const transfer = t.hold('TransferSIPParticipant');
      t.run('transfer', await t.transferring());
      t.run('hangUp', (await t.store.get('call-out-1')) as CallRecord);
      await transfer.arrived();

      let settled = false;
      const waiting = t.run.inFlight().then(() => (settled = true));
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(settled).toBe(false);
      dial.open();
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(settled).toBe(false);
      transfer.open({ ok: {} });
      await waiting;

      expect(t.sent.map((s) => `${s.sessionId} ${s.event.type}`).sort()).toEqual(['call-in-1 transfer.succeeded', 'call-out-1 dial.answered']);
    });

    it('handOver() releases the leases of dials in flight and returns without waiting for them', async () => {
      const t = await setup();
      const dial = await t.dialInFlight();
      expect(await t.leases.held('call-out-1')).toBe(true);

      const outcome = await Promise.race([
        t.run.handOver(60_000).then(() => 'handed over'),
        new Promise((resolve) => setTimeout(() => resolve('still waiting'), 2000)),
      ]);
      expect(outcome).toBe('handed over');
      // Other replicas' reconciliation may now ask LiveKit what became of the dial.
      expect(await t.leases.held('call-out-1')).toBe(false);
      expect(t.sent).toEqual([]);

      // The dial itself was not abandoned: its answer is still delivered if the process lives on.
      dial.open();
      await t.run.inFlight();
      expect(t.sent.map((s) => s.event.type)).toEqual(['dial.answered']);
    });

    // The dial's lease renewal (every DIAL_LEASE_MS / 3 = 5 s) must not take the lease back, or
    // other replicas would leave the dial alone while this one shuts down and for 15 s after.
    it('handOver() keeps the lease of a handed-over dial released while that dial still rings', async () => {
      const t = await setup();
      vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
      try {
        const dial = await t.dialInFlight();
        await t.run.handOver(0);
        expect(await t.leases.held('call-out-1')).toBe(false);

        vi.advanceTimersByTime(5_000);
        await new Promise((resolve) => setTimeout(resolve, 10));
        expect(await t.leases.held('call-out-1')).toBe(false);
        dial.open();
        await t.run.inFlight();
      } finally {
        vi.useRealTimers();
      }
    });

    it('handOver() waits for hang-ups and transfers in flight, but at most waitMs', async () => {
      const t = await setup();
      const transfer = t.hold('TransferSIPParticipant');
      t.run('transfer', await t.transferring());
      await transfer.arrived();
      setTimeout(() => transfer.open({ ok: {} }), 100);
      await t.run.handOver(60_000);
      expect(t.sent.map((s) => s.event.type)).toEqual(['transfer.succeeded']);

      t.standIn.script('DeleteRoom', { hang: true });
      t.run('hangUp', (await t.store.get('call-in-1')) as CallRecord);
      await vi.waitFor(() => expect(t.standIn.requestsFor('DeleteRoom')).toHaveLength(1));
      const started = Date.now();
      await t.run.handOver(100);
      expect(Date.now() - started).toBeLessThan(2000);
    });
  });
});
