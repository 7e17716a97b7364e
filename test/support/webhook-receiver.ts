// A tiny webhook endpoint that verifies every delivery with livekit-server-sdk's WebhookReceiver,
// for tests of what sends webhooks (the stand-in and its webhook sender).
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebhookReceiver, type WebhookEvent } from 'livekit-server-sdk';
import type { Cleanups } from './cleanups.js';

export interface Received {
  body: string;
  headers: IncomingHttpHeaders;
  event?: WebhookEvent;
  verifyError?: string;
  startedAt: number;
  endedAt: number;
}

/** the status to answer the delivery number `index` (0-based) with */
export type Respond = (index: number, body: string) => number | Promise<number>;

/** Starts a receiver; its server is closed by the function it pushes onto `cleanups`. */
export async function startWebhookReceiver(
  cleanups: Cleanups,
  apiKey: string,
  apiSecret: string,
  respond: Respond = () => 200,
) {
  const verifier = new WebhookReceiver(apiKey, apiSecret);
  const received: Received[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      const startedAt = Date.now();
      const body = Buffer.concat(chunks).toString('utf8');
      const entry: Received = { body, headers: req.headers, startedAt, endedAt: 0 };
      received.push(entry);
      try {
        entry.event = await verifier.receive(body, req.headers.authorization);
      } catch (error) {
        entry.verifyError = error instanceof Error ? error.message : String(error);
      }
      const status = entry.verifyError ? 401 : await respond(received.length - 1, body);
      entry.endedAt = Date.now();
      inFlight -= 1;
      res.writeHead(status, { 'Content-Type': 'text/plain' }).end(String(status));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/webhook`,
    received,
    get maxInFlight() {
      return maxInFlight;
    },
    events: () => received.map((r) => r.event?.event),
  };
}
