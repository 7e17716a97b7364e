// A client of GET /v1/events (Server-Sent Events) for tests: reads blocks until it has seen enough.
import { expect } from 'vitest';
import type { ServiceHarness } from './service-harness.js';

export interface SseEvent {
  id: string | null;
  event: string | null;
  data: string;
}

/** Opens `path` and collects its events until `until` holds or 5 s have passed. */
export async function readSse(
  harness: Pick<ServiceHarness, 'api'>,
  path: string,
  until: (events: SseEvent[]) => boolean,
  headers: Record<string, string> = {},
): Promise<SseEvent[]> {
  const abort = new AbortController();
  const response = await harness.api(path, { headers, signal: abort.signal });
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  const events: SseEvent[] = [];
  let buffer = '';
  const deadline = Date.now() + 5000;
  try {
    while (!until(events) && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const fields = Object.fromEntries(
          block
            .split('\n')
            .filter((line) => line && !line.startsWith(':'))
            .map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1).trimStart()]),
        );
        if (fields.data !== undefined) events.push({ id: fields.id ?? null, event: fields.event ?? null, data: fields.data });
      }
    }
  } finally {
    abort.abort();
  }
  return events;
}
