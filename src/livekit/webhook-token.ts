// Verifies the token of a LiveKit webhook (its `Authorization` header) with exactly the checks of
// livekit-server-sdk's TokenVerifier.verify: jose's jwtVerify against the API secret, issuer = the
// API key, `exp` required, 10 s of clock tolerance. The one difference: the secret's key object is
// built once, where TokenVerifier encodes the secret and jose imports it again for every webhook.
import { createSecretKey } from 'node:crypto';
import { jwtVerify, type JWTPayload } from 'jose';

/** TokenVerifier's default clock tolerance (livekit-server-sdk AccessToken.js). */
const CLOCK_TOLERANCE_S = 10;

export type WebhookTokenVerifier = (token: string) => Promise<JWTPayload>;

export function createWebhookTokenVerifier(apiKey: string, apiSecret: string): WebhookTokenVerifier {
  const key = createSecretKey(Buffer.from(apiSecret, 'utf8'));
  const options = { issuer: apiKey, clockTolerance: CLOCK_TOLERANCE_S, requiredClaims: ['exp'] };
  return async (token) => (await jwtVerify(token, key, options)).payload;
}
