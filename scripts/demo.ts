// `npm run demo`: the control plane and an embedded LiveKit stand-in with development keys,
// playing a few inbound calls and two outbound calls so a newcomer, with no LiveKit account, sees OBS-00 events and
// final states. The stand-in signs its webhooks exactly as LiveKit does and the service
// verifies them; nothing in the service knows it is a demo. Every event also goes out as a
// status callback to a small local receiver that verifies it with the `standardwebhooks`
// package, as a customer's backend would; it refuses one delivery once, so a retry shows.
//
//   npm run demo              play the calls, print what happened, exit
//   npm run demo -- --serve   keep running afterwards (Control API on the printed URL)
//   INSPECT=1 npm run demo    also start the Stately inspector and keep running
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadConfig } from '../src/config.js';
import { startInspector } from '../src/obs/inspector.js';
import { createLiveKitAdapter } from '../src/livekit/livekit.adapter.js';
import { createLogger } from '../src/obs/logger.js';
import { maskDeep, maskPhoneNumbers } from '../src/obs/mask.js';
import { createService } from '../src/service.js';
import type { Session } from '../src/http/session.js';
import { startLiveKitStandIn } from '../dev/livekit-standin.js';
import { agentParticipant, sipParticipant } from '../dev/webhook-events.js';
import { startStatusCallbackReceiver, type Answer, type ReceivedCallback } from '../dev/status-callback-receiver.js';

const DEMO_API_KEY = 'demo-control-api-key';
const TRUNK_NUMBER = '+3197010206472';
/** one retry, about a second after the refused attempt, so the demo stays quick */
const RETRY_SCHEDULE_S = '1';
/** the receiver refuses the first delivery of this event once */
const REFUSED_ONCE = 'call.agent_joined';
const SETTLE_DELIVERIES_MS = 20_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const serve = process.argv.includes('--serve') || ['1', 'true', 'yes', 'on'].includes((process.env.INSPECT ?? '').toLowerCase());

async function listen(server: Server, port: number): Promise<number> {
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || port === 0) throw err;
    console.log(`port ${port} is taken; using a free port instead`);
    return listen(server, 0);
  }
  return (server.address() as AddressInfo).port;
}

interface DeliveryView {
  status: 'pending' | 'delivered' | 'failed' | 'canceled';
  attempts: number;
}

/**
 * The customer's side of the demo: verifies every delivery (the receiver answers 401 to one
 * that fails verification, without asking here) and prints it beside the events.
 */
function demoResponder(): (delivery: ReceivedCallback) => Answer {
  const attempts = new Map<string, number>();
  let refused = false;
  return (delivery) => {
    const attempt = (attempts.get(delivery.id) ?? 0) + 1;
    attempts.set(delivery.id, attempt);
    const event = delivery.payload?.data.event;
    const refuse = !refused && event?.event === REFUSED_ONCE;
    if (refuse) refused = true;
    const status = refuse ? 503 : 200;
    const outcome = refuse ? `→ ${status}, retried in about ${RETRY_SCHEDULE_S} s` : `→ ${status}${attempt > 1 ? ` (attempt ${attempt}, the same webhook-id)` : ''}`;
    console.log(
      `  ${event?.session_id.slice(0, 8)}  #${event?.seq}  ↳ callback ${String(event?.event).padEnd(22)} webhook-id ${delivery.id.slice(0, 8)}…  verified  ${outcome}`,
    );
    return { status };
  };
}

async function main(): Promise<void> {
  // A fresh secret each run, in the form Standard Webhooks prescribes: `whsec_` + base64 of random bytes.
  const secret = `whsec_${randomBytes(32).toString('base64')}`;
  const receiver = await startStatusCallbackReceiver({ secret, respond: demoResponder() });
  const standIn = await startLiveKitStandIn({ webhookUrl: 'http://127.0.0.1:1/webhook', webhookRetryDelaysMs: [200, 400, 800, 1600] });
  const config = loadConfig({
    LIVEKIT_URL: standIn.url,
    LIVEKIT_API_KEY: standIn.apiKey,
    LIVEKIT_API_SECRET: standIn.apiSecret,
    CONTROL_API_KEYS: DEMO_API_KEY,
    SIP_OUTBOUND_TRUNK_ID: 'ST_demo_outbound',
    AGENT_GRACE_S: '1',
    // Short, so the call whose agent never comes (step 5) fails within the demo.
    AGENT_JOIN_TIMEOUT_S: '2',
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
    INSPECT: process.env.INSPECT,
    STATUS_CALLBACK_URL: receiver.url,
    STATUS_CALLBACK_SECRET: secret,
    STATUS_CALLBACK_RETRY_SCHEDULE_S: RETRY_SCHEDULE_S,
  });
  const logger = createLogger({ level: config.logLevel });
  const inspector = config.inspect.enabled ? await startInspector(config.inspect.port, logger) : null;
  const service = createService({ config, logger, livekit: createLiveKitAdapter(config.livekit), inspect: inspector?.inspect });

  service.bus.subscribe((e) => {
    const data = JSON.stringify(maskDeep(e.data));
    console.log(`  ${e.session_id.slice(0, 8)}  #${e.seq}  ${e.event.padEnd(22)} ${e.state.padEnd(10)} ${data}`);
  });

  const server = createServer(service.app.callback());
  const port = await listen(server, Number(process.env.PORT ?? 8000));
  const url = `http://127.0.0.1:${port}`;
  standIn.webhooks?.setUrl(`${url}/webhook`);
  console.log(`Control Plane demo: service on ${url}, LiveKit stand-in on ${standIn.url}`);
  console.log(`Status callbacks go to a receiver on ${receiver.url}, which verifies each with the standardwebhooks package`);
  console.log(`and refuses the first ${REFUSED_ONCE} once with 503, so its retry (and the call's next events waiting for it) shows;`);
  console.log('the service logs that retry as one JSON line at level warn.');
  console.log('OBS-00 events as they happen (session, seq, event, state after the transition, data; numbers masked),');
  console.log('and each status callback as the receiver answers it (↳):\n');

  const settle = async () => {
    await sleep(50);
    // The stand-in's egress changes (a recording starting, finishing its file) and their webhooks.
    await standIn.settled();
    await service.settled();
    // The callbacks of those events are answered before the next step starts (a retry waits).
    await service.statusCallbacks.idle();
  };

  console.log('1. A caller rings in, the agent answers, the caller hangs up');
  const room1 = 'call-_+31612345678_demo1';
  standIn.joinParticipant(room1, sipParticipant({ phoneNumber: '+31612345678', trunkPhoneNumber: TRUNK_NUMBER, callStatus: 'ringing' }));
  await settle();
  standIn.joinParticipant(room1, agentParticipant({ identity: 'agent-receptionist' }));
  await settle();
  await sleep(1000);
  standIn.leaveParticipant(room1, 'sip_+31612345678', 'CLIENT_INITIATED');
  standIn.finishRoom(room1);
  await settle();

  console.log('\n2. A caller rings in, the agent answers and then leaves: the plane hangs up after the grace period');
  const room2 = 'call-_+31687654321_demo2';
  standIn.joinParticipant(room2, sipParticipant({ phoneNumber: '+31687654321', trunkPhoneNumber: TRUNK_NUMBER, callStatus: 'ringing' }));
  standIn.joinParticipant(room2, agentParticipant({ identity: 'agent-receptionist' }));
  await settle();
  standIn.leaveParticipant(room2, 'agent-receptionist', 'CLIENT_INITIATED');
  await settle();
  await sleep(config.calls.agentGraceS * 1000 + 300);
  await settle();

  console.log('\n3. A caller rings in and hangs up before any agent joins');
  const room3 = 'call-_+31201234567_demo3';
  standIn.joinParticipant(room3, sipParticipant({ phoneNumber: '+31201234567', trunkPhoneNumber: TRUNK_NUMBER, callStatus: 'ringing' }));
  await settle();
  standIn.leaveParticipant(room3, 'sip_+31201234567', 'CLIENT_INITIATED');
  standIn.finishRoom(room3);
  await settle();

  console.log('\n4. An outbound call placed through the Control API with "record": true, answered, then hung up through the API:');
  console.log('   the plane stops the recording before it deletes the room, and LiveKit finishes the file after the call ended');
  const api = (path: string, body?: unknown) =>
    fetch(`${url}${path}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${DEMO_API_KEY}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  const placed = (await (await api('/v1/calls', { to: '+31687654321', agent: 'receptionist', metadata: { ticket: 'DEMO-1' }, record: true })).json()) as Session;
  await settle();
  standIn.joinParticipant(placed.livekit_room, agentParticipant({ identity: 'agent-receptionist-out' }));
  await settle();
  await sleep(1000);
  await api(`/v1/calls/${placed.id}/hangup`);
  await settle();
  const recorded = (await (await fetch(`${url}/v1/calls/${placed.id}`, { headers: { Authorization: `Bearer ${DEMO_API_KEY}` } })).json()) as Session;
  const file = recorded.recording;
  console.log(`   recording ${file?.status}: ${file?.location ?? '-'} (${file?.duration_s ?? '-'} s, ${file?.size_bytes ?? '-'} bytes, egress ${file?.egress_id ?? '-'})`);

  console.log(`\n5. An outbound call answered before its agent arrives, and no agent ever joins: after AGENT_JOIN_TIMEOUT_S (${config.calls.agentJoinTimeoutS} s here)`);
  console.log('   the plane hangs up rather than leave the person who picked up in silence');
  await api('/v1/calls', { to: '+31612340000', agent: 'receptionist-crashed', metadata: { ticket: 'DEMO-2' } });
  await settle();
  await sleep(config.calls.agentJoinTimeoutS * 1000 + 300);
  await settle();

  const response = await fetch(`${url}/v1/calls`, { headers: { Authorization: `Bearer ${DEMO_API_KEY}` } });
  const { calls } = (await response.json()) as { calls: Session[] };
  console.log('\nFinal states (GET /v1/calls):');
  for (const call of [...calls].reverse()) {
    console.log(
      `  ${call.id.slice(0, 8)}  ${call.direction}  ${maskPhoneNumbers(call.caller_number ?? '-')} → ${maskPhoneNumbers(call.callee_number ?? '-')}  ` +
        `${call.state}/${call.end_reason}  duration ${call.duration_s ?? '-'} s`,
    );
  }

  // Every delivery settled: the refused one's retry has had its turn, and the events behind it theirs.
  const deliveries: DeliveryView[] = [];
  const deadline = Date.now() + SETTLE_DELIVERIES_MS;
  for (const call of calls) {
    for (;;) {
      const log = (await (await fetch(`${url}/v1/calls/${call.id}/deliveries`, { headers: { Authorization: `Bearer ${DEMO_API_KEY}` } })).json()) as { deliveries: DeliveryView[] };
      if (log.deliveries.every((d) => d.status !== 'pending')) {
        deliveries.push(...log.deliveries);
        break;
      }
      if (Date.now() > deadline) throw new Error(`the status callbacks of call ${call.id} did not settle within ${SETTLE_DELIVERIES_MS / 1000} s`);
      await sleep(100);
    }
  }
  const count = (status: DeliveryView['status']) => deliveries.filter((d) => d.status === status).length;
  const unverified = receiver.received.filter((r) => r.verifyError !== undefined).length;
  console.log(
    `\nStatus callbacks (GET /v1/calls/{id}/deliveries): ${count('delivered')} delivered, ${deliveries.filter((d) => d.attempts > 1).length} retried, ` +
      `${count('failed')} failed, ${count('canceled')} canceled; ${receiver.received.length} requests received, ` +
      `${unverified === 0 ? 'all verified' : `${unverified} failed verification`}`,
  );

  if (serve) {
    console.log(`\nStill running. Try: curl -H 'Authorization: Bearer ${DEMO_API_KEY}' ${url}/v1/calls`);
    if (inspector) console.log(`Stately inspector: open ${inspector.url} in a browser on this machine.`);
    console.log('Ctrl-C stops.');
    await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
  }
  await standIn.close();
  await service.close();
  await inspector?.stop();
  server.closeAllConnections();
  server.close();
  await receiver.close();
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
