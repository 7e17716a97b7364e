// The webhook token verifier makes the SDK's TokenVerifier checks: every token below gets the same
// verdict (and the same claims) from both.
import { SignJWT } from 'jose';
import { AccessToken, TokenVerifier } from 'livekit-server-sdk';
import { describe, expect, it } from 'vitest';
import { signWebhook } from '../../dev/webhook-sender.js';
import { createWebhookTokenVerifier } from '../../src/livekit/webhook-token.js';

const API_KEY = 'APIkey123';
const API_SECRET = 'a-secret-of-at-least-thirty-two-characters';
const secret = new TextEncoder().encode(API_SECRET);
const now = () => Math.floor(Date.now() / 1000);

function jwt(claims: Record<string, unknown>, alg = 'HS256', key: Uint8Array = secret): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg }).sign(key);
}

const tokens: [string, () => Promise<string>][] = [
  ['a webhook token as LiveKit signs it', () => signWebhook('{"event":"room_started"}', { apiKey: API_KEY, apiSecret: API_SECRET })],
  ['an access token of the SDK', () => new AccessToken(API_KEY, API_SECRET, { identity: 'x' }).toJwt()],
  ['HS512', () => jwt({ iss: API_KEY, exp: now() + 60 }, 'HS512')],
  ['expired 5 s ago (inside the tolerance)', () => jwt({ iss: API_KEY, exp: now() - 5 })],
  ['expired 30 s ago', () => jwt({ iss: API_KEY, exp: now() - 30 })],
  ['not valid for another 60 s', () => jwt({ iss: API_KEY, exp: now() + 120, nbf: now() + 60 })],
  ['without exp', () => jwt({ iss: API_KEY })],
  ['another issuer', () => jwt({ iss: 'APIother', exp: now() + 60 })],
  ['without an issuer', () => jwt({ exp: now() + 60 })],
  ['signed with another secret', () => jwt({ iss: API_KEY, exp: now() + 60 }, 'HS256', new TextEncoder().encode(`${API_SECRET}x`))],
  ['unsigned (alg none)', async () => `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ iss: API_KEY, exp: now() + 60 })).toString('base64url')}.`],
  ['garbage', async () => 'not-a-jwt'],
];

describe('webhook token verifier', () => {
  const ours = createWebhookTokenVerifier(API_KEY, API_SECRET);
  const sdk = new TokenVerifier(API_KEY, API_SECRET);
  const verdict = (promise: Promise<unknown>) => promise.then((claims) => ({ ok: true, claims }), () => ({ ok: false, claims: null }));

  it.each(tokens)('gives the SDK verdict for %s', async (_label, make) => {
    const token = await make();
    const [mine, theirs] = await Promise.all([verdict(ours(token)), verdict(sdk.verify(token))]);
    expect(mine).toEqual(theirs);
  });

  it('accepts what LiveKit signs and refuses the rest', async () => {
    const outcomes = await Promise.all(tokens.map(async ([label, make]) => [label, (await verdict(ours(await make()))).ok] as const));
    expect(outcomes.filter(([, ok]) => ok).map(([label]) => label)).toEqual([
      'a webhook token as LiveKit signs it',
      'an access token of the SDK',
      'HS512',
      'expired 5 s ago (inside the tolerance)',
    ]);
  });
});
