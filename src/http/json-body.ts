// Request bodies of the Control API: JSON objects only, size-limited, validated by schema with
// unknown fields rejected. Syntax errors are 400; a well-formed body that breaks the schema is 422.
import type { Context } from 'koa';
import type { z } from 'zod';
import { Problem } from './problem.js';
import { readRawBody } from './raw-body.js';

export const MAX_JSON_BODY_BYTES = 64 * 1024;

export async function readJsonBody<T extends z.ZodType>(ctx: Context, schema: T, options: { optional?: boolean } = {}): Promise<z.output<T>> {
  const raw = await readRawBody(ctx.req, MAX_JSON_BODY_BYTES);
  let value: unknown;
  if (raw.length === 0) {
    if (!options.optional) throw new Problem(400, 'invalid_body', 'Invalid body', 'a JSON object is required');
    value = {};
  } else {
    if (!ctx.is('application/json')) {
      throw new Problem(415, 'unsupported_media_type', 'Unsupported media type', 'send Content-Type: application/json');
    }
    try {
      value = JSON.parse(raw.toString('utf8'));
    } catch {
      throw new Problem(400, 'invalid_body', 'Invalid body', 'the body is not valid JSON');
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new Problem(400, 'invalid_body', 'Invalid body', 'the body must be a JSON object');
    }
  }
  const result = schema.safeParse(value);
  if (!result.success) {
    const errors = result.error.issues.map((issue) => ({
      path: issue.path.join('.') || (issue.code === 'unrecognized_keys' ? issue.keys.join(',') : ''),
      message: issue.message,
    }));
    throw new Problem(422, 'validation_failed', 'Validation failed', errors.map((e) => (e.path ? `${e.path}: ${e.message}` : e.message)).join('; '), {
      errors,
    });
  }
  return result.data;
}
