// SPEC §9: phone numbers are masked in logs and the inspector wherever they appear, LiveKit
// identities (`sip_+316...`) and room names included.

// A phone number: `+` and 7 to 15 digits (spaces, dots or dashes allowed between them), or a bare
// run of 7 to 15 digits. Runs glued to letters or digits (ids like `RM_a12345678b`) and dates are left alone.
const PHONE_RUN = /(?<![A-Za-z0-9])(?:\+\d(?:[\s.-]?\d){6,14}|\d{7,15})(?![A-Za-z0-9])/g;

/** Keeps the leading `+`, two leading and two trailing digits: `+31612345678` → `+31*******78`. */
export function maskPhoneNumber(number: string): string {
  const digits = number.replace(/\D/g, '');
  const plus = number.trimStart().startsWith('+') ? '+' : '';
  if (digits.length <= 4) return `${plus}${'*'.repeat(digits.length)}`;
  return `${plus}${digits.slice(0, 2)}${'*'.repeat(digits.length - 4)}${digits.slice(-2)}`;
}

/** Masks every phone-number-like run inside a string (room names, identities, messages). */
export function maskPhoneNumbers(text: string): string {
  return text.replace(PHONE_RUN, (run) => maskPhoneNumber(run));
}

/** A deep copy of a JSON-like value with every string masked. */
export function maskDeep<T>(value: T): T {
  if (typeof value === 'string') return maskPhoneNumbers(value) as T;
  if (Array.isArray(value)) return value.map((item) => maskDeep(item)) as T;
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) out[key] = maskDeep(item);
    return out as T;
  }
  return value;
}
