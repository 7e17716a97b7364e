// `npm run demo`: the control plane and an embedded LiveKit stand-in with development keys,
// playing a few inbound calls and one outbound call so a newcomer, with no LiveKit account, sees OBS-00 events and
// final states. The stand-in signs its webhooks exactly as LiveKit does and the service
// verifies them; nothing in the service knows it is a demo.
//
//   npm run demo              play the calls, print what happened, exit
//   npm run demo -- --serve   keep running afterwards (Control API on the printed URL)
//   INSPECT=1 npm run demo    also start the Stately inspector and keep running
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

const DEMO_API_KEY = 'demo-control-api-key';
const TRUNK_NUMBER = '+3197010206472';
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

async function main(): Promise<void> {
  const standIn = await startLiveKitStandIn({ webhookUrl: 'http://127.0.0.1:1/webhook', webhookRetryDelaysMs: [200, 400, 800, 1600] });
  const config = loadConfig({
    LIVEKIT_URL: standIn.url,
    LIVEKIT_API_KEY: standIn.apiKey,
    LIVEKIT_API_SECRET: standIn.apiSecret,
    CONTROL_API_KEYS: DEMO_API_KEY,
    SIP_OUTBOUND_TRUNK_ID: 'ST_demo_outbound',
    AGENT_GRACE_S: '1',
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
    INSPECT: process.env.INSPECT,
  });
  const logger = createLogger({ level: config.logLevel });
  const inspector = config.inspect.enabled ? await startInspector(config.inspect.port, logger) : null;
  const service = createService({ config, logger, livekit: createLiveKitAdapter(config.livekit), inspect: inspector?.inspect });

  service.bus.subscribe((e) => {
    const data = JSON.stringify(maskDeep(e.data));
    console.log(`  ${e.session_id.slice(0, 8)}  #${e.seq}  ${e.event.padEnd(18)} ${e.state.padEnd(10)} ${data}`);
  });

  const server = createServer(service.app.callback());
  const port = await listen(server, Number(process.env.PORT ?? 8000));
  const url = `http://127.0.0.1:${port}`;
  standIn.webhooks?.setUrl(`${url}/webhook`);
  console.log(`Control Plane demo: service on ${url}, LiveKit stand-in on ${standIn.url}`);
  console.log('OBS-00 events as they happen (session, seq, event, state after the transition, data; numbers masked):\n');

  const settle = async () => {
    await sleep(50);
    await standIn.webhooks?.idle();
    await service.settled();
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

  console.log('\n4. An outbound call placed through the Control API, answered, then hung up through the API');
  const api = (path: string, body?: unknown) =>
    fetch(`${url}${path}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${DEMO_API_KEY}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  const placed = (await (await api('/v1/calls', { to: '+31687654321', agent: 'receptionist', metadata: { ticket: 'DEMO-1' } })).json()) as Session;
  await settle();
  standIn.joinParticipant(placed.livekit_room, agentParticipant({ identity: 'agent-receptionist-out' }));
  await settle();
  await sleep(1000);
  await api(`/v1/calls/${placed.id}/hangup`);
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
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
