// The webhook load generator, run as a child process of bench/webhook-ingest.ts so that sending
// load does not share an event loop with the server under test.
//
// Per round (an IPC message from the parent) it builds the webhooks of `calls` fresh inbound calls
// with the LiveKit builders of dev/, signs every body as LiveKit does, and renders each
// request to its final bytes; only then does timing start. Each of `connections` workers owns one
// keep-alive TCP connection and its own calls, and sends each call's five events in order, one
// request at a time (LiveKit's per-room FIFO). A worker interleaves the calls of a window
// (event 1 of each, then event 2 of each, ...) so that many calls are live at once.
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { signWebhook, webhookHeaders } from '../dev/webhook-sender.js';
import { callEvents, EVENTS_PER_CALL } from './inbound-calls.js';

export interface RoundRequest {
  type: 'round';
  port: number;
  calls: number;
  connections: number;
  /** calls a worker has in progress at once */
  window: number;
  apiKey: string;
  apiSecret: string;
}

export interface RoundStarted {
  type: 'started';
}

export interface RoundResult {
  type: 'done';
  requests: number;
  elapsedMs: number;
  /** request latencies in ms, in completion order per worker */
  latencies: number[];
  statuses: Record<string, number>;
  meanBodyBytes: number;
  prepareMs: number;
  /** CPU time of this process during the timed part, as % of one core */
  generatorCpuPct: number;
  /** room sid, room name and caller identity of every call (the parent checks each call afterwards) */
  calls: [string, string, string][];
}

export { EVENTS_PER_CALL };

async function renderRequest(body: string, port: number, apiKey: string, apiSecret: string): Promise<Buffer> {
  const headers = webhookHeaders(await signWebhook(body, { apiKey, apiSecret }));
  const lines = [`POST /webhook HTTP/1.1`, `Host: 127.0.0.1:${port}`];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  lines.push(`Content-Length: ${Buffer.byteLength(body)}`, 'Connection: keep-alive', '', '');
  return Buffer.concat([Buffer.from(lines.join('\r\n'), 'latin1'), Buffer.from(body, 'utf8')]);
}

/** A keep-alive HTTP/1.1 connection with one request in flight and a minimal response parser. */
class Connection {
  private buffer: Buffer = Buffer.alloc(0);
  private waiting: { resolve: (status: number) => void; reject: (err: Error) => void } | null = null;

  private constructor(private readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new Error('connection closed by the server')));
  }

  static open(port: number): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port }, () => resolve(new Connection(socket)));
      socket.once('error', reject);
    });
  }

  send(request: Buffer): Promise<number> {
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.socket.write(request);
    });
  }

  close(): void {
    this.socket.removeAllListeners('close');
    this.socket.destroy();
  }

  private fail(err: Error): void {
    const waiting = this.waiting;
    this.waiting = null;
    waiting?.reject(err);
  }

  private onData(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const headerEnd = this.buffer.indexOf('\r\n\r\n');
    if (headerEnd < 0) return;
    const head = this.buffer.toString('latin1', 0, headerEnd).toLowerCase();
    const status = Number(head.slice(9, 12));
    let complete: number;
    const length = /\r\ncontent-length: *(\d+)/.exec(head);
    if (length) {
      complete = headerEnd + 4 + Number(length[1]);
    } else if (head.includes('transfer-encoding: chunked')) {
      const end = this.buffer.indexOf('\r\n0\r\n\r\n', headerEnd);
      if (end < 0) return;
      complete = end + 7;
    } else {
      complete = headerEnd + 4;
    }
    if (this.buffer.length < complete) return;
    this.buffer = this.buffer.subarray(complete);
    const waiting = this.waiting;
    this.waiting = null;
    waiting?.resolve(status);
  }
}

async function runRound(request: RoundRequest): Promise<RoundResult> {
  const { calls, connections, window, port } = request;
  if (calls % connections !== 0) throw new Error(`calls (${calls}) must be a multiple of connections (${connections})`);
  const prepareStarted = performance.now();
  const scripts = Array.from({ length: calls }, callEvents);
  let bodyBytes = 0;
  // Worker w owns calls w, w + connections, ...; within a window its calls advance step by step.
  const sequences: Buffer[][] = [];
  for (let w = 0; w < connections; w += 1) {
    const own = scripts.filter((_, i) => i % connections === w);
    const sequence: Buffer[] = [];
    for (let start = 0; start < own.length; start += window) {
      const group = own.slice(start, start + window);
      for (let step = 0; step < EVENTS_PER_CALL; step += 1) {
        for (const script of group) {
          const body = script.bodies[step] as string;
          bodyBytes += Buffer.byteLength(body);
          sequence.push(await renderRequest(body, port, request.apiKey, request.apiSecret));
        }
      }
    }
    sequences.push(sequence);
  }
  const conns = await Promise.all(sequences.map(() => Connection.open(port)));
  const prepareMs = performance.now() - prepareStarted;
  const total = calls * EVENTS_PER_CALL;

  process.send?.({ type: 'started' } satisfies RoundStarted);
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  const cpu = process.cpuUsage();
  const started = performance.now();
  await Promise.all(
    sequences.map(async (sequence, w) => {
      const conn = conns[w] as Connection;
      for (const payload of sequence) {
        const t0 = performance.now();
        const status = await conn.send(payload);
        latencies.push(performance.now() - t0);
        statuses[status] = (statuses[status] ?? 0) + 1;
      }
    }),
  );
  const elapsedMs = performance.now() - started;
  const used = process.cpuUsage(cpu);
  for (const conn of conns) conn.close();
  return {
    type: 'done',
    requests: total,
    elapsedMs,
    latencies,
    statuses,
    meanBodyBytes: bodyBytes / total,
    prepareMs,
    generatorCpuPct: ((used.user + used.system) / 1000 / elapsedMs) * 100,
    calls: scripts.map((s) => s.room),
  };
}

process.on('message', (message: RoundRequest | { type: 'exit' }) => {
  if (message.type === 'exit') process.exit(0);
  runRound(message).then(
    (result) => process.send?.(result),
    (err: unknown) => {
      process.stderr.write(`load generator: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
});
process.send?.({ type: 'ready' });
