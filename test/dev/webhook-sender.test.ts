// The webhook sender of dev/ (LiveKit's URL notifier: signing, per-resource FIFO queues, retries),
// checked against a receiver that verifies with livekit-server-sdk's WebhookReceiver.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { WebhookReceiver } from 'livekit-server-sdk';
import { createWebhookSender, postWebhook, queueKey, signWebhook, webhookHeaders, type WebhookSender } from '../../dev/webhook-sender.js';
import { roomJson, sipParticipant, webhookEvents } from '../../dev/webhook-events.js';
import { startWebhookReceiver, type Respond } from '../support/webhook-receiver.js';
import { useCleanups } from '../support/cleanups.js';

// ---------------------------------------------------------------------------------------------
// fixtures

const cleanups = useCleanups();

const startReceiver = (apiKey: string, apiSecret: string, respond?: Respond) => startWebhookReceiver(cleanups, apiKey, apiSecret, respond);

/** a URL nobody listens on: a port just released by a throwaway server */
async function closedPortUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}/webhook`;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------
// webhook sender

describe('the webhook sender', () => {
  const apiKey = 'APIkey123';
  const apiSecret = 'a-webhook-secret-that-is-long-enough';

  function sender(url: string): WebhookSender {
    const created = createWebhookSender({ url, apiKey, apiSecret, retryDelaysMs: [20, 20, 20, 20] });
    cleanups.push(() => created.close());
    return created;
  }

  it('retries a 503 with the identical bytes and Authorization, until the receiver accepts', async () => {
    const receiver = await startReceiver(apiKey, apiSecret, (i) => (i < 2 ? 503 : 200));

    const result = await sender(receiver.url).send(webhookEvents.roomStarted(roomJson('r1')));

    expect(result).toMatchObject({ status: 200, attempts: 3 });
    expect(result.error).toBeUndefined();
    const [first, ...retries] = receiver.received;
    for (const retry of retries) {
      expect(retry.body).toBe(first?.body);
      expect(retry.headers.authorization).toBe(first?.headers.authorization);
    }
  });

  it('stops at a 400 and gives up after five attempts of 500', async () => {
    const refusing = await startReceiver(apiKey, apiSecret, () => 400);
    const failing = await startReceiver(apiKey, apiSecret, () => 500);
    const notImplemented = await startReceiver(apiKey, apiSecret, () => 501);

    const refused = await sender(refusing.url).send(webhookEvents.roomStarted(roomJson('r2')));
    const failed = await sender(failing.url).send(webhookEvents.roomStarted(roomJson('r2')));
    const final = await sender(notImplemented.url).send(webhookEvents.roomStarted(roomJson('r2')));

    expect(refused).toMatchObject({ status: 400, attempts: 1, error: 'HTTP 400' });
    expect(failed).toMatchObject({ status: 500, attempts: 5 });
    expect(failed.error).toMatch(/gave up/);
    expect(final).toMatchObject({ status: 501, attempts: 1 });
  });

  it('retries connection errors and reports them when it gives up', async () => {
    const result = await sender(await closedPortUrl()).send(webhookEvents.roomStarted(roomJson('r3')));

    expect(result.status).toBeNull();
    expect(result.attempts).toBe(5);
    expect(result.error).toMatch(/^gave up: fetch failed/);
  });

  it('delivers the events of one room in order, one at a time, even when the receiver is slow', async () => {
    const receiver = await startReceiver(apiKey, apiSecret, async (i) => {
      await sleep(i === 0 ? 120 : 10);
      return 200;
    });
    const webhooks = sender(receiver.url);
    const room = roomJson('slow-room');
    const p = sipParticipant({ phoneNumber: '+15550000001' });
    const events = [
      webhookEvents.roomStarted(room),
      webhookEvents.participantJoined(room, p),
      webhookEvents.trackPublished(room, p),
      webhookEvents.trackUnpublished(room, p),
      webhookEvents.participantLeft(room, p, 'CLIENT_INITIATED'),
      webhookEvents.roomFinished(room),
    ];

    const results = await Promise.all(events.map((e) => webhooks.send(e)));

    expect(results.every((r) => r.status === 200)).toBe(true);
    expect(receiver.received.map((r) => r.event?.id)).toEqual(events.map((e) => e.id));
    expect(receiver.maxInFlight).toBe(1);
  });

  it('runs the queues of different rooms independently', async () => {
    const receiver = await startReceiver(apiKey, apiSecret, async (_i, body) => {
      await sleep(body.includes('"slow"') ? 200 : 0);
      return 200;
    });
    const webhooks = sender(receiver.url);

    const slow = webhooks.send(webhookEvents.roomStarted(roomJson('slow')));
    await sleep(20);
    await webhooks.send(webhookEvents.roomStarted(roomJson('fast')));
    const fastDoneAt = Date.now();
    await slow;

    expect(receiver.received.find((r) => r.event?.room?.name === 'slow')?.endedAt).toBeGreaterThan(fastDoneAt - 5);
    await webhooks.idle();
    expect(webhooks.deliveries).toHaveLength(2);
  });

  it('queues as livekit/protocol\'s EventKey: an egress event by its egress id, though it names its room', () => {
    const room = roomJson('keyed-room');
    const egress = { egressId: 'EG_keyed', roomId: room.sid, roomName: room.name };

    expect(queueKey(webhookEvents.roomStarted(room))).toBe('keyed-room');
    expect(queueKey(webhookEvents.participantJoined(room, sipParticipant({ phoneNumber: '+15550000000' })))).toBe('keyed-room');
    expect(queueKey(webhookEvents.egressStarted(egress))).toBe('EG_keyed');
    expect(queueKey(webhookEvents.egressEnded(egress))).toBe('EG_keyed');
    expect(queueKey({ event: 'x', id: 'EV_1', createdAt: '0' })).toBe('default');
  });

  it('signs so that WebhookReceiver accepts the body, and rejects a tampered digest or an expired token', async () => {
    const receiver = new WebhookReceiver(apiKey, apiSecret);
    const body = JSON.stringify(webhookEvents.roomStarted(roomJson('r4')));

    const event = await receiver.receive(body, await signWebhook(body, { apiKey, apiSecret }));
    expect(event.event).toBe('room_started');

    const tampered = await signWebhook(body, { apiKey, apiSecret, sha256: 'AAAA' });
    await expect(receiver.receive(body, tampered)).rejects.toThrow('sha256 checksum of body does not match');
    const expired = await signWebhook(body, { apiKey, apiSecret, nowS: Math.floor(Date.now() / 1000) - 3600 });
    await expect(receiver.receive(body, expired)).rejects.toThrow();
  });

  it('posts raw bodies and headers for bad-input tests', async () => {
    const receiver = await startReceiver(apiKey, apiSecret);

    const response = await postWebhook(receiver.url, '{}', webhookHeaders('not-a-jwt'));

    expect(response.status).toBe(401);
    expect(receiver.received[0]?.verifyError).toBeDefined();
  });
});
