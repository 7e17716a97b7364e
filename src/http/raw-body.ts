// Reads a request body as bytes, refusing more than `limit` bytes without buffering them.
import type { IncomingMessage } from 'node:http';
import { Problem } from './problem.js';

export async function readRawBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const tooLarge = () => new Problem(413, 'payload_too_large', 'Payload too large', `the body may be at most ${limit} bytes`);
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > limit) {
      // Stop reading; the connection is closed once the answer is sent.
      req.unpipe();
      req.resume();
      throw tooLarge();
    }
    chunks.push(buffer);
  }
  return Buffer.concat(chunks, size);
}
