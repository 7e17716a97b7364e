// SPEC §9: phone numbers are masked in logs and the inspector wherever they appear, LiveKit
// identities (`sip_+316...`) and room names included.

// A phone number: `+` and 7 to 15 digits (spaces, dots or dashes allowed between them), or a bare
// run of 7 to 15 digits. Runs glued to letters or digits (ids like `RM_a12345678b`) and dates are left alone.
// UUIDs are matched first (group 1) and kept as they are: their last group may be 12 bare digits.
const PHONE_RUN =
  /([0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12})|(?<![A-Za-z0-9])(?:\+\d(?:[\s.-]?\d){6,14}|\d{7,15})(?![A-Za-z0-9])/g;

/** Keeps the leading `+`, two leading and two trailing digits: `+31612345678` → `+31*******78`. */
export function maskPhoneNumber(number: string): string {
  const digits = number.replace(/\D/g, '');
  const plus = number.trimStart().startsWith('+') ? '+' : '';
  if (digits.length <= 4) return `${plus}${'*'.repeat(digits.length)}`;
  return `${plus}${digits.slice(0, 2)}${'*'.repeat(digits.length - 4)}${digits.slice(-2)}`;
}

/** Masks every phone-number-like run inside a string (room names, identities, messages). */
export function maskPhoneNumbers(text: string): string {
  return text.replace(PHONE_RUN, (run, uuid: string | undefined) => uuid ?? maskPhoneNumber(run));
}

/**
 * A deep copy of a JSON-like value with every string masked. Errors become
 * `{ type, message, stack, ... }` copies (their own properties are not enumerable, so they would
 * otherwise be lost), values with `toJSON` (Dates) are masked in their JSON form, and a cycle
 * becomes `'[Circular]'`.
 */
export function maskDeep<T>(value: T): T {
  return maskValue(value, new WeakSet()) as T;
}

function maskValue(value: unknown, path: WeakSet<object>): unknown {
  if (typeof value === 'string') return maskPhoneNumbers(value);
  if (value === null || typeof value !== 'object') return value;
  if (path.has(value)) return '[Circular]';
  path.add(value);
  try {
    if (Array.isArray(value)) return value.map((item) => maskValue(item, path));
    if (value instanceof Error) return maskError(value, path);
    const toJSON = (value as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === 'function') return maskValue(toJSON.call(value), path);
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) out[key] = maskValue(item, path);
    return out;
  } finally {
    path.delete(value);
  }
}

// Keeps the error's prototype so pino's `err` serializer still reports its class as `type`;
// the copied fields are own and enumerable, so JSON.stringify (the inspector) keeps them too.
function maskError(err: Error, path: WeakSet<object>): Record<string, unknown> {
  const out = Object.create(Object.getPrototypeOf(err) as object | null) as Record<string, unknown>;
  out.type = err.name;
  out.message = maskPhoneNumbers(err.message);
  if (err.stack !== undefined) out.stack = maskPhoneNumbers(err.stack);
  for (const [key, item] of Object.entries(err)) out[key] = maskValue(item, path);
  if (err.cause !== undefined) out.cause = maskValue(err.cause, path);
  return out;
}
