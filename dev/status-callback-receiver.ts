// A customer's backend in miniature: an HTTP endpoint that receives status callbacks and verifies
// each with the `standardwebhooks` package (what a customer would use), never with the service's
// own signer. How it answers is up to its user: any status, `Retry-After`, a slow answer, no
// answer at all, or a dropped connection. The demo and the tests use it.
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Webhook } from 'standardwebhooks';

export interface ReceivedCallback {
  /** `webhook-id` */
  id: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** the verified payload; undefined when verification failed */
  payload?: StatusCallbackPayload;
  /** why verification failed */
  verifyError?: string;
  /** when the request arrived (Date.now()) */
  at: number;
  /** what it was answered (null: no answer) */
  answered: number | null;
  /** when the answer went out (Date.now()) */
  answeredAt: number | null;
}

export interface StatusCallbackPayload {
  type: string;
  timestamp: string;
  data: {
    event: { event: string; event_id: string; session_id: string; seq: number; state: string; data: Record<string, unknown> };
    call: Record<string, unknown> & { id: string; state: string };
  };
}

export interface Answer {
  status?: number;
  headers?: Record<string, string>;
  /** answer after this long */
  delayMs?: number;
  /** never answer (the sender's timeout ends the attempt) */
  hang?: boolean;
  /** close the connection without an answer */
  drop?: boolean;
}

/** How to answer a delivery; `index` counts every request this receiver got, from 0. */
export type Responder = (delivery: ReceivedCallback, index: number) => Answer | Promise<Answer>;

export interface StatusCallbackReceiver {
  url: string;
  /** every request, in arrival order */
  received: ReceivedCallback[];
  /** the verified payloads of requests answered 2xx, in arrival order */
  delivered(): StatusCallbackPayload[];
  /** Resolves once `predicate` holds (checked on each arrival and every 20 ms), or rejects after `timeoutMs`. */
  waitFor(predicate: (received: ReceivedCallback[]) => boolean, timeoutMs?: number): Promise<void>;
  respond(responder: Responder): void;
  close(): Promise<void>;
}

export async function startStatusCallbackReceiver(options: { secret: string; respond?: Responder; port?: number; path?: string }): Promise<StatusCallbackReceiver> {
  const verifier = new Webhook(options.secret);
  const received: ReceivedCallback[] = [];
  let responder: Responder = options.respond ?? (() => ({ status: 200 }));
  const sockets = new Set<Socket>();
  const hanging = new Set<ServerResponse>();

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const header = (name: string): string => String(req.headers[name] ?? '');
      const entry: ReceivedCallback = { id: header('webhook-id'), headers: req.headers, body, at: Date.now(), answered: null, answeredAt: null };
      try {
        entry.payload = verifier.verify(body, {
          'webhook-id': header('webhook-id'),
          'webhook-timestamp': header('webhook-timestamp'),
          'webhook-signature': header('webhook-signature'),
        }) as StatusCallbackPayload;
      } catch (err) {
        entry.verifyError = (err as Error).message;
      }
      const index = received.length;
      received.push(entry);
      void Promise.resolve(entry.verifyError ? { status: 401 } : responder(entry, index)).then(async (answer) => {
        if (answer.hang) {
          hanging.add(res);
          return;
        }
        if (answer.delayMs) await new Promise((resolve) => setTimeout(resolve, answer.delayMs));
        if (answer.drop) {
          req.socket.destroy();
          return;
        }
        const status = answer.status ?? 200;
        entry.answered = status;
        entry.answeredAt = Date.now();
        res.writeHead(status, { 'content-type': 'text/plain', ...answer.headers });
        res.end(status >= 200 && status < 300 ? 'ok' : 'no');
      });
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}${options.path ?? '/status-callbacks'}`;

  return {
    url,
    received,
    delivered: () =>
      received.filter((entry) => entry.payload && entry.answered !== null && entry.answered >= 200 && entry.answered < 300).map((entry) => entry.payload as StatusCallbackPayload),
    async waitFor(predicate, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (!predicate(received)) {
        if (Date.now() > deadline) throw new Error(`status callbacks: condition not met within ${timeoutMs} ms (${received.length} received)`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    respond(next) {
      responder = next;
    },
    async close() {
      for (const res of hanging) res.destroy();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
