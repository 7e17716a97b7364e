// Bearer keys of the Control API (docs/api.md), compared in constant time.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Context, Next } from 'koa';
import { Problem } from './problem.js';

const digest = (value: string): Buffer => createHash('sha256').update(value).digest();

export function bearerAuth(keys: readonly string[]) {
  // Comparing fixed-length digests keeps the comparison time independent of key length and content.
  const digests = keys.map(digest);
  return async (ctx: Context, next: Next): Promise<void> => {
    if (digests.length === 0) {
      throw new Problem(401, 'unauthorized', 'Unauthorized', 'the Control API has no keys configured (CONTROL_API_KEYS)');
    }
    const match = /^Bearer\s+(\S+)\s*$/i.exec(ctx.get('authorization'));
    if (!match?.[1]) {
      ctx.set('WWW-Authenticate', 'Bearer');
      throw new Problem(401, 'unauthorized', 'Unauthorized', 'send Authorization: Bearer <key>');
    }
    const given = digest(match[1]);
    let ok = false;
    // Every key is compared, so timing does not reveal which one (if any) matched.
    for (const expected of digests) ok = timingSafeEqual(given, expected) || ok;
    if (!ok) {
      ctx.set('WWW-Authenticate', 'Bearer error="invalid_token"');
      throw new Problem(401, 'unauthorized', 'Unauthorized', 'the key is not valid');
    }
    await next();
  };
}
