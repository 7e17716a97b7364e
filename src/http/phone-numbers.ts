// Phone numbers and transfer targets from API requests, parsed with libphonenumber-js (its full
// metadata, so a number must be valid for its country, not just well-formed).
import { parsePhoneNumberFromString } from 'libphonenumber-js/max';

/** E.164 (`+31612345678`) from an international number, spaces and punctuation allowed; null when invalid. */
export function toE164(input: string): string | null {
  const trimmed = input.trim();
  // Only international numbers: a national number would need a country the request never gave.
  if (!trimmed.startsWith('+')) return null;
  const parsed = parsePhoneNumberFromString(trimmed);
  return parsed?.isValid() ? parsed.number : null;
}

const SIP_URI = /^sips?:[^\s@<>"]+@[A-Za-z0-9.-]+(?::\d{1,5})?(?:;[^\s<>"]*)?$/;

/**
 * A SIP REFER target as LiveKit takes it: `tel:+<E.164>` for a phone number, or the `sip:` /
 * `sips:` URI as given; null when it is neither.
 */
export function toTransferTarget(input: string): string | null {
  const trimmed = input.trim();
  if (/^sips?:/i.test(trimmed)) return trimmed.length <= 256 && SIP_URI.test(trimmed) ? trimmed : null;
  const number = toE164(trimmed.replace(/^tel:/i, ''));
  return number ? `tel:${number}` : null;
}
