// The baseline of the webhook benchmark, a process of its own: what any receiver of LiveKit
// webhooks has to do and nothing else (Koa 3 + @koa/router, the raw body, the SDK's
// WebhookReceiver.receive, 200). Plain JavaScript, so no loader runs beside it.
//   node bench/baseline-server.mjs PORT API_KEY API_SECRET
import { Buffer } from 'node:buffer';
import process from 'node:process';
import Router from '@koa/router';
import Koa from 'koa';
import { WebhookReceiver } from 'livekit-server-sdk';

const [port, apiKey, apiSecret] = process.argv.slice(2);
const receiver = new WebhookReceiver(apiKey, apiSecret);
const router = new Router();
router.post('/webhook', async (ctx) => {
  const chunks = [];
  for await (const chunk of ctx.req) chunks.push(chunk);
  try {
    await receiver.receive(Buffer.concat(chunks).toString('utf8'), ctx.get('authorization'));
    ctx.status = 200;
  } catch {
    ctx.status = 401;
  }
});
router.get('/healthz', (ctx) => {
  ctx.body = { status: 'ok' };
});
const app = new Koa();
app.use(router.routes());
app.listen(Number(port), '127.0.0.1');
