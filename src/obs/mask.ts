// docs/observability.md: phone numbers are masked in logs and the inspector wherever they appear, LiveKit
// identities (`sip_+316...`) and room names included. The one masker of the plane: CP-04 error
// messages (src/errors/classify.ts) find numbers with it too.

// Kept as they are (group 1): UUIDs, whose last group may be 12 bare digits, and ISO-8601 dates,
// whose digits and dashes would otherwise read as a national number.
const KEPT = String.raw`[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}|(?<!\d)\d{4}-\d{2}-\d{2}(?!\d)`;
// A phone number: `+` and 6 to 30 digits, or a bare run of 6 to 30 digits, with up to three
// spaces, brackets or dashes between two digits (and dots after a `+`: a bare dotted run is an
// address or a version). Runs glued to letters or digits (ids like `RM_a12345678b`) are left
// alone. The bounds keep the work per position small whatever a string holds.
const PHONE = String.raw`(?<![A-Za-z0-9])(?:\+\d(?:[\s().-]{0,3}\d){5,29}|\d(?:[\s()-]{0,3}\d){5,29})(?![A-Za-z0-9])`;
const PHONE_RUN = new RegExp(`(${KEPT})|${PHONE}`, 'g');

/**
 * How much of a number stays readable: `ends` keeps the leading `+` and two digits at each end,
 * enough for an operator to tell calls apart in logs and the inspector; `none` leaves `***`, for
 * error messages, which describe what went wrong and never need the number.
 */
export type PhoneMask = 'ends' | 'none';

/** Keeps the leading `+`, two leading and two trailing digits: `+31612345678` → `+31*******78`. */
export function maskPhoneNumber(number: string): string {
  const digits = number.replace(/\D/g, '');
  const plus = number.trimStart().startsWith('+') ? '+' : '';
  if (digits.length <= 4) return `${plus}${'*'.repeat(digits.length)}`;
  return `${plus}${digits.slice(0, 2)}${'*'.repeat(digits.length - 4)}${digits.slice(-2)}`;
}

/** Masks every phone-number-like run inside a string (room names, identities, messages). */
export function maskPhoneNumbers(text: string, mask: PhoneMask = 'ends'): string {
  return text.replace(PHONE_RUN, (run, kept: string | undefined) => kept ?? (mask === 'ends' ? maskPhoneNumber(run) : '***'));
}

/**
 * A deep copy of a JSON-like value with every string masked. Errors become
 * `{ type, message, stack, ... }` copies (their own properties are not enumerable, so they would
 * otherwise be lost), values with `toJSON` (Dates) are masked in their JSON form, and a cycle
 * becomes `'[Circular]'`.
 */
export function maskDeep<T>(value: T): T {
  return maskValue(value, new WeakSet(), false) as T;
}

/** Keys whose values are secrets: never written to a log, at any depth. */
const SECRET_KEYS: ReadonlySet<string> = new Set(['authorization', 'Authorization', 'apiSecret', 'secret', 'token']);
const REDACTED = '[redacted]';

/** maskDeep, with the value of every secret key (SECRET_KEYS) replaced by `[redacted]`: what a log line may hold. */
export function maskForLog<T>(value: T): T {
  return maskValue(value, new WeakSet(), true) as T;
}

// A phone number has at least six digits with at most three separators between two of them; a
// string without such a run is returned as it is, without the full pattern's scan.
const MAYBE_PHONE = /\d(?:[\s().-]{0,3}\d){5}/;

function maskValue(value: unknown, path: WeakSet<object>, redact: boolean): unknown {
  if (typeof value === 'string') return MAYBE_PHONE.test(value) ? maskPhoneNumbers(value) : value;
  if (value === null || typeof value !== 'object') return value;
  if (path.has(value)) return '[Circular]';
  path.add(value);
  try {
    if (Array.isArray(value)) return value.map((item) => maskValue(item, path, redact));
    if (value instanceof Error) return maskError(value, path, redact);
    const toJSON = (value as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === 'function') return maskValue(toJSON.call(value), path, redact);
    const out: Record<string, unknown> = {};
    for (const key in value) {
      if (!Object.hasOwn(value, key)) continue;
      out[key] = redact && SECRET_KEYS.has(key) ? REDACTED : maskValue((value as Record<string, unknown>)[key], path, redact);
    }
    return out;
  } finally {
    path.delete(value);
  }
}

// Keeps the error's prototype so pino's `err` serializer still reports its class as `type`;
// the copied fields are own and enumerable, so JSON.stringify (the inspector) keeps them too.
function maskError(err: Error, path: WeakSet<object>, redact: boolean): Record<string, unknown> {
  const out = Object.create(Object.getPrototypeOf(err) as object | null) as Record<string, unknown>;
  out.type = err.name;
  out.message = maskPhoneNumbers(err.message);
  if (err.stack !== undefined) out.stack = maskPhoneNumbers(err.stack);
  for (const [key, item] of Object.entries(err)) out[key] = redact && SECRET_KEYS.has(key) ? REDACTED : maskValue(item, path, redact);
  if (err.cause !== undefined) out.cause = maskValue(err.cause, path, redact);
  return out;
}
