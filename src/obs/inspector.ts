// INSPECT=1: every call actor is visible live in the Stately inspector.
// @statelyai/inspect's own createInspectorServer listens on every interface without
// authentication, so the plane runs the same small bridge itself, bound to loopback only.
// Phone numbers are masked in every context and event the inspector sees (docs/observability.md).
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createWebSocketInspector } from '@statelyai/inspect';
import type { InspectionEvent } from 'xstate';
import { WebSocket, WebSocketServer } from 'ws';
import { maskDeep } from './mask.js';
import type { Logger } from './logger.js';

const LOOPBACK = '127.0.0.1';
const REPLAYED_EVENTS = 200;

/** The page the developer opens: it embeds stately.ai/inspect and relays the service's events to it. */
function bridgePage(port: number): string {
  return `<!DOCTYPE html>
<html><head><title>Control Plane: call actors</title>
<style>*{margin:0;padding:0}html,body{height:100%}iframe{width:100%;height:100%;border:none}</style></head>
<body><iframe id="inspector" src="https://stately.ai/inspect"></iframe>
<script>
  const iframe = document.getElementById('inspector');
  const buffer = [];
  let connected = false;
  window.addEventListener('message', (e) => {
    if (e.data && e.data.type === '@statelyai.connected') {
      connected = true;
      buffer.splice(0).forEach((event) => iframe.contentWindow.postMessage(event, '*'));
    }
  });
  const ws = new WebSocket('ws://${LOOPBACK}:${port}');
  ws.onmessage = (event) => {
    const data = JSON.parse(event.data);
    if (connected) iframe.contentWindow.postMessage(data, '*'); else buffer.push(data);
  };
</script></body></html>`;
}

export interface InspectorHandle {
  url: string;
  inspect: (event: InspectionEvent) => void;
  stop(): Promise<void>;
}

export async function startInspector(port: number, logger: Logger): Promise<InspectorHandle> {
  let page = '';
  const http = createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(page);
  });
  const wss = new WebSocketServer({ server: http });
  const replay: string[] = [];
  wss.on('connection', (socket) => {
    for (const message of replay) socket.send(message);
    socket.on('message', (data) => {
      const message = data.toString();
      replay.push(message);
      if (replay.length > REPLAYED_EVENTS) replay.shift();
      for (const client of wss.clients) {
        if (client !== socket && client.readyState === WebSocket.OPEN) client.send(message);
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(port, LOOPBACK, resolve);
  });
  const actual = (http.address() as AddressInfo).port;
  const url = `http://${LOOPBACK}:${actual}`;
  page = bridgePage(actual);

  const inspector = createWebSocketInspector({
    url: `ws://${LOOPBACK}:${actual}`,
    sanitizeContext: (context) => maskDeep(context),
    sanitizeEvent: (event) => maskDeep(event),
  });
  logger.info({ url }, `Stately inspector: open ${url} in a browser on this machine`);
  return {
    url,
    inspect: (event) => inspector.inspect.next?.(event),
    async stop() {
      inspector.stop();
      for (const client of wss.clients) client.terminate();
      wss.close();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}
