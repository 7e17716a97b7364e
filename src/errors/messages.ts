// CP-04 user-facing messages (the session's `error.user_message`), chosen by Accept-Language.
// These reach end users of a phone product: plain words, no codes, no provider names.
import type { ErrorCategory } from '../../machines/call.types.js';

export type Language = 'en' | 'nl';

const DEFAULT_LANGUAGE: Language = 'en';
const SUPPORTED: readonly Language[] = ['en', 'nl'];

export const USER_MESSAGES: Readonly<Record<Language, Readonly<Record<ErrorCategory, string>>>> =
  Object.freeze({
    en: Object.freeze({
      busy: 'The number you called is busy. Please try again later.',
      no_answer: 'There was no answer. Please try again later.',
      declined: 'The call was declined.',
      invalid_number: 'The number you called is not valid. Please check it and try again.',
      trunk_auth_error:
        'The call could not be placed because of a problem with the phone line. Please contact support.',
      carrier_error: 'The phone network could not connect the call. Please try again later.',
      rate_limited: 'Too many calls are being made right now. Please try again in a moment.',
      provider_unavailable: 'The calling service is temporarily unavailable. Please try again later.',
      timeout: 'The calling service took too long to respond. Please try again.',
      auth_error:
        'The call could not be placed because of an account problem. Please contact support.',
      config_error: 'Calling is not set up correctly. Please contact support.',
      media_failure: 'The call was interrupted by a problem with the audio connection.',
      agent_error: 'The voice assistant ran into a problem. Please try again later.',
      unknown: 'Something went wrong with the call. Please try again later.',
    }),
    nl: Object.freeze({
      busy: 'Het gekozen nummer is in gesprek. Probeer het later opnieuw.',
      no_answer: 'Er werd niet opgenomen. Probeer het later opnieuw.',
      declined: 'De oproep is geweigerd.',
      invalid_number: 'Het gekozen nummer is ongeldig. Controleer het nummer en probeer het opnieuw.',
      trunk_auth_error:
        'De oproep kon niet worden gestart door een probleem met de telefoonlijn. Neem contact op met de helpdesk.',
      carrier_error: 'Het telefoonnetwerk kon de oproep niet doorverbinden. Probeer het later opnieuw.',
      rate_limited: 'Er worden op dit moment te veel oproepen gedaan. Probeer het zo meteen opnieuw.',
      provider_unavailable: 'De beldienst is tijdelijk niet beschikbaar. Probeer het later opnieuw.',
      timeout: 'De beldienst reageerde niet op tijd. Probeer het opnieuw.',
      auth_error:
        'De oproep kon niet worden gestart door een probleem met het account. Neem contact op met de helpdesk.',
      config_error: 'Bellen is niet goed ingesteld. Neem contact op met de helpdesk.',
      media_failure: 'Het gesprek werd onderbroken door een probleem met de geluidsverbinding.',
      agent_error: 'De spraakassistent heeft een probleem. Probeer het later opnieuw.',
      unknown: 'Er is iets misgegaan met de oproep. Probeer het later opnieuw.',
    }),
  });

export function userMessage(category: ErrorCategory, language: Language): string {
  // Stored sessions or a future category must still yield something safe to show.
  const table = USER_MESSAGES[language] ?? USER_MESSAGES[DEFAULT_LANGUAGE];
  return table[category] ?? table.unknown;
}

// A header is attacker-controlled: bound the work spent on it.
const MAX_HEADER_LENGTH = 4096;
const MAX_RANGES = 64;
const LANGUAGE_RANGE = /^(?:\*|[a-z]{1,8}(?:-[a-z0-9]{1,8})*)$/i;
// RFC 9110 §12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
const QVALUE = /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/;

interface LanguageRange {
  /** primary subtag, lower case, or `*` */
  primary: string;
  q: number;
  index: number;
}

function parseAcceptLanguage(header: string): LanguageRange[] {
  const ranges: LanguageRange[] = [];
  const parts = header.slice(0, MAX_HEADER_LENGTH).split(',').slice(0, MAX_RANGES);
  parts.forEach((part, index) => {
    const [rawTag = '', ...params] = part.split(';').map((s) => s.trim());
    if (!LANGUAGE_RANGE.test(rawTag)) return;
    let q = 1;
    for (const param of params) {
      const eq = param.indexOf('=');
      if (eq < 0) return; // malformed parameter: ignore the whole range
      const name = param.slice(0, eq).trim().toLowerCase();
      const value = param.slice(eq + 1).trim();
      if (name !== 'q') continue;
      if (!QVALUE.test(value)) return;
      q = Number(value);
    }
    ranges.push({ primary: rawTag.split('-')[0]!.toLowerCase(), q, index });
  });
  return ranges;
}

/**
 * Language for user messages from an Accept-Language header (RFC 9110 §12.5.4, with q-values).
 *
 * A regional range counts for its language (`nl-BE` asks for Dutch): we only have one Dutch and
 * one English text. A language's weight is that of its best explicit range, else that of `*`;
 * q=0 rules a language out. Highest weight wins; on a tie the range listed first wins, and `*`
 * alone, a missing header, nothing acceptable or garbage all give English.
 */
export function pickLanguage(acceptLanguage: string | undefined | null): Language {
  if (typeof acceptLanguage !== 'string' || acceptLanguage.trim() === '') return DEFAULT_LANGUAGE;
  const ranges = parseAcceptLanguage(acceptLanguage);
  const wildcard = ranges.find((r) => r.primary === '*');

  let best: { language: Language; q: number; index: number } | null = null;
  for (const language of SUPPORTED) {
    const explicit = ranges.filter((r) => r.primary === language);
    const chosen = explicit.length > 0 ? explicit.reduce((a, b) => (b.q > a.q ? b : a)) : wildcard;
    if (!chosen || chosen.q <= 0) continue;
    // An explicit mention outranks the wildcard on a tie, whatever the order.
    const index = chosen.primary === '*' ? Number.MAX_SAFE_INTEGER : chosen.index;
    if (!best || chosen.q > best.q || (chosen.q === best.q && index < best.index)) {
      best = { language, q: chosen.q, index };
    }
  }
  return best?.language ?? DEFAULT_LANGUAGE;
}
