// Reads a request body as bytes, refusing more than `limit` bytes without buffering them.
// Event-based rather than `for await`: the async iterator costs a promise per chunk, and a webhook
// arrives in one chunk.
import type { IncomingMessage } from 'node:http';
import { Problem } from './problem.js';

export function readRawBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const tooLarge = () => new Problem(413, 'payload_too_large', 'Payload too large', `the body may be at most ${limit} bytes`);
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        // Stop keeping the bytes; the connection is closed once the answer is sent.
        cleanup();
        req.resume();
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    // The connection went before the body ended (after 'end', the listeners are gone).
    const onClose = (): void => onError(new Error('the request was aborted'));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}
