// The call runtime: one actor per live call, commit-then-publish, timers from deadlines, and a
// defect in one call never reaching the others or the process.
import { describe, expect, it } from 'vitest';
import { CallLogicError, CallRuntime } from '../../src/calls/call-runtime.js';
import { MachineVersionError } from '../../src/calls/migrations.js';
import { createEventBus } from '../../src/obs/event-bus.js';
import { createLogger } from '../../src/obs/logger.js';
import type { CallContext } from '../../machines/call.types.js';
import type { CallRecord, CallStore } from '../../src/store/call-store.port.js';
import { StoreUnavailableError } from '../../src/store/errors.js';
import { createCallHarness, inboundInput, outboundInput, seqGaps } from '../support/call-harness.js';

/** Another process on the same store: nothing cached, every call restored from its record. */
function freshRuntime(store: CallStore, harness: ReturnType<typeof createCallHarness>): CallRuntime {
  return new CallRuntime({
    store,
    bus: createEventBus(),
    logger: createLogger({ level: 'silent' }),
    clock: harness.clock,
    scheduler: harness.scheduler,
    newId: () => 'fresh-id',
    commands: () => undefined,
  });
}

describe('CallRuntime', () => {
  it('stores the chart version with every call and refuses to restore a call of another version', async () => {
    const harness = createCallHarness();
    const { runtime, store } = harness;
    await runtime.create(inboundInput());
    const stored = await store.get('call-in-1');
    expect(stored?.machine).toBe('call-v3');

    // The same call as a future chart would have stored it.
    await store.commit({ ...(stored as NonNullable<typeof stored>), machine: 'call-v9', version: 2 }, []);
    const other = freshRuntime(store, harness);
    const failure = await other.send('call-in-1', { type: 'api.hangup' }).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(MachineVersionError);
    expect((failure as Error).message).toBe('call call-in-1 was stored by chart call-v9; this service runs call-v3 and has no migration from it');
    expect(await store.get('call-in-1')).toMatchObject({ machine: 'call-v9', state: 'ringing', version: 2 });
  });

  /** The context as chart call-v2 stored it: no recording, no `record` setting. */
  const stripV3 = (context: CallContext) => {
    const { recording: _recording, ...rest } = context;
    const { record: _record, ...settings } = context.settings;
    return { ...rest, settings } as unknown as CallContext;
  };

  /** The call as chart call-v1 stored it: no agent watchdog deadline or setting; `named`: with its chart's name. */
  async function storeAsV1(store: CallStore, id: string, named: boolean): Promise<void> {
    const current = (await store.get(id)) as CallRecord;
    const strip = (context: CallContext) => {
      const v2 = stripV3(context);
      const { agentJoin: _deadline, ...deadlines } = v2.deadlines;
      const { agentJoinTimeoutS: _setting, ...settings } = v2.settings;
      return { ...v2, deadlines, settings } as unknown as CallContext;
    };
    const { machine: _machine, ...unnamed } = current;
    const v1 = { ...unnamed, ...(named ? { machine: 'call-v1' } : {}), version: current.version + 1, context: strip(current.context) };
    await store.commit({ ...v1, snapshot: { ...(current.snapshot as object), context: v1.context } } as unknown as CallRecord, []);
  }

  it('migrates a connected call-v2 call: it goes on unrecorded, and its end still takes recording updates', async () => {
    const harness = createCallHarness();
    const { runtime, store } = harness;
    await runtime.create({ ...inboundInput(), sipCallStatus: 'active' });
    const current = (await store.get('call-in-1')) as CallRecord;
    const context = stripV3(current.context);
    await store.commit({ ...current, machine: 'call-v2', version: current.version + 1, context, snapshot: { ...(current.snapshot as object), context } } as unknown as CallRecord, []);
    const other = freshRuntime(store, harness);
    const result = await other.send('call-in-1', { type: 'livekit.room_finished' });
    expect(result).toMatchObject({ outcome: 'applied', record: { machine: 'call-v3', state: 'ended', context: { recording: null, settings: { record: false } } } });
    // Nothing was recorded, so an egress of its room is none of its business.
    const egress = { egressId: 'EG_other', status: 'complete' as const, startedAt: 1, endedAt: 2, durationS: 1, sizeBytes: 1, location: 'x.ogg', error: null };
    expect(await other.send('call-in-1', { type: 'recording.updated', recording: egress })).toMatchObject({ outcome: 'rejected' });
  });

  it('restores a call stored before records named their chart as call-v1, and goes on with it as call-v3', async () => {
    const harness = createCallHarness();
    const { runtime, store } = harness;
    await runtime.create(inboundInput());
    await storeAsV1(store, 'call-in-1', false);
    const other = freshRuntime(store, harness);
    expect(await other.send('call-in-1', { type: 'livekit.room_finished' })).toMatchObject({ outcome: 'applied', record: { machine: 'call-v3', state: 'ended' } });
  });

  it('migrates a connected call-v1 call: it goes on without the agent watchdog it was answered without', async () => {
    const harness = createCallHarness();
    const { runtime, store } = harness;
    await runtime.create({ ...inboundInput(), sipCallStatus: 'active' });
    const answered = (await store.get('call-in-1')) as CallRecord;
    expect(answered).toMatchObject({ state: 'connected', context: { deadlines: { agentJoin: expect.any(Number) } } });
    await storeAsV1(store, 'call-in-1', true);
    const other = freshRuntime(store, harness);
    const result = await other.send('call-in-1', { type: 'livekit.agent_left', participant: { identity: 'agent-x', sid: null }, reason: 'CLIENT_INITIATED' });
    expect(result).toMatchObject({ outcome: 'applied', record: { machine: 'call-v3', state: 'connected' } });
    const migrated = (await store.get('call-in-1')) as CallRecord;
    expect(migrated.context.deadlines.agentJoin).toBeNull();
    expect(migrated.context.settings.agentJoinTimeoutS).toBe(0);
    expect(migrated.context.deadlines.agentGrace).not.toBeNull();
  });

  it('keeps a call\'s SIP options on its record through every commit, also when restored, and never in the chart', async () => {
    const harness = createCallHarness();
    const { runtime, store } = harness;
    const callOptions = { sipHeaders: { 'X-Customer-Id': 'cust-42' }, displayName: 'Acme Support', dtmf: '1234#w987' };
    await runtime.create(outboundInput(), { callOptions });
    await runtime.send('call-out-1', { type: 'dial.slot_granted' });
    const other = freshRuntime(store, harness);
    await other.send('call-out-1', { type: 'api.hangup' });

    const stored = await store.get('call-out-1');
    expect(stored).toMatchObject({ state: 'ended', version: 3, callOptions });
    expect(JSON.stringify([stored?.context, stored?.snapshot, await store.events('call-out-1')])).not.toContain('1234#w987');
  });

  it('finds a live call by room sid, room name and SIP identity, and forgets the indexes when it ends', async () => {
    const { runtime, store } = createCallHarness();
    await runtime.create(inboundInput());
    expect(await store.findLiveByRoom({ sid: 'RM_inbound', name: 'ignored' })).toBe('call-in-1');
    expect(await store.findLiveByRoom({ sid: null, name: 'call-_+31612345678_abc' })).toBe('call-in-1');
    expect(await store.findLiveByRoom({ sid: 'RM_other', name: 'call-_+31612345678_abc' })).toBeUndefined();
    expect(await store.findLiveBySipIdentity('sip_+31612345678')).toBe('call-in-1');

    await runtime.send('call-in-1', { type: 'livekit.sip_left', participant: { identity: 'sip_+31612345678', sid: null }, reason: 'CLIENT_INITIATED' });
    expect(await store.findLiveByRoom({ sid: 'RM_inbound', name: 'call-_+31612345678_abc' })).toBeUndefined();
    expect(await store.findLiveBySipIdentity('sip_+31612345678')).toBeUndefined();
    expect((await store.get('call-in-1'))?.state).toBe('ended');
  });

  it('stops and releases the actor and its timer when a call reaches a final state', async () => {
    const { runtime, scheduler } = createCallHarness();
    await runtime.create(inboundInput());
    expect(runtime.liveCount).toBe(1);
    expect(scheduler.size).toBe(1); // the ring deadline
    await runtime.send('call-in-1', { type: 'livekit.room_finished' });
    expect(runtime.liveCount).toBe(0);
    expect(scheduler.size).toBe(0);
    expect(await runtime.send('call-in-1', { type: 'api.hangup' })).toMatchObject({ outcome: 'ignored' });
  });

  it('rejects an event the current state does not accept and changes nothing', async () => {
    const { runtime, store } = createCallHarness();
    await runtime.create(inboundInput());
    const result = await runtime.send('call-in-1', { type: 'api.transfer', to: '+31201234567' });
    expect(result).toMatchObject({ outcome: 'rejected', record: { state: 'ringing', version: 1 } });
    expect(await store.events('call-in-1')).toHaveLength(2);
  });

  it('answers not_found for an unknown call', async () => {
    const { runtime } = createCallHarness();
    expect(await runtime.send('nope', { type: 'api.hangup' })).toEqual({ outcome: 'not_found' });
  });

  it('fires a deadline as a timer event at the absolute time in the context', async () => {
    const { runtime, store, scheduler, clock, commands } = createCallHarness();
    await runtime.create(inboundInput());
    expect(scheduler.dueAt('call-in-1')).toBe(clock.now() + 30_000);
    const settle = async () => {
      await new Promise((resolve) => setTimeout(resolve, 0));
      await runtime.idle();
    };
    scheduler.advance(29_999);
    await settle();
    expect((await store.get('call-in-1'))?.state).toBe('ringing');
    scheduler.advance(1);
    await settle();
    expect(await store.get('call-in-1')).toMatchObject({ state: 'ending', context: { hangupCause: 'no_answer' } });
    expect(commands).toContainEqual({ command: 'hangUp', sessionId: 'call-in-1' });
    // the ending grace deadline is armed next
    expect(scheduler.dueAt('call-in-1')).toBe(clock.now() + 10_000);
  });

  it('reports a defect in one call as CallLogicError and keeps serving it and other calls', async () => {
    const { runtime, store } = createCallHarness();
    await runtime.create(outboundInput());
    await runtime.create(inboundInput());
    await runtime.send('call-out-1', { type: 'dial.slot_granted' });
    // A dial result without its error object makes a guard throw: a programming error upstream.
    await expect(runtime.send('call-out-1', { type: 'dial.failed', attempt: 1, retryAt: null } as never)).rejects.toBeInstanceOf(CallLogicError);
    // The call is reloaded from the store as it was, and goes on.
    const answered = await runtime.send('call-out-1', { type: 'dial.answered', attempt: 1, participantIdentity: 'sip-call-out-1-1', sipCallId: 'SCL_1' });
    expect(answered).toMatchObject({ outcome: 'applied', record: { state: 'connected' } });
    expect(await runtime.send('call-in-1', { type: 'livekit.agent_joined', participant: { identity: 'agent', sid: null } })).toMatchObject({
      record: { state: 'connected' },
    });
    expect(seqGaps((await store.events('call-out-1')) ?? [])).toEqual([]);
  });

  it('publishes nothing and keeps the stored call when the store refuses a commit', async () => {
    const { runtime, store, published } = createCallHarness();
    await runtime.create(inboundInput());
    const before = published.length;
    const commit = store.commit.bind(store);
    store.commit = async () => {
      throw new StoreUnavailableError('offline');
    };
    await expect(runtime.send('call-in-1', { type: 'livekit.agent_joined', participant: { identity: 'a', sid: null } })).rejects.toBeInstanceOf(
      StoreUnavailableError,
    );
    expect(published).toHaveLength(before);
    expect((await store.get('call-in-1'))?.state).toBe('ringing');
    store.commit = commit;
    const retried = await runtime.send('call-in-1', { type: 'livekit.agent_joined', participant: { identity: 'a', sid: null } });
    expect(retried).toMatchObject({ outcome: 'applied', record: { state: 'connected', lastSeq: 4 } });
  });

  it('applies an event to the call as the caller read it, and again from the new state when another writer came first', async () => {
    const harness = createCallHarness();
    const { runtime, store } = harness;
    await runtime.create(inboundInput());
    const read = (await store.get('call-in-1')) as CallRecord;
    // Another replica moves the call on after the read: the agent joins there.
    const other = freshRuntime(store, harness);
    await other.send('call-in-1', { type: 'livekit.agent_joined', participant: { identity: 'a1', sid: null } });
    const result = await runtime.send('call-in-1', { type: 'api.hangup' }, read);
    expect(result).toMatchObject({ outcome: 'applied', record: { state: 'ending', version: 3 } });
    const events = (await store.events('call-in-1')) ?? [];
    expect(events.map((e) => e.event)).toEqual(['call.created', 'call.ringing', 'call.agent_joined', 'call.started', 'call.ending']);
    expect(seqGaps(events)).toEqual([]);
    // The read is current: one commit, from it.
    const current = (await store.get('call-in-1')) as CallRecord;
    expect(await runtime.send('call-in-1', { type: 'livekit.room_finished' }, current)).toMatchObject({ outcome: 'applied', record: { state: 'ended', version: 4 } });
  });

  it('applies concurrent events of one call one at a time, in arrival order', async () => {
    const { runtime, store } = createCallHarness();
    await runtime.create(inboundInput());
    const results = await Promise.all([
      runtime.send('call-in-1', { type: 'livekit.agent_joined', participant: { identity: 'a1', sid: null } }),
      runtime.send('call-in-1', { type: 'api.hangup' }),
      runtime.send('call-in-1', { type: 'api.hangup' }),
      runtime.send('call-in-1', { type: 'livekit.room_finished' }),
    ]);
    expect(results.map((r) => r.outcome)).toEqual(['applied', 'applied', 'applied', 'applied']);
    const events = (await store.events('call-in-1')) ?? [];
    expect(events.map((e) => e.event)).toEqual(['call.created', 'call.ringing', 'call.agent_joined', 'call.started', 'call.ending', 'call.ended']);
    expect(events.at(-1)?.data).toMatchObject({ end_reason: 'api_hangup' });
  });

  it('stamps every OBS-00 envelope with the docs/events.md fields', async () => {
    const { runtime, published, clock } = createCallHarness();
    await runtime.create(inboundInput());
    expect(published[0]).toEqual({
      event: 'call.created',
      event_id: expect.any(String),
      ts: new Date(clock.now()).toISOString(),
      session_id: 'call-in-1',
      seq: 1,
      direction: 'inbound',
      state: 'ringing',
      livekit_room: 'call-_+31612345678_abc',
      data: { caller_number: '+31612345678', callee_number: '+3197010206472', agent: null, metadata: null },
    });
    expect(new Set(published.map((e) => e.event_id)).size).toBe(published.length);
  });
});
