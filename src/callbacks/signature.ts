// Standard Webhooks v1 signatures (symmetric): `v1,<base64 HMAC-SHA256>` over
// "<webhook-id>.<webhook-timestamp>.<body>", keyed by the secret's decoded bytes. With several
// secrets (a rotation) every one signs, space-separated, so a receiver holding either verifies.
import { createHmac } from 'node:crypto';

const PREFIX = 'whsec_';

/** The key bytes of a `whsec_` secret (config.ts has checked its form). */
export function secretKey(secret: string): Buffer {
  return Buffer.from(secret.startsWith(PREFIX) ? secret.slice(PREFIX.length) : secret, 'base64');
}

/** The `webhook-signature` header value for one delivery attempt. */
export function signatureHeader(keys: readonly Buffer[], webhookId: string, timestampS: number, body: string): string {
  const signed = `${webhookId}.${timestampS}.${body}`;
  return keys.map((key) => `v1,${createHmac('sha256', key).update(signed).digest('base64')}`).join(' ');
}
