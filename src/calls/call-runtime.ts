// The call runtime: one XState actor per live call. Every event for a call goes through one
// queue per call, so a call has one writer. An event is applied to the actor, the new snapshot
// and the transition's OBS-00 events are committed to the store together, and only then are
// the events published and the chart's commands carried out. A commit that fails leaves the
// stored call as it was and drops the in-memory actor, so the next event starts from the store.
import { createActor, type Actor, type InspectionEvent } from 'xstate';
import { CALL_MACHINE_ID } from '../../machines/call.machine.js';
import { isFinalState, type CallEvent, type CallInput, type TimerName } from '../../machines/call.types.js';
import type { ObsEnvelope } from '../obs/envelope.js';
import type { EventBus } from '../obs/event-bus.js';
import { callLogger, logObsEvent, type Logger } from '../obs/logger.js';
import { createCallLogic, type CallEffect, type CallLogic } from './call.logic.js';
import { KeyedQueue } from './keyed-queue.js';
import { publicState } from '../http/session.js';
import { nextDeadline, type CallLease, type CallOptions, type CommitOptions, type CallRecord, type CallStore, type StatusCallbackChoice } from '../store/call-store.port.js';
import type { Delivery } from '../store/outbox.port.js';
import { VersionConflictError } from '../store/errors.js';
import { upgrade } from './migrations.js';
import type { Clock, Scheduler } from './timers.js';

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
/** An event as callers send it; the runtime stamps `at` when it applies it. */
export type IncomingEvent = DistributiveOmit<CallEvent, 'at'> & {
  at?: number;
  /** the LiveKit webhook this event came from: applied at most once per call */
  webhookId?: string;
};

/** How many recent webhook ids a call remembers with its state. */
const REMEMBERED_WEBHOOKS = 16;

export type SendResult =
  | { outcome: 'applied'; record: CallRecord; events: ObsEnvelope[] }
  /** the call's current state does not accept the event (the chart decides) */
  | { outcome: 'rejected'; record: CallRecord }
  /** the call is final: nothing changes any more */
  | { outcome: 'ignored'; record: CallRecord }
  | { outcome: 'not_found' };

/**
 * Carries out a chart command for a call (LiveKit I/O); its result comes back as an event sent
 * to the call. The runtime calls it once the transition that asked for it is stored.
 */
export type CommandRunner = (command: Extract<CallEffect, { kind: 'command' }>['command'], record: CallRecord) => void;

export interface CallRuntimeOptions {
  store: CallStore;
  bus: EventBus;
  logger: Logger;
  clock: Clock;
  scheduler: Scheduler;
  /** ids of OBS-00 events */
  newId: () => string;
  /** where the chart's commands go (src/outbound/call-commands.ts in the service) */
  commands: CommandRunner;
  /** attach the Stately inspector to every actor */
  inspect?: (event: InspectionEvent) => void;
  /**
   * Called with a commit's events once they are stored, before the call's next event is taken
   * (the shared event log of several replicas). A failure is logged: the commit stands.
   */
  afterCommit?: (envelopes: readonly ObsEnvelope[]) => Promise<unknown>;
  /**
   * Status callbacks: `plan` names the deliveries a commit's events cause (recorded in the same
   * commit); `recorded` is told once a commit that recorded some is stored.
   */
  statusCallbacks?: {
    plan(record: CallRecord, envelopes: readonly ObsEnvelope[]): Delivery[];
    recorded(): void;
  };
}

/** What the carriers of LiveKit I/O need of the runtime: a way to tell a call what happened. */
export interface CallEvents {
  send(sessionId: string, event: IncomingEvent): Promise<SendResult>;
}

/** An action or guard of the chart threw: a defect, reported without taking the process down. */
export class CallLogicError extends Error {
  constructor(sessionId: string, options: { cause: unknown }) {
    super(`call ${sessionId}: the call logic failed`, options);
    this.name = 'CallLogicError';
  }
}

interface LiveCall {
  actor: Actor<CallLogic>;
  record: CallRecord;
  /** set when the actor reported an error */
  failure: unknown;
}

const TIMER_EVENTS = {
  ring: 'timer.ring_deadline',
  maxDuration: 'timer.max_duration',
  retry: 'timer.retry',
  endingGrace: 'timer.ending_grace',
  agentGrace: 'timer.agent_grace',
  agentJoin: 'timer.agent_join',
} as const satisfies Record<TimerName, string>;

/** The one event a final call still takes (a recording ends after its call). */
const FINAL_CALL_EVENT = 'recording.updated';

const TIMER_RETRY_MS = 1000;
const MAX_CONFLICT_RETRIES = 3;

export class CallRuntime implements CallEvents {
  private readonly live = new Map<string, LiveCall>();
  private readonly lanes = new KeyedQueue();
  private readonly logic: CallLogic;
  /** effects of the transition being taken, by session id; filled synchronously during send */
  private capture: { sessionId: string; effects: CallEffect[] } | null = null;
  private stopped = false;

  constructor(private readonly options: CallRuntimeOptions) {
    this.logic = createCallLogic((sessionId, effect) => {
      if (this.capture?.sessionId === sessionId) this.capture.effects.push(effect);
      else callLogger(this.options.logger, sessionId).error({ effect: effect.kind }, 'call effect outside a transition was dropped');
    });
  }

  /**
   * Creates a call from its input and commits its first events. A call with this id that exists
   * already is a VersionConflictError.
   */
  async create(
    input: Omit<CallInput, 'at'> & { at?: number },
    extra: { webhookId?: string; statusCallback?: StatusCallbackChoice; callOptions?: CallOptions } = {},
  ): Promise<CallRecord> {
    const { webhookId, statusCallback, callOptions } = extra;
    return this.lanes.run(input.sessionId, () => this.options.store.withCallLock(input.sessionId, async (lease) => {
      if (lease.record) throw new VersionConflictError(input.sessionId, lease.record.version + 1, 1);
      const full: CallInput = { ...input, at: input.at ?? this.options.clock.now() };
      const live = this.spawn({ input: full });
      const effects = this.collect(input.sessionId, () => live.actor.start());
      const blank: CallRecord = {
        id: input.sessionId,
        machine: CALL_MACHINE_ID,
        state: 'queued',
        context: live.actor.getSnapshot().context,
        snapshot: null as unknown as CallRecord['snapshot'], // never stored: the first commit makes the stored record
        lastSeq: 0,
        version: 0,
        webhookIds: [],
        ...(statusCallback ? { statusCallback } : {}),
        ...(callOptions ? { callOptions } : {}),
      };
      return (await this.commit(live, blank, effects, { webhookId, lease })).record;
    }));
  }

  /**
   * Applies one event to a call, in arrival order with every other event of the call. With
   * `stored`, the call as the caller just read it from the store, the event is applied to that
   * (or to this process's newer copy) and committed without taking the writer lease first: the
   * commit's compare-and-set still makes it the only writer of its version, and if another writer
   * came first the event is applied again under the lease, from the new state.
   */
  send(sessionId: string, event: IncomingEvent, stored?: CallRecord): Promise<SendResult> {
    return this.lanes.run(sessionId, async () => {
      if (stored) {
        const cached = this.live.get(sessionId)?.record;
        const record = cached && cached.version > stored.version ? cached : stored;
        try {
          return await this.apply(sessionId, event, { record });
        } catch (err) {
          if (!(err instanceof VersionConflictError)) throw err;
        }
      }
      return this.applyLocked(sessionId, event);
    });
  }

  /** Resolves once every queued event of every call has been applied. */
  idle(): Promise<void> {
    return this.lanes.idle();
  }

  get liveCount(): number {
    return this.live.size;
  }

  /** Waits for queued events to finish, then stops every actor and timer. Stored calls stay. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.lanes.idle();
    this.options.scheduler.cancelAll();
    for (const [id, live] of this.live) {
      live.actor.stop();
      this.live.delete(id);
    }
  }

  private spawn(init: { input: CallInput } | { record: CallRecord }): LiveCall {
    const actor =
      'input' in init
        ? createActor(this.logic, { input: init.input, inspect: this.options.inspect })
        : // The input is unused when a snapshot is given: the context comes from the snapshot.
          createActor(this.logic, { snapshot: init.record.snapshot as never, input: init.record.context as never, inspect: this.options.inspect });
    const live: LiveCall = {
      actor,
      record: 'record' in init ? init.record : (undefined as unknown as CallRecord),
      failure: undefined,
    };
    // Without an error subscriber xstate rethrows on a timer and the process dies.
    actor.subscribe({
      error: (err) => {
        live.failure = err;
      },
    });
    return live;
  }

  private collect(sessionId: string, run: () => void): CallEffect[] {
    const capture = { sessionId, effects: [] as CallEffect[] };
    this.capture = capture;
    try {
      run();
    } finally {
      this.capture = null;
    }
    return capture.effects;
  }

  /**
   * The call as stored, with its actor. A cached actor is used only while it is as new as the
   * store's record: another replica may have moved the call on since.
   */
  private load(sessionId: string, eventType: IncomingEvent['type'], record: CallRecord | undefined): LiveCall | CallRecord | undefined {
    const cached = this.live.get(sessionId);
    if (cached && record && cached.record.version === record.version) return cached;
    if (cached) this.evict(sessionId, cached);
    if (!record) return record;
    const final = isFinalState(record.state);
    // A final call takes recording updates and nothing else (the chart's final states): its actor
    // is restored for the one event and dropped again once it is committed.
    if (final && eventType !== FINAL_CALL_EVENT) return record;
    const live = this.spawn({ record: upgrade(record) });
    live.actor.start();
    if (!final) {
      // Restored from the store: xstate re-arms no timers, so they are armed from the context.
      this.live.set(sessionId, live);
      this.armTimer(live.record);
    }
    return live;
  }

  /** One writer per call across replicas; a commit that lost a race is retried on the new state. */
  private async applyLocked(sessionId: string, event: IncomingEvent): Promise<SendResult> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.options.store.withCallLock(sessionId, (lease) => this.apply(sessionId, event, lease));
      } catch (err) {
        if (!(err instanceof VersionConflictError) || attempt >= MAX_CONFLICT_RETRIES) throw err;
      }
    }
  }

  private async apply(sessionId: string, incoming: IncomingEvent, lease: CallLease): Promise<SendResult> {
    const loaded = this.load(sessionId, incoming.type, lease.record);
    if (!loaded) return { outcome: 'not_found' };
    if (!('actor' in loaded)) return { outcome: 'ignored', record: loaded };
    const live = loaded;
    const { webhookId, ...rest } = incoming;
    if (webhookId && live.record.webhookIds.includes(webhookId)) return { outcome: 'ignored', record: live.record };
    const event = { ...rest, at: incoming.at ?? this.options.clock.now() } as CallEvent;
    const before = live.actor.getSnapshot();
    if (before.status !== 'active') return { outcome: 'ignored', record: live.record };
    let effects: CallEffect[];
    try {
      if (!before.can(event)) return { outcome: 'rejected', record: live.record };
      effects = this.collect(sessionId, () => live.actor.send(event));
    } catch (err) {
      live.failure = err;
      effects = [];
    }
    return this.commit(live, live.record, effects, { webhookId, lease });
  }

  private async commit(
    live: LiveCall,
    previous: CallRecord,
    effects: CallEffect[],
    { webhookId, lease }: CommitOptions,
  ): Promise<Extract<SendResult, { outcome: 'applied' }>> {
    const id = previous.id;
    if (live.failure !== undefined) {
      this.evict(id, live);
      throw new CallLogicError(id, { cause: live.failure });
    }
    const snapshot = live.actor.getSnapshot();
    const state = publicState(snapshot.value);
    const ts = new Date(this.options.clock.now()).toISOString();
    const envelopes: ObsEnvelope[] = [];
    for (const effect of effects) {
      if (effect.kind !== 'emit') continue;
      envelopes.push({
        event: effect.event,
        event_id: this.options.newId(),
        ts,
        session_id: id,
        seq: previous.lastSeq + envelopes.length + 1,
        direction: snapshot.context.direction,
        state,
        livekit_room: snapshot.context.roomName,
        data: effect.data,
      });
    }
    const record: CallRecord = withPersistedSnapshot(this.logic, snapshot, {
      id,
      machine: CALL_MACHINE_ID,
      state,
      context: snapshot.context,
      lastSeq: previous.lastSeq + envelopes.length,
      version: previous.version + 1,
      webhookIds: webhookId ? [...previous.webhookIds, webhookId].slice(-REMEMBERED_WEBHOOKS) : previous.webhookIds,
      ...(previous.statusCallback ? { statusCallback: previous.statusCallback } : {}),
      ...(previous.callOptions ? { callOptions: previous.callOptions } : {}),
    });
    const deliveries = this.options.statusCallbacks?.plan(record, envelopes) ?? [];
    try {
      await this.options.store.commit(record, envelopes, deliveries, { webhookId, lease });
    } catch (err) {
      // Nothing was stored: forget the advanced actor; the store still has the call as it was.
      this.evict(id, live);
      throw err;
    }
    live.record = record;
    for (const envelope of envelopes) {
      logObsEvent(this.options.logger, envelope);
      this.options.bus.publish(envelope);
    }
    if (this.options.afterCommit && envelopes.length > 0) {
      await this.options.afterCommit(envelopes).catch((err: unknown) =>
        callLogger(this.options.logger, id).error({ err }, 'committed events could not be added to the event log'),
      );
    }
    if (deliveries.length > 0) this.options.statusCallbacks?.recorded();
    if (isFinalState(state)) {
      this.evict(id, live);
    } else {
      this.live.set(id, live);
      this.armTimer(record);
    }
    for (const effect of effects) {
      if (effect.kind === 'command') this.runCommand(effect.command, record);
    }
    return { outcome: 'applied', record, events: envelopes };
  }

  private runCommand(command: Extract<CallEffect, { kind: 'command' }>['command'], record: CallRecord): void {
    try {
      this.options.commands(command, record);
    } catch (err) {
      // A child logger only when there is something to say: one per live call costs memory.
      callLogger(this.options.logger, record.id).error({ err, command }, 'call command failed to start');
    }
  }

  private evict(id: string, live: LiveCall): void {
    this.options.scheduler.cancel(id);
    live.actor.stop();
    if (this.live.get(id) === live) this.live.delete(id);
  }

  /**
   * Sends the timer event of every deadline of the call that has passed, earliest first. Safe to
   * call at any time and from any replica: the chart's guards ignore a deadline that moved.
   */
  fireDue(sessionId: string): Promise<void> {
    // In the call's queue, so it is ordered with the call's other events and idle() waits for it.
    return this.lanes.run(sessionId, async () => {
      const record = await this.options.store.get(sessionId);
      if (!record || isFinalState(record.state)) {
        // Another replica ended the call (or it expired): this process's actor has nothing left to do.
        const cached = this.live.get(sessionId);
        if (cached) this.evict(sessionId, cached);
        return;
      }
      const now = this.options.clock.now();
      const due = (Object.entries(record.context.deadlines) as [TimerName, number | null][])
        .filter((entry): entry is [TimerName, number] => entry[1] !== null && entry[1] <= now)
        .sort((a, b) => a[1] - b[1]);
      for (const [timer] of due) {
        const result = await this.applyLocked(sessionId, { type: TIMER_EVENTS[timer] });
        if (result.outcome === 'applied') return;
      }
      // Every due deadline was refused by the chart: keep the later ones armed all the same.
      if (due.length > 0) this.armTimer(record, now);
    });
  }

  /** Arms the call's earliest deadline (the earliest after `after`, when given). */
  private armTimer(record: CallRecord, after?: number): void {
    const at =
      after === undefined
        ? nextDeadline(record)
        : (Object.values(record.context.deadlines)
            .filter((deadline): deadline is number => deadline !== null && deadline > after)
            .sort((a, b) => a - b)[0] ?? null);
    if (at === null || this.stopped) {
      this.options.scheduler.cancel(record.id);
      return;
    }
    const fire = (): void => {
      this.fireDue(record.id).catch((err: unknown) => {
        // The store could not take the change: try again shortly rather than lose the deadline.
        callLogger(this.options.logger, record.id).error({ err }, 'timer event could not be applied; retrying');
        if (!this.stopped) this.options.scheduler.schedule(record.id, this.options.clock.now() + TIMER_RETRY_MS, fire);
      });
    };
    this.options.scheduler.schedule(record.id, at, fire);
  }
}

/**
 * The record with its `snapshot` made from the actor's snapshot when first read: a store that
 * serializes the record reads it at once, the in-memory store only if the call has to be restored
 * (its actor dropped after a failed commit). The record keeps the actor's own snapshot, whose
 * context is the record's, rather than a persisted copy of it.
 */
function withPersistedSnapshot(logic: CallLogic, snapshot: ReturnType<Actor<CallLogic>['getSnapshot']>, fields: Omit<CallRecord, 'snapshot'>): CallRecord {
  let persisted: CallRecord['snapshot'] | undefined;
  return Object.defineProperty(fields, 'snapshot', {
    enumerable: true,
    configurable: true,
    get: () => (persisted ??= logic.getPersistedSnapshot(snapshot) as CallRecord['snapshot']),
  }) as CallRecord;
}
